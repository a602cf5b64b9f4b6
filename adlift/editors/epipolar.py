"""Two-view geometry for DGE's feature injection: epipolar lines and depth reprojection.

Cameras follow :mod:`adlift.cameras` (OpenCV world-to-camera ``viewmats``, pixel intrinsics ``Ks``,
pixel (i, j) sampled at (i + 0.5, j + 0.5)). A diffusion model sees an image as a *token grid*: the
UNet's self-attention layer at a given depth works on an h x w grid covering the (padded) image, one
token per ``stride`` pixels. :func:`grid_intrinsics` gives the intrinsics of that grid, so every
function here works in token units: the centre of token (u, v) is at (u + 0.5, v + 0.5).

* :func:`fundamental_matrix` ``F`` with ``x_b^T F x_a = 0`` for the images x_a, x_b of one 3D point in
  views a and b; ``F x_a`` is the epipolar line of x_a in view b.
* :func:`epipolar_candidates`: for every token of view a, the tokens of view b within ``threshold``
  tokens of its epipolar line (DGE's constraint: 1 pixel of the layer's resolution).
* :func:`depth_correspondence`: with view a's rendered depth, the token of view b each token of view a
  projects to (DGE matches along the epipolar line by feature similarity instead; AdLift has the
  scene's depth and offers both, see :mod:`adlift.editors.dge`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adlift.cameras import Cameras
from adlift.errors import AdLiftError


def grid_intrinsics(K: torch.Tensor, stride: tuple[float, float]) -> torch.Tensor:
    """Intrinsics [..., 3, 3] of a token grid whose tokens are ``stride`` = (sx, sy) pixels wide/high.

    Pixel coordinate x maps to grid coordinate x / sx, so the token centre (u + 0.5) is the centre of
    the pixels it covers.
    """
    sx, sy = stride
    scale = K.new_tensor([[1.0 / sx, 1.0 / sx, 1.0 / sx], [1.0 / sy, 1.0 / sy, 1.0 / sy], [0.0, 0.0, 1.0]])
    out = K * scale
    out[..., 2, 2] = 1.0
    return out


def token_centers(h: int, w: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Homogeneous grid coordinates [h*w, 3] of the token centres (u + 0.5, v + 0.5, 1), row-major."""
    v, u = torch.meshgrid(torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device),
                          indexing="ij")  # fmt: skip
    return torch.stack([u.reshape(-1) + 0.5, v.reshape(-1) + 0.5, torch.ones(h * w, dtype=dtype, device=device)], -1)


def _skew(t: torch.Tensor) -> torch.Tensor:
    z = torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.stack([torch.stack([z, -t[2], t[1]]), torch.stack([t[2], z, -t[0]]), torch.stack([-t[1], t[0], z])])


def fundamental_matrix(viewmat_a: torch.Tensor, K_a: torch.Tensor, viewmat_b: torch.Tensor, K_b: torch.Tensor) -> torch.Tensor:
    """F [3, 3] (float64) mapping a homogeneous point of view a to its epipolar line in view b.

    With x_cam_b = R x_cam_a + t (R = R_b R_a^T, t = t_b - R t_a): F = K_b^-T [t]x R K_a^-1.
    """
    va, vb = viewmat_a.double(), viewmat_b.double()
    ra, ta, rb, tb = va[:3, :3], va[:3, 3], vb[:3, :3], vb[:3, 3]
    r = rb @ ra.T
    t = tb - r @ ta
    if float(t.norm()) < 1e-9:
        raise AdLiftError("two views share one camera centre; their epipolar geometry is undefined")
    return torch.linalg.inv(K_b.double()).T @ _skew(t) @ r @ torch.linalg.inv(K_a.double())


def epipolar_candidates(cams: Cameras, a: int, b: int, h: int, w: int, stride: tuple[float, float],
                        threshold: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Bool [h*w (tokens of view a), h*w (tokens of view b)]: True where the token of b lies within
    ``threshold`` tokens of the epipolar line of the token of a (both views on an h x w grid of
    ``stride`` pixels). Views sharing a centre: every pair is a candidate."""
    Ka = grid_intrinsics(cams.Ks[a].double(), stride)
    Kb = grid_intrinsics(cams.Ks[b].double(), stride)
    try:
        fm = fundamental_matrix(cams.viewmats[a], Ka, cams.viewmats[b], Kb)
    except AdLiftError:
        return torch.ones(h * w, h * w, dtype=torch.bool, device=cams.device)
    pts = token_centers(h, w, device=cams.device)  # [L, 3]
    lines = pts @ fm.T  # [L_a, 3]: F x_a for every token of a
    norm = lines[:, :2].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dist = (lines @ pts.T).abs() / norm  # [L_a, L_b]
    return dist <= threshold


def depth_correspondence(cams: Cameras, a: int, b: int, depth_a: torch.Tensor, valid_a: torch.Tensor,
                         stride: tuple[float, float], depth_b: torch.Tensor | None = None,
                         occlusion_tolerance: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Where each token of view a lands in view b, from a's depth on the token grid.

    ``depth_a``, ``valid_a``: [h, w] camera-z depth and a bool mask of tokens with a surface (both on the
    grid of ``stride`` pixels). Returns (index [h*w] long: the row-major token of b, valid [h*w] bool:
    a has a surface there, the point is in front of b and inside b's grid, and, with ``depth_b``
    [h, w], not hidden in b: its depth in b is within ``occlusion_tolerance`` (relative) of b's).
    """
    h, w = depth_a.shape
    Ka = grid_intrinsics(cams.Ks[a].double(), stride)
    Kb = grid_intrinsics(cams.Ks[b].double(), stride)
    pts = token_centers(h, w, device=depth_a.device)  # [L, 3]
    rays = pts @ torch.linalg.inv(Ka).T  # [L, 3], z = 1
    cam_a = rays * depth_a.reshape(-1, 1).double()
    c2w_a = torch.linalg.inv(cams.viewmats[a].double())
    world = cam_a @ c2w_a[:3, :3].T + c2w_a[:3, 3]
    vb = cams.viewmats[b].double()
    cam_b = world @ vb[:3, :3].T + vb[:3, 3]
    z = cam_b[:, 2]
    uv = (cam_b @ Kb.T)[:, :2] / z.clamp_min(1e-9)[:, None]
    col, row = torch.floor(uv[:, 0]), torch.floor(uv[:, 1])
    valid = valid_a.reshape(-1) & (z > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    index = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long()
    if depth_b is not None:
        seen = depth_b.reshape(-1).double()[index]
        valid &= (z - seen).abs() <= occlusion_tolerance * seen.abs().clamp_min(1e-9)
    return index, valid


def depth_on_grid(depth: torch.Tensor, alpha: torch.Tensor, h: int, w: int,
                  min_alpha: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A rendered depth map and its alpha [H', W'] (already padded to the grid's coverage) averaged onto
    an h x w token grid: (depth [h, w] = sum(alpha depth) / sum(alpha) per token, valid [h, w] = mean
    alpha >= ``min_alpha``)."""
    d = F.adaptive_avg_pool2d((depth * alpha)[None, None].double(), (h, w))[0, 0]
    a = F.adaptive_avg_pool2d(alpha[None, None].double(), (h, w))[0, 0]
    return d / a.clamp_min(1e-9), a >= min_alpha
