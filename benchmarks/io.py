"""Scene file I/O benchmark: does reading/writing .ply through plyfile need a hand-written fast path?

    python benchmarks/io.py                     # 100k and 1M Gaussians, SH degree 3 (~1 minute)
    python benchmarks/io.py --counts 10000 --repeats 3

For each N it writes one binary little-endian INRIA .ply (SH degree 3: 62 float32 properties,
248 bytes a Gaussian) to a temporary directory and times, side by side in the same run (median
of ``--repeats`` runs after a warm-up; the file is in the page cache, so this is parsing and
copying, not the disk):

* ``read`` - ``adlift.io.read_scene`` (format detection, plyfile's header parser, the size check,
  plyfile's memory-mapped vertex read, finiteness checks, conversion to a float32 GaussianScene);
* ``read, np.fromfile`` - the hand-written fast path AdLift used before plyfile: one
  ``np.fromfile`` of the vertex rows, then the *same* checks and conversion;
* ``write`` - ``adlift.io.write_scene`` (value checks, plyfile's writer, atomic rename);
* ``write, tofile`` - a hand-written header plus ``ndarray.tofile`` of the same rows, no checks.

The difference between a row and its hand-written twin is what plyfile costs. Results go to
``benchmarks/results/io-cpu.json`` (atomic write) and a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from adlift import GaussianScene
from adlift.io import read_scene, write_scene
from adlift.io import ply
from adlift.io.json_safe import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def random_scene(n: int, seed: int = 0) -> GaussianScene:
    """N Gaussians with SH degree 3 and random finite values."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return GaussianScene(r(n, 3), r(n, 4), r(n, 3) - 3, r(n), r(n, 16, 3) * 0.3)


def read_fromfile(path: Path, n: int) -> GaussianScene:
    """The pre-plyfile fast path: find the header end, np.fromfile the rows, same conversion."""
    with open(path, "rb") as f:
        header, nl = ply.split_header(f.read(1 << 16))
        f.seek(len(header) + len(nl))
        names = [line.split()[-1] for line in header.decode().split(nl.decode()) if line.startswith("property")]
        data = np.fromfile(f, dtype=[(name, "<f4") for name in names], count=n)
    return ply._vertices_to_scene(path, data, n=n, k=16, rgb_mode=False, dtype=torch.float32)


def write_tofile(scene: GaussianScene, path: Path) -> None:
    """A hand-written header and one tofile of the rows (no value checks, not atomic)."""
    rows = ply.scene_to_vertex_array(scene)
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(rows)}"]
    lines += [f"property float {name}" for name in rows.dtype.names] + ["end_header"]
    with open(path, "wb") as f:
        f.write(("\n".join(lines) + "\n").encode("ascii"))
        rows.tofile(f)


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=RESULTS / "io-cpu.json")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="adlift-io-bench-") as tmp:
        for n in args.counts:
            scene = random_scene(n)
            a, b = Path(tmp) / "a.ply", Path(tmp) / "b.ply"
            write_scene(scene, a)
            size_mb = a.stat().st_size / 1e6
            back, fast = read_scene(a), read_fromfile(a, n)
            assert all(torch.equal(getattr(back, k), getattr(scene, k)) for k in ("means", "sh", "quats"))
            assert all(torch.equal(getattr(back, k), getattr(fast, k)) for k in ("means", "sh", "opacity_logits"))
            write_tofile(scene, b)
            assert a.read_bytes()[-1000:] == b.read_bytes()[-1000:]
            repeats = max(1, args.repeats if n <= 200_000 else (args.repeats + 1) // 2)
            measured = {
                "read": timed(lambda: read_scene(a), repeats),
                "read, np.fromfile": timed(lambda: read_fromfile(a, n), repeats),
                "write": timed(lambda: write_scene(scene, a), repeats),
                "write, tofile": timed(lambda: write_tofile(scene, b), repeats),
            }
            for path_name, seconds in measured.items():
                rows.append({"n": n, "file_mb": round(size_mb, 1), "path": path_name, "seconds": seconds,
                             "mb_per_s": size_mb / seconds, "repeats": repeats})  # fmt: skip

    result = {
        "benchmark": "io",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__,
                    "plyfile": _plyfile_version(), "load_average": os.getloadavg()},  # fmt: skip
        "sh_degree": 3,
        "rows": rows,
    }
    write_json_atomic(args.out, result)
    print("| N | file MB | path | median s | MB/s |\n|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['file_mb']} | {r['path']} | {r['seconds']:.3f} | {r['mb_per_s']:.0f} |")
    print(f"wrote {args.out}")
    return 0


def _plyfile_version() -> str:
    from importlib.metadata import version

    return version("plyfile")


if __name__ == "__main__":
    sys.exit(main())
