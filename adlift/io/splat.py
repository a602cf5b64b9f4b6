"""antimatter15 .splat (the WebGL viewer's format), decoded and encoded by gaussforge.

No header: 32 bytes per Gaussian, ``float32 x y z``, ``float32 sx sy sz`` (linear standard
deviations), ``uint8 r g b a`` (DC colour and opacity, 8 bits each) and ``uint8`` rotation
(w, x, y, z) as ``q * 128 + 128`` of the unit quaternion. It stores the axes of the scene as they
are (no flip).

What it cannot hold (docs/FORMATS.md): SH above degree 0 (dropped on writing), colour outside
[0, 1] (clipped), 8-bit colour, opacity and rotation. An opacity of 0 or 1 and a scale of 0 decode
to the finite limits of :mod:`adlift.io.web_codec`.

Checks before decoding: a non-empty file whose size is a multiple of 32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from adlift.errors import FileFormatError
from adlift.io import web_codec
from adlift.scene import GaussianScene

ROW_BYTES = 32


def sniff(head: bytes) -> bool:
    """.splat has no magic bytes: it is recognised by its extension only."""
    return False


def read(path: str | Path, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Read a .splat file (one-line FileFormatError naming the file for a bad one)."""
    path = Path(path)
    size = web_codec.file_size(path)
    if size == 0:
        raise FileFormatError(path, "empty file, expected a .splat file (32 bytes a Gaussian)")
    if size % ROW_BYTES:
        raise FileFormatError(
            path, f"a .splat file holds 32 bytes a Gaussian, this one has {size:,} bytes "
            f"({size % ROW_BYTES} left over: truncated, or not a .splat file)"
        )
    data = web_codec.read_file(path)
    return web_codec.decode(path, data, "splat", count=size // ROW_BYTES, sh_degree=0, dtype=dtype)


def write(scene: GaussianScene, path: str | Path, *, comments: Iterable[str] = ()) -> Path:
    """Write ``scene`` as a .splat (SH degree 0: higher-order SH are dropped), atomically."""
    path = Path(path)
    return web_codec.write_bytes_atomic(path, web_codec.encode(scene.with_sh_degree(0), "splat", path))
