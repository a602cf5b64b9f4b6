"""The render options every command shares: image size, backend, device, background.

Commands nest :class:`RenderOptions` without a prefix (``--width``, ``--backend``, ...), so the
names, defaults and help text are written once, here::

    @dataclasses.dataclass
    class RenderCommand:
        render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional, Tuple

import torch

from adlift.errors import AdLiftError
from adlift.render.api import BACKENDS

if TYPE_CHECKING:
    from adlift.cameras import Cameras


@dataclasses.dataclass
class RenderOptions:
    """How views are rendered: size, rasteriser, device and background."""

    width: Optional[int] = None
    """Render width in pixels (intrinsics rescaled); with only one of width/height the aspect is kept."""

    height: Optional[int] = None
    """Render height in pixels (intrinsics rescaled)."""

    backend: BACKENDS.literal("auto") = "auto"  # type: ignore[valid-type]
    """Rasteriser: auto = our CUDA kernels if they build, else gsplat on CUDA, else pure PyTorch."""

    device: Optional[str] = None
    """Torch device (cpu, cuda:0); default: cuda if available, else cpu."""

    background: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour R G B in [0, 1]."""

    def validate(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise AdLiftError(f"--{name} must be >= 1, got {value}")
        if len(self.background) != 3 or any(not 0.0 <= c <= 1.0 for c in self.background):
            raise AdLiftError(f"--background must be three colours in [0, 1], got {self.background}")
        if self.backend != "auto":
            BACKENDS.check(self.backend)

    def torch_device(self) -> torch.device:
        """The chosen device, or cuda when available, else cpu."""
        try:
            return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError as e:
            raise AdLiftError(f"--device {self.device!r} is not a torch device ({e})") from None

    def resize(self, cameras: "Cameras") -> "Cameras":
        """``cameras`` rescaled to ``width`` / ``height`` (unchanged when both are None)."""
        if self.width is None and self.height is None:
            return cameras
        return cameras.resized(width=self.width, height=self.height)
