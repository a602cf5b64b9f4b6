"""Editors AdLift defends against: InstructPix2Pix in 2D, Instruct-GS2GS-style editing in 3D.

    editor = load_editor("ip2p")            # timbrooks/instruct-pix2pix via from_pretrained
    editor = load_editor("tiny")            # untrained offline test model (tests, demo)
    editor = load_editor("/path/to/dir")    # any compatible save_pretrained directory or hub id

    edited = editor.edit(images, "turn him into a clown")          # [B, 3, H, W] in [0, 1]
    surface = editor.surface                                        # differentiable pieces for attacks
    result = edit_scene(scene, cameras, editor, "turn him into a clown", SceneEditConfig(rounds=1))

diffusers/transformers are imported only when an editor is loaded.
"""

from __future__ import annotations

import os

import torch

from adlift.editors.ip2p import IP2PEditor, IP2PSurface
from adlift.editors.photometric import dssim, l1_dssim_loss
from adlift.editors.scene_edit import SceneEditConfig, SceneEditResult, SceneEditRun, edit_scene
from adlift.editors.outputs import save_before_after, write_edit_outputs
from adlift.editors.untrained import (
    UNTRAINED_WARNING,
    is_untrained,
    untrained_banner,
    untrained_note,
    untrained_record,
    untrained_warning,
    warn_untrained,
)
from adlift.editors.weights import DEFAULT_MODEL, MissingWeightsError

#: Editor names :func:`load_editor` understands besides hub ids and paths.
EDITOR_NAMES = ("ip2p", "tiny")


def load_editor(
    spec: str | os.PathLike = "ip2p",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> IP2PEditor:
    """An editor by name: ``ip2p`` (:data:`DEFAULT_MODEL`), ``tiny``, a hub id or a local directory.

    ``cache_dir`` is the hub cache for hub ids and the AdLift cache for ``tiny``. A directory
    literally named ``tiny`` or ``ip2p`` must be given as ``./tiny``.
    """
    spec = os.fspath(spec)
    if spec == "tiny":
        return IP2PEditor.tiny(device=device, dtype=dtype, cache_dir=cache_dir)
    model = DEFAULT_MODEL if spec == "ip2p" else spec
    return IP2PEditor.from_pretrained(model, device=device, dtype=dtype, cache_dir=cache_dir)


__all__ = [
    "DEFAULT_MODEL",
    "EDITOR_NAMES",
    "IP2PEditor",
    "IP2PSurface",
    "MissingWeightsError",
    "SceneEditConfig",
    "SceneEditResult",
    "SceneEditRun",
    "UNTRAINED_WARNING",
    "dssim",
    "edit_scene",
    "is_untrained",
    "l1_dssim_loss",
    "load_editor",
    "save_before_after",
    "untrained_banner",
    "untrained_note",
    "untrained_record",
    "untrained_warning",
    "warn_untrained",
    "write_edit_outputs",
]
