"""``pipeline``: PhotoGuard's diffusion attack through the real editing loop.

Run ``pipeline_steps`` DDIM steps of the editing loop (three-way guidance, from seeded noise) with
gradient checkpointing, decode, and take the mean squared distance of the edit to the target image
(gray, black or a user image). The two halves, :func:`unrolled_edit` (the steps) and
:func:`target_distance` (decode and compare), are shared with the ``dge`` loss (:mod:`.dge`), which runs
the same steps with DGE's joint multi-view attention installed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
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
            raise AdLiftError(f"the {self.kind} loss needs target gray, zero or image, got {self.target!r}")
        if self.target == "image" and self.target_image is None:
            raise AdLiftError("target 'image' needs --loss.target-image PATH")
        if self.pipeline_steps < 1:
            raise AdLiftError(f"pipeline_steps must be >= 1, got {self.pipeline_steps}")

    def describe(self) -> str:
        return f"pipeline({self.target},{self.pipeline_steps} steps)"

    def compute(self, loss: "AdversarialLoss", x, reference, generator) -> torch.Tensor:
        latents = unrolled_edit(loss, loss.surface.encode_image(x), generator, self)  # [B, 4, h, w]
        return target_distance(loss, latents, tuple(x.shape[-2:]))


def unrolled_edit(
    loss: "AdversarialLoss",
    image_latents: torch.Tensor,  # [B, 4, h, w] conditioning latents (``encode_image``)
    generator: torch.Generator,
    config: PipelineLossConfig,
    step_context: Callable[[], AbstractContextManager] = nullcontext,
) -> torch.Tensor:
    """The final latents [B, 4, h, w] of ``config.pipeline_steps`` DDIM steps of the guided edit, from noise
    drawn from ``generator`` (one draw of shape [B, 4, h, w]), differentiable w.r.t. ``image_latents``.

    Every UNet pass runs inside a fresh ``step_context()`` -- also when gradient checkpointing recomputes
    a step in the backward pass, after this function has returned (the ``dge`` loss installs its
    attention processors this way)."""
    sf = loss.surface
    text = sf.text_embeddings(loss.instruction)
    uncond = sf.empty_text_embeddings()
    latents = torch.randn(image_latents.shape, generator=generator).to(image_latents)
    n = sf.num_train_timesteps
    ts = [round((n - 1) * (config.pipeline_steps - i) / config.pipeline_steps) for i in range(config.pipeline_steps)]

    def step(lat: torch.Tensor, img: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        with step_context():
            eps = sf.predict_noise(lat, t, img, text, config.guidance_scale, config.image_guidance_scale, uncond)
        return sf.ddim_step(lat, eps, t, t_prev)

    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        if config.gradient_checkpointing and torch.is_grad_enabled():
            latents = checkpoint(step, latents, image_latents, t, t_prev, use_reentrant=False)
        else:
            latents = step(latents, image_latents, t, t_prev)
    return latents


def target_distance(
    loss: "AdversarialLoss",
    latents: torch.Tensor,  # [B, 4, h, w] final latents of the simulated edit
    size: tuple[int, int],  # (H, W) of the edited images
) -> torch.Tensor:
    """Mean squared distance [B] (float32) of the decoded edit to the loss's target image."""
    edited = loss.surface.decode_latents(latents, size).float()  # [B, 3, H, W]
    target = loss.target_pixels(size).float()
    return (edited - target).square().flatten(1).mean(1)
