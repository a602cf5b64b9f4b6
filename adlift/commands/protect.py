"""``adlift protect``: add safeguard Gaussians to a 3DGS asset so instruction-driven edits fail.

Writes OUT/protected.ply (one standard 3DGS .ply: raw + safeguard), OUT/manifest.json, the
cameras (OUT/transforms.json) and OUT/preview.png; see :mod:`adlift.protect.output`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

import torch
import tyro

from adlift.editors import EditorRef
from adlift.errors import AdLiftError

Group = Literal["sh", "opacity", "scale", "position", "rotation"]


@dataclasses.dataclass
class ProtectCommand:
    """Protect a 3DGS .ply against an instruction-driven editor (Lifted PGD, or a baseline)."""

    scene: tyro.conf.Positional[Path]
    """The 3D Gaussian Splatting .ply to protect (never modified)."""

    instruction: str
    """The edit to protect against, e.g. "turn him into a clown"."""

    out: Path
    """Output directory (created if needed); protected.ply, manifest.json, transforms.json, preview.png."""

    cameras: str = "auto"
    """Training views: auto (the transforms.json next to the .ply if there is one, else orbit:32), a
    transforms.json / COLMAP model / 3DGS cameras.json, or `orbit:N[,...]`. Their novel (test) split
    is never optimised on and is measured separately."""

    eta: str = "8/255"
    """L-infinity budget of the change of any rendered pixel, as a fraction (8/255) or a number."""

    method: Literal["lifted-pgd", "fit2d", "direct"] = "lifted-pgd"
    """lifted-pgd (AdLift), fit2d (PGD each view, then fit once) or direct (loss through the renderer)."""

    loss: Literal["encoder", "unet", "pipeline"] = "encoder"
    """encoder (VAE latent, PhotoGuard), unet (noise prediction, AdvDM/SDS), pipeline (k denoising steps)."""

    target: Literal["gray", "zero", "image", "away"] = "gray"
    """encoder/pipeline target: gray, zero (black), image (--target-image) or away (encoder only)."""

    target_image: Path | None = None
    """Image to pull the editor toward when --target image."""

    unet_mode: Literal["advdm", "sds"] = "advdm"
    """unet loss: advdm (maximise the denoising error) or sds (score distillation, cheaper)."""

    pipeline_steps: int = 4
    """pipeline loss: denoising steps backpropagated through (checkpointed)."""

    eot_samples: int = 0
    """Average the loss over this many random JPEG/blur/resize/noise purifications (0 = off)."""

    editor: EditorRef = "ip2p"  # type: ignore[valid-type]
    """The editor to protect against (help text: adlift.editors.EDITORS)."""

    rounds: int = 2
    """Outer rounds over all training views."""

    pgd_steps: int = 10
    """Loss-gradient (PGD) steps per view and round."""

    step_size: str = "2/255"
    """First PGD sign step (decays to a quarter over a view's steps)."""

    gradient_blur: float = 0.0
    """Blur (std in pixels) of the loss gradient before each sign step; 0 = off."""

    fit_steps: int = 10
    """Safeguard fitting steps per view and round."""

    replay: int = 2
    """Earlier views replayed in each fitting step."""

    budget_weight: float = 10.0
    """Weight of the penalty on rendered pixels leaving the budget."""

    init: Literal["split", "sample"] = "split"
    """Safeguard init: split (copy every Gaussian, halve its opacity's effect) or sample (a fraction)."""

    fraction: float = 0.5
    """sample init: share of the raw Gaussians that get a safeguard copy."""

    trainable: tuple[Group, ...] = ("sh", "opacity")
    """Safeguard parameter groups that are optimised."""

    lr_sh: float = 0.05
    """Learning rate of the safeguard's SH colour coefficients."""

    lr_opacity: float = 0.05
    """Learning rate of the safeguard's opacity logits."""

    lr_scale: float = 0.005
    """Learning rate of the safeguard's log-scales."""

    lr_position: float = 0.00016
    """Learning rate of the safeguard's means (times the scene extent)."""

    lr_rotation: float = 0.001
    """Learning rate of the safeguard's rotations."""

    view_order: Literal["given", "shuffled"] = "given"
    """Order of the views within a round."""

    width: int | None = None
    """Render width in pixels (intrinsics rescaled; one of width/height keeps the aspect)."""

    height: int | None = None
    """Render height in pixels."""

    seed: int = 0
    """Seed of every random draw: the same seed gives the same protected scene."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser: auto = our CUDA kernels if built, else gsplat on CUDA, else pure PyTorch."""

    device: str | None = None
    """Torch device (cpu, cuda:0); default: cuda if available, else cpu."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour R G B in [0, 1]."""

    save_safeguard: bool = False
    """Also write the safeguard Gaussians alone as OUT/safeguard.ply."""

    resume: bool = False
    """Continue an interrupted run from OUT/checkpoint.pt (without it, an old checkpoint is discarded)."""

    def config(self):
        """The :class:`~adlift.protect.ProtectConfig` these options describe."""
        from adlift.attacks import EOTConfig, LossConfig, parse_budget
        from adlift.protect import ProtectConfig, SafeguardConfig

        return ProtectConfig(
            method=self.method,
            eta=parse_budget(self.eta, "--eta"),
            rounds=self.rounds,
            pgd_steps=self.pgd_steps,
            step_size=parse_budget(self.step_size, "--step-size"),
            gradient_blur=self.gradient_blur,
            fit_steps=self.fit_steps,
            replay=self.replay,
            budget_weight=self.budget_weight,
            view_order=self.view_order,
            safeguard=SafeguardConfig(
                init=self.init,
                fraction=self.fraction,
                trainable=tuple(self.trainable),
                lr_sh=self.lr_sh,
                lr_opacity=self.lr_opacity,
                lr_scale=self.lr_scale,
                lr_position=self.lr_position,
                lr_rotation=self.lr_rotation,
            ),
            loss=LossConfig(
                kind=self.loss,
                target=self.target,
                target_image=self.target_image,
                unet_mode=self.unet_mode,
                pipeline_steps=self.pipeline_steps,
                eot=EOTConfig(samples=self.eot_samples),
            ),
            seed=self.seed,
            backend=self.backend,
            background=self.background,
            checkpoint=self.out / "checkpoint.pt",
        )

    def camera_source(self) -> str:
        if self.cameras != "auto":
            return self.cameras
        beside = self.scene.parent / "transforms.json"
        return str(beside) if beside.is_file() else "orbit:32"

    def run(self) -> None:
        from adlift.attacks import AdversarialLoss
        from adlift.editors import load_editor, warn_untrained
        from adlift.io.cameras import load_cameras
        from adlift.io.ply import read_ply
        from adlift.protect import protect
        from adlift.protect.output import write_protection
        from adlift.protect.report import print_summary

        config = self.config()
        config.validate()
        if not self.instruction.strip():
            raise AdLiftError("--instruction is empty; give the edit to protect against, e.g. 'turn him into a clown'")
        target = self.out / "protected.ply"
        if target.exists() and self.scene.exists() and os.path.samefile(target, self.scene):
            raise AdLiftError(f"refusing to overwrite the input file {self.scene}; choose another --out directory")
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        scene = read_ply(self.scene).to(device)
        source = self.camera_source()
        train = load_cameras(source, scene=scene, split="train", width=self.width, height=self.height)
        try:
            novel = load_cameras(source, scene=scene, split="novel", width=self.width, height=self.height)
        except AdLiftError:
            novel = None  # too few views for a hold-out split: report training views only
        editor = load_editor(self.editor, device=device)
        warn_untrained(editor)
        loss = AdversarialLoss(editor.surface, self.instruction, config.loss)
        self.out.mkdir(parents=True, exist_ok=True)
        if config.checkpoint.exists() and not self.resume:
            print(f"starting over: discarding {config.checkpoint} (pass --resume to continue it)", flush=True)
            config.checkpoint.unlink()
        elif config.checkpoint.exists():
            print(f"resuming from {config.checkpoint}", flush=True)
        print(
            f"protecting {scene.num_gaussians} Gaussians with {config.method}, loss {config.loss.describe()}, "
            f"eta {config.eta * 255:.3g}/255, {len(train)} training views ({train.width}x{train.height})"
            + (f", {len(novel)} novel views" if novel is not None else ""),
            flush=True,
        )
        result = protect(scene, train.to(device), loss, config, novel_cameras=novel)
        write_protection(
            self.out,
            result,
            raw=scene,
            raw_path=self.scene,
            train_cameras=train,
            novel_cameras=novel,
            instruction=self.instruction,
            editor_metadata=editor.metadata(),
            config=config,
            cameras_source=source,
            save_safeguard=self.save_safeguard,
        )
        config.checkpoint.unlink(missing_ok=True)
        print_summary(result.summary)
        note = " [untrained test model: not a real protection]" if editor.untrained else ""
        print(f"wrote {target}, {self.out / 'manifest.json'} and {self.out / 'preview.png'}{note}")

