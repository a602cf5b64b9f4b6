"""Image purifications, the one registry shared by EOT (random strengths, during protection) and
robustness evaluation (fixed strengths): JPEG, blur, down-up resize, noise.

Each :class:`PurificationSpec` says how to apply the transform at a strength, which strengths are
valid, how a strength is written in a token (``jpeg75``, ``blur1.0``, ``resize0.5``, ``noise4``)
and the strength range EOT draws from. To add one: a function ``(images, strength, generator) ->
images`` and one ``PURIFICATIONS.add(...)`` below; EOT, ``--purify`` and the docs pick it up.

Note that kornia's JPEG is a differentiable model of JPEG (standard quantisation tables and 4:2:0
chroma subsampling, with a polynomial rounding), not a byte-exact libjpeg round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from adlift.registry import Registry

#: (images [B, 3, H, W] in [0, 1], strength, generator or None) -> images [B, 3, H, W]; differentiable.
ApplyFn = Callable[[torch.Tensor, float, "torch.Generator | None"], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PurificationSpec:
    """How one purification is applied, checked, named and randomised."""

    apply: ApplyFn
    """The transform at a strength (differentiable)."""
    valid: Callable[[float], bool]
    """Whether a strength is allowed."""
    strength_help: str
    """What the strength is and its range, for errors and docs."""
    eot_range: tuple[float, float]
    """Strengths EOT draws from, uniformly."""
    token_scale: float = 1.0
    """Token value = strength x token_scale (noise is written in 8-bit levels: noise4 = std 4/255)."""
    token_format: str = "{:.6g}"
    """How the token value is written after the name."""

    def token(self, name: str, strength: float) -> str:
        """Canonical token, e.g. ``jpeg75``, ``blur1.0``, ``noise4``."""
        return name + self.token_format.format(float(strength) * self.token_scale)


def _jpeg(images: torch.Tensor, quality: float, generator: torch.Generator | None) -> torch.Tensor:
    import kornia

    q = torch.full((images.shape[0],), float(quality), device=images.device, dtype=images.dtype)
    return kornia.enhance.jpeg_codec_differentiable(images.clamp(0.0, 1.0), q)


def _blur(images: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    import kornia

    k = 2 * max(1, int(round(3 * sigma))) + 1
    return kornia.filters.gaussian_blur2d(images, (k, k), (float(sigma), float(sigma)), border_type="reflect")


def _resize(images: torch.Tensor, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    h, w = images.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def _noise(images: torch.Tensor, std: float, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator).to(images)
    return (images + float(std) * noise).clamp(0.0, 1.0)


#: Every purification, by name (the order is the order shown to users).
PURIFICATIONS: Registry[PurificationSpec] = Registry("purification")
PURIFICATIONS.add(
    "jpeg",
    PurificationSpec(_jpeg, lambda s: 1 <= s <= 100, "JPEG quality in [1, 100]", (50.0, 95.0)),
    "JPEG re-encoding (kornia's differentiable codec)",
)
PURIFICATIONS.add(
    "blur",
    PurificationSpec(_blur, lambda s: s > 0, "Gaussian blur sigma in pixels (> 0)", (0.5, 1.5), token_format="{}"),
    "Gaussian blur",
)
PURIFICATIONS.add(
    "resize",
    PurificationSpec(_resize, lambda s: 0 < s <= 1, "down-scale factor in (0, 1]", (0.5, 0.9), token_format="{}"),
    "bilinear down-then-up resize (antialiased down)",
)
PURIFICATIONS.add(
    "noise",
    PurificationSpec(_noise, lambda s: 0 <= s <= 1, "noise std in [0, 1] (token in 8-bit levels)", (0.0, 0.03), 255.0),
    "additive Gaussian noise",
)


def apply_purification_kind(
    images: torch.Tensor, name: str, strength: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Purification ``name`` of images [B, 3, H, W] at ``strength``; differentiable."""
    return PURIFICATIONS.get(name).apply(images, strength, generator)
