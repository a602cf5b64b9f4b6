"""The ``gsplat`` backend: nerfstudio's CUDA rasteriser (gsplat 1.4 and 1.5 tested by signature).

Called with the settings that reproduce the ``torch`` backend's semantics::

    gsplat.rasterization(means, quats, exp(log_scales), sigmoid(opacity_logits), sh, viewmats, Ks,
                         W, H, near_plane, far_plane, radius_clip=0, eps2d=EPS2D, sh_degree=d,
                         packed=False, tile_size=16, backgrounds=None, render_mode="RGB+D",
                         rasterize_mode="classic")

("RGB+D": colours and the accumulated depth sum w z, without background; :func:`adlift.render.api.finish`
adds the background and divides by alpha, as for every backend.)

gsplat works in float32 on CUDA and returns [C, H, W, X]; this module converts to our
[C, X, H, W] at the boundary and back to the scene's dtype/device (a CPU scene is moved to the
GPU and its outputs moved back, which autograd follows).

Known difference: gsplat 1.4 bounds each Gaussian by 3 sigma of the largest eigenvalue, so
Gaussians with opacity above ~0.35 lose faint (alpha < ~1/90) tails in tiles that box misses;
gsplat >= 1.5 and the ``torch`` backend use the opacity-aware box that covers every pixel with
alpha >= 1/255.
"""

from __future__ import annotations

import functools
import importlib

import torch

from adlift.render.api import Composited, RenderRequest
from adlift.render.projection import EPS2D
from adlift.scene import GaussianScene


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[object | None, str]:
    """(gsplat module or None, reason it is unusable)."""
    if not torch.cuda.is_available():
        return None, "needs a CUDA GPU (torch.cuda.is_available() is False)"
    try:
        module = importlib.import_module("gsplat")
    except Exception as exc:  # ImportError, or a broken CUDA build
        return None, f"cannot import gsplat ({type(exc).__name__}: {exc}); pip install 'gsplat>=1.4'"
    return module, ""


def gsplat_available() -> bool:
    """True when CUDA is available and gsplat imports."""
    return _probe()[0] is not None


def gsplat_unavailable_reason() -> str:
    return _probe()[1] or "available"


def render_gsplat(scene: GaussianScene, request: RenderRequest) -> Composited:
    """Render through ``gsplat.rasterization`` (an :class:`adlift.render.api.RenderFn`); same outputs
    and semantics as the torch backend."""
    gsplat = _probe()[0]
    assert gsplat is not None, gsplat_unavailable_reason()
    cameras = request.cameras
    out_device, out_dtype = scene.device, scene.dtype
    device = scene.device if scene.device.type == "cuda" else torch.device("cuda")
    f32 = {"device": device, "dtype": torch.float32}
    n_cam, width, height, n = len(cameras), cameras.width, cameras.height, scene.num_gaussians
    if n == 0:
        zeros = torch.zeros(n_cam, 1, height, width, device=out_device, dtype=out_dtype)
        return Composited(rgb=zeros.expand(n_cam, 3, height, width).clone(), alpha=zeros, depth_sum=zeros.clone(),
                          visible=torch.zeros(n_cam, 0, dtype=torch.bool, device=out_device))  # fmt: skip

    colors, alphas, meta = gsplat.rasterization(
        means=scene.means.to(**f32),
        quats=scene.quats.to(**f32),
        scales=torch.exp(scene.log_scales).to(**f32),
        opacities=torch.sigmoid(scene.opacity_logits).to(**f32),
        colors=scene.sh.to(**f32),  # [N, K, 3]; gsplat uses the first (sh_degree + 1)^2
        viewmats=cameras.viewmats.to(**f32),
        Ks=cameras.Ks.to(**f32),
        width=width,
        height=height,
        near_plane=request.near_plane,
        far_plane=request.far_plane,
        radius_clip=0.0,
        eps2d=EPS2D,
        sh_degree=request.sh_degree,
        packed=False,
        tile_size=16,
        backgrounds=None,
        render_mode="RGB+D",
        rasterize_mode="classic",
    )  # colors [C, H, W, 4] (rgb, accumulated depth), alphas [C, H, W, 1]
    colors = colors.permute(0, 3, 1, 2).to(out_device, out_dtype)  # [C, 4, H, W]
    radii = meta["radii"]  # [C, N, 2] (gsplat >= 1.5) or [C, N] (1.4)
    visible = (radii > 0).all(dim=-1) if radii.dim() == 3 else radii > 0
    return Composited(rgb=colors[:, :3], alpha=alphas.permute(0, 3, 1, 2).to(out_device, out_dtype),
                      depth_sum=colors[:, 3:4], visible=visible.to(out_device))  # fmt: skip
