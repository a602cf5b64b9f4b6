"""``adlift protect-image``: protect ordinary 2D images with L-infinity PGD (the PhotoGuard baseline).

Writes OUT/<name>.png per input image, OUT/comparison.png (original | protected | |diff|) and
OUT/manifest.json (settings, editor, per-image loss before/after, L-infinity, PSNR).

The options are the library's: :class:`~adlift.attacks.pgd.PGDConfig` (``--eta``, ``--steps``,
``--step-size``, ``--seed``, ...), :class:`~adlift.attacks.eot.EOTConfig` (``--eot.samples``) and the
loss kinds as subcommands (``loss:unet --loss.unet-mode sds``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import torch
import tyro

from adlift.attacks.eot import EOTConfig
from adlift.attacks.losses import EncoderLossConfig, LossConfig
from adlift.attacks.pgd import PGDConfig
from adlift.editors import EditorRef
from adlift.errors import AdLiftError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def collect_images(inputs: list[Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in named directories, sorted per directory."""
    if not inputs:
        raise AdLiftError("no images given; name image files or directories to protect")
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            if not found:
                raise AdLiftError(f"{p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this directory")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise AdLiftError(f"{p}: no such file or directory")
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise AdLiftError("two input images share a file name; rename one (outputs are named after the inputs)")
    return files


@dataclasses.dataclass
class ProtectImageCommand:
    """Protect 2D images against an InstructPix2Pix edit with L-infinity PGD (PhotoGuard-style)."""

    images: tyro.conf.Positional[list[Path]]
    """Image files and/or directories of images (PNG, JPEG, WebP, BMP); never modified."""

    instruction: str
    """The edit to protect against."""

    out: Path
    """Output directory: protected PNGs (same names), comparison.png, manifest.json."""

    pgd: Annotated[PGDConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=lambda: PGDConfig(steps=100))
    """PGD budget, steps, step sizes and seed."""

    eot: EOTConfig = dataclasses.field(default_factory=EOTConfig)
    """Expectation over random purifications (JPEG, blur, resize, noise) of every loss gradient; off by default."""

    loss: LossConfig = dataclasses.field(default_factory=EncoderLossConfig)  # type: ignore[valid-type]
    """Adversarial loss: encoder (VAE latent, PhotoGuard), unet (noise prediction) or pipeline (k denoising
    steps); each kind has its own options."""

    editor: EditorRef = "ip2p"  # type: ignore[valid-type]
    """The editor to protect against (help text: adlift.editors.EDITORS)."""

    device: str | None = None
    """Torch device; default: cuda if available, else cpu."""

    def run(self) -> None:
        from adlift.attacks import AdversarialLoss, describe_loss, image_pgd
        from adlift.editors import label_record, load_editor, warn_untrained
        from adlift.image_metrics import linf_per_image, psnr_per_image
        from adlift.io.json_safe import write_json_atomic

        files = collect_images(list(self.images))
        out_paths = [self.out / f"{f.stem}.png" for f in files]
        for src, dst in zip(files, out_paths):
            if dst.exists() and dst.resolve() == src.resolve():
                raise AdLiftError(f"refusing to overwrite the input image {src}; choose another --out directory")
        pgd = self.pgd
        pgd.validate()
        self.eot.validate()
        self.loss.validate()
        images = [_read_image(f) for f in files]
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        editor = load_editor(self.editor, device=device)
        warn_untrained(editor)
        loss = AdversarialLoss(editor.surface, self.instruction, self.loss, self.eot)
        self.out.mkdir(parents=True, exist_ok=True)
        records, originals, protected = [], [], []
        for f, img, dst in zip(files, images, out_paths):
            result = image_pgd(img.to(device), loss, pgd, progress=True)
            prot = result.images.cpu().mul(255).round().div(255)  # exactly what the PNG stores
            _write_png(prot, dst)
            ref = img if loss.needs_reference else None
            before, after = float(loss.evaluate(img, ref)[0]), float(loss.evaluate(prot, ref)[0])
            records.append({
                "input": str(f), "output": dst.name, "width": img.shape[-1], "height": img.shape[-2],
                "loss_before": before, "loss_after": after,
                "linf_255": float(linf_per_image(prot, img)[0]) * 255.0, "psnr": float(psnr_per_image(prot, img)[0]),
            })  # fmt: skip
            print(f"{f.name}: loss {before:.4g} -> {after:.4g}, PSNR {records[-1]['psnr']:.1f} dB", flush=True)
            originals.append(img)
            protected.append(prot)
        self._write_comparison(originals, protected, [f.stem for f in files], pgd.eta, editor)
        manifest = {
            **editor.metadata(),
            "instruction": self.instruction,
            "loss": describe_loss(self.loss, self.eot),
            "eta": pgd.eta,
            "eta_255": pgd.eta * 255.0,
            "steps": pgd.steps,
            "step_size": pgd.step_size,
            "seed": pgd.seed,
            "config": {"pgd": pgd, "eot": self.eot, "loss": self.loss.to_json()},
            "images": records,
        }
        if label_record(editor, "protection"):
            manifest["warning"] = label_record(editor, "protection")
        write_json_atomic(self.out / "manifest.json", manifest)
        print(f"wrote {len(files)} protected image(s), comparison.png and manifest.json to {self.out}")

    def _write_comparison(self, originals, protected, names, eta: float, editor) -> None:
        from adlift.editors import untrained_banner
        from adlift.protect.output import save_preview

        # Images may differ in size: the sheet shows those of the first image's size.
        h, w = originals[0].shape[-2:]
        keep = [i for i, o in enumerate(originals) if o.shape[-2:] == (h, w)][:4]
        banner = untrained_banner(editor, "protection")
        save_preview(self.out / "comparison.png", torch.cat([originals[i] for i in keep]),
                     torch.cat([protected[i] for i in keep]), [names[i] for i in keep], eta, banner)  # fmt: skip


def _read_image(path: Path) -> torch.Tensor:
    """[1, 3, H, W] float in [0, 1]; AdLiftError naming the file if it is not a readable image."""
    from adlift.attacks import load_target_image

    return load_target_image(path)


def _write_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    from adlift.render.images import save_png, to_uint8

    save_png(Image.fromarray(to_uint8(image)[0]), path)
