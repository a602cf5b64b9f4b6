"""``unet``: the instruction-conditioned noise prediction of the IP2P UNet.

The UNet predicts the noise of (noisy latent of the image, image latent, text of the instruction)
at a random timestep. ``unet_mode="advdm"`` maximises the denoising error (AdvDM, Liang et al. 2023;
the loss is minus the error); ``"sds"`` minimises the score distillation loss, whose gradient skips
the UNet Jacobian (SDS(-), Xue et al. 2024): cheaper, and it pulls the latent toward what the
conditioned model denoises to.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal, Tuple

import torch

from adlift.attacks.losses.base import LossSettings, register_loss
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.attacks.losses.base import AdversarialLoss


@register_loss("unet", help="IP2P UNet noise prediction for the instruction: AdvDM or SDS(-)")
@dataclasses.dataclass
class UnetLossConfig(LossSettings):
    """unet loss: the UNet's noise prediction for the instruction at a random timestep."""

    unet_mode: Literal["advdm", "sds"] = "advdm"
    """advdm maximises the denoising error through the UNet; sds minimises the score distillation
    loss (gradient without the UNet Jacobian; cheaper)."""

    t_range: Tuple[float, float] = (0.02, 0.98)
    """Timesteps are drawn uniformly in this fraction of the training schedule."""

    def validate(self) -> None:
        if self.unet_mode not in ("advdm", "sds"):
            raise AdLiftError(f"unknown unet mode {self.unet_mode!r}; choose advdm or sds")
        lo, hi = self.t_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise AdLiftError(f"t_range must satisfy 0 <= low <= high <= 1, got {self.t_range}")

    def describe(self) -> str:
        return f"unet({self.unet_mode})"

    def compute(self, loss: "AdversarialLoss", x, reference, generator) -> torch.Tensor:
        sf = loss.surface
        b = x.shape[0]
        mean = sf.encode_image(x)  # [B, 4, h, w] unscaled; also the conditioning latent
        z0 = mean * sf.scaling_factor
        lo, hi = self.t_range
        t_lo = min(sf.num_train_timesteps - 1, round(lo * sf.num_train_timesteps))
        t_hi = min(sf.num_train_timesteps - 1, max(t_lo, round(hi * sf.num_train_timesteps)))
        t = torch.randint(t_lo, t_hi + 1, (b,), generator=generator)
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        text = sf.text_embeddings(loss.instruction)
        if self.unet_mode == "advdm":
            zt = sf.add_noise(z0, noise, t)
            eps = sf.predict_noise_conditional(zt, t, mean, text)
            return -(eps.float() - noise.float()).square().flatten(1).mean(1)
        # SDS(-): value = <stopgrad(eps_pred - noise), z0>, so d loss / d z0 = eps_pred - noise.
        with torch.no_grad():
            zt = sf.add_noise(z0.detach(), noise, t)
            eps = sf.predict_noise_conditional(zt, t, mean.detach(), text)
        return ((eps.float() - noise.float()) * z0.float()).flatten(1).sum(1) / z0[0].numel()
