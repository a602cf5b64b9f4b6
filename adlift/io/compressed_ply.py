"""PlayCanvas / SuperSplat compressed .ply (``.compressed.ply``), decoded and encoded by gaussforge.

Layout (binary little-endian PLY): ``element chunk C`` (per 256 Gaussians: float min/max of
position, log-scale and, in newer files, colour), ``element vertex N`` with four ``uint``
properties ``packed_position`` (11/10/11 bits inside the chunk box), ``packed_rotation``
(smallest-three, 2+10+10+10 bits), ``packed_scale`` (11/10/11 bits of log-scale inside the chunk
range), ``packed_color`` (8 bits each of DC colour and opacity), and optionally
``element sh N`` with ``uchar f_rest_*`` (8 bits each, [-4, 4)).

What it cannot hold exactly (documented in docs/FORMATS.md): positions and scales are quantised
relative to their chunk's range (a far-away Gaussian coarsens its 255 neighbours), colour and
opacity to 8 bits, higher-order SH to 8 bits over [-4, 4) (values outside are clipped).

Before gaussforge sees a byte, this module parses the header with AdLift's PLY header code
(:mod:`adlift.io.ply`: one-line errors, header within 1 MiB) and checks the elements, properties,
``C = ceil(N / 256)`` and that the file holds the bytes the counts need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import plyfile
import torch

from adlift.errors import FileFormatError
from adlift.io import ply, web_codec
from adlift.scene import GaussianScene

CHUNK = 256
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                 "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")  # fmt: skip
_CHUNK_COLOUR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")


def sniff(head: bytes) -> bool:
    """A PLY header declaring the compressed layout's ``packed_*`` vertex properties."""
    if not any(head.startswith(b"ply" + n) for n in (b"\r\n", b"\n", b"\r")):
        return False
    found = ply.split_header(head)
    return ply.is_compressed_header(found[0] if found else head)


def _props(el: plyfile.PlyElement) -> dict[str, str]:
    return {p.name: ("list" if isinstance(p, plyfile.PlyListProperty) else np.dtype(p.val_dtype).name) for p in el.properties}


def check_header(path: Path, size: int) -> tuple[int, int, int]:
    """Parse and check the header of a compressed .ply of ``size`` bytes: (N, SH degree, data offset)."""
    header, nl = ply._read_head(path)
    parsed = ply._parse_header(path, header, nl)
    if parsed.text or parsed.byte_order != "<":
        kind = "ASCII" if parsed.text else "big-endian"
        raise FileFormatError(path, f"compressed 3DGS .ply must be binary little-endian, this one is {kind}")
    names = [el.name for el in parsed.elements]
    if names[:2] != ["chunk", "vertex"] or names[2:] not in ([], ["sh"]):
        raise FileFormatError(
            path, f"compressed 3DGS .ply needs elements 'chunk', 'vertex' and optionally 'sh', in that order; "
            f"this one has {', '.join(names) or 'none'}"
        )
    chunk, vertex = parsed["chunk"], parsed["vertex"]
    cp, vp = _props(chunk), _props(vertex)
    missing = [p for p in _CHUNK_BOUNDS if p not in cp] + [p for p in PACKED if p not in vp]
    if missing:
        raise FileFormatError(path, f"compressed 3DGS .ply lacks properties: {', '.join(missing)}")
    for name, dtype in cp.items():
        if dtype != "float32":
            raise FileFormatError(path, f"chunk property '{name}' must be a float, the header says {dtype}")
    if set(cp) not in (set(_CHUNK_BOUNDS), set(_CHUNK_BOUNDS + _CHUNK_COLOUR)):
        extra = sorted(set(cp) - set(_CHUNK_BOUNDS + _CHUNK_COLOUR))
        raise FileFormatError(path, f"unexpected chunk properties: {', '.join(extra) or 'partial colour bounds'}")
    for name in PACKED:
        if vp[name] != "uint32":
            raise FileFormatError(path, f"vertex property '{name}' must be a uint, the header says {vp[name]}")
    if len(vp) != len(PACKED):
        extra = sorted(set(vp) - set(PACKED))
        raise FileFormatError(path, f"unexpected vertex properties in a compressed .ply: {', '.join(extra)}")
    n, c = vertex.count, chunk.count
    if c != -(-n // CHUNK):
        raise FileFormatError(
            path, f"{c:,} chunks for {n:,} Gaussians; a compressed .ply has one chunk per {CHUNK} ({-(-n // CHUNK):,})"
        )
    degree = 0
    if "sh" in names:
        sh = parsed["sh"]
        sp = _props(sh)
        if sh.count != n:
            raise FileFormatError(path, f"element 'sh' has {sh.count:,} rows for {n:,} Gaussians")
        rest = [f"f_rest_{i}" for i in range(len(sp))]
        if list(sp) != rest or len(rest) not in (9, 24, 45):
            raise FileFormatError(path, f"element 'sh' must hold f_rest_0..f_rest_K (9, 24 or 45 of them), "
                                        f"it has {', '.join(sp) or 'none'}")  # fmt: skip
        if set(sp.values()) != {"uint8"}:
            raise FileFormatError(path, "element 'sh' properties must be uchar")
        degree = {9: 1, 24: 2, 45: 3}[len(rest)]
    offset = len(header) + len(nl)
    ply._check_size(path, parsed, size - offset)
    return n, degree, offset


def read(path: str | Path, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Read a compressed 3DGS .ply (one-line FileFormatError naming the file for a bad one)."""
    path = Path(path)
    size = web_codec.file_size(path)
    n, degree, _ = check_header(path, size)
    return web_codec.decode(path, web_codec.read_file(path), "compressed.ply", count=n, sh_degree=degree, dtype=dtype)


def write(scene: GaussianScene, path: str | Path, *, comments: Iterable[str] = ()) -> Path:
    """Write ``scene`` as a compressed .ply, atomically (``comments`` are not stored)."""
    path = Path(path)
    return web_codec.write_bytes_atomic(path, web_codec.encode(scene, "compressed.ply", path))
