"""The few viser calls whose API differs between 0.2.7 (nerfstudio 1.1.5's pin) and 1.x.

=======================  =====================================  ======================================
what                     viser >= 1.0                           viser 0.2.7
=======================  =====================================  ======================================
Gaussian splats          ``scene.add_gaussian_splats``          ``scene._add_gaussian_splats``
                                                                (experimental); point cloud with
                                                                ``points=True`` or if neither exists
image in the GUI         ``gui.add_image``                      markdown with a data: URL image
"Reset view" pose        ``server.initial_camera``              (not available: set per client)
=======================  =====================================  ======================================

Everything else the viewer uses (frustums with ``on_click``, client cameras, folders, buttons,
dropdowns, sliders, progress bars, markdown) has the same keyword API in both.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np

from adlift.errors import AdLiftError
from adlift.scene import GaussianScene

#: The viser versions this viewer supports (0.2.7 and 1.1.1 are tested).
SUPPORTED_RANGE = ">=0.2.7,<2"
MIN_VERSION = (0, 2, 7)


def import_viser():
    """The viser module, or AdLiftError saying how to install it (or that the version is too old)."""
    try:
        import viser
    except ImportError:
        raise AdLiftError(
            "the viewer needs viser: pip install 'adlift[viewer]' (or pip install 'viser>=0.2.7')"
        ) from None
    version = viser_version(viser)
    if version < MIN_VERSION or version[0] >= 2:
        raise AdLiftError(
            f"viser {getattr(viser, '__version__', '?')} is not supported; install viser{SUPPORTED_RANGE}"
        )
    return viser


def viser_version(module=None) -> tuple[int, int, int]:
    """viser's version as a tuple of three ints (0, 0, 0 if unknown)."""
    if module is None:
        import viser as module
    text = getattr(module, "__version__", None)
    if text is None:
        from importlib.metadata import version

        text = version("viser")
    parts = [int(m) for m in re.findall(r"\d+", text)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def splat_arrays(scene: GaussianScene) -> dict[str, np.ndarray]:
    """What viser's splat renderer takes: centers [N, 3], covariances [N, 3, 3] (R S^2 R^T), rgbs [N, 3]
    (the view-independent DC colour) and opacities [N, 1], all float32."""
    import torch

    from adlift.rotations import quat_to_rotmat

    with torch.no_grad():
        s = scene.detach().to("cpu", torch.float32)
        m = quat_to_rotmat(s.quats) * s.scales[:, None, :]  # R S
        cov = m @ m.transpose(1, 2)
        return {
            "centers": s.means.numpy(),
            "covariances": cov.numpy(),
            "rgbs": s.rgb.numpy(),
            "opacities": s.opacities[:, None].numpy(),
        }


def add_scene(server, name: str, scene: GaussianScene, *, points: bool = False, visible: bool = True,
              point_size: float | None = None):  # fmt: skip
    """Draw ``scene`` under ``name``: splats where this viser can, else a point cloud of the means.

    Returns (handle, "splats" | "points").
    """
    arrays = splat_arrays(scene)
    api = server.scene
    add = None if points else (getattr(api, "add_gaussian_splats", None) or getattr(api, "_add_gaussian_splats", None))
    if add is not None:
        handle = add(name, centers=arrays["centers"], covariances=arrays["covariances"], rgbs=arrays["rgbs"],
                     opacities=arrays["opacities"], visible=visible)  # fmt: skip
        return handle, "splats"
    if point_size is None:
        point_size = float(np.median(scene.scales.detach().cpu().amax(-1).numpy())) * 3.0
    keep = arrays["opacities"][:, 0] > 0.05
    handle = api.add_point_cloud(name, points=arrays["centers"][keep], colors=arrays["rgbs"][keep],
                                 point_size=point_size, visible=visible)  # fmt: skip
    return handle, "points"


def call_with_supported(fn, *args, **kwargs):
    """Call ``fn`` with only the keyword arguments its signature accepts (newer viser adds options)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD and p.name != "_deprecated_kwargs" for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class GuiImage:
    """An image in the control panel that can be replaced: ``gui.add_image`` where it exists,
    otherwise markdown holding a data: URL (viser 0.2.x)."""

    def __init__(self, gui, image: np.ndarray, *, label: str | None = None, quality: int = 90):
        self.quality = quality
        self._markdown = None
        self._handle = None
        if hasattr(gui, "add_image"):
            self._handle = gui.add_image(image, label=label, format="jpeg", jpeg_quality=quality)
        else:
            # image_root is only there to keep 0.2.x from warning about a relative path.
            self._markdown = gui.add_markdown(self._markdown_for(image), image_root=Path("."))
        self.image = image

    @property
    def uses_markdown(self) -> bool:
        return self._markdown is not None

    def _markdown_for(self, image: np.ndarray) -> str:
        data = base64.b64encode(encode_jpeg(image, self.quality)).decode("ascii")
        return f"![comparison](data:image/jpeg;base64,{data})"

    def update(self, image: np.ndarray) -> None:
        self.image = image
        if self._handle is not None:
            self._handle.image = image
        else:
            self._markdown.content = self._markdown_for(image)


def set_initial_camera(server, *, position, look_at, up, fov: float) -> None:
    """Make the given pose the one new clients start from and "Reset view" returns to (viser >= 1.0)."""
    initial = getattr(server, "initial_camera", None)
    if initial is None:
        return
    initial.position = tuple(float(v) for v in position)
    initial.look_at = tuple(float(v) for v in look_at)
    initial.up = tuple(float(v) for v in up)
    initial.fov = float(fov)
