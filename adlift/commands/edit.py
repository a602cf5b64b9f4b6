"""``adlift edit``: edit a 3DGS asset with an instruction, as an attacker would.

``--mode 2d`` renders the views and edits each with InstructPix2Pix; ``--mode 3d`` runs the
Instruct-GS2GS-style iterative dataset update on the Gaussians and writes the edited .ply.
Both write a side-by-side before/after image and ``edit.json`` (settings, editor, timings).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Literal

import torch
import tyro

from adlift.errors import AdLiftError
from adlift.render import render_images


@dataclasses.dataclass
class EditCommand:
    """Edit a 3DGS .ply with an instruction: 2D (InstructPix2Pix on its renders) or 3D (Instruct-GS2GS-style)."""

    scene: tyro.conf.Positional[Path]
    """Path of the 3D Gaussian Splatting .ply to edit (never overwritten)."""

    instruction: str
    """The editing instruction, e.g. "turn him into a clown"."""

    out: Path
    """Output directory (created if needed); files of the same names are replaced."""

    mode: Literal["2d", "3d"] = "2d"
    """2d: edit each rendered view independently; 3d: edit the Gaussians (iterative dataset update)."""

    editor: str = "ip2p"
    """ip2p (timbrooks/instruct-pix2pix), tiny (untrained offline test model), a hub id, or a local
    directory written by save_pretrained. Hub weights must be cached (HF_HOME) or downloadable."""

    cameras: str = "orbit:8"
    """Camera file or spec: a nerfstudio transforms.json (or its directory), a COLMAP sparse model
    directory, a 3DGS cameras.json, or `orbit:N[,elev=MIN:MAX,radius=R,fov=DEG,size=WxH]`. In 3d mode
    these are the training views."""

    split: Literal["all", "train", "novel"] = "all"
    """Which views of a camera file to use (train/novel split stored with the cameras)."""

    steps: int = 20
    """Diffusion (denoising) steps per edit."""

    guidance_scale: float | None = None
    """Text guidance; default 7.5 in 2d (InstructPix2Pix), 12.5 in 3d (Instruct-GS2GS)."""

    image_guidance_scale: float = 1.5
    """Image guidance (how closely the edit follows the input view)."""

    seed: int = 0
    """Random seed of the edits (the same seed gives the same result)."""

    gs_steps: int = 2500
    """3d: optimisation steps between dataset updates (Instruct-GS2GS: 2500)."""

    rounds: int = 3
    """3d: dataset updates (edit all views, then fit); Instruct-GS2GS runs 7500 steps = 3 rounds."""

    width: int | None = None
    """Render width in pixels (intrinsics rescaled); with only one of width/height the aspect is kept."""

    height: int | None = None
    """Render height in pixels (intrinsics rescaled)."""

    batch_size: int = 4
    """Images per InstructPix2Pix batch."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser: auto = our CUDA kernels if built, else gsplat on CUDA, else pure PyTorch."""

    device: str | None = None
    """Torch device (e.g. cpu, cuda:0); default: cuda if available, else cpu."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour as R G B in [0, 1]."""

    resume: bool = False
    """3d: continue an interrupted run from OUT/checkpoint.pt (written after every round)."""

    def run(self) -> None:
        from adlift.editors import UNTRAINED_WARNING, load_editor
        from adlift.io.cameras import load_cameras
        from adlift.io.ply import read_ply

        if self.steps < 1 or self.batch_size < 1:
            raise AdLiftError(f"--steps and --batch-size must be >= 1, got {self.steps} and {self.batch_size}")
        if not self.instruction.strip():
            raise AdLiftError("--instruction is empty; say what the edit should do, e.g. 'turn him into a clown'")
        ply_path = self.out / "edited.ply"
        if self.mode == "3d" and ply_path.exists() and self.scene.exists() and os.path.samefile(ply_path, self.scene):
            raise AdLiftError(f"refusing to overwrite the input file {self.scene}; choose another --out directory")
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        scene = read_ply(self.scene).to(device)
        cameras = load_cameras(self.cameras, scene=scene, split=self.split, width=self.width, height=self.height)
        if len(cameras) == 0:
            raise AdLiftError(f"no cameras selected from {self.cameras!r} (split {self.split!r})")
        cameras = cameras.to(device)
        editor = load_editor(self.editor, device=device)
        if editor.untrained:
            print(UNTRAINED_WARNING, flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        meta = {
            **editor.metadata(),
            "instruction": self.instruction,
            "mode": self.mode,
            "scene": str(self.scene),
            "cameras": self.cameras,
            "split": self.split,
            "views": list(cameras.names),
            "width": cameras.width,
            "height": cameras.height,
            "steps": self.steps,
            "image_guidance_scale": self.image_guidance_scale,
            "seed": self.seed,
        }
        if editor.untrained:
            meta["warning"] = UNTRAINED_WARNING
        tic = time.perf_counter()
        if self.mode == "2d":
            self._run_2d(scene, cameras, editor, meta)
        else:
            self._run_3d(scene, cameras, editor, meta)
        meta["seconds"] = round(time.perf_counter() - tic, 3)
        _write_json(self.out / "edit.json", meta)
        note = " [untrained test model: results are meaningless]" if editor.untrained else ""
        print(f"wrote {self.out / 'before_after.png'} and {self.out / 'edit.json'}{note}")

    # ------------------------------------------------------------------ 2d
    def _run_2d(self, scene, cameras, editor, meta: dict) -> None:
        from adlift.render.images import save_images

        guidance = 7.5 if self.guidance_scale is None else self.guidance_scale
        meta["guidance_scale"] = guidance
        originals = render_images(scene, cameras, backend=self.backend, background=self.background,
                                  progress="rendering views").cpu()
        edited = editor.edit(
            originals,
            self.instruction,
            steps=self.steps,
            guidance_scale=guidance,
            image_guidance_scale=self.image_guidance_scale,
            seed=self.seed,
            batch_size=self.batch_size,
            progress=True,
        )
        save_images(originals, cameras.names, self.out / "original")
        save_images(edited, cameras.names, self.out / "edited")
        _save_before_after(originals, edited, cameras.names, self.out / "before_after.png", _banner(editor))
        meta["files"] = {"original": "original/", "edited": "edited/", "before_after": "before_after.png"}
        print(f"edited {len(cameras)} views ({cameras.width}x{cameras.height}) with {editor.name} ({editor.model})")

    # ------------------------------------------------------------------ 3d
    def _run_3d(self, scene, cameras, editor, meta: dict) -> None:
        from adlift.editors import SceneEditConfig, edit_scene
        from adlift.io.ply import write_ply
        from adlift.render.images import save_images

        ply_path = self.out / "edited.ply"
        checkpoint = self.out / "checkpoint.pt"
        if checkpoint.exists() and not self.resume:
            checkpoint.unlink()
        guidance = 12.5 if self.guidance_scale is None else self.guidance_scale
        config = SceneEditConfig(
            rounds=self.rounds,
            gs_steps=self.gs_steps,
            diffusion_steps=self.steps,
            guidance_scale=guidance,
            image_guidance_scale=self.image_guidance_scale,
            background=self.background,
            backend=self.backend,
            seed=self.seed,
            edit_batch_size=self.batch_size,
            checkpoint=checkpoint,
        )
        result = edit_scene(scene, cameras, editor, self.instruction, config)
        comment = f"adlift edit --mode 3d, instruction {self.instruction!r}, editor {editor.name}"
        if editor.untrained:
            comment += " (untrained test model)"
        write_ply(result.scene, ply_path, comments=[comment.replace("\n", " ")])
        rendered = render_images(result.scene, cameras, backend=self.backend, background=self.background,
                                 progress="rendering edited scene").cpu()
        save_images(result.originals, cameras.names, self.out / "original")
        save_images(result.targets, cameras.names, self.out / "targets")
        save_images(rendered, cameras.names, self.out / "edited")
        _save_before_after(result.originals, rendered, cameras.names, self.out / "before_after.png", _banner(editor))
        checkpoint.unlink(missing_ok=True)
        meta.update(
            {
                "guidance_scale": guidance,
                "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()},
                "history": result.history,
                "num_gaussians": result.scene.num_gaussians,
                "files": {
                    "scene": "edited.ply",
                    "original": "original/",
                    "targets": "targets/",
                    "edited": "edited/",
                    "before_after": "before_after.png",
                },
            }
        )
        last = result.history[-1]
        print(
            f"edited {result.scene.num_gaussians} Gaussians over {len(result.history)} round(s) x {config.gs_steps} "
            f"steps; loss to the edited targets {last['loss_before_fit']:.4f} -> {last['loss_after_fit']:.4f}; "
            f"wrote {ply_path}"
        )


def _save_before_after(before: torch.Tensor, after: torch.Tensor, names, path: Path, banner: str = "") -> None:
    """Contact sheet of (before, after) pairs side by side, up to 4 pairs per row.

    A non-empty ``banner`` is written in white on a red strip above the images (used to mark
    results of the untrained test model).
    """
    from adlift.render.images import contact_sheet, save_png, with_banner

    before, after = before.cpu(), after.cpu()
    pairs = torch.stack([before, after], dim=1).flatten(0, 1)  # [2C, 3, H, W]: b0, a0, b1, a1, ...
    labels = [f"{n} {tag}" for n in names for tag in ("before", "after")]
    sheet = with_banner(contact_sheet(pairs, labels, columns=2 * min(len(names), 4)), banner)
    save_png(sheet, path)


def _banner(editor) -> str:
    return "UNTRAINED TEST MODEL (editor 'tiny'): these edits are meaningless" if editor.untrained else ""


def _write_json(path: Path, data: dict) -> None:
    from adlift.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
