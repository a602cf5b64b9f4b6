"""The one label for results of an untrained test model (the ``tiny`` editor, the tiny CLIP).

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


def _name(source: Any) -> str:
    if isinstance(source, dict):
        return str(source.get("editor") or "tiny")
    return str(getattr(source, "name", None) or "tiny")


def untrained_warning(source: Any) -> str:
    """The console warning for ``source`` ("" when it is a trained model)."""
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
    ``UNTRAINED TEST MODEL (editor 'tiny'): not a real protection``."""
    if not is_untrained(source):
        return ""
    return f"UNTRAINED TEST MODEL (editor {_name(source)!r}): {CONSEQUENCES[context]}"


def untrained_note(source: Any, context: Context = "edit") -> str:
    """A parenthesised note to append to a summary line or .ply comment ("" when trained), e.g.
    `` (untrained test model: not a real protection)``."""
    if not is_untrained(source):
        return ""
    return f" (untrained test model: {CONSEQUENCES[context]})"


def untrained_record(context: Context = "edit") -> str:
    """The ``warning`` sentence JSON outputs (edit.json, manifest.json, report.json) record."""
    return f"untrained test model: {CONSEQUENCES[context]}; it says nothing about the real InstructPix2Pix"
