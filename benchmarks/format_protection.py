"""Protection after export: each web format's file decoded and measured, with and without the format's
quantiser in the fit (issue 18, item 3).

    python benchmarks/format_protection.py                               # crate, 4 formats, tiny editor
    python benchmarks/format_protection.py --scene bust --size 96 --views 6
    python benchmarks/format_protection.py --editor mini --instruction "make it grayscale"

For every format (compressed-ply, spz, splat, sog) and both fits -- ``float`` (fitted in float32, the
writer quantises) and ``in-loop`` (``ProtectConfig.quantise_as``: the format's codec round trip,
straight-through, every ``--quantise-every`` optimiser steps) -- the scene is protected, written with
``write_protection`` in that format, the file decoded (``read_scene``) and measured
(:mod:`adlift.protect.exported`), per split (train, novel):

* ``within_eta_2``: share of pixels within eta + 2/255 of the raw render (target >= 99 %);
* ``loss_reduction_kept``: adversarial loss reduction of the decode / of the protected scene before
  export (target >= 90 %);
* ``cosine``: between the render perturbations (protected - raw) before and (decoded - raw) after export
  (target >= 0.9), and ``cosine_vs_raw_file`` with (decoded - raw scene written in the same format);
* the file's loss reduction (loss raw - loss of the decode), to compare the two fits' files.

With ``--editor mini`` (the shipped trained miniature InstructPix2Pix, a model organism) each split also
gets the edit-success fall: PSNR of the mini editor's edit of the raw render to the exact reference edit
minus that of the decode's edit (and of the protected scene's before export; ``edit_fall_kept`` is their
ratio). With ``--editor tiny`` (default, offline, seconds) the editor is an UNTRAINED test model: the
loss reduction measures the optimiser, not protection. The JSON says which.
Results: ``benchmarks/results/format-protection-<scene>-<editor>.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import environment, write_results  # noqa: E402  (benchmarks/render.py)

from adlift.attacks import AdversarialLoss  # noqa: E402
from adlift.editors import load_editor  # noqa: E402
from adlift.io.cameras import load_cameras  # noqa: E402
from adlift.io.formats import SCENE_FORMATS, read_scene  # noqa: E402
from adlift.protect import ProtectConfig, protect  # noqa: E402
from adlift.protect.api import render_views  # noqa: E402
from adlift.protect.output import write_protection  # noqa: E402

RESULTS = HERE / "results"
SCENES = HERE.parent / "scenes"
FORMATS = ("compressed-ply", "spz", "splat", "sog")
MODES = ("float", "in-loop")


def pick(cams, n: int):
    step = max(1, len(cams) // n)
    return cams[list(range(0, len(cams), step))[:n]]


def edit_fall(editor, raw: torch.Tensor, protected: torch.Tensor, decoded: torch.Tensor, instruction: str,
              seed: int = 0, steps: int = 10) -> dict:  # fmt: skip
    """Mini editor: PSNR of edit(x) to the exact reference edit of the raw render, for x = raw, protected,
    decoded; the falls (raw - protected, raw - decoded) and their ratio."""
    from adlift.editors.mini import reference_edit
    from adlift.image_metrics import psnr_per_image

    want = reference_edit(raw, instruction)
    psnr = {}
    for name, x in (("raw", raw), ("protected", protected), ("decoded", decoded)):
        edited = editor.edit(x, instruction, steps=steps, seed=seed)
        psnr[name] = float(psnr_per_image(edited.clamp(0, 1), want).mean())
    fall_before, fall_after = psnr["raw"] - psnr["protected"], psnr["raw"] - psnr["decoded"]
    return {"edit_psnr": psnr, "edit_fall_before": fall_before, "edit_fall_after": fall_after,
            "edit_fall_kept": fall_after / fall_before if fall_before > 0 else None}  # fmt: skip


def run(args) -> dict:
    torch.manual_seed(0)
    scene_dir = SCENES / args.scene
    raw = read_scene(scene_dir / "scene.ply")
    train = pick(load_cameras(scene_dir / "transforms.json", split="train", width=args.size), args.views)
    novel = pick(load_cameras(scene_dir / "transforms.json", split="novel", width=args.size), args.novel_views)
    editor = load_editor(args.editor, device="cpu")
    meta = editor.metadata()
    base = ProtectConfig(rounds=args.rounds, pgd_steps=args.pgd_steps, fit_steps=args.fit_steps, replay=args.replay,
                         progress=False, quantise_every=args.quantise_every, seed=0)  # fmt: skip
    loss = AdversarialLoss(editor.surface, args.instruction, base.loss, base.eot)
    rows = []
    for fmt in args.formats:
        held = SCENE_FORMATS.get(fmt).max_sh_degree
        scene = raw.with_sh_degree(held) if raw.sh_degree > held else raw  # as adlift protect does
        for mode in args.modes:
            cfg = dataclasses.replace(base, quantise_as=fmt if mode == "in-loop" else None)
            tic = time.perf_counter()
            result = protect(scene, train, loss, cfg, novel_cameras=novel)
            seconds = time.perf_counter() - tic
            with tempfile.TemporaryDirectory() as tmp:
                manifest = write_protection(Path(tmp), result, raw=scene, raw_path=scene_dir / "scene.ply",
                                            train_cameras=train, novel_cameras=novel, instruction=args.instruction,
                                            editor_metadata=meta, config=cfg, cameras_source="bench",
                                            asset_format=fmt, loss=loss)  # fmt: skip
                decoded = read_scene(Path(tmp) / manifest.protected_scene.path)
            row = {"format": fmt, "mode": mode, "sh_degree": scene.sh_degree, "seconds": round(seconds, 1),
                   "before_export": result.summary, "after_export": manifest.export.splits}  # fmt: skip
            if args.editor == "mini":
                for split, cams in (("train", train), ("novel", novel)):
                    images = [render_views(s, cams, cfg) for s in (scene, result.protected, decoded)]
                    row["after_export"][split].update(edit_fall(editor, *images, args.instruction, steps=args.edit_steps))
            rows.append(row)
            t = row["after_export"]["train"]
            print(f"{fmt:>14} {mode:>8}: within {100 * t['within_eta_2']:.2f}%  kept "
                  f"{100 * t.get('loss_reduction_kept', float('nan')):.0f}%  cosine {t['cosine']:.3f}  ({seconds:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    label = ("UNTRAINED test model: the loss reduction measures the optimiser, not protection"
             if meta.get("untrained_test_model") else
             "mini: a model organism (a small InstructPix2Pix trained offline on exact edits)" if args.editor == "mini"
             else "")  # fmt: skip
    return {"benchmark": "format_protection", "scene": args.scene, "editor": meta, "label": label,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "gaussians": raw.num_gaussians, "environment": environment(torch.device("cpu")), "rows": rows}  # fmt: skip


def pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}%"


def table(result: dict) -> str:
    lines = [f"{result['scene']} ({result['gaussians']} Gaussians), editor {result['editor'].get('editor')}: "
             f"{result['label']}", "",
             "| format | fit | train: within eta+2/255 | train: loss reduction kept | train: file's loss reduction "
             "| train: cosine (vs raw file) | novel: within | novel: cosine (vs raw file) | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in result["rows"]:
        t, n = r["after_export"].get("train", {}), r["after_export"].get("novel", {})
        num = lambda v: "—" if v is None or v != v else f"{v:.3f}"  # noqa: E731
        cos = lambda s: f"{num(s.get('cosine'))} ({num(s.get('cosine_vs_raw_file'))})"  # noqa: E731
        absolute = f"{t['loss_raw'] - t['loss_decoded']:.4f}" if "loss_decoded" in t else "—"
        lines.append(f"| {r['format']} | {r['mode']} | {pct(t.get('within_eta_2'))} | {pct(t.get('loss_reduction_kept'))}"
                     f" | {absolute} | {cos(t)} | {pct(n.get('within_eta_2'))} | {cos(n)} | {r['seconds']} |")  # fmt: skip
        if "edit_fall_kept" in t:
            lines[-1] += f" edit fall kept train {pct(t['edit_fall_kept'])}, novel {pct(n.get('edit_fall_kept'))}"
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scene", default="crate", choices=["crate", "bust"])
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--editor", default="tiny")
    p.add_argument("--instruction", default="turn it into a clown")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--novel-views", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--pgd-steps", type=int, default=5)
    p.add_argument("--fit-steps", type=int, default=5)
    p.add_argument("--replay", type=int, default=1)
    p.add_argument("--quantise-every", type=int, default=5)
    p.add_argument("--edit-steps", type=int, default=10, help="mini editor: denoising steps of the edit")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args)
    out = args.out or RESULTS / f"format-protection-{args.scene}-{args.editor}.json"
    write_results(out, result)
    print(table(result))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
