"""What a scene file holds: a scene written in a format and decoded again, row for row.

:func:`roundtrip` writes a scene with the format's own writer (:func:`~adlift.io.formats.write_scene`,
so gaussforge's encoders and AdLift's workarounds, exactly as a published file is written) into a
temporary directory, reads it back (:func:`~adlift.io.formats.read_scene`) and returns the decoded
values **in the input's row order and shape**: row ``i`` of the result is what the file holds for
Gaussian ``i``. It is the quantiser of a format, used by the protection fit (straight-through,
:mod:`adlift.protect.quantise`) and by the check of a written file.

* Lossless formats (``SceneFormat.lossless``: ply) give the scene back as float32 without a file.
* SH bands a format does not hold (``.splat``: everything above degree 0) come back as zeros.
* A format that reorders the Gaussians (``SceneFormat.reorders``: SOG sorts them spatially) is put
  back in the input's order exactly when the format knows its writer's order
  (``SceneFormat.file_order``: SOG's Morton order); otherwise by matching decoded rows to input rows
  (:func:`match_rows`): nearest neighbours in means (weighted 10x), DC colour and opacity, assigned
  one to one, closest first.

The round trip is deterministic (same scene, same bytes, same decode), so every rank of a torchrun
launch computes the same thing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from adlift.scene import GaussianScene


def match_rows(decoded: GaussianScene, scene: GaussianScene, k: int = 8) -> torch.Tensor:
    """[N] long ``index`` with ``decoded.subset(index)`` row for row closest to ``scene`` (a permutation).

    Features: means (x10) and DC colour and opacity logit, each standardised by the scene's spread;
    every decoded row's ``k`` nearest scene rows (a KD-tree) are candidates, assigned one to one by
    increasing distance; rows left over (none unless many Gaussians coincide) are paired in order."""
    from scipy.spatial import cKDTree

    n = scene.num_gaussians

    def features(s: GaussianScene) -> np.ndarray:
        s = s.detach().to("cpu", torch.float64)
        return torch.cat([s.means, s.sh[:, 0], s.opacity_logits[:, None]], dim=1).numpy()

    want, got = features(scene), features(decoded)
    spread = want.std(axis=0) + 1e-12
    weight = np.array([10.0] * 3 + [1.0] * 4) / spread
    tree = cKDTree(want * weight)
    dist, cand = tree.query(got * weight, k=min(k, n))
    dist, cand = dist.reshape(n, -1), cand.reshape(n, -1)
    index = np.full(n, -1, dtype=np.int64)  # scene row -> decoded row
    taken = np.zeros(n, dtype=bool)  # decoded rows assigned
    # Unambiguous first: scene rows that exactly one decoded row names as its nearest.
    first = cand[:, 0]
    counts = np.bincount(first, minlength=n)
    sole = counts[first] == 1
    index[first[sole]] = np.flatnonzero(sole)
    taken[sole] = True
    # The rest, closest pairs first.
    rows, cols = np.nonzero(~taken[:, None] & np.ones_like(cand, dtype=bool))
    order = np.argsort(dist[rows, cols], kind="stable")
    for r, c in zip(rows[order], cols[order]):
        j = cand[r, c]
        if not taken[r] and index[j] < 0:
            index[j] = r
            taken[r] = True
    left = np.flatnonzero(index < 0)
    if len(left):
        index[left] = np.flatnonzero(~taken)
    return torch.from_numpy(index).to(scene.device)


def roundtrip(scene: GaussianScene, format: str, **options) -> GaussianScene:
    """``scene`` as a file of ``format`` holds it (module docstring): float32, on ``scene``'s device,
    same rows and shapes as ``scene``. ``options``: the format's write/read options (``spz_axes``)."""
    from adlift.io.formats import SCENE_FORMATS, read_scene, write_scene

    fmt = SCENE_FORMATS.get(format)
    s = scene.detach().to(dtype=torch.float32)
    if fmt.lossless or s.num_gaussians == 0:
        return GaussianScene(**{k: v.clone() for k, v in s.tensors().items()}, check_finite=False)
    with tempfile.TemporaryDirectory(prefix="adlift-roundtrip-") as tmp:
        path = Path(tmp) / ("scene" + fmt.extensions[0])
        write_scene(s.to("cpu"), path, format=format, **options)
        decoded = read_scene(path, **options).to(scene.device)
    if decoded.sh.shape[1] < s.sh.shape[1]:  # bands the format does not hold: zero
        pad = torch.zeros(s.num_gaussians, s.sh.shape[1] - decoded.sh.shape[1], 3, device=scene.device)
        decoded = GaussianScene(decoded.means, decoded.quats, decoded.log_scales, decoded.opacity_logits,
                                torch.cat([decoded.sh, pad], dim=1), check_finite=False)  # fmt: skip
    if fmt.reorders and fmt.file_order is not None:  # the writer's order is known: exactly back
        order = torch.as_tensor(fmt.file_order(s), dtype=torch.long)
        index = torch.empty_like(order)
        index[order] = torch.arange(len(order))
        decoded = decoded.subset(index.to(scene.device))
    elif fmt.reorders:
        decoded = decoded.subset(match_rows(decoded, s))
    return decoded
