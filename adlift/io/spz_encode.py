"""AdLift's SPZ version 4 encoder: the quantisation in vectorised torch, the streams compressed
with zstandard in parallel threads.

Why not gaussforge (which reads every .spz here, and writes the other web formats): its writer
spends ~4.7 s on 1M SH-3 Gaussians in single-threaded native code (quantisation plus zstd at a
high level), missing issue 18's 2 s target; this encoder writes the same streams in well under
that (``benchmarks/formats.py``). The streams hold exactly what Niantic's reference library
(``spz::packGaussians``) and gaussforge put there, byte for byte on the same input
(``tests/test_spz_encode.py`` compares with gaussforge's file); only the compression level differs.

Layout (little-endian): a 32-byte header (``NGSP`` magic, version 4, count, SH degree,
fractional bits, flags, number of streams, offset of the table of contents, 12 reserved bytes),
the table of contents (compressed and uncompressed size of each stream, two u64), then one zstd
frame per non-empty stream, in this order (per Gaussian):

* positions: 3 x 24-bit two's-complement fixed point with :data:`FRACTIONAL_BITS` fraction bits
  (or fewer, when a coordinate would not fit: the header says how many; readers honour it);
* alphas: sigmoid(opacity logit) x 255, 8 bits;
* colours: SH DC x (0.15 x 255) + 127.5, 3 x 8 bits;
* scales: (log-scale + 10) x 16, 3 x 8 bits;
* rotations: the unit quaternion's "smallest three" in 32 bits: the index of the largest
  component (x, y, z, w order) in the top two bits, then the other three as a sign bit and
  9 bits of |q_i| / sqrt(1/2), the largest made positive;
* SH rest (degree > 0): x 128 + 128 on 8 bits, rounded to buckets of 2^(8 - bits) (5 bits for
  degree 1 and 4 above, as Niantic's library and splat-transform do), coefficient-major.

Rounding is C's ``round`` (half away from zero) where Niantic's code rounds, truncation where it
truncates, in float32 throughout, so the same float32 input gives the same bytes.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from adlift.errors import AdLiftError
from adlift.scene import GaussianScene

MAGIC = 0x5053474E  # "NGSP" little-endian
VERSION = 4
#: Fraction bits of the fixed-point positions (Niantic: 12, ~0.24 mm for a scene in metres).
FRACTIONAL_BITS = 12
#: Bits kept of the degree-1 SH coefficients and of the higher ones (Niantic's defaults).
SH1_BITS, SH_REST_BITS = 5, 4
#: zstd level of each stream: level 3 (zstd's default) is 3-4x faster than the reference's 12 on this
#: data for a file ~4 % larger (benchmarks/formats.py).
ZSTD_LEVEL = 3
_COLOR_SCALE = np.float32(0.15)
_HEADER = struct.Struct("<IIIBBBBI12x")


#: Gaussians quantised at a time: the arrays of one chunk stay in the CPU's cache (8x faster at 1M).
CHUNK = 8192


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``round`` (to the nearest integer, halves away from zero; numpy's rint goes to even), in
    place on the float32 array ``x``: trunc(x) + sign(x) where |x - trunc(x)| >= 0.5, all exact."""
    t = np.trunc(x)
    x -= t
    np.abs(x, out=x)
    t += np.copysign(x >= 0.5, t)  # trunc keeps the sign, also as -0.0 for x in (-1, 0)
    return t


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Niantic's ``toUint8`` (round, clamp to [0, 255]) of the float32 array ``x`` (overwritten)."""
    return np.clip(_round_half_away(x), 0, 255).astype(np.uint8)


def fractional_bits(means: np.ndarray) -> int:
    """Fraction bits for ``means`` [N, 3] (float32): :data:`FRACTIONAL_BITS`, or fewer so that the
    largest coordinate fits 24-bit two's complement; an AdLiftError if none does (|x| >= 2^23)."""
    top = np.float32(np.abs(means).max()) if means.size else np.float32(0)
    for bits in range(FRACTIONAL_BITS, -1, -1):
        if _round_half_away(np.array([top * np.float32(1 << bits)], np.float32))[0] <= (1 << 23) - 1:
            return bits
    raise AdLiftError(f"SPZ cannot store a coordinate of magnitude {top:.6g}: its 24-bit positions end at {(1 << 23) - 1}")


def pack_positions(means: np.ndarray, bits: int) -> np.ndarray:
    """means [n, 3] -> [n, 9] bytes: each coordinate round(x * 2^bits) as 24-bit little-endian."""
    fixed = _round_half_away(means * np.float32(1 << bits)).astype("<i4")
    return fixed.view(np.uint8).reshape(len(means), 3, 4)[:, :, :3].reshape(len(means), 9)


def pack_rotations(quats: np.ndarray) -> np.ndarray:
    """quats [n, 4] (w, x, y, z; any norm) -> [n, 4] bytes, smallest three in a little-endian u32."""
    q = quats[:, [1, 2, 3, 0]]  # SPZ's component order: x, y, z, w
    sq = q * q
    norm = np.sqrt(((sq[:, 0] + sq[:, 1]) + sq[:, 2]) + sq[:, 3])  # summed in the reference's order
    q[norm == 0] = (0, 0, 0, 1)  # a zero quaternion is the identity (as GaussianScene.normalized_quats)
    norm[norm == 0] = 1
    q /= norm[:, None]
    largest = np.abs(q).argmax(axis=1)  # the first of equal magnitudes, as Niantic's strict ">" scan
    rows = np.arange(len(q))
    negate = q[rows, largest] < 0
    mags = (np.float32(511) * (np.abs(q) / np.float32(np.sqrt(0.5))) + np.float32(0.5)).astype(np.uint32)
    fields = ((q < 0) ^ negate[:, None]).astype(np.uint32) << 9 | mags
    order = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]  # the other three, in order
    small = np.take_along_axis(fields, order, axis=1)
    word = largest.astype(np.uint32) << 30 | small[:, 0] << 20 | small[:, 1] << 10 | small[:, 2]
    return word.astype("<u4").view(np.uint8).reshape(len(q), 4)


def _sh_buckets(k: int) -> np.ndarray:
    """[k, 1] bucket widths of the higher SH coefficients 1..k: 2^(8 - bits)."""
    bucket = np.full((k, 1), 1 << (8 - SH_REST_BITS), np.float32)
    bucket[:3] = 1 << (8 - SH1_BITS)
    return bucket


def pack_sh_rest(rest: np.ndarray) -> np.ndarray:
    """rest [n, K-1, 3] (coefficient-major) -> [n, (K-1) * 3] bytes: round(x * 128) + 128 rounded to
    the nearest multiple of the bucket 2^(8 - bits) (halves up), clamped to [0, 255]. Flooring here
    where Niantic's integer division truncates gives the same bytes: they differ only below 0,
    which the clamp sends to 0 either way."""
    bucket = _sh_buckets(rest.shape[1])
    q = _round_half_away(rest * np.float32(128))
    q += np.float32(128) + bucket / 2
    q /= bucket
    np.floor(q, out=q)
    q *= bucket
    return np.clip(q, 0, 255, out=q).astype(np.uint8).reshape(len(rest), -1)


def pack_streams(scene: GaussianScene, *, flip_yz: bool = False) -> tuple[int, list[np.ndarray]]:
    """(fraction bits, the six uncompressed streams) of ``scene``, in file order, each [N * bytes].
    ``flip_yz``: store the scene with y and z negated (:func:`adlift.io.web_codec.flip_yz`, done
    chunk by chunk here instead of on a copy of the whole scene)."""
    from adlift.io.web_codec import SH_FLIP_YZ

    s = scene.detach().to("cpu", torch.float32)
    means, quats, log_scales = s.means.numpy(), s.quats.numpy(), s.log_scales.numpy()
    alphas, sh = s.opacity_logits.numpy(), s.sh.numpy()
    n, k = s.num_gaussians, sh.shape[1] - 1
    one = np.float32(1)
    mean_sign = np.array([1, -1, -1] if flip_yz else [1, 1, 1], np.float32)
    quat_sign = np.array([1, 1, -1, -1] if flip_yz else [1, 1, 1, 1], np.float32)
    sh_sign = (SH_FLIP_YZ[:k] if flip_yz else np.ones(k, np.float32))[:, None]
    bits = fractional_bits(means)
    streams = [np.empty((n, width), np.uint8) for width in (9, 1, 3, 3, 4, 3 * k)]
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        streams[0][a:b] = pack_positions(means[a:b] * mean_sign, bits)
        streams[1][a:b, 0] = _to_uint8(one / (one + np.exp(-alphas[a:b])) * np.float32(255))
        streams[2][a:b] = _to_uint8(sh[a:b, 0] * (_COLOR_SCALE * np.float32(255)) + np.float32(127.5))
        streams[3][a:b] = _to_uint8((log_scales[a:b] + np.float32(10)) * np.float32(16))
        streams[4][a:b] = pack_rotations(quats[a:b] * quat_sign)
        if k:
            streams[5][a:b] = pack_sh_rest(sh[a:b, 1:] * sh_sign)
    return bits, [stream.reshape(-1) for stream in streams]


def encode(scene: GaussianScene, *, flip_yz: bool = False, level: int = ZSTD_LEVEL) -> bytes:
    """The .spz version 4 bytes of ``scene``, with y and z negated when ``flip_yz`` (PLY -> SPZ's RUB).

    The scene's values must be finite (the caller checks; :func:`adlift.io.spz.write` does).
    """
    import zstandard

    bits, streams = pack_streams(scene, flip_yz=flip_yz)
    streams = [s for s in streams if s.size]
    with ThreadPoolExecutor(max_workers=max(1, min(len(streams), 4))) as pool:  # zstandard releases the GIL
        packed = list(pool.map(lambda s: zstandard.ZstdCompressor(level=level).compress(s.tobytes()), streams))
    header = _HEADER.pack(MAGIC, VERSION, scene.num_gaussians, scene.sh_degree, bits, 0, len(streams), _HEADER.size)
    toc = b"".join(struct.pack("<QQ", len(p), s.size) for p, s in zip(packed, streams))
    return b"".join([header, toc, *packed])
