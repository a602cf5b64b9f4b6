"""Named editors: the one list of editor names (``--editor`` choices, help text, docs), and :func:`load_editor`.

Each named editor registers a loader once, next to its code::

    @EDITORS.register("tiny", help="untrained offline test model (tests, demo); its edits are noise")
    def load_tiny(*, device=None, dtype=None, cache_dir=None) -> IP2PEditor: ...

:func:`load_editor` looks a name up in :data:`EDITORS`; anything else is a hub id or a local
``save_pretrained`` directory, loaded with :meth:`~adlift.editors.ip2p.IP2PEditor.from_pretrained`.
The command-line ``--editor`` field (:data:`EditorRef`) stays a string, so hub ids and directories
work too; its help text is :func:`editor_help`, built from the registry.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Protocol

import torch
import tyro

from adlift.registry import Registry

if TYPE_CHECKING:
    from adlift.editors.ip2p import IP2PEditor


class EditorLoader(Protocol):
    """What a registered editor provides: a function building the editor on a device."""

    def __call__(
        self,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> IP2PEditor: ...


#: Named editors (``ip2p``, ``tiny``, ...), in the order users see them.
EDITORS: Registry[EditorLoader] = Registry("editor")


def load_editor(
    spec: str | os.PathLike = "ip2p",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> IP2PEditor:
    """An editor by name (see :data:`EDITORS`), hub id, or local ``save_pretrained`` directory.

    ``cache_dir`` is the hub cache for hub ids (default: huggingface_hub's) and the loader's cache
    for named editors (the tiny model's build directory). A directory literally named like a
    registered editor must be given as ``./NAME``. Missing weights raise
    :class:`~adlift.editors.weights.MissingWeightsError` (an AdLiftError).
    """
    spec = os.fspath(spec)
    if spec in EDITORS:
        return EDITORS.get(spec)(device=device, dtype=dtype, cache_dir=cache_dir)
    from adlift.editors.ip2p import IP2PEditor

    return IP2PEditor.from_pretrained(spec, device=device, dtype=dtype, cache_dir=cache_dir)


def editor_help(default_note: str = "") -> str:
    """The help text of every ``--editor`` option: the registered names with their help, then hub ids/dirs."""
    names = "; ".join(EDITORS.describe().splitlines())
    text = (f"{names}; or any compatible hub id (from the hub cache, HF_HOME, else downloaded) or local "
            "directory written by save_pretrained")  # fmt: skip
    return f"{text}. {default_note}" if default_note else text


def editor_ref(default_note: str = "") -> object:
    """``Annotated[str, tyro.conf.arg(...)]`` for a command's ``--editor`` field (help from :data:`EDITORS`).

    Call it after the editors are registered (importing :mod:`adlift.editors` registers them)."""
    return Annotated[str, tyro.conf.arg(help=editor_help(default_note), metavar="NAME|HUB_ID|DIR")]
