"""Niantic .spz: reads versions 2, 3 and 4 (decoded by gaussforge), writes version 4 (encoded by
:mod:`adlift.io.spz_encode`, 6x faster than gaussforge's writer, the same streams).

Containers: versions 1-3 are one gzip stream holding a 16-byte header (``NGSP`` magic, version,
count, SH degree, fractional bits, flags) and the attribute sections; version 4 is an uncompressed
32-byte header, a table of contents (compressed and uncompressed size of each section) and one
zstd stream per section. Sections, per Gaussian: position (3 x 24-bit fixed point), alpha (8 bit),
colour (3 x 8 bit), log-scale (3 x 8 bit), rotation (v2: 3 x 8 bit; v3+: smallest-three in 32
bits) and the higher-order SH (8 bits each; gaussforge and splat-transform keep 5 bits for degree
1 and 4 bits above).

Axes: the SPZ specification stores RUB axes (y up, z back); 3DGS .ply files store the training
axes, usually RDF (COLMAP). Writers disagree: Niantic's library and PlayCanvas's splat-transform
flip y and z between the two (so a .ply -> .spz -> .ply trip through them is exact), while
gaussforge and gsply store the .ply's axes unchanged. ``axes="rub"`` (the default) converts like
the specification; ``axes="raw"`` stores and reads the axes as they are (for files from
gaussforge, gsply or tools built on them). The default comes from ``ADLIFT_SPZ_AXES`` when set;
``adlift info`` / ``adlift protect`` take ``--spz-axes``.

Before gaussforge sees the data this module checks the header (magic, version 2-4, SH degree,
fractional bits), that the declared count fits what the file can hold (the gzip trailer's size,
the table of contents, and at most :data:`MAX_RATIO` times the compressed bytes), so a hostile
count is a one-line error before anything is allocated.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Iterable, Literal, Optional

import torch

from adlift.errors import AdLiftError, FileFormatError
from adlift.io import spz_encode, web_codec
from adlift.scene import GaussianScene

MAGIC = 0x5053474E  # "NGSP" little-endian
READ_VERSIONS = (2, 3, 4)
WRITE_VERSION = 4
AXES = ("rub", "raw")
AXES_ENV = "ADLIFT_SPZ_AXES"
#: Largest accepted ratio of declared (uncompressed) bytes to file bytes beyond the first
#: :data:`FREE_BYTES` (deflate cannot exceed 1032:1; real 3DGS data compresses about 1.5-10x).
MAX_RATIO = 1100
FREE_BYTES = 64 << 20
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15}

#: The type of a command's ``--spz-axes`` option (None: ``$ADLIFT_SPZ_AXES``, else "rub").
SpzAxes = Optional[Literal["rub", "raw"]]


def sniff(head: bytes) -> bool:
    """A gzip stream whose first bytes are an NGSP header, or an uncompressed NGSP header (v4)."""
    if head[:4] == struct.pack("<I", MAGIC):
        return True
    if head[:2] != b"\x1f\x8b":
        return False
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4)[:4] == struct.pack("<I", MAGIC)
    except zlib.error:
        return False


def resolve_axes(axes: Optional[str]) -> str:
    """``axes``, else ``$ADLIFT_SPZ_AXES``, else "rub"; an AdLiftError for anything else."""
    value = axes if axes is not None else (os.environ.get(AXES_ENV) or "rub")
    if value not in AXES:
        source = "axes" if axes is not None else AXES_ENV
        raise AdLiftError(f"SPZ axes ({source}) must be one of {', '.join(AXES)}, got {value!r}")
    return value


def _section_bytes(n: int, version: int, degree: int) -> list[int]:
    """Uncompressed bytes of each section (positions, alphas, colours, scales, rotations, SH)."""
    return [9 * n, n, 3 * n, 3 * n, (3 if version < 3 else 4) * n, 3 * _SH_DIM[degree] * n]


def _check_fields(path: Path, version: int, degree: int, bits: int) -> None:
    if version not in READ_VERSIONS:
        raise FileFormatError(path, f"unsupported SPZ version {version} (AdLift reads versions 2, 3 and 4)")
    if degree not in _SH_DIM:
        raise FileFormatError(path, f"SPZ header declares SH degree {degree}, expected 0-3")
    if not 1 <= bits <= 23:
        raise FileFormatError(path, f"SPZ header declares {bits} fractional bits, expected 1-23")


def _check_budget(path: Path, needed: int, compressed: int) -> None:
    if needed > FREE_BYTES + MAX_RATIO * compressed:
        raise FileFormatError(
            path, f"the declared count needs {needed:,} bytes of data, more than {compressed:,} compressed bytes can hold"
        )


def check_header(path: Path, data: bytes) -> tuple[int, int]:
    """Check an .spz file's header and sizes: (count, SH degree)."""
    if len(data) == 0:
        raise FileFormatError(path, "empty file, expected an .spz file")
    if data[:4] == struct.pack("<I", MAGIC):
        if len(data) < 32:
            raise FileFormatError(path, f"truncated SPZ header: {len(data)} bytes, the version 4 header is 32")
        _, version, n, degree, bits, _flags, streams, toc = struct.unpack_from("<IIIBBBBI", data, 0)
        if version < 4:
            raise FileFormatError(path, f"SPZ version {version} must be gzip-compressed, this file is not")
        _check_fields(path, version, degree, bits)
        sizes = [s for s in _section_bytes(n, version, degree) if s] if n else []
        if n and streams != len(sizes):
            raise FileFormatError(path, f"SPZ header declares {streams} streams, {len(sizes)} expected for SH degree {degree}")
        if toc < 32 or toc + 16 * streams > len(data):
            raise FileFormatError(path, f"truncated SPZ file: its table of contents ends past the file's {len(data):,} bytes")
        end = toc + 16 * streams
        for i in range(streams):
            packed, unpacked = struct.unpack_from("<QQ", data, toc + 16 * i)
            if n and unpacked != sizes[i]:
                raise FileFormatError(path, f"SPZ stream {i} holds {unpacked:,} bytes, {sizes[i]:,} expected for {n:,} Gaussians")
            end += packed
            _check_budget(path, unpacked, packed)
        if end > len(data):
            raise FileFormatError(path, f"truncated SPZ file: its streams need {end:,} bytes, the file has {len(data):,}")
        return n, degree
    if data[:2] != b"\x1f\x8b":
        raise FileFormatError(path, "not an .spz file (neither gzip-compressed nor an NGSP header)")
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, 16)
    except zlib.error as err:
        raise FileFormatError(path, f"corrupt SPZ gzip stream: {err}") from None
    if len(head) < 16:
        raise FileFormatError(path, "truncated SPZ file: the gzip stream ends inside the header")
    magic, version, n, degree, bits, flags, _ = struct.unpack_from("<IIIBBBB", head, 0)
    if magic != MAGIC:
        raise FileFormatError(path, "gzip file is not an .spz (no NGSP header inside)")
    _check_fields(path, version, degree, bits)
    needed = 16 + sum(_section_bytes(n, version, degree))
    _check_budget(path, needed, len(data))
    trailer = struct.unpack_from("<I", data, len(data) - 4)[0] if len(data) >= 18 else None
    # the gzip trailer holds the uncompressed size mod 2^32; extensions (flag 0x2) may follow the sections
    if trailer is None or (trailer != needed % (1 << 32) and not flags & 2):
        raise FileFormatError(
            path, f"truncated or corrupt SPZ file: {n:,} Gaussians need {needed:,} bytes, the gzip stream "
            f"holds {f'{trailer:,} bytes' if trailer is not None else 'nothing'}"
        )
    return n, degree


def read(path: str | Path, *, dtype: torch.dtype = torch.float32, axes: Optional[str] = None) -> GaussianScene:
    """Read an .spz file (versions 2-4) with the axes convention ``axes`` (see the module docstring)."""
    path = Path(path)
    axes = resolve_axes(axes)
    data = web_codec.read_file(path)
    n, degree = check_header(path, data)
    scene = web_codec.decode(path, data, "spz", count=n, sh_degree=degree, dtype=dtype)
    return web_codec.flip_yz(scene) if axes == "rub" else scene


def write(scene: GaussianScene, path: str | Path, *, comments: Iterable[str] = (), axes: Optional[str] = None) -> Path:
    """Write ``scene`` as an .spz (version 4), atomically, with the axes convention ``axes``."""
    path = Path(path)
    axes = resolve_axes(axes)
    scene = web_codec.writable(scene, path)
    return web_codec.write_bytes_atomic(path, spz_encode.encode(scene, flip_yz=axes == "rub"))
