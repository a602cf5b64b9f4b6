"""Distributed protection benchmark: Lifted PGD on 1 and N processes (torchrun), side by side.

    python benchmarks/distributed.py                           # CPU scaling: 1 vs 2 processes, 1 thread each
    python benchmarks/distributed.py --procs 1 2 --repeats 3 --editor mini --views 8 --size 128
    python benchmarks/distributed.py --part scale              # on a GPU machine: the real-scale run below

**scaling** (default) — the same protection (bundled bust, ``--views`` training views at ``--size``,
``--view-batch`` views per unit, so every process count runs the same algorithm and must give the same
scene) launched with ``torchrun --nproc-per-node=P`` for each ``--procs`` P, ``OMP_NUM_THREADS=1`` per
process. Measured inside the run: the optimisation's wall time (``ProtectResult.seconds``, set-up and
editor loading excluded) and the whole ``protect()`` call including the final measurement; the speed-up
is the 1-process time over the P-process time, medians of ``--repeats``; the protected scene's hash
shows the results are identical.

**scale** — the cost at real scale: InstructPix2Pix's full architecture with random weights
(``--editor ip2p-random``, fp16 on CUDA: the real model's compute and memory, labelled untrained)
protecting a 500k-Gaussian SH-3 scene (``--gaussians``) from 40 orbit views (``--views``) at 512²
(``--size``) with the default protection settings, on 1 process and, where the machine has 2 GPUs, on 2
(one GPU each, NCCL). Wall time and peak GPU memory per rank. One script for a short GPU budget.

Numbers from the tiny, mini or random editors are about time and memory, never about protection
against the real InstructPix2Pix. Results go to ``benchmarks/results/distributed-<part>-<device>.json``
and a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
BUST = REPO / "scenes" / "bust"


# ------------------------------------------------------------------------------------------ the worker
def scene_hash(scene) -> str:
    h = hashlib.sha256()
    for t in scene.tensors().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def workload(args, device):
    """(scene, training cameras) of the part."""
    import torch

    from adlift.cameras import orbit_cameras
    from adlift.io import load_cameras, read_scene

    if args.part == "scale":
        sys.path.insert(0, str(HERE))
        from render import sphere_scene  # benchmarks/render.py

        scene = sphere_scene(args.gaussians)
        cams = orbit_cameras(args.views, (0.0, 0.0, 0.0), 3.0, width=args.size, height=args.size)
        return scene.to(device), cams.to(device)
    scene = read_scene(BUST / "scene.ply")
    cams = load_cameras(BUST / "transforms.json", split="train", width=args.size)
    pick = torch.linspace(0, len(cams) - 1, args.views).round().long().tolist()
    return scene.to(device), cams[pick].to(device)


def worker(args) -> int:
    """One rank: set up, protect, measure; rank 0 writes ``args.result``."""
    import torch

    from adlift import distributed
    from adlift.attacks import AdversarialLoss
    from adlift.editors import load_editor
    from adlift.protect import ProtectConfig, protect

    device = distributed.local_device(torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    group = distributed.init_from_env(device, timeout_s=1800)
    tic = time.perf_counter()
    scene, cams = workload(args, device)
    editor = load_editor(args.editor, device=device)
    config = ProtectConfig(rounds=args.rounds, pgd_steps=args.pgd_steps, fit_steps=args.fit_steps, replay=args.replay,
                           view_batch=args.view_batch, progress=False)  # fmt: skip
    loss = AdversarialLoss(editor.surface, args.instruction, config.loss, config.eot)
    setup = time.perf_counter() - tic
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    tic = time.perf_counter()
    result = protect(scene, cams, loss, config)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - tic
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip
    peaks = torch.tensor([float(peak) if r == group.rank else 0.0 for r in range(group.world_size)], dtype=torch.float64)
    distributed.all_reduce_sum_(peaks, group, "sharing memory peaks")
    if group.is_main:
        record = {
            "procs": group.world_size, "backend": group.backend, "device": str(device),
            "threads_per_proc": torch.get_num_threads(), "view_batch": config.view_batch,
            "setup_s": round(setup, 3), "optimise_s": round(result.seconds, 3), "protect_s": round(total, 3),
            "peak_mb_per_rank": [round(p / 2**20, 1) for p in peaks.tolist()],
            "scene_hash": scene_hash(result.protected), "gaussians": scene.num_gaussians, "views": len(cams),
            "size": args.size, "editor": editor.metadata(),
            "train_loss": [result.summary["train"]["loss_raw"], result.summary["train"]["loss_protected"]],
        }  # fmt: skip
        Path(args.result).write_text(json.dumps(record) + "\n")
    distributed.shutdown()
    return 0


# ------------------------------------------------------------------------------------------ the driver
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, procs: int, argv: list[str]) -> dict:
    """One torchrun launch of the worker on ``procs`` processes; rank 0's record."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}",
               f"--master-port={free_port()}", str(Path(__file__).resolve()), *argv, "--worker", "--result", str(result)]  # fmt: skip
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0 or not result.exists():
            raise SystemExit(f"{procs}-process run failed (status {done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(result.read_text())


def summarise(runs: dict[int, list[dict]]) -> list[dict]:
    base = statistics.median(r["optimise_s"] for r in runs[min(runs)])
    rows = []
    for procs, records in sorted(runs.items()):
        optimise = statistics.median(r["optimise_s"] for r in records)
        rows.append({
            "procs": procs, "view_batch": records[0]["view_batch"], "repeats": len(records),
            "optimise_s": round(optimise, 2), "protect_s": round(statistics.median(r["protect_s"] for r in records), 2),
            "speedup": round(base / optimise, 2),
            "peak_mb_per_rank": max(max(r["peak_mb_per_rank"]) for r in records),
            "scene_hash": records[0]["scene_hash"],
            "same_scene_as_1": records[0]["scene_hash"] == runs[min(runs)][0]["scene_hash"],
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    cols = ["procs", "view_batch", "repeats", "optimise_s", "protect_s", "speedup", "peak_mb_per_rank", "same_scene_as_1"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["scaling", "scale"], default="scaling")
    p.add_argument("--procs", type=int, nargs="+", default=None, help="process counts (scaling: 1 2; scale: 1, and 2 with 2 GPUs)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    p.add_argument("--editor", default=None, help="scaling: tiny (default), mini; scale: ip2p-random (default)")
    p.add_argument("--instruction", default="turn her into a clown")
    p.add_argument("--views", type=int, default=None, help="training views (scaling: 8; scale: 40)")
    p.add_argument("--size", type=int, default=None, help="render size (scaling: 128; scale: 512)")
    p.add_argument("--gaussians", type=int, default=500_000, help="scale: Gaussians of the synthetic scene")
    p.add_argument("--view-batch", type=int, default=None, help="views per unit (default: the largest --procs)")
    p.add_argument("--rounds", type=int, default=None, help="scaling: 1; scale: the default (2)")
    p.add_argument("--pgd-steps", type=int, default=None, help="scaling: 5; scale: the default (10)")
    p.add_argument("--fit-steps", type=int, default=None, help="scaling: 5; scale: the default (10)")
    p.add_argument("--replay", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    scale = args.part == "scale"
    defaults = {"editor": "ip2p-random" if scale else "tiny", "views": 40 if scale else 8, "size": 512 if scale else 128,
                "rounds": 2 if scale else 1, "pgd_steps": 10 if scale else 5, "fit_steps": 10 if scale else 5}  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.procs is None:
        import torch

        gpus = torch.cuda.device_count()
        args.procs = [1, 2] if not scale or gpus >= 2 else [1]
    args.view_batch = args.view_batch or max(args.procs)
    fixed = ["--part", args.part, "--editor", args.editor, "--views", str(args.views), "--size", str(args.size),
             "--gaussians", str(args.gaussians), "--view-batch", str(args.view_batch), "--rounds", str(args.rounds),
             "--pgd-steps", str(args.pgd_steps), "--fit-steps", str(args.fit_steps), "--replay", str(args.replay),
             "--instruction", args.instruction] + (["--device", args.device] if args.device else [])  # fmt: skip
    return args, fixed


def main(argv=None) -> int:
    args, fixed = parse_args(argv)
    if args.worker:
        return worker(args)
    sys.path.insert(0, str(HERE))
    import torch
    from render import device_label, environment, write_results  # benchmarks/render.py

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    runs: dict[int, list[dict]] = {}
    for rep in range(args.repeats):
        for procs in args.procs:  # interleaved, so drifting load hits every count alike
            print(f"[{rep + 1}/{args.repeats}] {procs} process(es) ...", flush=True)
            runs.setdefault(procs, []).append(launch(args, procs, fixed))
    rows = summarise(runs)
    first = runs[args.procs[0]][0]
    label = device_label(device) if device.type == "cuda" else "cpu"
    out = args.out or RESULTS / f"distributed-{args.part}-{label}.json"
    result = {"benchmark": "distributed", "part": args.part, "settings": {k: v for k, v in vars(args).items()
              if k not in ("worker", "result", "out")}, "environment": environment(device),
              "editor": first["editor"], "rows": rows, "runs": {str(k): v for k, v in runs.items()}}  # fmt: skip
    write_results(out, result)
    print(table(rows))
    if first["editor"].get("untrained_test_model") or first["editor"].get("model_organism"):
        print(f"editor {first['editor'].get('editor')}: not the real InstructPix2Pix; time and memory only")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
