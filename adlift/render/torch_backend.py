"""The ``torch`` backend: pure PyTorch, CPU or GPU, differentiable w.r.t. every scene tensor.

Pipeline (all cameras of a call go through one tile plan):

1. per-Gaussian factors ``M = R S`` once, with autograd;
2. cull (no grad), camera by camera: project everything, keep the Gaussians whose opacity-aware
   screen box (:func:`screen_radii`) touches the image;
3. project again *with* autograd, only the kept (camera, Gaussian) pairs, and evaluate their SH
   colours; pack each pair's screen-space parameters into one row;
4. intersect boxes with tiles and sort by (camera, tile, depth) (no grad);
5. composite front to back (:mod:`adlift.render.rasterize`, hand-written backward).
"""

from __future__ import annotations

import torch

from adlift.cameras import camera_centers
from adlift.render.api import Composited, RenderRequest
from adlift.render.projection import EPS2D, covariance_factor, project_gaussians, screen_radii
from adlift.render.rasterize import RasterSettings, composite, intersect_tiles
from adlift.render.sh import sh_to_rgb
from adlift.scene import GaussianScene

#: Module-level tuning, e.g. ``torch_backend.SETTINGS.slab = 64`` (results do not change).
SETTINGS = RasterSettings()


def render_torch(
    scene: GaussianScene, request: RenderRequest, *, eps2d: float = EPS2D, settings: RasterSettings | None = None
) -> Composited:
    """Render with the pure-PyTorch rasteriser (an :class:`adlift.render.api.RenderFn`).

    Returns rgb [C, 3, H, W] (no background), alpha [C, 1, H, W], depth_sum [C, 1, H, W]
    (``sum w z``) and visible [C, N] (bool).
    """
    settings = settings or SETTINGS
    cameras, sh_degree, near_plane, far_plane = request.cameras, request.sh_degree, request.near_plane, request.far_plane
    device, dtype = scene.device, scene.dtype
    width, height = cameras.width, cameras.height
    viewmats = cameras.viewmats.to(device=device, dtype=dtype)  # [C, 4, 4]
    Ks = cameras.Ks.to(device=device, dtype=dtype)  # [C, 3, 3]
    centres = camera_centers(viewmats)  # [C, 3]
    n_cam = viewmats.shape[0]

    factors = covariance_factor(scene.quats, torch.exp(scene.log_scales))  # [N, 3, 3]
    log_opac = torch.nn.functional.logsigmoid(scene.opacity_logits)  # [N]
    with torch.no_grad():
        opac = torch.sigmoid(scene.opacity_logits)  # [N]

    rows, radii, cam_ids = [], [], []
    visible = torch.zeros(n_cam, scene.num_gaussians, dtype=torch.bool, device=device)
    for c in range(n_cam):
        # Cull without autograd.
        with torch.no_grad():
            proj = project_gaussians(scene.means, factors.detach(), viewmats[c], Ks[c], width, height, eps2d)
            r = screen_radii(proj, opac, width, height, near_plane, far_plane)  # [N, 2]
            keep = (r > 0).all(dim=-1)  # [N]
            visible[c] = keep
            ids = torch.nonzero(keep).flatten()  # [P_c]
        # Differentiable projection and colour of the kept Gaussians only.
        means = scene.means.index_select(0, ids)  # [P_c, 3]
        vis = project_gaussians(means, factors.index_select(0, ids), viewmats[c], Ks[c], width, height, eps2d)
        colors = sh_to_rgb(sh_degree, means - centres[c], scene.sh.index_select(0, ids))  # [P_c, 3]
        lo = log_opac.index_select(0, ids)[:, None]
        rows.append(torch.cat([vis.means2d, vis.conics, lo, colors, vis.depths[:, None]], dim=1))
        radii.append(r.index_select(0, ids))
        cam_ids.append(torch.full_like(ids, c))
    # rows [P, 10]: mean2d (2), conic (3), log opacity, rgb (3), depth -- the rasteriser's layout.
    rows = torch.cat(rows)
    with torch.no_grad():
        plan = intersect_tiles(
            rows, torch.cat(radii), rows[:, 9], torch.cat(cam_ids), n_cam, width, height, settings.tile
        )
    img = composite(rows, plan, settings)  # [C, 5, H, W]: rgb, depth, alpha

    return Composited(rgb=img[:, :3], alpha=img[:, 4:5], depth_sum=img[:, 3:4], visible=visible)
