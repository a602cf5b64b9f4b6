"""``encoder``: PhotoGuard's encoder attack (Salman et al. 2023) on the VAE latent IP2P conditions on.

IP2P conditions every denoising step on the VAE latent of the input (``latent_dist.mean``).
``target="gray" | "zero" | "image"``: mean squared distance of that latent to the latent of a
mid-gray image, to the zero latent, or to the latent of a user image, so the editor "sees" the
target instead of the photo. ``target="away"``: minus the squared distance to the clean image's
latent (needs the clean ``reference``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import torch

from adlift.attacks.losses.base import LossSettings, register_loss
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.attacks.losses.base import AdversarialLoss


@register_loss("encoder", help="VAE latent towards a target or away from the clean latent (PhotoGuard)")
@dataclasses.dataclass
class EncoderLossConfig(LossSettings):
    """encoder loss: pull the VAE latent toward a target, or push it away from the clean latent."""

    target: Literal["gray", "zero", "image", "away"] = "gray"
    """gray (a mid-gray image), zero (the zero latent), image (--loss.target-image), or away (push the
    latent away from the clean image's)."""

    target_image: Optional[Path] = None
    """Image file used when target is "image" (resized to each input's size)."""

    def validate(self) -> None:
        if self.target not in ("gray", "zero", "image", "away"):
            raise AdLiftError(f"unknown encoder target {self.target!r}; choose gray, zero, image or away")
        if self.target == "image" and self.target_image is None:
            raise AdLiftError("target 'image' needs --loss.target-image PATH")

    def describe(self) -> str:
        return f"encoder({self.target})"

    @property
    def needs_reference(self) -> bool:
        return self.target == "away"

    def compute(self, loss: "AdversarialLoss", x, reference, generator) -> torch.Tensor:
        lat = loss.surface.encode_image(x).float()  # [B, 4, h, w]
        if self.target == "away":
            if reference is None:
                raise AdLiftError("the encoder loss with target 'away' needs the clean reference images")
            with torch.no_grad():
                clean = loss.surface.encode_image(reference).float()
            return -(lat - clean).square().flatten(1).mean(1)
        target = loss.target_latent(tuple(x.shape[-2:]))
        return (lat - target).square().flatten(1).mean(1)
