"""The one bridge between AdLift and gaussforge, the library that encodes and decodes the web 3DGS
formats (.compressed.ply, .spz, .splat, SOG); chosen over gsply by ``benchmarks/formats.py``
(docs/FORMATS.md).

The format modules (:mod:`adlift.io.compressed_ply`, :mod:`~adlift.io.spz`, :mod:`~adlift.io.splat`,
:mod:`~adlift.io.sog`) check a file's header, sizes and counts themselves (so a hostile file is a
one-line :class:`~adlift.errors.FileFormatError` before anything large is allocated) and then call
:func:`decode` / :func:`encode` here, the only place that knows gaussforge's arrays:

* gaussforge's intermediate representation (IR) holds raw little-endian float32 bytes:
  ``positions`` [N, 3], ``scales`` [N, 3] (log), ``rotations`` [N, 4] (w, x, y, z), ``alphas`` [N]
  (logits), ``colors`` [N, 3] (SH DC) and ``sh`` [N, K-1, 3] (coefficient-major: all three
  channels of coefficient 1, then 2, ...): the unactivated :class:`~adlift.scene.GaussianScene`
  fields, so :func:`scene_to_ir` / :func:`scene_from_ir` only reshape.
* gaussforge 0.6's Python binding fails (``std::bad_cast``) to return a scene without
  higher-order SH; such files are decoded through gaussforge's own conversion to a .ply in memory,
  parsed by AdLift's .ply code (:func:`_decode_via_ply`).
* gaussforge's C++ code prints progress lines on file descriptor 1 (which would corrupt
  ``adlift info --json``): every call runs inside :func:`quiet_native`.

Axes: the INRIA .ply (and AdLift) use the axes the scene was trained in (COLMAP's RDF: x right,
y down, z forward). SPZ's specification stores RUB (y up, z back); :func:`flip_yz` converts
between them (its own inverse): means (x, -y, -z), quaternions (w, x, -y, -z), and the sign of
every SH coefficient whose basis function is odd in y·z (:data:`SH_FLIP_YZ`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from adlift.errors import AdLiftError, FileFormatError
from adlift.scene import SH_COEFFS_TO_DEGREE, GaussianScene

#: Sign of SH coefficients 1..15 (3DGS basis order) under (x, y, z) -> (x, -y, -z).
SH_FLIP_YZ = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32)

#: Opacity logits are kept finite: a format's 8-bit alpha of 0 or 255 decodes to +-this.
MAX_OPACITY_LOGIT = float(np.log(255 * 2 - 1))  # logit(1 - 0.5/255) = 6.23
#: Log-scales are kept finite: a linear scale of 0 (.splat) decodes to this.
MIN_LOG_SCALE = -30.0

INSTALL_HINT = "pip install 'gaussforge>=0.6,<0.7' (an AdLift dependency)"

_native_lock = threading.Lock()


def gaussforge_module():
    """The gaussforge module, or a one-line AdLiftError saying how to install it."""
    try:
        import gaussforge
    except ImportError:
        raise AdLiftError(f"the web 3DGS formats (.compressed.ply, .spz, .splat, SOG) need gaussforge: {INSTALL_HINT}") from None
    return gaussforge


_instance = None


def _codec():
    global _instance
    if _instance is None:
        _instance = gaussforge_module().GaussForge()
    return _instance


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Run native code with file descriptor 1 pointed at /dev/null (one call at a time)."""
    with _native_lock:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:  # no fd 1 at all: nothing to protect
            yield
            return
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


# ------------------------------------------------------------------------------------------- axes
def flip_yz(scene: GaussianScene) -> GaussianScene:
    """The scene with y and z negated (RDF <-> RUB, e.g. PLY axes <-> SPZ's spec); its own inverse."""
    k = scene.sh.shape[1]
    signs = torch.ones(k, dtype=scene.dtype, device=scene.device)
    signs[1:] = torch.from_numpy(SH_FLIP_YZ[: k - 1]).to(scene.device, scene.dtype)
    axes = torch.tensor([1.0, -1.0, -1.0], dtype=scene.dtype, device=scene.device)
    quat = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=scene.dtype, device=scene.device)
    return GaussianScene(scene.means * axes, scene.quats * quat, scene.log_scales, scene.opacity_logits,
                         scene.sh * signs[None, :, None], check_finite=False)  # fmt: skip


# ----------------------------------------------------------------------------------- conversions
def scene_to_ir(scene: GaussianScene, *, channel_major_sh: bool = False) -> dict:
    """gaussforge's IR of ``scene`` (float32). ``channel_major_sh`` lays ``sh`` out channel-major
    (all red coefficients, then green, then blue), see :func:`encode`."""
    s = scene.detach().to("cpu", torch.float32)
    f32 = lambda t: np.ascontiguousarray(t.numpy(), dtype="<f4").tobytes()  # noqa: E731
    rest = s.sh[:, 1:].permute(0, 2, 1) if channel_major_sh else s.sh[:, 1:]
    return {
        "numPoints": s.num_gaussians,
        "positions": f32(s.means),
        "scales": f32(s.log_scales),
        "rotations": f32(s.quats),
        "alphas": f32(s.opacity_logits),
        "colors": f32(s.sh[:, 0]),
        "sh": f32(rest),
        "extras": {},
        "meta": {"shDegree": s.sh_degree, "sourceFormat": "ply"},
    }


def _finite_scene(path: Path, arrays: dict[str, np.ndarray], dtype: torch.dtype) -> GaussianScene:
    """Arrays (means, quats, log_scales, opacity_logits, sh) -> GaussianScene, with the decoded
    extremes of 8-bit opacities and zero scales made finite and anything else non-finite refused."""
    arrays = dict(arrays)
    arrays["opacity_logits"] = np.clip(arrays["opacity_logits"], -MAX_OPACITY_LOGIT, MAX_OPACITY_LOGIT)
    ls = arrays["log_scales"]
    arrays["log_scales"] = np.where(np.isneginf(ls), np.float32(MIN_LOG_SCALE), ls)
    for name, value in arrays.items():
        bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1) if len(value) else np.zeros(0, bool)
        if bad.any():
            raise FileFormatError(path, f"Gaussian {int(np.flatnonzero(bad)[0])} decodes to a NaN/Inf value in "
                                        f"{name} ({int(bad.sum())} Gaussians do)")  # fmt: skip
    work = np.float64 if dtype == torch.float64 else np.float32
    tensors = {k: torch.from_numpy(np.array(v, dtype=work)).to(dtype) for k, v in arrays.items()}  # copies: writable
    return GaussianScene(**tensors, check_finite=False)


def scene_from_ir(path: Path, ir: dict, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """The GaussianScene of gaussforge's IR (a FileFormatError naming ``path`` if it is inconsistent)."""
    n = int(ir["numPoints"])
    degree = int(ir["meta"]["shDegree"])
    k = (degree + 1) ** 2
    if k not in SH_COEFFS_TO_DEGREE:
        raise FileFormatError(path, f"decoded SH degree {degree} is not 0..3")
    sizes = {"positions": 3, "scales": 3, "rotations": 4, "alphas": 1, "colors": 3, "sh": 3 * (k - 1)}
    for key, per in sizes.items():
        if len(ir[key]) != 4 * n * per:
            raise FileFormatError(path, f"decoded {key} hold {len(ir[key])} bytes, expected {4 * n * per} for {n} Gaussians")
    f = lambda key, *shape: np.frombuffer(ir[key], "<f4").reshape(n, *shape)  # noqa: E731
    sh = np.concatenate([f("colors", 1, 3), f("sh", k - 1, 3)], axis=1)
    arrays = {"means": f("positions", 3), "quats": f("rotations", 4), "log_scales": f("scales", 3),
              "opacity_logits": f("alphas"), "sh": sh}  # fmt: skip
    return _finite_scene(path, arrays, dtype)


# ------------------------------------------------------------------------------ decode / encode
def _problem(fmt: str, message: str) -> str:
    message = " ".join(str(message).split()) or "no reason given"
    if "bad_cast" in message or "bad_alloc" in message:
        return f"corrupt or unsupported {fmt} data (the decoder failed: {message})"
    return f"cannot decode the {fmt} data: {message}"


def _decode_via_ply(path: Path, data: bytes, fmt: str, dtype: torch.dtype) -> GaussianScene:
    """Decode through gaussforge's conversion to a binary .ply in memory (scenes of SH degree 0)."""
    from adlift.io import ply

    with quiet_native():
        out = _codec().convert(data, fmt, "ply")
    if "error" in out:
        raise FileFormatError(path, _problem(fmt, out["error"]))
    converted = out["data"]
    found = ply.split_header(converted[: ply.MAX_HEADER_BYTES])
    try:
        if found is None:
            raise ValueError("no PLY header")
        header, nl = found
        parsed = ply._parse_header(path, header, nl)
        (vertex,) = parsed.elements
        names = [p.name for p in vertex.properties]
        if parsed.text or parsed.byte_order != "<" or {ply._type_name(p) for p in vertex.properties} != {"float"}:
            raise ValueError("not binary little-endian float32 rows")
        # plyfile reads an in-memory stream row by row (40 s for 1M Gaussians): one frombuffer instead
        rows = np.frombuffer(converted, dtype=[(name, "<f4") for name in names], count=vertex.count,
                             offset=len(header) + len(nl))  # fmt: skip
    except (ValueError, FileFormatError) as err:  # the converter's own output
        raise FileFormatError(path, _problem(fmt, f"unexpected .ply conversion ({err})")) from None
    k = sum(1 for name in names if name.startswith("f_rest_")) // 3 + 1
    try:
        col = lambda *keys: np.stack([rows[key] for key in keys], axis=1)  # noqa: E731
        sh = col("f_dc_0", "f_dc_1", "f_dc_2")[:, None]
        if k > 1:  # f_rest is channel-major in a .ply
            rest = col(*(f"f_rest_{i}" for i in range(3 * (k - 1))))
            sh = np.concatenate([sh, rest.reshape(-1, 3, k - 1).transpose(0, 2, 1)], axis=1)
        arrays = {"means": col("x", "y", "z"), "quats": col("rot_0", "rot_1", "rot_2", "rot_3"),
                  "log_scales": col("scale_0", "scale_1", "scale_2"), "opacity_logits": col("opacity")[:, 0],
                  "sh": sh}  # fmt: skip
    except (ValueError, KeyError) as err:
        raise FileFormatError(path, _problem(fmt, f"unexpected .ply conversion ({err})")) from None
    return _finite_scene(path, arrays, dtype)


def decode(path: Path, data: bytes, fmt: str, *, count: int, sh_degree: int,
           dtype: torch.dtype = torch.float32) -> GaussianScene:  # fmt: skip
    """Decode ``data`` (the bytes of ``path``, already checked by the format module: ``count``
    Gaussians of SH degree ``sh_degree``) in gaussforge's format ``fmt``."""
    if sh_degree == 0:
        scene = _decode_via_ply(path, data, fmt, dtype)
    else:
        with quiet_native():
            out = _codec().read(data, fmt)
        if "error" in out:
            raise FileFormatError(path, _problem(fmt, out["error"]))
        scene = scene_from_ir(path, out["data"], dtype=dtype)
    if scene.num_gaussians != count:
        raise FileFormatError(path, f"decoded {scene.num_gaussians:,} Gaussians, the header declares {count:,}")
    return scene


def writable(scene: GaussianScene, path: Path) -> GaussianScene:
    """``scene`` detached as float32 on the CPU; a one-line SceneError naming ``path`` if a value is
    not finite (no format can hold it)."""
    from adlift.errors import SceneError

    scene = scene.detach().to("cpu", torch.float32)
    try:
        scene.check_values()
    except SceneError as err:
        raise SceneError(f"cannot write {path}: {err}") from None
    return scene


def encode(scene: GaussianScene, fmt: str, path: Path, **options) -> bytes:
    """``scene`` encoded by gaussforge in format ``fmt`` (``path`` only names the file in errors)."""
    scene = writable(scene, path)
    # gaussforge 0.6's .compressed.ply writer copies the IR's coefficient-major SH into
    # f_rest_0.. unchanged, while .ply files (and its own reader, and splat-transform) are
    # channel-major: hand it channel-major SH so the file is right (tests/test_web_formats.py).
    # Its SOG writer also assumes unit quaternions (3DGS stores any norm): normalise for every format.
    scene = scene.detach()
    scene = GaussianScene(scene.means, scene.normalized_quats, scene.log_scales, scene.opacity_logits, scene.sh,
                          check_finite=False)  # fmt: skip
    ir = scene_to_ir(scene, channel_major_sh=fmt == "compressed.ply")
    with quiet_native():
        out = _codec().write(ir, fmt, **options)
    if "error" in out:
        raise AdLiftError(f"cannot write {path}: the {fmt} encoder failed: {out['error']}")
    return out["data"]


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`adlift.io.atomic.atomic_path`."""
    from adlift.io.atomic import atomic_path

    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise AdLiftError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes (one-line FileFormatError when it cannot be accessed)."""
    try:
        return path.stat().st_size
    except OSError as err:
        raise FileFormatError(path, f"cannot access the file: {err.strerror or err}") from None


def read_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` (one-line FileFormatError when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except FileNotFoundError:
        raise FileFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise FileFormatError(path, "is a directory, expected a scene file") from None
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
