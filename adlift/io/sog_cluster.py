"""The clustering a SOG file needs: 256-entry scalar codebooks and the palette of higher-order SH.

SOG (:mod:`adlift.io.sog_encode`) stores log-scales, DC colours and the SH palette's values as 8-bit
indices into 256-entry codebooks of floats, and each Gaussian's higher-order SH as a 16-bit index
into a palette of at most 65,536 SH vectors. Both are built here, deterministically (seeded), in
time and memory that stay small on 2 CPU cores for a million Gaussians.

**Scalar codebooks** (:func:`scalar_codebook`): a compander. The values are counted into
:data:`HISTOGRAM_BINS` equal bins, and the 256 entries sit at evenly spaced quantiles of a point
density that is half uniform over the values' range and half proportional to density^(1/3) (the
mean-squared-error optimum of high-resolution quantisation theory, which a plain Lloyd-Max
quantiser approaches). The uniform half bounds the worst case: neighbouring entries are at most
2 x range / 256 apart, so no value is more than range / 256 from its entry, where a pure
density^(1/3) (or Lloyd) codebook leaves sparse tails 10-40x coarser; its mean error is within
~5-15 % of Lloyd's on measured scenes (docs/FORMATS.md). Each value then gets its nearest entry
exactly (one label per histogram bin, and a binary search for the values of the bins a decision
boundary crosses). Up to 256 distinct values are kept exactly.

**The SH palette** (:func:`sh_palette`): with at most :data:`MAX_PALETTE` Gaussians the palette is
their own SH vectors (every Gaussian keeps its SH, to the codebook's 8 bits). Beyond that, a
k-means tree: a node of ``n`` vectors that must get ``k`` palette entries is split by k-means into
``ceil(sqrt(k))`` children (trained on a sample of at most :data:`SAMPLE_PER_CENTROID` vectors per
centroid, then every vector is assigned to its nearest child), the ``k`` entries are shared out
among the children in proportion to their sizes, and each child is clustered the same way, down
to leaves of at most :data:`LEAF` entries clustered by plain Lloyd iterations over their vectors.
A flat k-means with 65,536 centroids would cost ``N x 65,536`` distances per iteration (~100 s for
1M Gaussians on 2 cores); the tree costs ``N x (256 + 256)`` per pass for the same palette size.
A vector's entry is the nearest one in its leaf, not always the nearest of the whole palette: the
price of that speed (docs/FORMATS.md measures it). The top node's children are clustered in threads
(:func:`workers`, one torch thread each), each from its own seed drawn in child order, and the top
node's nearest-child search runs :func:`nearest`'s own chunks in those threads: the result is the
same for any number of threads. Nearest-centroid searches are matrix products in
chunks of :data:`CHUNK_ELEMENTS` distances (memory stays bounded), reduced by numpy's argmin.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

#: Entries of a scalar codebook (8-bit indices).
CODEBOOK_SIZE = 256
#: Equal-width bins the scalar quantiser counts values into.
HISTOGRAM_BINS = 1 << 14
#: Share of a scalar codebook's entries spread evenly over the values' range (module docstring).
UNIFORM_SHARE = 0.5
#: The largest palette SOG can index (16-bit labels).
MAX_PALETTE = 65536
#: Palette entries a leaf of the k-means tree holds at most.
LEAF = 512
#: Lloyd iterations of a leaf (each one pass over its vectors) and of a split (on its sample).
LEAF_ITERATIONS = 2
SPLIT_ITERATIONS = 10
#: A split is trained on at most this many sampled vectors per child centroid.
SAMPLE_PER_CENTROID = 64
#: Distances computed at once in a nearest-centroid search (x 4 bytes: 4 MiB).
CHUNK_ELEMENTS = 1 << 20


# ------------------------------------------------------------------------------ scalar codebooks
def _compander(counts: np.ndarray, lo: float, scale: float, size: int) -> np.ndarray:
    """[size] ascending codebook for values whose histogram over ``len(counts)`` equal bins (bin i
    spans lo + [i, i + 1) / scale) is ``counts``: the entries sit at the quantiles (k + 1/2) / size
    of the point density (1 - UNIFORM_SHARE) density^(1/3) + UNIFORM_SHARE uniform, linear inside a bin."""
    h = len(counts)
    dense = counts.astype(np.float64) ** (1 / 3)
    density = (1 - UNIFORM_SHARE) * dense / dense.sum() + UNIFORM_SHARE / h
    cum = np.concatenate([[0.0], np.cumsum(density)])  # ends at 1 (up to rounding)
    target = (np.arange(size) + 0.5) / size * cum[-1]
    b = np.clip(np.searchsorted(cum, target, side="right") - 1, 0, h - 1)
    return lo + (b + np.clip((target - cum[b]) / density[b], 0, 1)) / scale


def _labels(values: np.ndarray, codebook: np.ndarray, lo: float, scale: float, bins: np.ndarray) -> np.ndarray:
    """uint8 index of the nearest ``codebook`` [size] entry (ascending) for each of ``values`` [n]
    (float32), whose histogram bins are ``bins`` [n] (bin i spans lo + [i, i + 1) / scale)."""
    mids = ((codebook[1:] + codebook[:-1]) / 2).astype(np.float32)
    edges = lo + np.arange(HISTOGRAM_BINS + 1) / scale
    below = np.searchsorted(mids, edges)  # boundaries left of each edge
    # a bin whose neighbourhood (one bin either side: float rounding of the bin index) holds no
    # boundary gives all its values one label; the others are searched value by value
    first = below[np.maximum(np.arange(HISTOGRAM_BINS) - 1, 0)]
    last = below[np.minimum(np.arange(HISTOGRAM_BINS) + 2, HISTOGRAM_BINS)]
    labels = below[:-1].astype(np.uint8)[bins]
    unsure = np.flatnonzero((first != last)[bins])
    labels[unsure] = np.searchsorted(mids, values[unsure])
    return labels


def scalar_codebook(values: np.ndarray, size: int = CODEBOOK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(codebook [size] float32 ascending, labels uint8 shaped like ``values``): a ``size``-entry
    codebook of the finite float ``values`` (any shape, pooled) and each value's nearest entry."""
    v = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if v.size == 0:
        return np.zeros(size, np.float32), np.zeros(values.shape, np.uint8)
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return np.full(size, lo, np.float32), np.zeros(values.shape, np.uint8)
    scale = HISTOGRAM_BINS / (hi - lo)
    bins = ((v - np.float32(lo)) * np.float32(scale)).astype(np.int32)
    np.clip(bins, 0, HISTOGRAM_BINS - 1, out=bins)
    counts = np.bincount(bins, minlength=HISTOGRAM_BINS)
    filled = np.flatnonzero(counts)
    if v.size <= 1 << 16 and len(filled) <= size and len(distinct := np.unique(v)) <= size:
        codebook = np.concatenate([distinct, np.full(size - len(distinct), distinct[-1])])  # exact
    elif len(filled) <= size:
        centres = lo + (filled + 0.5) / scale
        codebook = np.concatenate([centres, np.full(size - len(filled), centres[-1])])
    else:
        codebook = _compander(counts, lo, scale, size)
    codebook = np.clip(codebook, lo, hi).astype(np.float32)
    return codebook, _labels(v, codebook.astype(np.float64), lo, scale, bins).reshape(values.shape)


# ----------------------------------------------------------------------------------- SH palette
def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[n] int64 index of the nearest of ``centroids`` [k, D] for each row of ``x`` [n, D] (float32;
    squared Euclidean distance, in chunks of :data:`CHUNK_ELEMENTS` distances: a matrix product in
    torch, numpy's argmin, 4x faster than torch's)."""
    k = len(centroids)
    out = np.zeros(len(x), np.int64)
    if k == 1 or len(x) == 0:
        return out
    c = torch.from_numpy(centroids)
    norms, ct = (c * c).sum(1), c.t()
    xt = torch.from_numpy(x)
    step = max(1, CHUNK_ELEMENTS // k)
    buf = torch.empty(min(step, len(x)), k)
    for a in range(0, len(x), step):
        b = min(len(x), a + step)
        d = torch.addmm(norms, xt[a:b], ct, alpha=-2, out=buf[: b - a])  # |c|^2 - 2 x.c
        out[a:b] = d.numpy().argmin(axis=1)
    return out


def _lloyd(x: np.ndarray, centroids: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids [k, D], labels [n]) after ``iterations`` Lloyd passes over ``x`` [n, D] from
    ``centroids``: the labels of the last pass and the means of their clusters (an empty cluster
    keeps its centroid)."""
    centroids = centroids.copy()
    labels = np.zeros(len(x), np.int64)
    for _ in range(iterations):
        labels = nearest(x, centroids)
        index = torch.from_numpy(labels)
        sums = torch.zeros(centroids.shape).index_add_(0, index, torch.from_numpy(x)).numpy()
        counts = np.bincount(labels, minlength=len(centroids))
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids, labels


def share(sizes: np.ndarray, k: int) -> np.ndarray:
    """[c] int64 entries for children of ``sizes`` [c] vectors, summing to ``k`` (< sizes.sum()):
    in proportion to size, at least 1 for a non-empty child, at most its size."""
    sizes = sizes.astype(np.int64)
    ideal = sizes * (k / sizes.sum())
    quota = np.minimum(np.maximum(np.floor(ideal).astype(np.int64), sizes > 0), sizes)
    while (left := k - int(quota.sum())) != 0:
        if left > 0:  # the largest shortfalls first, among children with room
            room = np.flatnonzero(quota < sizes)
            take = room[np.argsort(-(ideal - quota)[room], kind="stable")[:left]]
            quota[take] += 1
        else:  # over (minimum 1 each): the largest excesses give one back
            spare = np.flatnonzero(quota > 1)
            give = spare[np.argsort(-(quota - ideal)[spare], kind="stable")[:-left]]
            quota[give] -= 1
    return quota


def _tree(x: np.ndarray, k: int, rng: np.random.Generator, pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centroids [m <= k, D], labels [n]) of the k-means tree (module docstring) of ``x`` [n, D].

    With ``pool`` the children of this node are clustered in its threads (each child with its own
    generator, drawn from ``rng`` in child order, so the result does not depend on the threads)."""
    n = len(x)
    if n <= k:
        return x.copy(), np.arange(n)
    if k <= LEAF:
        return _lloyd(x, np.take(x, rng.choice(n, k, replace=False), axis=0), LEAF_ITERATIONS)
    children = math.isqrt(k - 1) + 1  # ceil(sqrt(k))
    sample = np.take(x, rng.choice(n, min(n, SAMPLE_PER_CENTROID * children), replace=False), axis=0)
    centroids, _ = _lloyd(sample, sample[:children], SPLIT_ITERATIONS)  # the sample is in random order
    if pool is None:
        labels = nearest(x, centroids)
    else:  # every vector's child, nearest()'s chunks spread over the threads
        step = max(1, CHUNK_ELEMENTS // children)  # nearest()'s own chunks: the same sums in any thread count
        labels = np.concatenate(list(pool.map(lambda a: nearest(x[a : a + step], centroids), range(0, n, step))))
    sizes = np.bincount(labels, minlength=children)
    if sizes.max() == n:  # (nearly) identical vectors: no split; one leaf of what it can hold
        return _tree(x, LEAF, rng)
    quota = share(sizes, k)
    order = np.argsort(labels.astype(np.uint16), kind="stable")  # a radix sort
    grouped = np.take(x, order, axis=0)  # each child's vectors in one slice
    ends = np.cumsum(sizes)
    filled = np.flatnonzero(sizes)
    seeds = rng.integers(0, 2**63, size=len(filled))

    def cluster(i: int) -> tuple[np.ndarray, np.ndarray]:
        child = filled[i]
        return _tree(grouped[ends[child] - sizes[child] : ends[child]], int(quota[child]), np.random.default_rng(seeds[i]))

    results = pool.map(cluster, range(len(filled))) if pool is not None else map(cluster, range(len(filled)))
    parts, out, offset = [], np.empty(n, np.int64), 0
    for child, (c, lab) in zip(filled, results):
        out[order[ends[child] - sizes[child] : ends[child]]] = lab + offset
        parts.append(c)
        offset += len(c)
    return np.concatenate(parts), out


def workers() -> int:
    """Threads the encoder's parallel parts use: the CPU cores this process may run on (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's intra-op threads set to 1 inside (restored after): parallel work comes from our own
    threads instead. Under load OpenMP's spin-waiting made the palette 25x slower with 2 intra-op
    threads on 2 cores (docs/FORMATS.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def palette_size(n: int) -> int:
    """Entries of the SH palette for ``n`` Gaussians: each its own up to :data:`MAX_PALETTE`, then that."""
    return max(1, min(n, MAX_PALETTE))


def sh_palette(sh: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(palette [m, D] float32, labels [n] int64 into it) of the higher-order SH vectors ``sh``
    [n, D] (float32), with m <= :func:`palette_size` (n); the same input and ``seed`` give the same
    result. At most :data:`MAX_PALETTE` vectors: the palette is ``sh`` itself, label i = row i."""
    sh = np.ascontiguousarray(sh, dtype=np.float32)
    if len(sh) == 0:
        return np.zeros((1, sh.shape[1]), np.float32), np.zeros(0, np.int64)
    with one_torch_thread(), ThreadPoolExecutor(workers()) as pool:
        return _tree(sh, palette_size(len(sh)), np.random.default_rng(seed), pool)
