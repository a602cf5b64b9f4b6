"""Renderer benchmark: forward and forward+backward time and peak memory per backend.

    python benchmarks/render.py                      # 10k/100k/1M Gaussians at 256^2 and 512^2
    python benchmarks/render.py --quick              # 10k/100k at 256^2, 2 repeats
    python benchmarks/render.py --counts 100000 --sizes 512 --breakdown
    python benchmarks/render.py --fitting            # GPU: 500k frozen + 500k trainable at 1024^2

Scenes: N Gaussians on the surface of the unit sphere (flat discs tangent to it, sized to tile the
surface, opacities uniform in [0.2, 0.95], SH degree 3), one orbit camera at distance 3 with a 45
degree field of view (the sphere fills ~85 % of the image width).  Times are medians over
``--repeats`` runs after one warm-up; forward+backward differentiates a weighted sum of rgb, alpha
and depth w.r.t. all five scene tensors.  Peak memory is the peak RSS above the level before the
run on CPU (sampled from /proc every 2 ms), ``torch.cuda.max_memory_allocated`` on GPU.

``--fitting`` times the Lifted PGD fitting workload instead: a frozen set (the raw asset) and a
trainable set (the safeguard, a shell just outside it) rendered together, forward+backward, with
gradients needed for the trainable set only. ``cuda split`` is ``render(safeguard, cams,
frozen=raw)``; ``<backend> concat`` renders ``concat(raw.detach(), safeguard)`` (what any other
renderer must do); ``<backend> full-grad`` differentiates every Gaussian (plain training). GPU
times come from CUDA events; memory is the peak allocated above the inputs. The device's copy
bandwidth is measured in the same run (bytes read + written by a large device-to-device copy).

Results go to ``benchmarks/results/render-<device>.json`` (atomic write) and a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from adlift import GaussianScene
from adlift.cameras import orbit_cameras
from adlift.io.atomic import write_text_atomic
from adlift.render import available_backends, render, torch_backend

RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------------ scenes
def sphere_scene(n: int, seed: int = 0, sh_degree: int = 3) -> GaussianScene:
    """``n`` flat Gaussians tiling the unit sphere (float32, CPU)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    normal = torch.randn(n, 3, generator=g, dtype=d)
    normal = normal / normal.norm(dim=1, keepdim=True)
    means = normal * (1 + 0.01 * torch.randn(n, 1, generator=g, dtype=d))
    spacing = math.sqrt(4 * math.pi / n)
    tangent = spacing * (0.5 + 0.5 * torch.rand(n, 2, generator=g, dtype=d))
    scales = torch.cat([tangent, torch.full((n, 1), 0.1 * spacing, dtype=d)], dim=1)
    # Rotate local z onto the normal: q = (1 + z.n, z x n), normalised.
    z = torch.tensor([0.0, 0.0, 1.0], dtype=d).expand_as(normal)
    quats = torch.cat([1 + normal[:, 2:3], torch.linalg.cross(z, normal)], dim=1)
    opac = 0.2 + 0.75 * torch.rand(n, generator=g, dtype=d)
    scene = GaussianScene.from_activated(means, torch.rand(n, 3, generator=g, dtype=d), scales, opac, quats, sh_degree)
    if sh_degree:
        scene.sh[:, 1:] = 0.1 * torch.randn(scene.sh[:, 1:].shape, generator=g, dtype=d)
    return scene.to(dtype=torch.float32)


# ------------------------------------------------------------------------------------ memory
class PeakRSS:
    """Peak resident set size above the starting level, sampled from /proc/self/statm."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.available = Path("/proc/self/statm").exists()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    @staticmethod
    def _trim() -> None:
        """Return freed heap memory to the OS (glibc), so the next peak counts the whole working set."""
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)

    @contextlib.contextmanager
    def measure(self):
        result = {"peak_bytes": None}
        if not self.available:
            yield result
            return
        self._trim()
        base = self._rss()
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], self._rss())
                time.sleep(self.interval)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            yield result
        finally:
            stop.set()
            t.join()
            peak[0] = max(peak[0], self._rss())
            result["peak_bytes"] = peak[0] - base


# ------------------------------------------------------------------------------------ timing
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_once(scene, cams, backend, backward: bool, weights) -> None:
    if not backward:
        with torch.no_grad():
            render(scene, cams, backend=backend)
        return
    params = [t.detach().requires_grad_() for t in scene.tensors().values()]
    out = render(GaussianScene(*params, check_finite=False), cams, backend=backend)
    loss = (out.rgb * weights).sum() + out.alpha.sum() + 0.01 * out.depth.sum()
    loss.backward()


def bench_case(n: int, size: int, backend: str, device: torch.device, repeats: int, rss: PeakRSS) -> dict:
    """Median forward and forward+backward times and peak memory of one configuration."""
    scene = sphere_scene(n).to(device)
    cams = orbit_cameras(1, [0, 0, 0], 3.0, width=size, height=size, fov_deg=45.0).to(device)
    weights = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    row = {"backend": backend, "device": str(device), "gaussians": n, "size": size, "repeats": repeats}
    with torch.no_grad():
        out = render(scene, cams, backend=backend)
    row["coverage"] = round(float(out.alpha.mean()), 4)
    row["visible"] = int(out.visible.sum())
    for key, backward in (("forward", False), ("forward_backward", True)):
        run_once(scene, cams, backend, backward, weights)  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            run_once(scene, cams, backend, backward, weights)
            _sync(device)
            times.append(time.perf_counter() - t0)
        row[f"{key}_s"] = round(statistics.median(times), 4)
        row[f"{key}_min_s"] = round(min(times), 4)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            run_once(scene, cams, backend, backward, weights)
            _sync(device)
            row[f"{key}_peak_mb"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
        else:
            with rss.measure() as mem:
                run_once(scene, cams, backend, backward, weights)
            if mem["peak_bytes"] is not None:
                row[f"{key}_peak_mb"] = round(mem["peak_bytes"] / 2**20, 1)
    return row


# ------------------------------------------------------------------------------------ fitting
def copy_bandwidth(device: torch.device, mib: int = 2048, repeats: int = 10) -> float:
    """Measured device-to-device copy bandwidth, bytes read + written per second."""
    x = torch.rand(mib * 2**18, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y.copy_(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * x.numel() * 4 / statistics.median(times)


def fitting_step(
    frozen: GaussianScene, trainable: GaussianScene, cams, backend: str, mode: str, weights, forward_only: bool = False
) -> None:
    """One forward+backward of the fitting workload (mode: split | concat | full-grad)."""
    params = [t.detach().requires_grad_() for t in trainable.tensors().values()]
    safeguard = GaussianScene(*params, check_finite=False)
    if mode == "split":
        out = render(safeguard, cams, backend=backend, frozen=frozen)
    elif mode == "concat":
        out = render(GaussianScene.concat([frozen.detach(), safeguard]), cams, backend=backend)
    else:
        raw = GaussianScene(*[t.detach().requires_grad_() for t in frozen.tensors().values()], check_finite=False)
        out = render(GaussianScene.concat([raw, safeguard]), cams, backend=backend)
    loss = (out.rgb * weights).sum() + out.alpha.sum() + 0.01 * out.depth.sum()
    if not forward_only:
        loss.backward()


def bench_fitting(n_frozen: int, n_train: int, size: int, backends: list[str], device, repeats: int) -> list[dict]:
    """Median forward+backward time and peak memory of the fitting workload per backend and mode."""
    frozen = sphere_scene(n_frozen, seed=0).to(device)
    trainable = sphere_scene(n_train, seed=1)
    trainable.means.mul_(1.005)  # a shell just outside the asset, like a safeguard
    trainable = trainable.to(device)
    cams = orbit_cameras(1, [0, 0, 0], 3.0, width=size, height=size, fov_deg=45.0).to(device)
    weights = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    cases = [(b, m) for b in backends for m in (("split", "full-grad") if b == "cuda" else ("concat", "full-grad"))]
    if "cuda" in backends:
        cases.insert(1, ("cuda", "concat"))
    rows = []
    for backend, mode in cases:
        for _ in range(2):  # warm-up (builds, caches)
            fitting_step(frozen, trainable, cams, backend, mode, weights)
        torch.cuda.synchronize(device)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fitting_step(frozen, trainable, cams, backend, mode, weights)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fitting_step(frozen, trainable, cams, backend, mode, weights)
        torch.cuda.synchronize(device)
        rows.append({
            "backend": backend, "mode": mode, "frozen": n_frozen, "trainable": n_train, "size": size,
            "repeats": repeats, "forward_backward_s": statistics.median(times), "min_s": min(times),
            "spread_s": max(times) - min(times),
            "peak_mb": round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1),
        })  # fmt: skip
        print(f"{backend:6s} {mode:9s} {size}^2: fwd+bwd {1000 * rows[-1]['forward_backward_s']:.2f} ms "
              f"peak {rows[-1]['peak_mb']} MB", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def fitting_table(rows: list[dict]) -> str:
    ref = {r["mode"]: r["forward_backward_s"] for r in rows if r["backend"] == "gsplat"}
    lines = ["| backend | mode | frozen + trainable | size | fwd+bwd ms (median) | vs gsplat same work | peak MB |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        same = ref.get("concat" if r["mode"] in ("split", "concat") else "full-grad")
        speed = f"{same / r['forward_backward_s']:.2f}x" if same else "-"
        lines.append(f"| {r['backend']} | {r['mode']} | {r['frozen']:,} + {r['trainable']:,} | {r['size']}^2 | "
                     f"{1000 * r['forward_backward_s']:.2f} | {speed} | {r['peak_mb']} |")  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ breakdown
STAGES = ["covariance_factor", "project_gaussians", "screen_radii", "sh_to_rgb", "intersect_tiles", "composite"]


def breakdown(n: int, size: int, device: torch.device, repeats: int) -> dict:
    """Where the torch backend's time goes (forward stages, compositing backward, the rest)."""
    from adlift.render import rasterize

    acc: dict[str, float] = {}

    def timed(fn, key):
        def wrapper(*a, **k):
            _sync(device)
            t0 = time.perf_counter()
            r = fn(*a, **k)
            _sync(device)
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
            return r

        return wrapper

    originals = {name: getattr(torch_backend, name) for name in STAGES}
    original_bwd = rasterize._CompositeFn.backward
    try:
        for name in STAGES:
            setattr(torch_backend, name, timed(originals[name], name if name != "composite" else "composite_forward"))
        rasterize._CompositeFn.backward = staticmethod(timed(original_bwd, "composite_backward"))
        scene = sphere_scene(n).to(device)
        cams = orbit_cameras(1, [0, 0, 0], 3.0, width=size, height=size).to(device)
        weights = torch.ones(1, 3, size, size, device=device)
        run_once(scene, cams, "torch", True, weights)
        totals = []
        acc.clear()
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            params = [t.detach().requires_grad_() for t in scene.tensors().values()]
            out = render(GaussianScene(*params, check_finite=False), cams, backend="torch")
            _sync(device)
            t1 = time.perf_counter()
            ((out.rgb * weights).sum() + out.alpha.sum() + 0.01 * out.depth.sum()).backward()
            _sync(device)
            totals.append((t1 - t0, time.perf_counter() - t1))
    finally:
        for name, fn in originals.items():
            setattr(torch_backend, name, fn)
        rasterize._CompositeFn.backward = original_bwd
    stages = {k: round(v / repeats, 4) for k, v in acc.items()}
    fwd = sum(t[0] for t in totals) / repeats
    bwd = sum(t[1] for t in totals) / repeats
    stages["other_forward"] = round(fwd - sum(v for k, v in stages.items() if k != "composite_backward"), 4)
    stages["other_backward (autograd: projection, SH, gathers)"] = round(bwd - stages.get("composite_backward", 0), 4)
    return {"gaussians": n, "size": size, "forward_s": round(fwd, 4), "backward_s": round(bwd, 4), "stages_s": stages}


# ------------------------------------------------------------------------------------ output
def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return "cuda-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"cpu-{torch.get_num_threads()}t"


def write_results(out: Path, result: dict) -> Path:
    """Write a benchmark's result as indented JSON, atomically; returns ``out``."""
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return out


def environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        env["loadavg_at_start"] = os.getloadavg()
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        env["cpu_model"] = m.group(1) if m else None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def markdown_table(rows: list[dict]) -> str:
    head = "| backend | N | size | fwd s | fwd+bwd s | fwd peak MB | fwd+bwd peak MB | coverage |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['gaussians']:,} | {r['size']}^2 | {r['forward_s']:.3f} | "
            f"{r['forward_backward_s']:.3f} | {r.get('forward_peak_mb', '-')} | "
            f"{r.get('forward_backward_peak_mb', '-')} | {r['coverage']:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="Gaussian counts")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square image sizes in pixels")
    p.add_argument("--backends", nargs="+", default=None, help="backends to run (default: all available)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="10k and 100k at 256^2, 2 repeats")
    p.add_argument("--breakdown", action="store_true", help="also time the torch backend's stages")
    p.add_argument("--fitting", action="store_true", help="GPU: the frozen + trainable fitting workload instead")
    p.add_argument("--frozen", type=int, default=500_000, help="--fitting: frozen Gaussians")
    p.add_argument("--trainable", type=int, default=500_000, help="--fitting: trainable Gaussians")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: results/render-<device>.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.counts, args.sizes, args.repeats = [10_000, 100_000], [256], 2
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    backends = args.backends or available_backends()
    if device.type == "cpu":
        backends = [b for b in backends if b == "torch"]  # the CUDA backends move data to the GPU
    if args.fitting:
        return main_fitting(args, device, backends)
    rss = PeakRSS()
    env_start = environment(device)
    rows, profile = [], []
    for backend in backends:
        for size in args.sizes:
            for n in args.counts:
                row = bench_case(n, size, backend, device, args.repeats, rss)
                rows.append(row)
                print(
                    f"{backend:7s} N={n:>9,} {size}^2: fwd {row['forward_s']:.3f}s  fwd+bwd "
                    f"{row['forward_backward_s']:.3f}s  peak {row.get('forward_backward_peak_mb', '-')} MB",
                    file=sys.stderr,
                    flush=True,
                )
    if args.breakdown and "torch" in backends:
        for size in args.sizes:
            for n in args.counts:
                profile.append(breakdown(n, size, device, max(1, args.repeats)))
    env = env_start
    with contextlib.suppress(OSError):
        env["loadavg_at_end"] = os.getloadavg()  # the machine may be shared: timings are only as good as this
    result = {
        "benchmark": "render",
        "device": device_label(device),
        "environment": env,
        "settings": {"torch_backend": vars(torch_backend.SETTINGS)},
        "results": rows,
        "torch_breakdown": profile,
    }
    out = args.out or RESULTS / f"render-{device_label(device)}.json"
    write_results(out, result)
    print(markdown_table(rows))
    for p in profile:
        print(f"\ntorch stages, N={p['gaussians']:,} at {p['size']}^2 (fwd {p['forward_s']}s, bwd {p['backward_s']}s):")
        for k, v in sorted(p["stages_s"].items(), key=lambda kv: -kv[1]):
            print(f"  {k:55s} {v:8.3f} s")
    print(f"\nwrote {out}")
    return 0


def main_fitting(args, device: torch.device, backends: list[str]) -> int:
    if device.type != "cuda":
        print("--fitting needs a CUDA GPU", file=sys.stderr)
        return 2
    backends = [b for b in backends if b in ("cuda", "gsplat")] or backends
    env = environment(device)
    ceiling = copy_bandwidth(device)
    rows = []
    for size in args.sizes:
        rows += bench_fitting(args.frozen, args.trainable, size, backends, device, args.repeats)
    result = {
        "benchmark": "render-fitting",
        "device": device_label(device),
        "environment": env,
        "copy_bandwidth_bytes_per_s": ceiling,
        "results": rows,
    }
    out = args.out or RESULTS / f"render-fitting-{device_label(device)}.json"
    write_results(out, result)
    print(f"device copy bandwidth (read + write): {ceiling / 1e12:.2f} TB/s")
    print(fitting_table(rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
