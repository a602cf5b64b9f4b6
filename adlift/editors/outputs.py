"""What an edit writes: the files of ``adlift edit`` and ``ns-train adlift-edit``, in one place.

:func:`write_edit_outputs` writes, into ``out``:

==================  ===============================================================================
``original/*.png``  the views the edit started from (renders of the input scene), one per camera
``edited/*.png``    2d: the edited views; 3d, dge: renders of the edited scene from the same cameras
``targets/*.png``   3d, dge, when given: the edited training targets (3d: of the last dataset update)
``before_after.png``  (original, edited) pairs side by side, up to 4 pairs per row; a red banner
                    when the editor is an untrained test model
``edited.ply``      3d, dge: the edited scene (INRIA 3DGS layout; a comment names instruction and editor)
``edit.json``       written last, so its presence means the other files are complete
==================  ===============================================================================

``edit.json`` (the one description of its schema):

* the editor's metadata (:meth:`~adlift.editors.ip2p.IP2PEditor.metadata`): ``editor``, ``model``,
  ``untrained_test_model``, ``device``, ``dtype``, ``diffusers``; and ``warning`` (one sentence)
  when the editor is an untrained test model;
* ``instruction``, ``mode`` ("2d", "3d" or "dge"), ``views`` (camera names), ``width``, ``height``;
* ``record``: what the caller adds at the top level; ``adlift edit`` records ``scene``, ``cameras``,
  ``split``, ``steps``, ``guidance_scale``, ``image_guidance_scale``, ``seed``, ``batch_size``,
  ``seconds`` and in 3d ``config`` (the full :class:`~adlift.editors.scene_edit.SceneEditConfig`) and
  ``history`` (one entry per round); in dge ``config``, ``dge`` (the
  :class:`~adlift.editors.dge.DGEConfig`), ``key_views`` (camera names) and ``history`` (one entry: edit and fit
  seconds, fitting steps, photometric loss before and after the fit); the nerfstudio plugin adds ``config``, ``history``,
  ``complete`` and a ``nerfstudio`` section;
* 3d, dge: ``num_gaussians`` of the edited scene;
* ``files``: the outputs above that were written, relative to ``out``.

Values go through :func:`adlift.io.json_safe.write_json_atomic` (dataclasses, Paths, tuples and
0-d tensors become JSON; NaN/inf become null).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from adlift.editors.untrained import label_record, untrained_banner, untrained_note
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.scene import GaussianScene


def save_before_after(
    before: torch.Tensor,  # [C, 3, H, W] in [0, 1]
    after: torch.Tensor,  # [C, 3, H, W] in [0, 1]
    names: Sequence[str],
    path: str | Path,
    banner: str = "",
) -> Path:
    """Contact sheet of (before, after) pairs side by side, up to 4 pairs per row; returns the path.

    A non-empty ``banner`` is written in white on a red strip above the images (see
    :func:`adlift.editors.untrained.untrained_banner`).
    """
    from adlift.render.images import contact_sheet, save_png, with_banner

    if before.shape != after.shape or before.ndim != 4:
        raise AdLiftError(f"before/after images must share one shape [C, 3, H, W], got {list(before.shape)} "
                          f"and {list(after.shape)}")  # fmt: skip
    before, after = before.detach().cpu(), after.detach().cpu()
    pairs = torch.stack([before, after], dim=1).flatten(0, 1)  # [2C, 3, H, W]: b0, a0, b1, a1, ...
    labels = [f"{n} {tag}" for n in names for tag in ("before", "after")]
    sheet = with_banner(contact_sheet(pairs, labels, columns=2 * min(len(names), 4)), banner)
    return save_png(sheet, path)


def ply_comment(source: str, instruction: str, editor_metadata: dict) -> str:
    """The one-line ASCII comment an edited .ply carries: who made it, with which instruction and editor."""
    text = f"{source}, instruction {instruction!r}, editor {editor_metadata.get('editor')}"
    text += untrained_note(editor_metadata, "edit")
    return " ".join(text.encode("ascii", "backslashreplace").decode("ascii").split())


def write_edit_outputs(
    out: str | Path,
    *,
    instruction: str,
    mode: Literal["2d", "3d", "dge"],
    editor_metadata: dict,
    names: Sequence[str],
    originals: torch.Tensor,  # [C, 3, H, W] in [0, 1]
    edited: torch.Tensor,  # [C, 3, H, W] in [0, 1]
    scene: GaussianScene | None = None,
    targets: torch.Tensor | None = None,  # [C, 3, H, W] in [0, 1]
    record: dict[str, Any] | None = None,
    source: str = "adlift edit",
    protect: tuple[str | Path, ...] = (),
) -> dict:
    """Write the files of the module docstring into ``out``; returns the edit.json document.

    ``scene`` (3d, dge) is written as edited.ply; ``protect`` lists input files that must not be
    overwritten (the input scene). ``source`` names the producer in the .ply comment.
    """
    from adlift.io.json_safe import write_json_atomic
    from adlift.io.formats import write_scene
    from adlift.render.images import save_images

    out = Path(out)
    names = list(names)
    if originals.shape != edited.shape or originals.shape[0] != len(names):
        raise AdLiftError(f"edit outputs need {len(names)} original and edited views of one shape, got "
                          f"{list(originals.shape)} and {list(edited.shape)}")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    if scene is not None:
        ply = out / "edited.ply"
        for p in protect:
            if Path(p).exists() and ply.exists() and ply.samefile(p):
                raise AdLiftError(f"refusing to overwrite the input file {p}; choose another output directory")
        write_scene(scene, ply, comments=[ply_comment(f"{source} --mode {mode}", instruction, editor_metadata)])
        files["scene"] = "edited.ply"
    save_images(originals.detach().cpu(), names, out / "original")
    files["original"] = "original/"
    if targets is not None:
        save_images(targets.detach().cpu(), names, out / "targets")
        files["targets"] = "targets/"
    save_images(edited.detach().cpu(), names, out / "edited")
    files["edited"] = "edited/"
    save_before_after(originals, edited, names, out / "before_after.png", untrained_banner(editor_metadata, "edit"))
    files["before_after"] = "before_after.png"

    doc: dict[str, Any] = dict(editor_metadata)
    warning = label_record(editor_metadata, "edit")
    if warning:
        doc["warning"] = warning
    doc.update(instruction=instruction, mode=mode, views=names, width=int(originals.shape[-1]),
               height=int(originals.shape[-2]))  # fmt: skip
    doc.update(record or {})
    if scene is not None:
        doc["num_gaussians"] = scene.num_gaussians
    doc["files"] = files
    write_json_atomic(out / "edit.json", doc)
    return doc
