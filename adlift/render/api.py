"""One render() for every backend, and the backend registry.

    out = render(scene, cameras)                 # backend="auto"
    out.rgb    # [C, 3, H, W]
    out.alpha  # [C, 1, H, W] accumulated opacity, 1 - final transmittance
    out.depth  # [C, 1, H, W] expected depth sum_i w_i z_i / alpha (0 where alpha = 0)

Semantics shared by every backend (they are tested against each other):

* pixel (i, j) is sampled at (i + 0.5, j + 0.5) in K's coordinates; OpenCV camera axes;
* EWA projection with gsplat's frustum-clamped Jacobian, 0.3 px^2 low-pass dilation, no
  antialiasing compensation; Gaussians with depth outside [near_plane, far_plane] are culled;
* colour ``max(SH(view dir) + 0.5, 0)`` with the view direction from the camera centre to the mean;
* front-to-back compositing per 16x16 tile in depth order, ``alpha = min(0.999, o exp(-sigma))``,
  ``alpha < 1/255`` skipped, a pixel ends before the Gaussian that would take its transmittance to
  ``<= 1e-4`` (gsplat's exact rule); the background is added as ``T_final * background``;
* depth is z in camera space, blended as ``sum w_i z_i`` and divided by alpha (clamped at 1e-10):
  gsplat's "ED" mode.

``rgb`` is not clamped: it lies in [0, 1] whenever the SH colours and the background do (colours
above 1 are possible with SH, exactly as in 3DGS/gsplat, and clamping would cut gradients).

A backend is one render function (:class:`RenderFn`: scene + :class:`RenderRequest` (cameras, SH
degree, depth range, frozen set) -> :class:`Composited`, the images before background and depth
normalisation) registered with :func:`register_backend`. :func:`render` validates the arguments,
picks the backend and finishes the images (:func:`finish`) for all of them. "auto" picks the
available one with the highest priority: ``cuda`` (our kernels, when built) > ``gsplat`` (CUDA + gsplat importable) >
``torch`` (always).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from adlift.cameras import Cameras
from adlift.errors import AdLiftError
from adlift.registry import Registry
from adlift.scene import GaussianScene


@dataclasses.dataclass
class RenderOutput:
    """Rendered images of C cameras (float tensors in the scene's dtype, on its device)."""

    rgb: torch.Tensor  # [C, 3, H, W]
    alpha: torch.Tensor  # [C, 1, H, W]
    depth: torch.Tensor  # [C, 1, H, W] expected depth (normalised by alpha)
    visible: torch.Tensor  # [C, N] bool: Gaussian reaches the image (not culled) in that view
    backend: str  # name of the backend that rendered


@dataclasses.dataclass
class Composited:
    """What a backend returns: the composited, *unfinished* images of C cameras.

    :func:`finish` turns it into a :class:`RenderOutput` (background, expected depth) in one place,
    so every backend gets the same finishing."""

    rgb: torch.Tensor  # [C, 3, H, W] sum_i w_i c_i, no background
    alpha: torch.Tensor  # [C, 1, H, W] 1 - final transmittance
    depth_sum: torch.Tensor  # [C, 1, H, W] sum_i w_i z_i (not yet divided by alpha)
    visible: torch.Tensor  # [C, N] bool (N: the Gaussians drawn; frozen rows first)


@dataclasses.dataclass(frozen=True)
class RenderRequest:
    """What :func:`render` asks a backend to draw, after validating it."""

    cameras: Cameras  # C cameras (any device; the backend moves what it needs)
    sh_degree: int  # SH degree to evaluate, 0..scene.sh_degree
    near_plane: float = 0.01  # depth range (camera z) of the Gaussians drawn
    far_plane: float = 1e10
    # Gaussians drawn with the scene but without gradients (their rows first in ``visible``); only given
    # to backends registered with ``supports_frozen=True`` (the others get the concatenation).
    frozen: GaussianScene | None = None


class RenderFn(Protocol):
    """A backend's render function: ``render(scene, request) -> Composited`` in the scene's dtype and
    on its device (the reference one is :func:`adlift.render.torch_backend.render_torch`).
    Validation, the background and depth normalisation are done by :func:`render`, not here."""

    def __call__(self, scene: GaussianScene, request: RenderRequest, /) -> Composited: ...


#: Floor of alpha in the expected depth ``depth_sum / alpha`` (gsplat's "ED" mode).
DEPTH_ALPHA_FLOOR = 1e-10


def finish(images: Composited, background: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb [C, 3, H, W] with ``(1 - alpha) * background`` added, expected depth [C, 1, H, W]).

    background: None (black) or [C, 3]. The one place every backend's images are finished."""
    rgb = images.rgb
    if background is not None:
        rgb = rgb + (1.0 - images.alpha) * background.to(device=rgb.device, dtype=rgb.dtype)[:, :, None, None]
    return rgb, images.depth_sum / images.alpha.clamp_min(DEPTH_ALPHA_FLOOR)


@dataclasses.dataclass
class Backend:
    """A registered renderer."""

    name: str
    render: RenderFn
    available: Callable[[], bool]
    """Cheap check (import + device), called at dispatch time."""
    priority: int = 0
    """Higher wins for backend="auto"."""
    why_unavailable: Callable[[], str] = lambda: "not available on this machine"
    """One-line reason shown when the backend was asked for but cannot run."""
    supports_frozen: bool = False
    """Its render function handles ``request.frozen`` (a set drawn without gradients, e.g. cached);
    otherwise :func:`render` concatenates the detached frozen set in front of the scene."""


#: Every render backend, registered in :mod:`adlift.render` (the one place its name is written).
BACKENDS: Registry[Backend] = Registry("render backend")


def register_backend(
    name: str,
    render: RenderFn,
    *,
    available: Callable[[], bool] = lambda: True,
    priority: int = 0,
    why_unavailable: Callable[[], str] | None = None,
    supports_frozen: bool = False,
    help: str = "",
) -> None:
    """Add (or replace) a backend."""
    backend = Backend(
        name, render, available, priority, why_unavailable or (lambda: "not available on this machine"), supports_frozen
    )
    BACKENDS.add(name, backend, help, replace=True)


def registered_backends() -> list[str]:
    """Names of all registered backends, best first."""
    return [b.name for b in sorted((b for _, b in BACKENDS.items()), key=lambda b: -b.priority)]


def available_backends() -> list[str]:
    """Names of the backends that can run here, best first (what "auto" chooses from)."""
    return [name for name in registered_backends() if BACKENDS.get(name).available()]


def resolve_backend(name: str = "auto") -> Backend:
    """The backend ``name`` stands for; AdLiftError if it is unknown or cannot run here."""
    if name == "auto":
        avail = available_backends()
        if not avail:  # torch is always registered; only reachable if someone unregistered it
            raise AdLiftError("no render backend is available")
        return BACKENDS.get(avail[0])
    if name not in BACKENDS:
        known = ", ".join(["auto"] + registered_backends())
        raise AdLiftError(f"unknown render backend {name!r}; choose one of: {known}")
    backend = BACKENDS.get(name)
    if not backend.available():
        raise AdLiftError(f"render backend {name!r} is unavailable: {backend.why_unavailable()}")
    return backend


def _background(background, n_cam: int, device, dtype) -> torch.Tensor | None:
    """None or a colour [3] / per-camera colours [C, 3] -> [C, 3] tensor."""
    if background is None:
        return None
    bg = torch.as_tensor(background, dtype=dtype).to(device=device, dtype=dtype)
    if bg.shape == (3,):
        bg = bg.expand(n_cam, 3)
    if bg.shape != (n_cam, 3):
        raise AdLiftError(f"background must be a colour of shape [3] or [C={n_cam}, 3], got {list(bg.shape)}")
    return bg


def render(
    scene: GaussianScene,
    cameras: Cameras,
    *,
    backend: str = "auto",
    background: torch.Tensor | Sequence[float] | None = None,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    frozen: GaussianScene | None = None,
) -> RenderOutput:
    """Render ``scene`` from every camera; see the module docstring for the exact semantics.

    Args:
        scene: the Gaussians (any float dtype for ``torch``; ``gsplat`` and ``cuda`` render in float32).
            With ``frozen``, this is the trainable set: ``render(safeguard, cams, frozen=raw)``.
        cameras: C cameras, moved to the scene's device.
        backend: "auto", "torch", "gsplat" or any registered name.
        background: None (black) or an RGB colour [3] (tuple or tensor), or one per camera [C, 3].
        sh_degree: SH degree to evaluate; None uses the scene's, a lower one truncates.
        near_plane, far_plane: depth range (camera z) of the Gaussians that are drawn.
        frozen: Gaussians drawn together with ``scene`` that receive no gradients. The image is that
            of ``GaussianScene.concat([frozen, scene])`` and ``visible`` has Nf + N columns, frozen
            first. The ``cuda`` backend caches the frozen projection per camera and skips all
            gradient work for it; other backends concatenate.
    """
    if not isinstance(scene, GaussianScene):
        raise AdLiftError(f"render() needs a GaussianScene, got {type(scene).__name__}")
    if not isinstance(cameras, Cameras):
        raise AdLiftError(f"render() needs Cameras, got {type(cameras).__name__}")
    degree = scene.sh_degree if sh_degree is None else int(sh_degree)
    if not 0 <= degree <= scene.sh_degree:
        raise AdLiftError(f"sh_degree={sh_degree} is outside 0..{scene.sh_degree} (the scene's SH degree)")
    if not 0 <= near_plane < far_plane:
        raise AdLiftError(f"need 0 <= near_plane < far_plane, got near={near_plane}, far={far_plane}")
    if frozen is not None:
        if not isinstance(frozen, GaussianScene):
            raise AdLiftError(f"render(frozen=...) needs a GaussianScene, got {type(frozen).__name__}")
        if frozen.sh_degree < degree:
            raise AdLiftError(f"the frozen set has SH degree {frozen.sh_degree}, below the {degree} rendered")
    chosen = resolve_backend(backend)
    bg = _background(background, len(cameras), scene.device, scene.dtype)
    request = RenderRequest(cameras, degree, near_plane, far_plane)
    if frozen is not None and chosen.supports_frozen:
        request = dataclasses.replace(request, frozen=frozen)
    elif frozen is not None:
        scene = GaussianScene.concat([frozen.detach().to(device=scene.device, dtype=scene.dtype), scene])
    images = chosen.render(scene, request)
    rgb, depth = finish(images, bg)
    return RenderOutput(rgb, images.alpha, depth, images.visible, chosen.name)


def render_images(
    scene: GaussianScene, cameras: Cameras, *, progress: str | None = None, backend: str = "auto", background=None
) -> torch.Tensor:
    """Images [C, 3, H, W] clamped to [0, 1], on the scene's device: one view at a time (memory
    bounded by one image), without gradients. ``progress``: a tqdm description, or None for no bar;
    ``backend``, ``background``: as for :func:`render`."""
    from tqdm.auto import tqdm

    images = []
    with torch.no_grad():
        for i in tqdm(range(len(cameras)), desc=progress, unit="view", disable=progress is None):
            rgb = render(scene, cameras[i].to(scene.device), backend=backend, background=background).rgb
            images.append(rgb.clamp(0.0, 1.0))
    return torch.cat(images)
