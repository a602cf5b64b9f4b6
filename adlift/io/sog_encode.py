"""AdLift's SOG encoder: a scene as the files of a PlayCanvas SOG (meta.json version 2 and its
lossless WebP images), quantised in numpy/torch and compressed by libwebp through Pillow.

Why not gaussforge (which still reads every SOG here): its writer, single-threaded Lloyd iterations
for the codebooks and a flat k-means of the SH palette, took 8.75 s for 50k SH-3 Gaussians and 150 s
for 100k (this encoder: 0.75 s for 100k, about 2 s for 1M), far from issue 18's 2 s for 1M; its
lossless WebP also drops the colour of fully transparent (opacity-0) Gaussians. docs/FORMATS.md
("Speed", "AdLift's own writers") has the measurements.

The layout, as PlayCanvas's splat-transform and gaussforge read it (images are RGBA, one pixel
per Gaussian in row-major order, ``width = 4 ceil(sqrt(N) / 4)``, ``height = 4 ceil(N / width / 4)``,
unused pixels zero):

* Gaussians in Morton (Z-curve) order of their positions (:func:`morton_order`);
* ``means_l.webp`` / ``means_u.webp``: low and high byte of each coordinate's 16-bit
  ``round(65535 (t - min) / (max - min))`` with ``t = sign(x) ln(1 + |x|)``; ``meta.means`` holds
  the per-axis ``mins`` / ``maxs`` of ``t``;
* ``quats.webp``: the unit quaternion (w, x, y, z) with its largest component made positive,
  the other three times sqrt(2) mapped from [-1, 1] to bytes, alpha = 252 + the largest's index;
* ``scales.webp``: indices into ``meta.scales.codebook`` (256 log-scales) of the three log-scales;
* ``sh0.webp``: indices into ``meta.sh0.codebook`` (256 DC coefficients) of the three DC colour
  coefficients, alpha = ``round(255 sigmoid(opacity logit))``;
* SH degree 1-3: ``shN_labels.webp`` (each Gaussian's 16-bit palette index, low byte in red, high
  in green) and ``shN_centroids.webp`` (palette entry i in row i // 64, pixels (i % 64) * C + j
  for its coefficients j < C = (degree + 1)^2 - 1, RGB = indices into ``meta.shN.codebook`` of the
  three channels); ``meta.shN`` gives the palette size (``count``) and ``bands``.

Codebooks and palette: :mod:`adlift.io.sog_cluster`. Rounding is to the nearest step (the other
writers truncate some fields). The WebP images keep the colour under an alpha of 0 (libwebp's
``exact``), so an opacity-0 Gaussian keeps its colour. The same scene gives the same bytes.
"""

from __future__ import annotations

import io
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from adlift.io import sog_cluster
from adlift.io.morton import MAX_BITS, morton_codes
from adlift.scene import GaussianScene

#: libwebp's lossless effort: method 0-6 and "quality" 0-100. On the images of 300k random SH-3
#: Gaussians (one thread): 1/25 0.20 s, 7.83 MB; Pillow's default 4/80 0.48 s, 7.83 MB; 6/100 33 s,
#: 7.82 MB; 0/0 0.08 s, 8.30 MB.
WEBP_METHOD = 1
WEBP_QUALITY = 25
#: Seed of the palette's k-means (its samples and starting centroids).
PALETTE_SEED = 0
#: Palette entries per row of shN_centroids.webp.
PALETTE_ROW = 64

MEANS_FILES = ("means_l.webp", "means_u.webp")
QUATS_FILE, SCALES_FILE, SH0_FILE = "quats.webp", "scales.webp", "sh0.webp"
SHN_FILES = ("shN_centroids.webp", "shN_labels.webp")


def image_size(n: int) -> tuple[int, int]:
    """(width, height) of the per-Gaussian images for ``n`` Gaussians (multiples of 4)."""
    width = 4 * max(1, math.ceil(math.sqrt(n) / 4))
    return width, 4 * max(1, math.ceil(n / width / 4))


def morton_order(means: np.ndarray) -> np.ndarray:
    """[N] int64 permutation sorting ``means`` [N, 3] along a Z-order curve over their bounding box
    (:func:`adlift.io.morton.morton_codes` with as many bits per axis as fit beside the row index in
    64 bits, at most 21: 14 for 1M Gaussians; rows in one cell keep their input order)."""
    n = len(means)
    if n == 0:
        return np.zeros(0, np.int64)
    index_bits = max(1, (n - 1).bit_length())
    code = morton_codes(means, min(MAX_BITS, (64 - index_bits) // 3))
    key = (code << np.uint64(index_bits)) | np.arange(n, dtype=np.uint64)  # unique: any sort is stable
    return (np.sort(key) & np.uint64((1 << index_bits) - 1)).astype(np.int64)


def pack_means(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """(low bytes [N, 3], high bytes [N, 3], mins [3], maxs [3]) of ``means`` [N, 3] (float32): each
    coordinate's log transform sign(x) ln(1 + |x|) as 16 bits over its range."""
    t = np.copysign(np.log1p(np.abs(means)), means)
    lo = t.min(axis=0) if len(t) else np.zeros(3, np.float32)
    hi = t.max(axis=0) if len(t) else np.zeros(3, np.float32)
    span = np.where(hi > lo, hi - lo, 1).astype(np.float32)
    t -= lo
    t *= np.float32(65535) / span
    q = np.rint(t, out=t).clip(0, 65535).astype(np.uint16)
    return (q & 0xFF).astype(np.uint8), (q >> 8).astype(np.uint8), lo.tolist(), hi.tolist()


def pack_quats(quats: np.ndarray) -> np.ndarray:
    """[N, 4] bytes of the unit quaternions ``quats`` [N, 4] (w, x, y, z; float32): smallest three
    (times sqrt(2), from [-1, 1] to [0, 255]) and 252 + the index of the largest component."""
    largest = np.abs(quats).argmax(axis=1)
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    small = np.take_along_axis(quats, others, axis=1)
    sign = np.where(np.take_along_axis(quats, largest[:, None], axis=1) < 0, -1, 1).astype(np.float32)
    small *= sign * np.float32(127.5 * math.sqrt(2))
    small += np.float32(127.5)
    out = np.empty((len(quats), 4), np.uint8)
    out[:, :3] = np.rint(small, out=small).clip(0, 255)
    out[:, 3] = 252 + largest
    return out


def _image(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """[height, width, 4] uint8 image holding ``pixels`` [n, 3 or 4] in row-major order (alpha 255
    where ``pixels`` has 3 channels; unused pixels 0)."""
    out = np.zeros((height * width, 4), np.uint8)
    n, c = pixels.shape
    out[:n, :c] = pixels
    if c == 3:
        out[:n, 3] = 255
    return out.reshape(height, width, 4)


def webp(image: np.ndarray) -> bytes:
    """Lossless WebP bytes of ``image`` [height, width, 4] (uint8 RGBA), colour kept under alpha 0."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGBA").save(buf, "WEBP", lossless=True, exact=True, method=WEBP_METHOD,
                                        quality=WEBP_QUALITY)  # fmt: skip
    return buf.getvalue()


def _palette_image(indices: np.ndarray) -> np.ndarray:
    """shN_centroids' [ceil(m / 64), 64 C, 4] image of the palette's codebook ``indices`` [m, C, 3]."""
    m, c, _ = indices.shape
    rows = -(-m // PALETTE_ROW)
    out = np.zeros((rows * PALETTE_ROW, c, 4), np.uint8)
    out[:m, :, :3] = indices
    out[:m, :, 3] = 255
    return out.reshape(rows, PALETTE_ROW * c, 4)


class _Clock:
    """Seconds spent per stage, added into ``timings`` (a dict, or None to keep none)."""

    def __init__(self, timings: dict | None):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


def encode(scene: GaussianScene, *, timings: dict | None = None) -> dict[str, bytes]:
    """The files of ``scene`` as SOG: {file name: bytes}, the WebP images then ``meta.json``.

    ``scene``'s values must be finite (:func:`adlift.io.web_codec.writable` checks). ``timings``:
    a dict that receives the wall seconds of each stage (order, means, quats, scales, colours,
    palette: what is left of the SH palette's clustering after the other stages, which run beside
    it; sh_codebook, webp, meta)."""
    import adlift

    clock = _Clock(timings)
    s = scene.detach().to("cpu", torch.float32)
    n = s.num_gaussians
    with ThreadPoolExecutor(sog_cluster.workers()) as pool:  # libwebp and the palette run without the GIL
        palette_job = None
        if s.sh_degree > 0:  # the longest stage: started first (in the scene's order), the rest runs beside it
            coeffs = s.sh.shape[1] - 1
            rest = np.ascontiguousarray(s.sh[:, 1:].reshape(n, 3 * coeffs).numpy())
            palette_job = pool.submit(sog_cluster.sh_palette, rest, seed=PALETTE_SEED)
        order = morton_order(s.means.numpy())
        rows = lambda t: np.take(t.numpy(), order, axis=0)  # noqa: E731 - a field in file order
        width, height = image_size(n)
        clock("order")
        jobs = {}

        def add(name: str, image: np.ndarray) -> None:
            jobs[name] = pool.submit(webp, image)

        low, high, mins, maxs = pack_means(rows(s.means))
        add(MEANS_FILES[0], _image(low, width, height))
        add(MEANS_FILES[1], _image(high, width, height))
        clock("means")
        add(QUATS_FILE, _image(pack_quats(rows(s.normalized_quats)), width, height))
        clock("quats")
        scale_codebook, scale_labels = sog_cluster.scalar_codebook(rows(s.log_scales))
        add(SCALES_FILE, _image(scale_labels, width, height))
        clock("scales")
        dc_codebook, dc_labels = sog_cluster.scalar_codebook(rows(s.sh[:, 0]))
        alpha = rows(torch.sigmoid(s.opacity_logits))
        alpha = np.rint(alpha * np.float32(255), out=alpha).astype(np.uint8)
        add(SH0_FILE, _image(np.concatenate([dc_labels, alpha[:, None]], axis=1), width, height))
        clock("colours")
        meta = {
            "version": 2,
            "asset": {"generator": f"AdLift {adlift.__version__}"},
            "count": n,
            "means": {"mins": mins, "maxs": maxs, "files": list(MEANS_FILES)},
            "scales": {"codebook": scale_codebook.tolist(), "files": [SCALES_FILE]},
            "quats": {"files": [QUATS_FILE]},
            "sh0": {"codebook": dc_codebook.tolist(), "files": [SH0_FILE]},
        }
        if palette_job is not None:
            palette, labels = palette_job.result()
            labels = labels[order]  # each Gaussian's entry, in file order
            clock("palette")
            sh_codebook, indices = sog_cluster.scalar_codebook(palette.reshape(-1, coeffs, 3))
            add(SHN_FILES[0], _palette_image(indices))
            labels = labels.astype(np.uint16)
            add(SHN_FILES[1], _image(np.stack([labels & 0xFF, labels >> 8, np.zeros_like(labels)], axis=1).astype(np.uint8),
                                     width, height))  # fmt: skip
            meta["shN"] = {"count": len(palette), "bands": s.sh_degree, "codebook": sh_codebook.tolist(),
                           "files": list(SHN_FILES)}  # fmt: skip
            clock("sh_codebook")
        files = {name: job.result() for name, job in jobs.items()}
    clock("webp")
    files["meta.json"] = json.dumps(meta).encode("utf-8")
    clock("meta")
    return files
