"""Adversarial losses against InstructPix2Pix editors (white-box, through :class:`IP2PSurface`).

Every loss maps images [B, 3, H, W] in [0, 1] to one value per image [B]; **lower means better
protected**, so every attack minimises. Three families (``LossConfig.kind``):

``encoder`` (PhotoGuard's encoder attack, Salman et al. 2023)
    IP2P conditions every denoising step on the VAE latent of the input (``latent_dist.mean``).
    ``target="gray" | "zero" | "image"``: mean squared distance of that latent to the latent of a
    mid-gray image, to the zero latent, or to the latent of a user image, so the editor "sees"
    the target instead of the photo. ``target="away"``: minus the squared distance to the clean
    image's latent (needs the clean ``reference``).
``unet`` (instruction-conditioned)
    The IP2P UNet's noise prediction for (noisy latent of the image, image latent, text of the
    instruction) at a random timestep. ``unet_mode="advdm"`` maximises the denoising error
    (AdvDM, Liang et al. 2023; the loss is minus the error); ``"sds"`` minimises the score
    distillation loss, whose gradient skips the UNet Jacobian (SDS(-), Xue et al. 2024): cheaper,
    and it pulls the latent toward what the conditioned model denoises to.
``pipeline`` (PhotoGuard's diffusion attack)
    Run ``pipeline_steps`` DDIM steps of the real editing loop (three-way guidance, from seeded
    noise) with gradient checkpointing, decode, and take the mean squared distance of the edit to
    the target image (gray, black or a user image).

Randomness (timesteps, noise, EOT draws) comes from a ``torch.Generator`` the caller passes, so
an attack is deterministic for a seed. :meth:`AdversarialLoss.evaluate` uses a fixed seed and no
EOT, so the losses of a raw and a protected image are paired and comparable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from adlift.attacks.eot import EOTConfig, random_purification
from adlift.image_metrics import check_images
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.editors.ip2p import IP2PSurface

LossKind = Literal["encoder", "unet", "pipeline"]
LOSS_KINDS: tuple[str, ...] = ("encoder", "unet", "pipeline")


@dataclasses.dataclass
class LossConfig:
    """Which adversarial loss to minimise, and its settings."""

    kind: LossKind = "encoder"
    """encoder (VAE latent, PhotoGuard), unet (noise prediction, AdvDM/SDS), pipeline (k denoising steps)."""

    target: Literal["gray", "zero", "image", "away"] = "gray"
    """encoder/pipeline: pull toward a mid-gray image, the zero latent (black for pipeline) or
    --target-image; encoder only: "away" pushes the latent away from the clean image's."""

    target_image: Path | None = None
    """Image file used when target is "image" (resized to each input's size)."""

    unet_mode: Literal["advdm", "sds"] = "advdm"
    """unet: advdm maximises the denoising error through the UNet; sds minimises the score
    distillation loss (gradient without the UNet Jacobian; cheaper)."""

    t_range: tuple[float, float] = (0.02, 0.98)
    """unet: timesteps are drawn uniformly in this fraction of the training schedule."""

    pipeline_steps: int = 4
    """pipeline: denoising steps backpropagated through (PhotoGuard used 4)."""

    guidance_scale: float = 7.5
    """pipeline: text guidance of the simulated edit."""

    image_guidance_scale: float = 1.5
    """pipeline: image guidance of the simulated edit."""

    gradient_checkpointing: bool = True
    """pipeline: recompute each denoising step in the backward pass instead of storing it."""

    eot: EOTConfig = dataclasses.field(default_factory=EOTConfig)
    """Expectation over random purifications (JPEG, blur, resize, noise); off by default."""

    eval_seed: int = 1234
    """Seed of the fixed noise/timesteps :meth:`AdversarialLoss.evaluate` uses (paired comparisons)."""

    def validate(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise AdLiftError(f"unknown loss {self.kind!r}; choose one of {', '.join(LOSS_KINDS)}")
        if self.target == "image" and self.target_image is None:
            raise AdLiftError("target 'image' needs --target-image PATH")
        if self.target == "away" and self.kind == "pipeline":
            raise AdLiftError("target 'away' applies to the encoder loss; the pipeline loss needs gray, zero or image")
        lo, hi = self.t_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise AdLiftError(f"t_range must satisfy 0 <= low <= high <= 1, got {self.t_range}")
        if self.pipeline_steps < 1:
            raise AdLiftError(f"pipeline_steps must be >= 1, got {self.pipeline_steps}")
        self.eot.validate()

    def describe(self) -> str:
        """A short label, e.g. ``encoder(gray)`` or ``unet(advdm)``."""
        if self.kind == "unet":
            detail = self.unet_mode
        elif self.kind == "pipeline":
            detail = f"{self.target},{self.pipeline_steps} steps"
        else:
            detail = self.target
        eot = f"+eot{self.eot.samples}" if self.eot.samples else ""
        return f"{self.kind}({detail}){eot}"


def load_target_image(path: Path) -> torch.Tensor:
    """An RGB image file as [1, 3, H, W] float in [0, 1]; AdLiftError if it cannot be read."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as e:
        raise AdLiftError(f"{path}: cannot read this image ({e.__class__.__name__}); give a PNG or JPEG file") from None
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


class AdversarialLoss:
    """A loss of :class:`LossConfig` bound to an editor surface and an instruction.

    ``loss(images, reference, generator)`` -> [B] (differentiable; one EOT draw when EOT is on);
    :meth:`gradient` averages over EOT samples; :meth:`evaluate` is the paired, noise-fixed value.
    """

    def __init__(self, surface: IP2PSurface, instruction: str, config: LossConfig | None = None):
        self.surface = surface
        self.instruction = instruction
        self.config = config or LossConfig()
        self.config.validate()
        if not isinstance(instruction, str) or not instruction.strip():
            raise AdLiftError("the instruction is empty; give the edit to protect against, e.g. 'turn him into a clown'")
        self._user_target = load_target_image(self.config.target_image) if self.config.target == "image" else None
        self._target_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def needs_reference(self) -> bool:
        """Whether the loss needs the clean image (encoder ``away``)."""
        return self.config.kind == "encoder" and self.config.target == "away"

    # ------------------------------------------------------------------ targets
    def target_pixels(self, size: tuple[int, int]) -> torch.Tensor:
        """The target image at ``size`` = (H, W): [1, 3, H, W] on the surface device."""
        h, w = size
        sf = self.surface
        if self.config.target == "image":
            img = F.interpolate(self._user_target, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            return img.clamp(0.0, 1.0).to(sf.device, sf.dtype)
        value = 0.0 if self.config.target == "zero" else 0.5
        return torch.full((1, 3, h, w), value, device=sf.device, dtype=sf.dtype)

    def _target_latent(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoder target latent for images of ``size`` (cached): [1, 4, h, w]."""
        if size not in self._target_cache:
            with torch.no_grad():
                if self.config.target == "zero":
                    h, w = self.surface.pad(torch.zeros(1, 3, *size))[0].shape[-2:]
                    m = self.surface.size_multiple
                    lat = torch.zeros(1, self.surface.latent_channels, h // m, w // m, device=self.surface.device)
                else:
                    lat = self.surface.encode_image(self.target_pixels(size)).float()
            self._target_cache[size] = lat
        return self._target_cache[size]

    # ------------------------------------------------------------------ the losses
    def __call__(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
        reference: torch.Tensor | None = None,  # [B, 3, H, W] clean images (encoder "away")
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-image loss [B] (float32), differentiable w.r.t. ``images``; lower = better protected."""
        check_images(images, values=False)
        gen = generator if generator is not None else torch.Generator().manual_seed(self.config.eval_seed)
        x = images
        if self.config.eot.samples:
            x, _ = random_purification(images, self.config.eot, gen)
        kind = self.config.kind
        if kind == "encoder":
            return self._encoder(x, reference)
        if kind == "unet":
            return self._unet(x, gen)
        return self._pipeline(x, gen)

    def _encoder(self, x: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        lat = self.surface.encode_image(x).float()  # [B, 4, h, w]
        if self.config.target == "away":
            if reference is None:
                raise AdLiftError("the encoder loss with target 'away' needs the clean reference images")
            with torch.no_grad():
                clean = self.surface.encode_image(reference).float()
            return -(lat - clean).square().flatten(1).mean(1)
        target = self._target_latent(tuple(x.shape[-2:]))
        return (lat - target).square().flatten(1).mean(1)

    def _unet(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        sf = self.surface
        b = x.shape[0]
        mean = sf.encode_image(x)  # [B, 4, h, w] unscaled; also the conditioning latent
        z0 = mean * sf.scaling_factor
        lo, hi = self.config.t_range
        t_lo = min(sf.num_train_timesteps - 1, round(lo * sf.num_train_timesteps))
        t_hi = min(sf.num_train_timesteps - 1, max(t_lo, round(hi * sf.num_train_timesteps)))
        t = torch.randint(t_lo, t_hi + 1, (b,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen).to(z0)
        text = sf.text_embeddings(self.instruction)
        if self.config.unet_mode == "advdm":
            zt = sf.add_noise(z0, noise, t)
            eps = sf.predict_noise_conditional(zt, t, mean, text)
            return -(eps.float() - noise.float()).square().flatten(1).mean(1)
        # SDS(-): value = <stopgrad(eps_pred - noise), z0>, so d loss / d z0 = eps_pred - noise.
        with torch.no_grad():
            zt = sf.add_noise(z0.detach(), noise, t)
            eps = sf.predict_noise_conditional(zt, t, mean.detach(), text)
        return ((eps.float() - noise.float()) * z0.float()).flatten(1).sum(1) / z0[0].numel()

    def _pipeline(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        sf = self.surface
        cfg = self.config
        image_latents = sf.encode_image(x)  # [B, 4, h, w]
        text = sf.text_embeddings(self.instruction)
        uncond = sf.empty_text_embeddings()
        latents = torch.randn(image_latents.shape, generator=gen).to(image_latents)
        n = sf.num_train_timesteps
        ts = [round((n - 1) * (cfg.pipeline_steps - i) / cfg.pipeline_steps) for i in range(cfg.pipeline_steps)]

        def step(lat: torch.Tensor, img: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
            eps = sf.predict_noise(lat, t, img, text, cfg.guidance_scale, cfg.image_guidance_scale, uncond)
            return sf.ddim_step(lat, eps, t, t_prev)

        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            if cfg.gradient_checkpointing and torch.is_grad_enabled():
                latents = checkpoint(step, latents, image_latents, t, t_prev, use_reentrant=False)
            else:
                latents = step(latents, image_latents, t, t_prev)
        edited = sf.decode_latents(latents, tuple(x.shape[-2:])).float()  # [B, 3, H, W]
        target = self.target_pixels(tuple(x.shape[-2:])).float()
        return (edited - target).square().flatten(1).mean(1)

    # ------------------------------------------------------------------ helpers for attacks
    def gradient(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
        reference: torch.Tensor | None = None,  # [B, 3, H, W]
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss [B], d loss / d images [B, 3, H, W]) at ``images``, averaged over EOT samples.

        The images are detached first: this is the gradient truncation of Lifted PGD (the
        gradient stops at the image; nothing flows into whatever produced it).
        """
        samples = max(1, self.config.eot.samples)
        x = images.detach().to(self.surface.device).requires_grad_(True)
        ref = reference.detach().to(self.surface.device) if reference is not None else None
        total_loss = torch.zeros(images.shape[0], device=x.device)
        grad = torch.zeros_like(x)
        for _ in range(samples):
            loss = self(x, ref, generator)
            (g,) = torch.autograd.grad(loss.sum(), x)
            grad += g
            total_loss += loss.detach()
        return (total_loss / samples).to(images.device), (grad / samples).to(images.device, images.dtype)

    @torch.no_grad()
    def evaluate(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
        reference: torch.Tensor | None = None,  # [B, 3, H, W]
    ) -> torch.Tensor:
        """Loss per image [B] with fixed noise and timesteps (``eval_seed``) and without EOT, on CPU.

        Image i always gets the same draws, whatever the batch, so raw and protected images are
        compared on equal terms.
        """
        eot = self.config.eot
        self.config.eot = EOTConfig()
        try:
            out = []
            for i in range(images.shape[0]):
                gen = torch.Generator().manual_seed(self.config.eval_seed)
                ref = reference[i : i + 1].to(self.surface.device) if reference is not None else None
                out.append(self(images[i : i + 1].to(self.surface.device), ref, gen).float().cpu())
            return torch.cat(out)
        finally:
            self.config.eot = eot
