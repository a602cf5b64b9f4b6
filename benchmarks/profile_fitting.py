"""Where the fitting workload's GPU time goes, kernel by kernel (torch.profiler), per backend/mode:

    python benchmarks/profile_fitting.py [--frozen 500000 --trainable 500000 --size 1024]

Prints one table per case (CUDA time per kernel, summed over --steps steps) and writes nothing:
use benchmarks/render.py --fitting for the numbers to quote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import fitting_step, sphere_scene  # noqa: E402

from adlift.cameras import orbit_cameras  # noqa: E402
from adlift.render import available_backends  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frozen", type=int, default=500_000)
    p.add_argument("--trainable", type=int, default=500_000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=14, help="kernels shown per case")
    p.add_argument("--cases", nargs="+", default=None, help="backend:mode pairs (default: cuda:split cuda:full-grad gsplat:concat)")
    args = p.parse_args(argv)
    device = torch.device("cuda")
    frozen = sphere_scene(args.frozen, seed=0).to(device)
    trainable = sphere_scene(args.trainable, seed=1)
    trainable.means.mul_(1.005)
    trainable = trainable.to(device)
    cams = orbit_cameras(1, [0, 0, 0], 3.0, width=args.size, height=args.size, fov_deg=45.0).to(device)
    weights = torch.rand(1, 3, args.size, args.size, device=device)
    cases = [("cuda", "split"), ("cuda", "full-grad")]
    if "gsplat" in available_backends():
        cases += [("gsplat", "concat")]
    if args.cases:
        cases = [tuple(c.split(":", 1)) for c in args.cases]
    for backend, mode in cases:
        for _ in range(2):
            fitting_step(frozen, trainable, cams, backend, mode, weights)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(args.steps):
                fitting_step(frozen, trainable, cams, backend, mode, weights)
            torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fitting_step(frozen, trainable, cams, backend, mode, weights, forward_only=True)
        fwd_peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        torch.cuda.reset_peak_memory_stats()
        fitting_step(frozen, trainable, cams, backend, mode, weights)
        both_peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        print(f"\n=== {backend} {mode}: {args.frozen:,} + {args.trainable:,} at {args.size}^2, {args.steps} steps; "
              f"peak MB: forward {fwd_peak:.0f}, forward+backward {both_peak:.0f}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
