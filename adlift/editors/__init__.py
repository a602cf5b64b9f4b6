"""Editors AdLift defends against: InstructPix2Pix in 2D, Instruct-GS2GS-style editing in 3D.

    editor = load_editor("ip2p")            # timbrooks/instruct-pix2pix via from_pretrained
    editor = load_editor("tiny")            # untrained offline test model (tests, demo)
    editor = load_editor("/path/to/dir")    # any compatible save_pretrained directory or hub id

    edited = editor.edit(images, "turn him into a clown")          # [B, 3, H, W] in [0, 1]
    surface = editor.surface                                        # differentiable pieces for attacks
    result = edit_scene(scene, cameras, editor, "turn him into a clown", SceneEditConfig(rounds=1))

Named editors live in :data:`EDITORS` (:mod:`adlift.editors.registry`); each module below that
defines one registers it when imported here. diffusers/transformers are imported only when an
editor is loaded.
"""

from __future__ import annotations

# Editor modules: importing one registers its editor in EDITORS (the order is the order users see).
from adlift.editors import ip2p  # noqa: F401, I001  (first: the default editor leads the list)
from adlift.editors import full_random, mini, tiny  # noqa: F401
from adlift.editors.ip2p import IP2PEditor, IP2PSurface
from adlift.editors.outputs import save_before_after, write_edit_outputs
from adlift.editors.photometric import dssim, l1_dssim_loss
from adlift.editors.registry import EDITORS, editor_help, editor_ref, load_editor
from adlift.editors.scene_edit import SceneEditConfig, SceneEditResult, SceneEditRun, edit_scene
from adlift.editors.untrained import (
    UNTRAINED_WARNING,
    is_model_organism,
    is_untrained,
    label_record,
    untrained_banner,
    untrained_note,
    untrained_record,
    untrained_warning,
    warn_untrained,
)
from adlift.editors.weights import DEFAULT_MODEL, MissingWeightsError

#: The type of every command's ``--editor`` field: a str (names, hub ids, directories) whose help lists EDITORS.
EditorRef = editor_ref()

#: Names :func:`load_editor` understands besides hub ids and paths (kept for callers; = EDITORS.names()).
EDITOR_NAMES = EDITORS.names()

__all__ = [
    "DEFAULT_MODEL",
    "EDITORS",
    "EDITOR_NAMES",
    "EditorRef",
    "IP2PEditor",
    "IP2PSurface",
    "MissingWeightsError",
    "SceneEditConfig",
    "SceneEditResult",
    "SceneEditRun",
    "UNTRAINED_WARNING",
    "dssim",
    "edit_scene",
    "editor_help",
    "editor_ref",
    "is_untrained",
    "l1_dssim_loss",
    "load_editor",
    "save_before_after",
    "untrained_banner",
    "untrained_note",
    "untrained_record",
    "label_record",
    "is_model_organism",
    "untrained_warning",
    "warn_untrained",
    "write_edit_outputs",
]
