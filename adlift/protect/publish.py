"""The published order of a protected scene: a spatial order fixed by the Gaussians' values alone.

Every protected file AdLift writes (``adlift protect``'s and ``ns-train adlift-protect``'s
protected.ply, through :func:`adlift.protect.output.write_protection`) holds its Gaussians in the
order of :func:`publish_order`:

1. the Morton (Z-order) code of each mean, quantised to a ``2**MORTON_BITS`` grid per axis over the
   scene's bounding box of means (neighbours in space are neighbours in the file, as compressors
   order splats);
2. ties (Gaussians in one grid cell) by a 64-bit hash of all the Gaussian's values as float32
   (what the file stores);
3. remaining ties (hash collisions) by all those values, lexicographically.

The key of a Gaussian depends only on its own values and the scene's bounds, so the published file
is the same bytes whatever the input file's order and whichever Gaussians were trained or frozen:
no prefix, range or position tells the safeguard from the asset, and the file needs no side
record to be used. (It does not hide what the values themselves show: see docs/THREAT_MODEL.md.)
"""

from __future__ import annotations

import numpy as np
import torch

from adlift.io.morton import MAX_BITS, morton_codes
from adlift.scene import GaussianScene

#: Name of the order, as the manifest records it (``protected_scene.order``).
ORDER_NAME = "morton"

#: Bits per axis of the quantised means (3 x 21 = 63 bits fit one uint64 Morton code).
MORTON_BITS = MAX_BITS


def value_rows(scene: GaussianScene) -> np.ndarray:
    """[N, D] uint32: the bit patterns of every value of each Gaussian as float32 (the file's values)."""
    n = scene.num_gaussians
    parts = [scene.means, scene.quats, scene.log_scales, scene.opacity_logits[:, None], scene.sh.reshape(n, -1)]
    rows = torch.cat([p.detach().to("cpu", torch.float32) for p in parts], dim=1).contiguous().numpy()
    return rows.view(np.uint32)


def _row_hash(rows: np.ndarray) -> np.ndarray:
    """[N] uint64 hash of rows [N, D] uint32 (FNV-1a over the words, then a splitmix64 finaliser)."""
    h = np.full(rows.shape[0], 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = (h ^ rows[:, j].astype(np.uint64)) * prime
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def publish_order(scene: GaussianScene) -> torch.Tensor:
    """[N] long permutation putting ``scene``'s Gaussians in the published order (module docstring)."""
    n = scene.num_gaussians
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=scene.device)
    rows = value_rows(scene)
    codes = morton_codes(rows[:, :3].view(np.float32), MORTON_BITS)
    hashes = _row_hash(rows)
    order = np.lexsort((hashes, codes))  # primary: Morton code, then hash
    # Adjacent equal (code, hash) with different values: a hash collision; order those runs by value.
    c, h, r = codes[order], hashes[order], rows[order]
    same_key = (c[1:] == c[:-1]) & (h[1:] == h[:-1])
    clash = same_key & np.any(r[1:] != r[:-1], axis=1)
    if clash.any():
        run_start = np.concatenate([[True], ~same_key])
        run_id = np.cumsum(run_start) - 1  # [N] run of equal keys each sorted position belongs to
        bad_runs = np.unique(run_id[1:][clash])
        for run in bad_runs:
            pos = np.flatnonzero(run_id == run)
            sub = r[pos]
            order[pos] = order[pos][np.lexsort(sub.T[::-1])]
    return torch.from_numpy(order.astype(np.int64)).to(scene.device)


def published_scene(scene: GaussianScene) -> GaussianScene:
    """``scene``'s Gaussians in the published order (same values; a new scene)."""
    return scene.detach().subset(publish_order(scene))
