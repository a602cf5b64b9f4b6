"""Expectation over transformation (EOT): random differentiable purifications (kornia).

A protection that only works on the exact pixels it was optimised for is undone by a JPEG save
or a slight blur. With EOT the adversarial loss is averaged over random transforms of the image,
so its gradient points where the loss stays low after such purification (Athalye et al. 2018).

    eot = EOTConfig(samples=4)
    x_t = random_purification(x, eot, generator)   # [B, 3, H, W] -> [B, 3, H, W], differentiable
"""

from __future__ import annotations

import dataclasses

import torch

from adlift.attacks.purifications import PURIFICATIONS
from adlift.errors import AdLiftError

#: A purification name (see :data:`~adlift.attacks.purifications.PURIFICATIONS`).
Transform = PURIFICATIONS.literal()


@dataclasses.dataclass
class EOTConfig:
    """Random purifications averaged over by the adversarial loss (0 samples = off)."""

    samples: int = 0
    """Transforms drawn per gradient evaluation; 0 turns EOT off (the loss sees the image as is)."""

    transforms: tuple[Transform, ...] = PURIFICATIONS.names()  # type: ignore[valid-type]
    """Purifications to draw from, uniformly; each sample applies one of them at a strength drawn
    uniformly from its range (jpeg quality 50-95, blur sigma 0.5-1.5 px, resize scale 0.5-0.9,
    noise std 0-0.03)."""

    def validate(self) -> None:
        if self.samples < 0:
            raise AdLiftError(f"EOT samples must be >= 0, got {self.samples}")
        if self.samples and not self.transforms:
            raise AdLiftError("EOT is on but no transforms are enabled")
        for name in self.transforms:
            PURIFICATIONS.check(name)


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def random_purification(
    images: torch.Tensor, config: EOTConfig, generator: torch.Generator
) -> tuple[torch.Tensor, str]:
    """A randomly drawn transform of images [B, 3, H, W]: (transformed images, description)."""
    name = config.transforms[int(torch.randint(len(config.transforms), (), generator=generator))]
    spec = PURIFICATIONS.get(name)
    strength = _uniform(*spec.eot_range, generator)
    return spec.apply(images, strength, generator), f"{name}({strength:.3g})"
