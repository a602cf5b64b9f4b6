"""``pipeline``: PhotoGuard's diffusion attack through the real editing loop.

Run ``pipeline_steps`` DDIM steps of the editing loop (three-way guidance, from seeded noise) with
gradient checkpointing, decode, and take the mean squared distance of the edit to the target image
(gray, black or a user image).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import torch
from torch.utils.checkpoint import checkpoint

from adlift.attacks.losses.base import LossSettings, register_loss
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.attacks.losses.base import AdversarialLoss


@register_loss("pipeline", help="k checkpointed denoising steps of the real edit, then distance to a target image")
@dataclasses.dataclass
class PipelineLossConfig(LossSettings):
    """pipeline loss: backpropagate through a few denoising steps of the edit, toward a target image."""

    target: Literal["gray", "zero", "image"] = "gray"
    """The image the edit is pulled toward: gray, zero (black) or image (--loss.target-image)."""

    target_image: Optional[Path] = None
    """Image file used when target is "image" (resized to each input's size)."""

    pipeline_steps: int = 4
    """Denoising steps backpropagated through (PhotoGuard used 4)."""

    guidance_scale: float = 7.5
    """Text guidance of the simulated edit."""

    image_guidance_scale: float = 1.5
    """Image guidance of the simulated edit."""

    gradient_checkpointing: bool = True
    """Recompute each denoising step in the backward pass instead of storing it."""

    def validate(self) -> None:
        if self.target not in ("gray", "zero", "image"):
            raise AdLiftError(f"the pipeline loss needs target gray, zero or image, got {self.target!r}")
        if self.target == "image" and self.target_image is None:
            raise AdLiftError("target 'image' needs --loss.target-image PATH")
        if self.pipeline_steps < 1:
            raise AdLiftError(f"pipeline_steps must be >= 1, got {self.pipeline_steps}")

    def describe(self) -> str:
        return f"pipeline({self.target},{self.pipeline_steps} steps)"

    def compute(self, loss: "AdversarialLoss", x, reference, generator) -> torch.Tensor:
        sf = loss.surface
        image_latents = sf.encode_image(x)  # [B, 4, h, w]
        text = sf.text_embeddings(loss.instruction)
        uncond = sf.empty_text_embeddings()
        latents = torch.randn(image_latents.shape, generator=generator).to(image_latents)
        n = sf.num_train_timesteps
        ts = [round((n - 1) * (self.pipeline_steps - i) / self.pipeline_steps) for i in range(self.pipeline_steps)]

        def step(lat: torch.Tensor, img: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
            eps = sf.predict_noise(lat, t, img, text, self.guidance_scale, self.image_guidance_scale, uncond)
            return sf.ddim_step(lat, eps, t, t_prev)

        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            if self.gradient_checkpointing and torch.is_grad_enabled():
                latents = checkpoint(step, latents, image_latents, t, t_prev, use_reentrant=False)
            else:
                latents = step(latents, image_latents, t, t_prev)
        edited = sf.decode_latents(latents, tuple(x.shape[-2:])).float()  # [B, 3, H, W]
        target = loss.target_pixels(tuple(x.shape[-2:])).float()
        return (edited - target).square().flatten(1).mean(1)
