"""Morton (Z-order) codes of 3D points: the spatial order of the protected file (:mod:`adlift.protect.publish`)
and of SOG's rows (:mod:`adlift.io.sog_encode`), one implementation for both."""

from __future__ import annotations

import numpy as np

#: The most bits per axis a code holds (3 x 21 = 63 bits fit one uint64).
MAX_BITS = 21


def spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between the low 21 bits of each uint64: b20..b0 -> b20 0 0 b19 0 0 ... b0."""
    v = v & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
    return v


def morton_codes(means: np.ndarray, bits: int = MAX_BITS) -> np.ndarray:
    """[N] uint64 Z-order codes of points ``means`` [N, 3], each axis quantised to the nearest of
    ``2**bits`` cells over the points' bounding box (x in the lowest bit, then y, then z)."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits per axis must be 1..{MAX_BITS}, got {bits}")
    m = np.asarray(means, dtype=np.float64)
    if m.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    lo, hi = m.min(axis=0), m.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    top = (1 << bits) - 1
    q = np.clip(np.floor((m - lo) / span * top + 0.5), 0, top).astype(np.uint64)  # [N, 3]
    return spread_bits(q[:, 0]) | (spread_bits(q[:, 1]) << np.uint64(1)) | (spread_bits(q[:, 2]) << np.uint64(2))
