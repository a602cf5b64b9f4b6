"""Protection benchmark: cost of Lifted PGD, and Lifted PGD vs fit2d vs direct at equal budget.

    python benchmarks/protect.py                        # both parts, bundled bust, tiny editor
    python benchmarks/protect.py --part quality --size 96 --views 10 --rounds 3
    python benchmarks/protect.py --part cost --counts 10000 26300 --sizes 64 128
    python benchmarks/protect.py --editor ip2p --device cuda   # real InstructPix2Pix (weights needed)
    python benchmarks/protect.py --part quality --methods lifted-pgd --size 64 --views 6 --rounds 2 \
        --inits inplace split sample:0.25 "inplace,trainable=sh+opacity+scale" "inplace,lr_sh=0.025"

**cost** — seconds per round (all training views once) and peak memory of Lifted PGD against scene
size (the first N Gaussians of the bust, by contribution order of the file) and render size. A view's
time is the interval between the ends of consecutive views (the one-off set-up excluded); the
median over ``--cost-views`` views is scaled to a round of 28 views. Peak memory is the process' RSS
above its starting level on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

**quality** — every method on the bust with the same editor budget (``rounds x pgd_steps``
loss-gradient evaluations per view) and the same fitting steps: training- and novel-view loss
(raw -> protected, paired fixed noise), the novel views' share of the training-view reduction,
PSNR, max L-infinity and the share of pixels within eta + 1/255. ``--inits`` repeats every method for
each safeguard variant ``INIT[:FRACTION][,FIELD=VALUE...]`` (``SafeguardConfig`` fields, e.g.
``sample:0.25``, ``inplace,trainable=sh+opacity+scale,lr_scale=0.002``), reporting the Gaussian count
of the protected scene over the raw one (inplace 1.0x, sample 1 + fraction, split 2.0x).

With ``--editor tiny`` (the default, offline) the editor is an UNTRAINED test model: the numbers
measure the optimiser, not protection against the real InstructPix2Pix. The JSON says which.
Results go to ``benchmarks/results/protect-<device>-<editor>.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import PeakRSS, device_label, environment, write_results  # noqa: E402  (benchmarks/render.py)

from adlift.attacks import LOSSES, AdversarialLoss, loss_config  # noqa: E402
from adlift.editors import load_editor  # noqa: E402
from adlift.io.cameras import load_cameras  # noqa: E402
from adlift.io.formats import read_scene  # noqa: E402
from adlift.protect import METHODS, ProtectConfig, SafeguardConfig, protect  # noqa: E402

RESULTS = HERE / "results"
BUST = HERE.parent / "scenes" / "bust"


def safeguard_variant(token: str, lr_sh: float) -> SafeguardConfig:
    """``INIT[:FRACTION][,FIELD=VALUE...]`` -> a SafeguardConfig (lr_sh defaults to ``--lr-sh``)."""
    head, *options = token.split(",")
    init, _, fraction = head.partition(":")
    cfg = SafeguardConfig(init=init, lr_sh=lr_sh)
    if fraction:
        cfg = dataclasses.replace(cfg, fraction=float(fraction))
    for option in options:
        key, _, value = option.partition("=")
        if key not in {f.name for f in dataclasses.fields(SafeguardConfig)} or key in ("init", "fraction"):
            raise SystemExit(f"--inits {token!r}: unknown safeguard field {key!r}")
        cfg = dataclasses.replace(cfg, **{key: tuple(value.split("+")) if key == "trainable" else float(value)})
    cfg.validate()
    return cfg


def base_config(args, safeguard: SafeguardConfig | None = None) -> ProtectConfig:
    return ProtectConfig(
        rounds=args.rounds,
        pgd_steps=args.pgd_steps,
        fit_steps=args.fit_steps,
        replay=args.replay,
        gradient_blur=args.gradient_blur,
        progress=False,
        safeguard=safeguard or safeguard_variant(args.inits[0], args.lr_sh),
        seed=args.seed,
    )


def cost_part(args, loss, rss: PeakRSS) -> list[dict]:
    raw_all = read_scene(BUST / "scene.ply").to(args.device)
    if args.cost_views < 2:
        raise SystemExit("--cost-views must be at least 2")
    rows = []
    for size in args.sizes:
        cams = load_cameras(BUST / "transforms.json", split="train", width=size)[: args.cost_views].to(args.device)
        for n in args.counts:
            raw = raw_all.subset(slice(0, min(n, raw_all.num_gaussians)))
            cfg = dataclasses.replace(base_config(args), rounds=1)
            stamps: list[float] = []  # end of every view: excludes the one-off set-up (raw renders, init)
            if args.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(args.device)
            with rss.measure() as mem:
                protect(raw, cams, loss, cfg, on_unit=lambda done, total: stamps.append(time.perf_counter()))
            if args.device.type == "cuda":
                mem = {"peak_bytes": torch.cuda.max_memory_allocated(args.device)}
            per_view = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
            row = {"gaussians": raw.num_gaussians, "size": size, "views_timed": len(cams),
                   "seconds_per_view": round(per_view, 3), "seconds_per_round_28_views": round(28 * per_view, 1),
                   "peak_mb": None if mem["peak_bytes"] is None else round(mem["peak_bytes"] / 2**20)}  # fmt: skip
            rows.append(row)
            print(f"cost N={row['gaussians']:>6} {size}^2: {per_view:.2f} s/view, peak {row['peak_mb']} MB",
                  file=sys.stderr, flush=True)  # fmt: skip
    return rows


def quality_part(args, loss) -> list[dict]:
    raw = read_scene(BUST / "scene.ply").to(args.device)
    train = load_cameras(BUST / "transforms.json", split="train", width=args.size)
    step = max(1, len(train) // args.views)
    train = train[list(range(0, len(train), step))[: args.views]].to(args.device)
    novel = load_cameras(BUST / "transforms.json", split="novel", width=args.size).to(args.device)
    rows = []
    for method, variant in [(m, v) for m in args.methods for v in args.inits]:
        cfg = dataclasses.replace(base_config(args, safeguard_variant(variant, args.lr_sh)), method=method)
        tic = time.perf_counter()
        result = protect(raw, train, loss, cfg, novel_cameras=novel)
        seconds = time.perf_counter() - tic
        s = result.summary
        tr, nv = s["train"], s["novel"]
        row = {
            "method": method,
            "safeguard": variant,
            "init": cfg.safeguard.init,
            "trainable": list(cfg.safeguard.trainable),
            "count_ratio": result.protected.num_gaussians / raw.num_gaussians,
            "train_loss_raw": tr["loss_raw"],
            "train_loss_protected": tr["loss_protected"],
            "train_reduction_pct": 100 * tr["loss_reduction"] / abs(tr["loss_raw"]),
            "novel_loss_raw": nv["loss_raw"],
            "novel_loss_protected": nv["loss_protected"],
            "novel_reduction_pct": 100 * nv["loss_reduction"] / abs(nv["loss_raw"]),
            "novel_share": s.get("novel_share"),
            "psnr_train": tr["psnr"],
            "psnr_novel": nv["psnr"],
            "linf_255_max": max(tr["linf_255_max"], nv["linf_255_max"]),
            "within_budget_min": min(tr["within_budget_min"], nv["within_budget_min"]),
            "within_budget_train_min": tr["within_budget_min"],
            "within_budget_train_mean": tr["within_budget_mean"],
            "seconds": round(seconds, 1),
        }
        rows.append(row)
        print(f"quality {method:10s} {variant}: train {row['train_reduction_pct']:.1f}% "
              f"novel {row['novel_reduction_pct']:.1f}% PSNR {row['psnr_train']:.1f} "
              f"within {100 * row['within_budget_min']:.2f}% in {seconds:.0f}s", file=sys.stderr, flush=True)  # fmt: skip
    return rows


#: Markdown columns of each part: (header, alignment, cell of a result row).
COST_COLUMNS = [
    ("N", "---:", lambda r: f"{r['gaussians']:,}"),
    ("size", "---:", lambda r: f"{r['size']}^2"),
    ("s / view", "---:", lambda r: f"{r['seconds_per_view']:.2f}"),
    ("s / round (28 views)", "---:", lambda r: f"{r['seconds_per_round_28_views']:.0f}"),
    ("peak MB", "---:", lambda r: str(r["peak_mb"])),
]
QUALITY_COLUMNS = [
    ("method", "---", lambda r: r["method"]),
    ("safeguard", "---", lambda r: r.get("safeguard", "split")),
    ("count", "---:", lambda r: f"{r['count_ratio']:.2f}x" if "count_ratio" in r else "-"),
    ("train loss raw -> prot", "---", lambda r: f"{r['train_loss_raw']:.4f} -> {r['train_loss_protected']:.4f}"),
    ("train red.", "---:", lambda r: f"{r['train_reduction_pct']:.1f}%"),
    ("novel red.", "---:", lambda r: f"{r['novel_reduction_pct']:.1f}%"),
    ("novel share", "---:", lambda r: "-" if r["novel_share"] is None else f"{r['novel_share']:.2f}"),
    ("PSNR", "---:", lambda r: f"{r['psnr_train']:.1f}"),
    ("max L-inf/255", "---:", lambda r: f"{r['linf_255_max']:.1f}"),
    ("within budget train (min/mean)", "---:", lambda r: f"{100 * r['within_budget_train_min']:.2f}% / "
     f"{100 * r['within_budget_train_mean']:.2f}%" if "within_budget_train_min" in r else "-"),
    ("within budget all (min)", "---:", lambda r: f"{100 * r['within_budget_min']:.2f}%"),
    ("s", "---:", lambda r: f"{r['seconds']:.0f}"),
]


def markdown(columns, rows: list[dict]) -> list[str]:
    """A markdown table of ``rows`` with ``columns`` = [(header, alignment, cell function)]."""
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "|".join(c[1] for c in columns) + "|"]
    return lines + ["| " + " | ".join(c[2](r) for c in columns) + " |" for r in rows]


def tables(cost: list[dict], quality: list[dict]) -> str:
    out = (markdown(COST_COLUMNS, cost) + [""] if cost else []) + (markdown(QUALITY_COLUMNS, quality) if quality else [])
    return "\n".join(out)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--part", choices=["cost", "quality", "both"], default="both")
    p.add_argument("--editor", default="tiny", help="tiny (untrained, offline), ip2p, a hub id or a directory")
    p.add_argument("--instruction", default="turn her into a clown")
    p.add_argument("--loss", default="encoder", choices=LOSSES.names(), help="loss kind, default settings")
    p.add_argument("--methods", nargs="+", default=list(METHODS.names()), choices=METHODS.names())
    p.add_argument("--size", type=int, default=96, help="quality: render size")
    p.add_argument("--views", type=int, default=10, help="quality: training views (evenly spaced of 28)")
    p.add_argument("--counts", type=int, nargs="+", default=[6_575, 13_150, 26_300], help="cost: Gaussian counts")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="cost: render sizes")
    p.add_argument("--cost-views", type=int, default=4, help="cost: views timed per configuration")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pgd-steps", type=int, default=5)
    p.add_argument("--fit-steps", type=int, default=5)
    p.add_argument("--replay", type=int, default=2)
    p.add_argument("--gradient-blur", type=float, default=0.0)
    p.add_argument("--lr-sh", type=float, default=SafeguardConfig.lr_sh, help="lr_sh of every --inits variant without its own")
    p.add_argument("--inits", nargs="+", default=[SafeguardConfig.init],
                   help="quality: safeguard variants INIT[:FRACTION][,FIELD=VALUE...], e.g. split sample:0.25 "
                        "'inplace,trainable=sh+opacity+scale' (default: the default init)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    editor = load_editor(args.editor, device=args.device)
    loss = AdversarialLoss(editor.surface, args.instruction, loss_config(args.loss))
    env = environment(args.device)
    cost = cost_part(args, loss, PeakRSS()) if args.part in ("cost", "both") else []
    quality = quality_part(args, loss) if args.part in ("quality", "both") else []
    doc = {
        "benchmark": "protect",
        "environment": env,
        "editor": editor.metadata(),
        "warning": "untrained test model: optimiser behaviour only, not protection quality" if editor.untrained else None,
        "settings": {k: (str(v) if isinstance(v, (Path, torch.device)) else v) for k, v in vars(args).items()},
        "cost": cost,
        "quality": quality,
    }
    out = args.out or RESULTS / f"protect-{device_label(args.device)}-{editor.name}.json"
    write_results(out, doc)
    print(tables(cost, quality))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
