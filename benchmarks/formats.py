"""Web 3DGS formats: which library should AdLift read and write them with? (issue 18)

    python benchmarks/formats.py                       # capability, correctness, 1M-Gaussian speed (~10 min)
    python benchmarks/formats.py --n 100000 --repeats 1
    python benchmarks/formats.py --skip-speed          # capability and correctness only (~1 min)

Candidates: **gsply** and **gaussforge** (both on PyPI; gaussforge is AdLift's dependency, gsply is
installed by ``make bench-formats`` only), each called through its own public API in
a small adapter below (no AdLift code between the library and the measurement, except AdLift's
.ply reader for decoding reference .ply files). Formats: PlayCanvas ``.compressed.ply``, Niantic
``.spz`` (versions 2, 3, 4), antimatter15 ``.splat``, SOG (``.sog`` bundle and ``meta.json`` + WebP
images).

1. **Capability**: for each library and format, whether it writes a file (from a random SH-3 scene)
   and reads one back (its own file, and the one splat-transform wrote).
2. **Correctness against an independent implementation**: PlayCanvas's ``splat-transform`` (npm,
   ``tools/splat-transform``, run with node; ``make splat-transform`` installs it). It writes each
   format from the same source .ply, and decodes its own file back to .ply (the reference decode).
   * *read*: the library's decode of splat-transform's file vs splat-transform's decode (max abs
     error per attribute; ~0 means the two decoders agree), and vs the source (quantisation);
   * *write*: splat-transform's decode of the library's file vs the source (quantisation error the
     library's encoder leaves, seen by an independent reader).
   SPZ stores RUB axes on disk (Niantic's spec; splat-transform converts PLY's RDF axes to RUB when
   writing and back when reading); a library that stores and reads PLY axes unchanged shows up as
   ``axes: raw`` (its y and z are flipped relative to splat-transform's).
3. **Speed**: read and write of an ``--n`` Gaussian SH-3 scene (default 1M) per format, the median of
   ``--repeats`` runs after one warm-up run (gsply compiles numba kernels on first use: that
   first call is reported separately as ``cold``). Wall-clock, on however many cores the machine
   gives (``--threads`` caps numba/OpenMP pools); the file is in the page cache.

Attributes are compared in AdLift's (INRIA .ply) parameterisation: means, log-scales, rotation
angle between the (normalised) quaternions in degrees, opacity (after the sigmoid), DC colour
(SH_C0 * dc + 0.5) and the higher-order SH coefficients. Results: JSON in
``benchmarks/results/formats-cpu.json`` (atomic) and a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SPLAT_TRANSFORM = REPO / "tools" / "splat-transform" / "node_modules" / "@playcanvas" / "splat-transform" / "bin" / "cli.mjs"
SH_C0 = 0.28209479177387814
FORMATS = ["compressed.ply", "spz-v2", "spz-v3", "spz-v4", "splat", "sog", "meta.json"]
#: The formats splat-transform writes (it reads all of FORMATS).
ST_WRITES = {"compressed.ply": [], "spz-v3": ["--spz-version", "3"], "spz-v4": ["--spz-version", "4"],
             "sog": ["-g", "cpu", "-i", "2"], "meta.json": ["-g", "cpu", "-i", "2"]}  # fmt: skip


def file_name(fmt: str) -> str:
    return {"compressed.ply": "x.compressed.ply", "splat": "x.splat", "sog": "x.sog", "meta.json": "meta/meta.json"}.get(
        fmt, f"x-{fmt}.spz"
    )


# ------------------------------------------------------------------------------------------ scenes
def random_arrays(n: int, degree: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A random scene as float32 arrays in the INRIA parameterisation (quaternions w, x, y, z)."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    k = (degree + 1) ** 2
    return {"means": f(n, 3), "log_scales": f(n, 3) * 0.5 - 3.0, "quats": f(n, 4), "opacity": f(n) * 1.5,
            "sh": np.concatenate([f(n, 1, 3) * 0.8, f(n, k - 1, 3) * 0.2], axis=1)}  # fmt: skip


def write_reference_ply(arrays: dict[str, np.ndarray], path: Path) -> None:
    import torch

    from adlift import GaussianScene
    from adlift.io import write_scene

    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    write_scene(GaussianScene(t["means"], t["quats"], t["log_scales"], t["opacity"], t["sh"]), path)


def read_reference_ply(path: Path) -> dict[str, np.ndarray]:
    from adlift.io import read_scene

    s = read_scene(path)
    return {"means": s.means.numpy(), "log_scales": s.log_scales.numpy(), "quats": s.quats.numpy(),
            "opacity": s.opacity_logits.numpy(), "sh": s.sh.numpy()}  # fmt: skip


def flip_yz(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """RDF <-> RUB (y and z negated): what SPZ's spec asks of a writer given PLY axes."""
    from adlift.io.web_codec import SH_FLIP_YZ

    out = dict(a)
    out["means"] = a["means"] * np.array([1, -1, -1], np.float32)
    out["quats"] = a["quats"] * np.array([1, 1, -1, -1], np.float32)
    k = a["sh"].shape[1]
    out["sh"] = a["sh"] * np.concatenate([[1.0], SH_FLIP_YZ[: k - 1]]).astype(np.float32)[None, :, None]
    return out


def matched(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``got`` in ``want``'s order (SOG sorts Gaussians spatially): each of ``want``'s Gaussians
    takes the decoded one nearest to its mean."""
    from scipy.spatial import cKDTree

    _, index = cKDTree(got["means"]).query(want["means"])
    return {k: v[index] for k, v in got.items()}


def errors(got: dict[str, np.ndarray], want: dict[str, np.ndarray], reorder: bool = False) -> dict[str, float]:
    """Max abs error per attribute (rotation: degrees between the unit quaternions)."""
    if len(got["means"]) != len(want["means"]):
        return {"count": float(len(got["means"]))}
    if reorder:
        got = matched(got, want)
    qa = got["quats"] / np.linalg.norm(got["quats"], axis=1, keepdims=True)
    qb = want["quats"] / np.linalg.norm(want["quats"], axis=1, keepdims=True)
    dot = np.clip(np.abs((qa.astype(np.float64) * qb).sum(1)), 0, 1)
    sig = lambda x: 1 / (1 + np.exp(-x.astype(np.float64)))  # noqa: E731
    k = min(got["sh"].shape[1], want["sh"].shape[1])
    out = {
        "means": float(np.abs(got["means"] - want["means"]).max()),
        "log_scales": float(np.abs(got["log_scales"] - want["log_scales"]).max()),
        "rotation_deg": float(np.degrees(2 * np.arccos(dot)).max()),
        "opacity": float(np.abs(sig(got["opacity"]) - sig(want["opacity"])).max()),
        "dc_colour": float(np.abs(SH_C0 * (got["sh"][:, 0] - want["sh"][:, 0])).max()),
        "sh_rest": float(np.abs(got["sh"][:, 1:k] - want["sh"][:, 1:k]).max()) if k > 1 else 0.0,
    }
    if got["sh"].shape[1] != want["sh"].shape[1]:
        out["sh_degree_kept"] = int(round(np.sqrt(got["sh"].shape[1]))) - 1
    return out


# ------------------------------------------------------------------------------------ the adapters
class Unsupported(Exception):
    """The library has no API for this format/operation."""


@contextlib.contextmanager
def quiet_stdout():
    """gaussforge's C++ code prints progress lines to file descriptor 1: drop them."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class GaussForge:
    """gaussforge 0.6: ``GaussForge().read(bytes, fmt)`` / ``.write(ir, fmt)``; the IR holds raw
    float32 bytes (positions, log scales, wxyz rotations, opacity logits, DC colours, sh
    coefficient-major [N, K-1, 3])."""

    name = "gaussforge"

    def __init__(self):
        import gaussforge

        self.version = gaussforge.__version__
        self.gf = gaussforge.GaussForge()

    def _fmt(self, fmt: str) -> tuple[str, dict]:
        if fmt.startswith("spz"):
            return "spz", {"spz_version": int(fmt[-1])}
        return ("sog" if fmt == "meta.json" else fmt), {}

    def write(self, a: dict[str, np.ndarray], path: Path, fmt: str) -> None:
        n, k = a["sh"].shape[:2]
        ir = {"numPoints": n, "positions": a["means"].tobytes(), "scales": a["log_scales"].tobytes(),
              "rotations": a["quats"].tobytes(), "alphas": a["opacity"].tobytes(),
              "colors": np.ascontiguousarray(a["sh"][:, 0]).tobytes(),
              "sh": np.ascontiguousarray(a["sh"][:, 1:]).tobytes(), "extras": {},
              "meta": {"shDegree": int(round(np.sqrt(k))) - 1, "sourceFormat": "ply"}}  # fmt: skip
        name, kw = self._fmt(fmt)
        with quiet_stdout():
            out = self.gf.write(ir, name, **kw)
        if "error" in out:
            raise RuntimeError(out["error"])
        if fmt == "meta.json":  # the folder layout = the .sog bundle's entries
            with zipfile.ZipFile(io.BytesIO(out["data"])) as z:
                z.extractall(path.parent)
        else:
            path.write_bytes(out["data"])

    def read(self, path: Path, fmt: str) -> dict[str, np.ndarray]:
        name, _ = self._fmt(fmt)
        if fmt == "meta.json":  # zip the folder into a bundle
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for f in path.parent.iterdir():
                    z.write(f, f.name)
            data = buf.getvalue()
        else:
            data = path.read_bytes()
        with quiet_stdout():
            out = self.gf.read(data, name)
        if "error" in out:
            raise RuntimeError(out["error"])
        ir = out["data"]
        n, d = ir["numPoints"], ir["meta"]["shDegree"]
        f = lambda key, *shape: np.frombuffer(ir[key], np.float32).reshape(n, *shape)  # noqa: E731
        sh = np.concatenate([f("colors", 1, 3), f("sh", (d + 1) ** 2 - 1, 3)], axis=1)
        return {"means": f("positions", 3), "log_scales": f("scales", 3), "quats": f("rotations", 4),
                "opacity": f("alphas"), "sh": sh}  # fmt: skip


class Gsply:
    """gsply 0.4: ``plyread`` (also .compressed.ply), ``plywrite(compressed=True)``, ``read_spz`` /
    ``write_spz(version=3|4)``, ``sogread`` (.sog and meta.json; needs imagecodecs); GSData holds
    means, log scales, wxyz quats, opacity logits, sh0 (DC) and shN [N, K-1, 3]."""

    name = "gsply"

    def __init__(self):
        import gsply

        self.version = gsply.__version__
        self.gsply = gsply

    def write(self, a: dict[str, np.ndarray], path: Path, fmt: str) -> None:
        g = self.gsply
        sh0, shn = np.ascontiguousarray(a["sh"][:, 0]), np.ascontiguousarray(a["sh"][:, 1:])
        if fmt == "compressed.ply":
            g.plywrite(str(path), a["means"], a["log_scales"], a["quats"], a["opacity"], sh0, shn, compressed=True)
        elif fmt in ("spz-v3", "spz-v4"):
            data = g.GSData(means=a["means"], scales=a["log_scales"], quats=a["quats"], opacities=a["opacity"],
                            sh0=sh0, shN=shn)  # fmt: skip
            g.write_spz(str(path), data, version=int(fmt[-1]))
        else:
            raise Unsupported(f"gsply has no {fmt} writer")

    def read(self, path: Path, fmt: str) -> dict[str, np.ndarray]:
        g = self.gsply
        if fmt == "compressed.ply":
            d = g.plyread(str(path))
        elif fmt.startswith("spz"):
            d = g.read_spz(str(path))
        elif fmt in ("sog", "meta.json"):
            d = g.sogread(str(path))
        else:
            raise Unsupported(f"gsply has no {fmt} reader")
        n = len(d.means)
        shn = np.zeros((n, 0, 3), np.float32) if d.shN is None else np.asarray(d.shN, np.float32).reshape(n, -1, 3)
        return {"means": np.asarray(d.means), "log_scales": np.asarray(d.scales), "quats": np.asarray(d.quats),
                "opacity": np.asarray(d.opacities).reshape(n),
                "sh": np.concatenate([np.asarray(d.sh0, np.float32)[:, None], shn], axis=1)}  # fmt: skip


class AdLift:
    """AdLift's own path, end to end: ``write_scene`` / ``read_scene`` (header checks, the
    gaussforge bridge and its workarounds, the SPZ axes flip, GaussianScene tensors). Not a
    candidate: the cost of the chosen library inside AdLift."""

    name = "adlift"
    #: Its SOG writer is fast enough for the full scene (``--n``) rather than ``--sog-n``.
    full_sog = True

    def __init__(self):
        import adlift

        self.version = f"{adlift.__version__} (gaussforge's readers; AdLift's .spz and SOG writers)"

    def write(self, a: dict[str, np.ndarray], path: Path, fmt: str) -> None:
        import torch

        from adlift import GaussianScene
        from adlift.io import write_scene

        if fmt in ("spz-v2", "spz-v3"):
            raise Unsupported("AdLift writes .spz version 4 only")
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in a.items()}
        write_scene(GaussianScene(t["means"], t["quats"], t["log_scales"], t["opacity"], t["sh"], check_finite=False),
                    path)  # fmt: skip

    def read(self, path: Path, fmt: str) -> dict[str, np.ndarray]:
        from adlift.io import read_scene

        s = read_scene(path)
        return {"means": s.means.numpy(), "log_scales": s.log_scales.numpy(), "quats": s.quats.numpy(),
                "opacity": s.opacity_logits.numpy(), "sh": s.sh.numpy()}  # fmt: skip


LIBRARIES = {"gaussforge": GaussForge, "gsply": Gsply, "adlift": AdLift}


# ------------------------------------------------------------------------------- splat-transform
def splat_transform_version() -> str | None:
    if shutil.which("node") is None or not SPLAT_TRANSFORM.is_file():
        return None
    out = subprocess.run(["node", str(SPLAT_TRANSFORM), "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip() or None


def splat_transform(src: Path, dst: Path, *options: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["node", str(SPLAT_TRANSFORM), "-q", "-w", *options, str(src), str(dst)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"splat-transform failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def short(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"[:200]


# --------------------------------------------------------------------------------------- measuring
def correctness(libs, n: int, work: Path, st: str | None) -> dict:
    """Capability and agreement with splat-transform, on an ``n``-Gaussian SH-3 scene."""
    src_arrays = random_arrays(n, seed=1)
    src = work / "src.ply"
    write_reference_ply(src_arrays, src)
    source = read_reference_ply(src)
    result: dict = {"n": n, "splat_transform": st, "libraries": {}}
    st_files: dict[str, tuple[Path, dict]] = {}
    if st:
        for fmt, options in ST_WRITES.items():
            path = work / "st" / file_name(fmt)
            try:
                splat_transform(src, path, *options)
                ref = work / "st" / f"decoded-{fmt}.ply"
                splat_transform(path, ref)
                st_files[fmt] = (path, read_reference_ply(ref))
            except Exception as err:  # noqa: BLE001 - recorded
                result.setdefault("splat_transform_errors", {})[fmt] = short(err)
    for lib in libs:
        rows = {}
        for fmt in FORMATS:
            row: dict = {}
            sog = fmt in ("sog", "meta.json")  # reordered: compare nearest Gaussians
            own = work / lib.name / file_name(fmt)
            own.parent.mkdir(parents=True, exist_ok=True)
            try:
                lib.write(source, own, fmt)
                row["write"] = "yes"
            except Unsupported as err:
                row["write"] = f"no ({err})"
            except Exception as err:  # noqa: BLE001
                row["write"] = f"error: {short(err)}"
            if row["write"] == "yes":
                try:
                    row["own_round_trip"] = errors(lib.read(own, fmt), source, sog)
                except Unsupported as err:
                    row["own_round_trip"] = f"no ({err})"
                except Exception as err:  # noqa: BLE001
                    row["own_round_trip"] = f"error: {short(err)}"
                if st:
                    try:
                        decoded = work / lib.name / f"st-decoded-{fmt}.ply"
                        splat_transform(own, decoded)
                        seen = read_reference_ply(decoded)
                        raw, flipped = errors(seen, source, sog), errors(flip_yz(seen), source, sog)
                        use_flip = fmt.startswith("spz") and flipped.get("means", 1e9) < raw.get("means", 1e9)
                        row["splat_transform_reads_it"] = flipped if use_flip else raw
                        if fmt.startswith("spz"):
                            row["spz_axes_written"] = "raw (PLY axes, no RDF->RUB)" if use_flip else "rub (spec)"
                    except Exception as err:  # noqa: BLE001
                        row["splat_transform_reads_it"] = f"error: {short(err)}"
            if fmt in st_files:
                path, ref = st_files[fmt]
                try:
                    got = lib.read(path, fmt)
                    raw, flipped = errors(got, ref, sog), errors(flip_yz(got), ref, sog)
                    use_flip = fmt.startswith("spz") and flipped.get("means", 1e9) < raw.get("means", 1e9)
                    row["read_splat_transform_file"] = "yes"
                    row["vs_splat_transform_decode"] = flipped if use_flip else raw
                    row["vs_source"] = errors(flip_yz(got) if use_flip else got, source, sog)
                    if fmt.startswith("spz"):
                        row["spz_axes_read"] = "raw (no RUB->RDF)" if use_flip else "rub (spec)"
                except Unsupported as err:
                    row["read_splat_transform_file"] = f"no ({err})"
                except Exception as err:  # noqa: BLE001
                    row["read_splat_transform_file"] = f"error: {short(err)}"
            rows[fmt] = row
        result["libraries"][lib.name] = {"version": lib.version, "formats": rows}
    return result


def speed(libs, n: int, repeats: int, work: Path, sog_n: int) -> dict:
    """Median-of-``repeats`` wall seconds to write and read an ``n``-Gaussian SH-3 scene (SOG:
    ``sog_n`` Gaussians, except for a library with ``full_sog``)."""
    full, small = random_arrays(n, seed=2), random_arrays(sog_n, seed=2)
    out: dict = {"n": n, "sog_n": sog_n, "sh_degree": 3, "repeats": repeats, "libraries": {}}
    for lib in libs:
        rows = {}
        for fmt in FORMATS:
            arrays = small if fmt in ("sog", "meta.json") and not getattr(lib, "full_sog", False) else full
            path = work / "speed" / lib.name / file_name(fmt)
            path.parent.mkdir(parents=True, exist_ok=True)
            row: dict = {}
            for op, call in (("write", lambda: lib.write(arrays, path, fmt)), ("read", lambda: lib.read(path, fmt))):
                if op == "read" and not path.exists():  # nothing written to read back
                    row[op] = None
                    continue
                times = []
                try:
                    for _ in range(repeats + 1):
                        t = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - t)
                except Unsupported:
                    row[op] = None
                    continue
                except Exception as err:  # noqa: BLE001
                    row[op] = f"error: {short(err)}"
                    continue
                row[op] = round(statistics.median(times[1:]), 3)
                row[f"{op}_cold"] = round(times[0], 3)
            if path.exists():
                row["bytes"] = sum(f.stat().st_size for f in path.parent.iterdir()) if fmt == "meta.json" else path.stat().st_size
            row["n"] = len(arrays["means"])
            rows[fmt] = row
            print(f"  {lib.name:10s} {fmt:15s} {row}", flush=True)
            if fmt == "meta.json":
                shutil.rmtree(path.parent, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        out["libraries"][lib.name] = rows
    return out


# ------------------------------------------------------------------------------------------ report
def cell(v) -> str:
    if isinstance(v, dict):
        keys = ("means", "log_scales", "rotation_deg", "opacity", "dc_colour", "sh_rest")
        return " / ".join(f"{v[k]:.2g}" for k in keys if k in v) + (
            f" (SH deg {v['sh_degree_kept']})" if "sh_degree_kept" in v else ""
        )
    return "—" if v is None else str(v)


def table(result: dict) -> str:
    lines = ["### Correctness (max abs error: means / log-scale / rotation ° / opacity / DC colour / SH rest)", "",
             "| library | format | write | own round trip | splat-transform reads its file | reads splat-transform's file"
             " | vs splat-transform's decode | axes (spz) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, lib in result["correctness"]["libraries"].items():
        for fmt, row in lib["formats"].items():
            axes = " / ".join(filter(None, [row.get("spz_axes_written"), row.get("spz_axes_read")]))
            lines.append(f"| {name} {lib['version']} | {fmt} | {cell(row.get('write'))} | "
                         f"{cell(row.get('own_round_trip'))} | {cell(row.get('splat_transform_reads_it'))} | "
                         f"{cell(row.get('read_splat_transform_file'))} | {cell(row.get('vs_splat_transform_decode'))} "
                         f"| {axes} |")  # fmt: skip
    if "speed" in result:
        sp = result["speed"]
        lines += ["", f"### Speed: SH degree 3, median of {sp['repeats']} (cold = first call), wall seconds",
                  "", "| library | format | Gaussians | write | write cold | read | read cold | MB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, rows in sp["libraries"].items():
            for fmt, row in rows.items():
                mb = f"{row['bytes'] / 1e6:.1f}" if "bytes" in row else "—"
                lines.append(f"| {name} | {fmt} | {row['n']:,} | {cell(row.get('write'))} | {cell(row.get('write_cold'))} | "
                             f"{cell(row.get('read'))} | {cell(row.get('read_cold'))} | {mb} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="Gaussians in the speed test")
    p.add_argument("--check-n", type=int, default=5_000, help="Gaussians in the correctness test")
    p.add_argument("--sog-n", type=int, default=50_000,
                   help="Gaussians in the SOG speed rows of gaussforge and gsply (their SOG encoders cluster SH: "
                        "minutes at 1M on 2 cores); AdLift's rows use --n")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="cap for numba / OpenMP thread pools")
    p.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES),
                   help="adlift: AdLift's read_scene/write_scene end to end (the chosen library inside AdLift)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "formats-cpu.json")
    args = p.parse_args(argv)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    from adlift.io.json_safe import write_json_atomic

    libs = []
    for name in args.libraries:
        try:
            libs.append(LIBRARIES[name]())
        except ImportError as err:
            print(f"skipping {name}: {err}", file=sys.stderr)
    st = splat_transform_version()
    print(f"splat-transform: {st or 'not installed (make splat-transform); correctness against it skipped'}")
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                          "load_before": os.getloadavg()[0]}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="adlift-formats-") as tmp:
        try:
            result["correctness"] = correctness(libs, args.check_n, Path(tmp), st)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            return 1
        if not args.skip_speed:
            result["speed"] = speed(libs, args.n, args.repeats, Path(tmp), sog_n=args.sog_n)
    result["machine"]["load_after"] = os.getloadavg()[0]
    write_json_atomic(args.out, result)
    print(table(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
