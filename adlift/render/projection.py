"""EWA projection of 3D Gaussians to 2D screen-space Gaussians (pinhole cameras).

Follows the 3DGS / gsplat conventions exactly (gsplat ``persp_proj`` + ``fully_fused_projection``):

* covariance ``Sigma = R S S^T R^T`` with ``R`` from the normalised quaternion (w, x, y, z);
* camera-space mean ``t = W mu + w``; the affine Jacobian ``J`` of the perspective map is taken at
  ``(x', y', z)`` where ``x'/z`` and ``y'/z`` are clamped to the view frustum widened by 30 % of the
  half field of view on each side: ``-(cx/fx + 0.3 tan_x) <= x/z <= (W - cx)/fx + 0.3 tan_x`` with
  ``tan_x = 0.5 W / fx`` (for a centred principal point that is ``|x/z| <= 1.3 tan_x``);
* ``Sigma_2d = J W Sigma W^T J^T + eps2d I`` (low-pass dilation, 0.3 px^2 by default);
* the 2D mean is the projection of the *unclamped* mean: ``(fx x/z + cx, fy y/z + cy)``.

Cameras are handled one at a time (a Python loop over C in the backend); Gaussians are batched.
"""

from __future__ import annotations

import dataclasses

import torch

from adlift.rotations import quat_to_rotmat

#: gsplat's alpha threshold: contributions below 1/255 are skipped.
ALPHA_THRESHOLD = 1.0 / 255.0
#: Low-pass dilation added to the 2D covariance's diagonal (px^2), the one value every backend uses
#: (the torch projection, gsplat's ``eps2d`` and the CUDA kernels' argument).
EPS2D = 0.3
#: Upper bound of the Mahalanobis extent used for screen-space bounding boxes (gsplat >= 1.5).
MAX_EXTENT = 3.33


@dataclasses.dataclass
class Projection:
    """Screen-space Gaussians; every field shares the leading shape ``[...]``."""

    means2d: torch.Tensor  # [..., 2] pixel coordinates (K's convention: pixel centres at +0.5)
    cov2d: torch.Tensor  # [..., 3] dilated 2D covariance (xx, xy, yy)
    conics: torch.Tensor  # [..., 3] its inverse (xx, xy, yy)
    depths: torch.Tensor  # [...] camera-space z
    det: torch.Tensor  # [...] determinant of the dilated 2D covariance


def covariance_factor(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``M = R S`` [..., 3, 3] with ``Sigma = M M^T``; quats [..., 4], scales [..., 3] (std devs)."""
    return quat_to_rotmat(quats) * scales[..., None, :]


def project_gaussians(
    means: torch.Tensor,  # [P, 3] world
    factors: torch.Tensor,  # [P, 3, 3] covariance factors M = R S (Sigma = M M^T)
    viewmat: torch.Tensor,  # [4, 4] world-to-camera of one camera
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    eps2d: float = EPS2D,
) -> Projection:
    """EWA-project P Gaussians into one camera (see the module docstring).

    Written as a handful of [P, k] GEMMs and elementwise ops (no batched 3x3 products), so the
    autograd graph stays small for millions of Gaussians.  Values for Gaussians behind or at the
    camera are not meaningful: cull them with :func:`screen_radii` before using them.
    """
    rot = viewmat[:3, :3]  # [3, 3]
    mean_c = means @ rot.T + viewmat[:3, 3]  # [P, 3]
    x, y, z = mean_c.unbind(-1)  # [P]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    tan_x = 0.5 * width / fx
    tan_y = 0.5 * height / fy
    rz = 1.0 / z
    tx = z * torch.minimum(torch.maximum(x * rz, -(cx / fx + 0.3 * tan_x)), (width - cx) / fx + 0.3 * tan_x)
    ty = z * torch.minimum(torch.maximum(y * rz, -(cy / fy + 0.3 * tan_y)), (height - cy) / fy + 0.3 * tan_y)

    # W M (camera-space factor) as one [3P, 3] x [3, 3] GEMM: wm_t[p, j, i] = (W M_p)[i, j].
    wm_t = (factors.transpose(1, 2).reshape(-1, 3) @ rot.T).reshape(-1, 3, 3)  # [P, 3, 3]
    wm = wm_t.unbind(-1)  # rows of W M: 3 x [P, 3]
    # T = J W M with J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]: Sigma_2d = T T^T.
    t0 = (fx * rz)[:, None] * wm[0] - (fx * tx * rz * rz)[:, None] * wm[2]  # [P, 3]
    t1 = (fy * rz)[:, None] * wm[1] - (fy * ty * rz * rz)[:, None] * wm[2]  # [P, 3]
    sxx = (t0 * t0).sum(-1) + eps2d  # [P]
    sxy = (t0 * t1).sum(-1)
    syy = (t1 * t1).sum(-1) + eps2d
    det = sxx * syy - sxy * sxy  # [P]
    inv_det = 1.0 / det.clamp_min(1e-10)
    conics = torch.stack([syy * inv_det, -sxy * inv_det, sxx * inv_det], dim=-1)  # [P, 3]
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [P, 2]
    return Projection(means2d, torch.stack([sxx, sxy, syy], dim=-1), conics, z, det)


@torch.no_grad()
def screen_radii(
    proj: Projection,
    opacities: torch.Tensor,  # [...] (broadcastable to proj.depths)
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> torch.Tensor:
    """Integer screen-space half extents [..., 2] (x, y); 0 where the Gaussian is culled.

    Culled: depth outside [near, far], non-positive determinant, opacity below 1/255, or a
    bounding box that misses the image.  The box is gsplat's (>= 1.5) opacity-aware tight box:
    half extents ``ceil(e sqrt(Sigma_xx))``, ``ceil(e sqrt(Sigma_yy))`` with
    ``e = min(3.33, sqrt(2 ln(255 opacity)))`` -- exactly the pixels where the Gaussian's alpha can
    reach 1/255, so the tiling never changes the image (3 sigma of the largest eigenvalue, the
    original 3DGS box, drops visible tails of opaque Gaussians).
    """
    depths = proj.depths
    op = torch.broadcast_to(opacities, depths.shape)
    extend = torch.sqrt(2.0 * torch.log((op / ALPHA_THRESHOLD).clamp_min(1.0))).clamp_max(MAX_EXTENT)
    cov = proj.cov2d
    rx = torch.ceil(extend * cov[..., 0].clamp_min(0).sqrt())
    ry = torch.ceil(extend * cov[..., 2].clamp_min(0).sqrt())
    mx, my = proj.means2d[..., 0], proj.means2d[..., 1]
    valid = (
        (depths >= near_plane)
        & (depths <= far_plane)
        & (proj.det > 0)
        & (op >= ALPHA_THRESHOLD)
        & ((rx > 0) | (ry > 0))
        & (mx + rx > 0)
        & (mx - rx < width)
        & (my + ry > 0)
        & (my - ry < height)
    )
    valid &= torch.isfinite(mx) & torch.isfinite(my) & torch.isfinite(rx) & torch.isfinite(ry)
    radii = torch.stack([rx, ry], dim=-1)
    radii = torch.where(valid[..., None], radii, torch.zeros_like(radii))
    return radii.to(torch.int32)
