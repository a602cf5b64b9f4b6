"""Rendering: one :func:`render` API over interchangeable backends.

Backends: ``torch`` (pure PyTorch, CPU + GPU, always available), ``gsplat`` (CUDA), and ``cuda``
(our own kernels from ``cuda/``, built on first use; available with a CUDA GPU and CUDA torch).  See :mod:`adlift.render.api`.
"""

from adlift.render.api import (
    BACKENDS,
    Backend,
    RenderOutput,
    available_backends,
    register_backend,
    registered_backends,
    render,
    render_images,
    resolve_backend,
)
from adlift.render.cuda_backend import cuda_available, cuda_unavailable_reason, render_cuda
from adlift.render.gsplat_backend import gsplat_available, gsplat_unavailable_reason, render_gsplat
from adlift.render.images import contact_sheet, save_images
from adlift.render.torch_backend import render_torch

register_backend("torch", render_torch, priority=0, help="pure PyTorch (CPU and GPU; the reference)")
register_backend(
    "gsplat",
    render_gsplat,
    available=gsplat_available,
    priority=10,
    why_unavailable=gsplat_unavailable_reason,
    help="nerfstudio's gsplat CUDA rasteriser",
)
register_backend(
    "cuda",
    render_cuda,
    available=cuda_available,
    priority=20,
    why_unavailable=cuda_unavailable_reason,
    supports_frozen=True,
    help="AdLift's own CUDA kernels (cuda/), with the frozen/trainable split",
)
from adlift.render.options import RenderOptions  # noqa: E402  (after the backends: its choices come from BACKENDS)

__all__ = [
    "BACKENDS",
    "Backend",
    "RenderOptions",
    "RenderOutput",
    "available_backends",
    "contact_sheet",
    "register_backend",
    "registered_backends",
    "render",
    "render_images",
    "resolve_backend",
    "save_images",
]
