"""Expectation over transformation (EOT): random differentiable purifications (kornia).

A protection that only works on the exact pixels it was optimised for is undone by a JPEG save
or a slight blur. With EOT the adversarial loss is averaged over random transforms of the image,
so its gradient points where the loss stays low after such purification (Athalye et al. 2018).

    eot = EOTConfig(samples=4)
    x_t = random_purification(x, eot, generator)   # [B, 3, H, W] -> [B, 3, H, W], differentiable
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F

from adlift.errors import AdLiftError

Transform = Literal["jpeg", "blur", "resize", "noise"]


@dataclasses.dataclass
class EOTConfig:
    """Random purifications averaged over by the adversarial loss (0 samples = off)."""

    samples: int = 0
    """Transforms drawn per gradient evaluation; 0 turns EOT off (the loss sees the image as is)."""

    transforms: tuple[Transform, ...] = ("jpeg", "blur", "resize", "noise")
    """Transforms to draw from, uniformly; each sample applies one of them."""

    jpeg_quality: tuple[float, float] = (50.0, 95.0)
    """Range of the JPEG quality (kornia's differentiable JPEG codec)."""

    blur_sigma: tuple[float, float] = (0.5, 1.5)
    """Range of the Gaussian blur's standard deviation in pixels."""

    resize_scale: tuple[float, float] = (0.5, 0.9)
    """Range of the down-scale factor of a down-then-up resize (bilinear, antialiased down)."""

    noise_std: tuple[float, float] = (0.0, 0.03)
    """Range of the standard deviation of additive Gaussian noise."""

    def validate(self) -> None:
        if self.samples < 0:
            raise AdLiftError(f"EOT samples must be >= 0, got {self.samples}")
        if self.samples and not self.transforms:
            raise AdLiftError("EOT is on but no transforms are enabled")
        bad = set(self.transforms) - {"jpeg", "blur", "resize", "noise"}
        if bad:
            raise AdLiftError(f"unknown EOT transforms {sorted(bad)}; choose from jpeg, blur, resize, noise")
        for name in ("jpeg_quality", "blur_sigma", "resize_scale", "noise_std"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise AdLiftError(f"EOT {name} range must be (low, high) with low <= high, got {(lo, hi)}")
        if not (1.0 <= self.jpeg_quality[0] and self.jpeg_quality[1] <= 100.0):
            raise AdLiftError(f"EOT jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        if not (0.0 < self.resize_scale[0] and self.resize_scale[1] <= 1.0):
            raise AdLiftError(f"EOT resize_scale must lie in (0, 1], got {self.resize_scale}")


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def apply_transform(images: torch.Tensor, name: Transform, strength: float, generator: torch.Generator) -> torch.Tensor:
    """One purification of images [B, 3, H, W] in [0, 1] at ``strength`` (quality, sigma, scale or std).

    Differentiable; ``generator`` draws the noise of the ``noise`` transform.
    """
    import kornia

    if name == "jpeg":
        q = torch.full((images.shape[0],), float(strength), device=images.device, dtype=images.dtype)
        return kornia.enhance.jpeg_codec_differentiable(images.clamp(0.0, 1.0), q)
    if name == "blur":
        sigma = float(strength)
        k = 2 * max(1, int(round(3 * sigma))) + 1
        return kornia.filters.gaussian_blur2d(images, (k, k), (sigma, sigma), border_type="reflect")
    if name == "resize":
        h, w = images.shape[-2:]
        size = (max(1, round(h * strength)), max(1, round(w * strength)))
        small = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if name == "noise":
        noise = torch.randn(images.shape, generator=generator).to(images)
        return (images + float(strength) * noise).clamp(0.0, 1.0)
    raise AdLiftError(f"unknown EOT transform {name!r}")


def random_purification(
    images: torch.Tensor, config: EOTConfig, generator: torch.Generator
) -> tuple[torch.Tensor, str]:
    """A randomly drawn transform of images [B, 3, H, W]: (transformed images, description)."""
    name = config.transforms[int(torch.randint(len(config.transforms), (), generator=generator))]
    ranges = {
        "jpeg": config.jpeg_quality,
        "blur": config.blur_sigma,
        "resize": config.resize_scale,
        "noise": config.noise_std,
    }
    strength = _uniform(*ranges[name], generator)
    return apply_transform(images, name, strength, generator), f"{name}({strength:.3g})"
