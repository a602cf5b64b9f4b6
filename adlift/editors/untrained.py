"""The one label for results of a model that is not InstructPix2Pix: an untrained test model (the
``tiny`` editor, the tiny CLIP) or a trained model organism (the ``mini`` editor).

A model organism's results are real, learned edits, but never claims about the real editor; every
function below labels them too (:func:`is_model_organism`), with that consequence instead.

Anything produced with an untrained editor must say so, wherever a person sees it: the console
(:data:`UNTRAINED_WARNING` via :func:`warn_untrained`), a red banner on images
(:func:`untrained_banner`), a note after a summary line or in a .ply comment (:func:`untrained_note`)
and a ``warning`` field in JSON outputs (:func:`untrained_record`). Every command, the protect
preview, the evaluation figures and report, the viewer and the nerfstudio plugin take their
wording from here, so it is written once.

``source`` is an editor (anything with ``untrained`` and ``name``), an editor's
:meth:`~adlift.editors.ip2p.IP2PEditor.metadata` dict (``untrained_test_model``, ``editor``), or a
bool. ``context`` says what the results are, which decides the consequence stated:

    ============  ==============================================
    edit          these edits are meaningless
    protection    not a real protection
    evaluation    edits are noise, not real InstructPix2Pix edits
    ============  ==============================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

#: What results of an untrained model are: edits, a protection, or an evaluation.
Context = Literal["edit", "protection", "evaluation"]

#: The consequence stated for each context.
CONSEQUENCES: dict[str, str] = {
    "edit": "these edits are meaningless",
    "protection": "not a real protection",
    "evaluation": "edits are noise, not real InstructPix2Pix edits",
}

#: The console line printed first wherever the tiny editor is loaded (kept for callers that print it directly).
UNTRAINED_WARNING = (
    "WARNING: editor 'tiny' is an untrained test model with random weights; "
    "its edits are meaningless and only exercise the pipeline"
)


def is_untrained(source: Any) -> bool:
    """True if ``source`` (an editor, its metadata dict, or a bool) is an untrained test model."""
    if isinstance(source, bool):
        return source
    if isinstance(source, dict):
        return bool(source.get("untrained_test_model")) or source.get("editor") == "tiny"
    return bool(getattr(source, "untrained", False))


#: What results of a model organism (the trained mini editor) are, in every context.
ORGANISM_CONSEQUENCE = "a model organism, not a claim about InstructPix2Pix"


def is_model_organism(source: Any) -> bool:
    """True if ``source`` (an editor, its metadata dict, or a bool) is a trained model organism (mini)."""
    if isinstance(source, bool):
        return False
    if isinstance(source, dict):
        return bool(source.get("model_organism"))
    return bool(getattr(source, "model_organism", False))


def _name(source: Any) -> str:
    if isinstance(source, dict):
        return str(source.get("editor") or "tiny")
    return str(getattr(source, "name", None) or "tiny")


def untrained_warning(source: Any) -> str:
    """The console warning for ``source`` ("" when it is the real editor)."""
    if is_model_organism(source):
        return (f"NOTE: editor {_name(source)!r} is a small InstructPix2Pix trained offline on exactly computable "
                f"edits ({ORGANISM_CONSEQUENCE})")  # fmt: skip
    if not is_untrained(source):
        return ""
    name = _name(source)
    return UNTRAINED_WARNING if name == "tiny" else UNTRAINED_WARNING.replace("'tiny'", repr(name))


def warn_untrained(source: Any, echo: Callable[[str], Any] | None = None) -> bool:
    """Print :func:`untrained_warning` (through ``echo``, default ``print`` with flush) if ``source`` is
    untrained; returns whether it was."""
    line = untrained_warning(source)
    if line:
        if echo is None:
            print(line, flush=True)
        else:
            echo(line)
    return bool(line)


def untrained_banner(source: Any, context: Context = "edit") -> str:
    """The red banner text for images made with ``source`` ("" when trained), e.g.
    ``UNTRAINED TEST MODEL (editor 'tiny'): not a real protection``; for a model organism
    ``MODEL ORGANISM (editor 'mini'): not a claim about InstructPix2Pix``."""
    if is_model_organism(source):
        return f"MODEL ORGANISM (editor {_name(source)!r}): not a claim about InstructPix2Pix"
    if not is_untrained(source):
        return ""
    return f"UNTRAINED TEST MODEL (editor {_name(source)!r}): {CONSEQUENCES[context]}"


def untrained_note(source: Any, context: Context = "edit") -> str:
    """A parenthesised note to append to a summary line or .ply comment ("" when trained), e.g.
    `` (untrained test model: not a real protection)``."""
    if is_model_organism(source):
        return f" ({_name(source)}: {ORGANISM_CONSEQUENCE})"
    if not is_untrained(source):
        return ""
    return f" (untrained test model: {CONSEQUENCES[context]})"


def untrained_record(context: Context = "edit") -> str:
    """The ``warning`` sentence JSON outputs (edit.json, manifest.json, report.json) record."""
    return f"untrained test model: {CONSEQUENCES[context]}; it says nothing about the real InstructPix2Pix"


def label_record(source: Any, context: Context = "edit") -> str | None:
    """The ``warning`` JSON outputs record for results of ``source``: :func:`untrained_record` for an
    untrained model, the model-organism sentence for mini, None for the real editor."""
    if is_model_organism(source):
        return f"{_name(source)}: {ORGANISM_CONSEQUENCE}; its numbers are not claims about the real editor"
    return untrained_record(context) if is_untrained(source) else None
