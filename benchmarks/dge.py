"""DGE-style 3D editing of the bundled bust with the trained mini editor: time and edit success.

    python benchmarks/dge.py                                    # bust, 28 training views at 128^2
    python benchmarks/dge.py --size 64 --fit-steps 200 --variants dge,independent

For each variant the bust (26k Gaussians) is edited from its training views
(``scenes/bust/transforms.json``, split train) with ``adlift.editors.dge.edit_scene_dge`` at DGE's
defaults (20 diffusion steps, noise 0.98 T, one key view per 5 cameras, epipolar matching, 1000
fitting steps) and the mini editor's guidance (3.0 text, 1.5 image):

- ``dge``: the multi-view edit (joint key-view attention, feature injection into the other views);
- ``independent``: the same pipeline with ordinary self-attention throughout
  (``plain_attention_below`` above every timestep), i.e. each view edited alone, then the same fit:
  what the multi-view attention adds;
- ``dge-depth``: ``--dge.matching depth``.

Reported per variant: seconds of the multi-view edit and of the fit (and in total), the photometric
loss of the fitted scene to the edited views (lower = the edits agree better in 3D), and **edit
success** (PSNR of an edit to the instruction's exact answer, ``adlift.editors.mini.edit_success``) of
(a) the edited views themselves and (b) renders of the edited scene, on the training and on the
novel views (the reference is applied to the raw renders). The 2D baseline row is the mini editor's
own 2D edit of each render (``editor.edit`` with ``MINI_EDIT_SETTINGS``: 10 steps).

The mini editor is a model organism, not InstructPix2Pix: these numbers are never claims about the
real editor. Results: ``benchmarks/results/dge-mini-cpu.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import environment, write_results  # noqa: E402  (benchmarks/render.py)

from adlift.editors import load_editor  # noqa: E402
from adlift.editors.dge import DGEConfig, edit_scene_dge  # noqa: E402
from adlift.editors.mini import MINI_EDIT_SETTINGS, MODEL_ORGANISM_NOTE, edit_success  # noqa: E402
from adlift.editors.scene_edit import SceneEditConfig  # noqa: E402
from adlift.io import load_cameras, read_scene  # noqa: E402
from adlift.render import render_images  # noqa: E402

RESULTS = HERE / "results"
BUST = HERE.parent / "scenes" / "bust"

VARIANTS = {
    "dge": {},
    "independent": {"plain_attention_below": 10**6},
    "dge-depth": {"matching": "depth"},
}


def success(edited: torch.Tensor, source: torch.Tensor, instruction: str) -> float:
    """Mean PSNR (dB) of edits to the reference edit of their sources."""
    return float(edit_success(edited, source, instruction)["psnr"].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128, help="render width = height")
    ap.add_argument("--instruction", default="make it gold", help="one of the mini editor's instructions")
    ap.add_argument("--fit-steps", type=int, default=DGEConfig.fit_steps, help="Adam steps of the fit (DGE: 1000)")
    ap.add_argument("--steps", type=int, default=20, help="diffusion steps of the DGE edit (DGE: 20)")
    ap.add_argument("--variants", default="dge,independent", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--out", type=Path, default=RESULTS / "dge-mini-cpu.json")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")

    editor = load_editor("mini", device="cpu")
    scene = read_scene(BUST / "scene.ply")
    splits = {s: load_cameras(BUST / "transforms.json", scene=scene, split=s, width=args.size, height=args.size)
              for s in ("train", "novel")}  # fmt: skip
    raw = {s: render_images(scene, c) for s, c in splits.items()}
    ins = args.instruction
    result = {"benchmark": "dge", "note": MODEL_ORGANISM_NOTE, "scene": "scenes/bust", "gaussians": scene.num_gaussians,
              "size": args.size, "views": {s: len(c) for s, c in splits.items()}, "instruction": ins,
              "environment": environment(torch.device("cpu")), "rows": []}  # fmt: skip
    result["unedited"] = {s: success(raw[s], raw[s], ins) for s in splits}

    tic = time.perf_counter()
    settings = {k: MINI_EDIT_SETTINGS[k] for k in ("steps", "guidance_scale", "image_guidance_scale")}
    two_d = {s: editor.edit(raw[s], ins, seed=0, **settings) for s in splits}
    result["rows"].append({"variant": "2d (per render)", "seconds_total": time.perf_counter() - tic,
                           "edit_success_views": {s: success(two_d[s], raw[s], ins) for s in splits}})  # fmt: skip
    print(f"2d: {result['rows'][-1]}", flush=True)

    edit = SceneEditConfig(steps=args.steps, guidance_scale=MINI_EDIT_SETTINGS["guidance_scale"],
                           image_guidance_scale=MINI_EDIT_SETTINGS["image_guidance_scale"], progress=True)  # fmt: skip
    for name in variants:
        cfg = dataclasses.replace(DGEConfig(fit_steps=args.fit_steps), **VARIANTS[name])
        tic = time.perf_counter()
        res = edit_scene_dge(scene, splits["train"], editor, ins, cfg, edit)
        seconds = time.perf_counter() - tic
        (h,) = res.history
        renders = {s: render_images(res.scene, c) for s, c in splits.items()}
        row = {"variant": name, "dge": dataclasses.asdict(cfg), "key_views": len(res.key_views),
               "seconds_edit": h["edit_seconds"], "seconds_fit": h["fit_seconds"], "seconds_total": seconds,
               "loss_before_fit": h["loss_before_fit"], "loss_after_fit": h["loss_after_fit"],
               "edit_success_views": {"train": success(res.targets, raw["train"], ins)},
               "edit_success_scene": {s: success(renders[s], raw[s], ins) for s in splits}}  # fmt: skip
        result["rows"].append(row)
        print(f"{name}: {row}", flush=True)
    write_results(args.out, result)
    print(markdown(result))
    print(f"wrote {args.out}")


def markdown(result: dict) -> str:
    """The rows as a markdown table (dB = edit success, PSNR to the exact answer)."""
    u = result["unedited"]
    lines = [f"bust ({result['gaussians']} Gaussians) at {result['size']}^2, {result['views']['train']} training / "
             f"{result['views']['novel']} novel views, \"{result['instruction']}\", mini editor (model organism); "
             f"unedited renders: {u['train']:.2f} / {u['novel']:.2f} dB",
             "",
             "| variant | edit s | fit s | total s | fit loss | edited views dB (train) | scene renders dB train | novel |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in result["rows"]:
        if "edit_success_scene" not in r:
            v = r["edit_success_views"]
            lines.append(f"| {r['variant']} | | | {r['seconds_total']:.0f} | | {v['train']:.2f} | "
                         f"({v['train']:.2f}) | ({v['novel']:.2f}) |")  # fmt: skip
            continue
        sc = r["edit_success_scene"]
        lines.append(f"| {r['variant']} | {r['seconds_edit']:.0f} | {r['seconds_fit']:.0f} | {r['seconds_total']:.0f} | "
                     f"{r['loss_after_fit']:.4f} | {r['edit_success_views']['train']:.2f} | {sc['train']:.2f} | "
                     f"{sc['novel']:.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
