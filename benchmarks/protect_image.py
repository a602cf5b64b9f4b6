"""2D protection against the trained mini editor: does an invisible L-infinity perturbation stop its edit?

    python benchmarks/protect_image.py                          # held-out images, every loss kind
    python benchmarks/protect_image.py --images 8 --steps 100 --instruction "turn it blue"

For each adversarial loss (encoder to gray / away from the clean latent, UNet AdvDM, pipeline to gray),
image-space PGD (``adlift.attacks.image_pgd``, the engine of ``adlift protect-image``) protects
held-out images of the mini editor (``adlift.editors.mini_train.heldout_batch``: renders from orbits
and photos never trained on, 128x128) at budget eta. Reported per loss, as means over the images:

- **edit success** of the raw and of the protected image: PSNR (and SSIM) of ``edit(x)`` to the
  instruction's exact answer ``reference_edit(x)``; the **fall** = raw - protected (dB; the issue's
  2D target is >= 8 dB);
- **invisibility**: PSNR(protected, raw);
- **encoder gain**: how far the VAE latent moved, ||E(p) - E(x)|| / ||p - x||, next to the same ratio
  for a random sign perturbation of the same budget (1.0 = the encoder passes the perturbation
  through unamplified; an encoder an attack can exploit amplifies it).

The mini editor is a model organism, not InstructPix2Pix: these numbers are never claims about the
real editor. Results: ``benchmarks/results/protect-image-mini-cpu.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import environment, write_results  # noqa: E402  (benchmarks/render.py)

from adlift.attacks import (  # noqa: E402
    AdversarialLoss,
    EncoderLossConfig,
    PGDConfig,
    PipelineLossConfig,
    UnetLossConfig,
    image_pgd,
)
from adlift.editors import load_editor  # noqa: E402
from adlift.editors.mini import MINI_EDIT_SETTINGS, MODEL_ORGANISM_NOTE, edit_success  # noqa: E402
from adlift.editors.mini_train import heldout_batch  # noqa: E402
from adlift.image_metrics import psnr_per_image  # noqa: E402

RESULTS = HERE / "results"


def attacks(pipeline_steps: int) -> dict:
    """The losses compared (name -> config); the pipeline loss simulates the mini editor's guidance."""
    return {
        "encoder(gray)": EncoderLossConfig(target="gray"),
        "encoder(away)": EncoderLossConfig(target="away"),
        "unet(advdm)": UnetLossConfig(),
        "pipeline(gray)": PipelineLossConfig(target="gray", pipeline_steps=pipeline_steps,
                                             guidance_scale=MINI_EDIT_SETTINGS["guidance_scale"],
                                             image_guidance_scale=MINI_EDIT_SETTINGS["image_guidance_scale"]),
    }  # fmt: skip


def success(editor, images: torch.Tensor, instruction: str, seed: int) -> dict[str, torch.Tensor]:
    """Edit success per image of the mini editor's edit at its documented settings."""
    edited = editor.edit(images, instruction, seed=seed, batch_size=len(images), **MINI_EDIT_SETTINGS)
    return edit_success(edited, images, instruction)


def encoder_gain(editor, images: torch.Tensor, perturbed: torch.Tensor) -> float:
    """||E(p) - E(x)|| / ||p - x|| over the batch (E = the unscaled VAE posterior mean)."""
    with torch.no_grad():
        moved = editor.surface.encode_image(perturbed) - editor.surface.encode_image(images)
    return float(moved.norm() / (perturbed - images).norm())


def run(args) -> dict:
    editor = load_editor("mini", device="cpu")
    held = heldout_batch(128)
    images = held[torch.linspace(0, len(held) - 1, args.images).round().long()]
    raw = success(editor, images, args.instruction, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    sign = (torch.randint(0, 2, images.shape, generator=gen) * 2 - 1).to(images)
    random = (images + args.eta * sign).clamp(0, 1)
    rows = [{
        "loss": "random sign (no attack)", "seconds": 0.0,
        "psnr_protected_vs_raw": float(psnr_per_image(random, images).mean()),
        "success_raw_psnr": float(raw["psnr"].mean()),
        "success_protected_psnr": float(success(editor, random, args.instruction, args.seed)["psnr"].mean()),
        "encoder_gain": encoder_gain(editor, images, random),
    }]  # fmt: skip
    for name, config in attacks(args.pipeline_steps).items():
        if args.losses and name not in args.losses:
            continue
        steps = args.pipeline_pgd_steps if name.startswith("pipeline") else args.steps
        tic = time.perf_counter()
        loss = AdversarialLoss(editor.surface, args.instruction, config)
        protected = image_pgd(images, loss, PGDConfig(eta=args.eta, steps=steps, seed=args.seed)).images
        seconds = time.perf_counter() - tic
        prot = success(editor, protected, args.instruction, args.seed)
        rows.append({
            "loss": name, "pgd_steps": steps, "seconds": round(seconds, 1),
            "psnr_protected_vs_raw": float(psnr_per_image(protected, images).mean()),
            "success_raw_psnr": float(raw["psnr"].mean()), "success_protected_psnr": float(prot["psnr"].mean()),
            "success_raw_ssim": float(raw["ssim"].mean()), "success_protected_ssim": float(prot["ssim"].mean()),
            "encoder_gain": encoder_gain(editor, images, protected),
        })  # fmt: skip
        print(f"{name}: fall {rows[-1]['success_raw_psnr'] - rows[-1]['success_protected_psnr']:.2f} dB "
              f"({seconds:.0f} s)", flush=True)  # fmt: skip
    for row in rows:
        row["fall_psnr"] = row["success_raw_psnr"] - row["success_protected_psnr"]
    return {
        "benchmark": "protect_image", "editor": "mini", "note": MODEL_ORGANISM_NOTE,
        "instruction": args.instruction, "eta_255": round(args.eta * 255, 3), "images": args.images,
        "edit_settings": MINI_EDIT_SETTINGS, "environment": environment(torch.device("cpu")), "rows": rows,
    }  # fmt: skip


def table(result: dict) -> str:
    head = ("| loss | PGD steps | edit success raw dB | edit success prot dB | fall dB | PSNR prot vs raw | "
            "encoder gain | s |")  # fmt: skip
    lines = [head, "|" + " --- |" * 8]
    for r in result["rows"]:
        lines.append(f"| {r['loss']} | {r.get('pgd_steps', '-')} | {r['success_raw_psnr']:.2f} | "
                     f"{r['success_protected_psnr']:.2f} | {r['fall_psnr']:.2f} | {r['psnr_protected_vs_raw']:.2f} | "
                     f"{r['encoder_gain']:.3f} | {r['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instruction", default="make it gold")
    p.add_argument("--images", type=int, default=4, help="held-out images, evenly spaced of 16")
    p.add_argument("--eta", type=float, default=8 / 255)
    p.add_argument("--steps", type=int, default=40, help="PGD steps of the encoder and unet losses")
    p.add_argument("--pipeline-pgd-steps", type=int, default=20, help="PGD steps of the pipeline loss")
    p.add_argument("--pipeline-steps", type=int, default=4, help="denoising steps the pipeline loss unrolls")
    p.add_argument("--losses", nargs="*", default=None, help="only these loss names (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "protect-image-mini-cpu.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    write_results(args.out, result)
    print(f"mini editor (a model organism, not InstructPix2Pix), '{args.instruction}', eta {args.eta * 255:.0f}/255:")
    print(table(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
