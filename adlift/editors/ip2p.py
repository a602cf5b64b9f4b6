"""InstructPix2Pix (IP2P): the 2D editor, and the differentiable surface adversarial losses use.

Two classes:

* :class:`IP2PSurface` — every differentiable piece of IP2P an attack needs, in one place, so that
  losses never reach into pipeline internals: VAE encoding (the conditioning latent IP2P uses, and
  the scaled latent the denoiser works on), VAE decoding, text embeddings, the UNet noise
  prediction with IP2P's three-way classifier-free guidance, and the noise schedule. Nothing in
  it runs under ``torch.no_grad``: gradients flow back to the input pixels. The model weights are
  frozen (``requires_grad=False``), so backpropagation computes only what attacks need.
* :class:`IP2PEditor` — the editor AdLift defends against: :meth:`IP2PEditor.edit` runs diffusers'
  ``StableDiffusionInstructPix2PixPipeline`` itself; :meth:`IP2PEditor.edit_from_render` is the
  Instruct-GS2GS dataset-update edit (noise a render's latent part-way, denoise conditioned on the
  original view).

What IP2P conditions on (checked against diffusers' ``prepare_image_latents``): the VAE posterior's
*mode* (= its mean, ``latent_dist.mode()``) of the image in [-1, 1], **without** the VAE scaling
factor; the unconditional branch uses an all-zero image latent. The denoised latent, in contrast,
lives in the scaled space (``latent * vae.config.scaling_factor``) and is divided by the factor
before decoding.

Three-way guidance (diffusers' pipeline, Brooks et al. 2023, eq. 3): the UNet sees the batch
``[text + image, empty text + image, empty text + zero image]`` and the estimates combine as::

    eps = eps_uncond + s_T * (eps_text - eps_image) + s_I * (eps_image - eps_uncond)

with ``s_T`` = ``guidance_scale`` (text) and ``s_I`` = ``image_guidance_scale``.

Noise levels use the variance-preserving parametrisation of the training schedule
(``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``), which is what the UNet takes as input (the
pipeline's Euler scheduler rescales its own latents into this form with ``scale_model_input``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from adlift.editors.registry import EDITORS
from adlift.editors.weights import DEFAULT_MODEL, load_ip2p_pipeline, quiet_hf
from adlift.image_metrics import check_images
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from diffusers import StableDiffusionInstructPix2PixPipeline

Timestep = int | torch.Tensor  # an integer timestep, or one per batch element [B]


def default_device() -> torch.device:
    """cuda if available, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """IP2P's usual precision: float16 on CUDA, float32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


#: Text guidance of InstructPix2Pix's 2D edits (its default; ``adlift edit --mode 2d``).
IP2P_GUIDANCE = 7.5

#: Text guidance of Instruct-GS2GS' dataset updates (the 3D edit's default).
GS2GS_GUIDANCE = 12.5

#: Text guidance of DGE's multi-view edits (its ``guidance_scale``; ``adlift edit --mode dge``).
DGE_GUIDANCE = 7.5

#: The edit modes an editor gives a default guidance for (:meth:`IP2PEditor.default_guidance`).
EDIT_MODES = ("2d", "3d", "dge")


class IP2PSurface:
    """The differentiable pieces of an InstructPix2Pix model (see the module docstring).

    Build it with :meth:`from_pipeline`; :attr:`IP2PEditor.surface` holds one.
    """

    def __init__(self, vae, unet, text_encoder, tokenizer, alphas_cumprod: torch.Tensor, *, num_train_timesteps: int):
        self.vae = vae
        self.unet = unet
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        for module in (vae, unet, text_encoder):
            module.eval()
            module.requires_grad_(False)
        self.device = next(unet.parameters()).device
        self.dtype = next(unet.parameters()).dtype
        #: Cumulative products of (1 - beta) of the training schedule [T], float32 on the model device.
        self.alphas_cumprod = alphas_cumprod.to(self.device, torch.float32)
        self.num_train_timesteps = int(num_train_timesteps)
        #: Latent/pixel ratio (8 for Stable Diffusion); images are padded to a multiple of it.
        self.size_multiple = 2 ** (len(vae.config.block_out_channels) - 1)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pipeline(cls, pipe: StableDiffusionInstructPix2PixPipeline) -> IP2PSurface:
        """The surface of a loaded pipeline (shares its modules; the schedule is copied)."""
        sched = pipe.scheduler
        return cls(
            pipe.vae,
            pipe.unet,
            pipe.text_encoder,
            pipe.tokenizer,
            sched.alphas_cumprod.clone(),
            num_train_timesteps=sched.config.num_train_timesteps,
        )

    # ------------------------------------------------------------------ sizes
    def pad(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Pad [B, C, H, W] on the bottom/right to multiples of :attr:`size_multiple`.

        Returns the padded images and the original (H, W) for :meth:`crop`. Reflection padding
        where the image is large enough, edge replication otherwise; differentiable.
        """
        h, w = images.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph == 0 and pw == 0:
            return images, (h, w)
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(images, (0, pw, 0, ph), mode=mode), (h, w)

    @staticmethod
    def crop(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Undo :meth:`pad`: the top-left ``size`` = (H, W) region of [B, C, H', W']."""
        return images[..., : size[0], : size[1]]

    # ------------------------------------------------------------------ VAE
    def encode_latent_dist(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE posterior of images [B, 3, H, W] in [0, 1] (padded): (mean, std), each [B, 4, H'/8, W'/8].

        Unscaled (no ``scaling_factor``); ``mean`` is also the posterior's mode.
        """
        check_images(images, values=False)
        x, _ = self.pad(images.to(self.device, self.dtype))
        dist = self.vae.encode(2.0 * x - 1.0).latent_dist
        return dist.mean, dist.std

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The latent IP2P conditions on: ``latent_dist.mean`` of images [B, 3, H, W] in [0, 1], unscaled.

        Returns [B, 4, ceil(H/8), ceil(W/8)] (sizes padded to multiples of 8). Differentiable.
        """
        return self.encode_latent_dist(images)[0]

    def encode_latents(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's (scaled) latent of images [B, 3, H, W] in [0, 1]: [B, 4, H'/8, W'/8].

        ``(mean + std * noise) * scaling_factor``; with ``noise=None`` the posterior mean.
        """
        mean, std = self.encode_latent_dist(images)
        latent = mean if noise is None else mean + std * noise.to(mean)
        return latent * self.scaling_factor

    def decode_latents(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Scaled latents [B, 4, h, w] -> images [B, 3, 8h, 8w] in [0, 1], cropped to ``size`` = (H, W).

        Values are clamped to [0, 1] as the pipeline's post-processing does. Differentiable.
        """
        x = self.vae.decode(latents.to(self.dtype) / self.scaling_factor, return_dict=False)[0]
        x = (x / 2 + 0.5).clamp(0.0, 1.0)
        return self.crop(x, size) if size is not None else x

    # ------------------------------------------------------------------ text
    def text_embeddings(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """CLIP text-encoder hidden states of prompts: [P, L, D] (P = 1 for one string).

        Tokenised like the pipeline (padding to the tokenizer's max length, truncation). Constant
        with respect to the images; results are cached per prompt.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if torch.is_inference_mode_enabled():  # inference tensors must not enter the cache
            return self._encode_text(prompts)
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            if len(self._text_cache) + len(missing) > 256:
                self._text_cache.clear()
            for p, e in zip(missing, self._encode_text(missing), strict=True):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Tokenise and encode prompts like the pipeline: [P, L, D] in the model dtype."""
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            mask = (ids != self.tokenizer.pad_token_id).long()
        return self.text_encoder(ids, attention_mask=mask)[0].to(self.dtype)

    def empty_text_embeddings(self) -> torch.Tensor:
        """Embedding of the empty prompt [1, L, D] (IP2P's unconditional text)."""
        return self.text_embeddings("")

    # ------------------------------------------------------------------ noise schedule
    def timesteps(self, t: Timestep, batch: int) -> torch.Tensor:
        """``t`` (int, 0-d or [B] tensor) as a long tensor [B] on the model device."""
        tt = torch.as_tensor(t, device=self.device)
        if tt.is_floating_point():
            tt = tt.round()
        tt = tt.long().reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(batch)
        if tt.numel() != batch:
            raise AdLiftError(f"got {tt.numel()} timesteps for a batch of {batch}")
        if bool((tt < 0).any()) or bool((tt >= self.num_train_timesteps).any()):
            raise AdLiftError(f"timesteps must lie in [0, {self.num_train_timesteps - 1}], got {tt.tolist()}")
        return tt

    def alpha_bar(self, t: Timestep, batch: int) -> torch.Tensor:
        """abar_t of the training schedule, shaped [B, 1, 1, 1] for broadcasting over latents."""
        return self.alphas_cumprod[self.timesteps(t, batch)].view(batch, 1, 1, 1)

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, t: Timestep) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise for latents [B, 4, h, w]; differentiable."""
        a = self.alpha_bar(t, latents.shape[0]).to(latents.dtype)
        return a.sqrt() * latents + (1 - a).sqrt() * noise.to(latents.dtype)

    def predict_x0(self, noisy_latents: torch.Tensor, noise_pred: torch.Tensor, t: Timestep) -> torch.Tensor:
        """The clean latent implied by a noise estimate: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        a = self.alpha_bar(t, noisy_latents.shape[0]).to(noisy_latents.dtype)
        return (noisy_latents - (1 - a).sqrt() * noise_pred) / a.sqrt()

    def ddim_step(
        self, noisy_latents: torch.Tensor, noise_pred: torch.Tensor, t: Timestep, t_prev: Timestep
    ) -> torch.Tensor:
        """One deterministic DDIM (eta = 0) step x_t -> x_{t_prev}; ``t_prev < 0`` means fully clean.

        ``t`` and ``t_prev`` may differ per batch element ([B] tensors).
        """
        b = noisy_latents.shape[0]
        x0 = self.predict_x0(noisy_latents, noise_pred, t)
        tp = torch.as_tensor(t_prev, device=self.device).long().reshape(-1).expand(b)
        a_prev = torch.where(tp >= 0, self.alphas_cumprod[tp.clamp_min(0)], torch.ones_like(self.alphas_cumprod[:1]))
        a_prev = a_prev.view(b, 1, 1, 1).to(noisy_latents.dtype)
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * noise_pred

    # ------------------------------------------------------------------ UNet
    def _batch_text(self, emb: torch.Tensor, batch: int) -> torch.Tensor:
        emb = emb.to(self.device, self.dtype)
        if emb.ndim != 3:
            raise AdLiftError(f"text embeddings must have shape [B or 1, L, D], got {list(emb.shape)}")
        if emb.shape[0] == batch:
            return emb
        if emb.shape[0] == 1:
            return emb.expand(batch, -1, -1)
        raise AdLiftError(f"got text embeddings for {emb.shape[0]} prompts and a batch of {batch}")

    def _unet(self, latents: torch.Tensor, image_latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """One UNet call: noisy latents [N, 4, h, w] stacked with image latents [N, 4, h, w] on the
        channels, timesteps t [N], text embeddings [N, L, D] -> eps [N, 4, h, w]."""
        x = torch.cat([latents.to(self.dtype), image_latents.to(self.dtype)], dim=1)
        return self.unet(x, t, encoder_hidden_states=text, return_dict=False)[0]

    def predict_noise_conditional(self, noisy_latents: torch.Tensor, t: Timestep, image_latents: torch.Tensor,
                                  text_embeddings: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """One UNet pass conditioned on text and image, no guidance: eps [B, 4, h, w].

        Arguments as :meth:`predict_noise`: noisy latents [B, 4, h, w], image latents [B, 4, h, w],
        text embeddings [B or 1, L, D].
        """
        b = noisy_latents.shape[0]
        return self._unet(noisy_latents, image_latents, self.timesteps(t, b), self._batch_text(text_embeddings, b))

    def predict_noise(
        self,
        noisy_latents: torch.Tensor,  # [B, 4, h, w]
        t: Timestep,
        image_latents: torch.Tensor,  # [B, 4, h, w] from encode_image
        text_embeddings: torch.Tensor,  # [B or 1, L, D]
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        uncond_embeddings: torch.Tensor | None = None,  # [B or 1, L, D]; default: the empty prompt
    ) -> torch.Tensor:
        """IP2P's guided noise estimate [B, 4, h, w] (three-way guidance, one UNet call on 3B inputs).

        Differentiable w.r.t. ``noisy_latents`` and ``image_latents`` (hence the input pixels).
        """
        b = noisy_latents.shape[0]
        if image_latents.shape != noisy_latents.shape:
            raise AdLiftError(
                f"image latents {list(image_latents.shape)} and noisy latents {list(noisy_latents.shape)} "
                "differ in shape"
            )
        text = self._batch_text(text_embeddings, b)
        if uncond_embeddings is None:
            uncond_embeddings = self.empty_text_embeddings()
        uncond = self._batch_text(uncond_embeddings, b)
        lat, img = noisy_latents, image_latents.to(self.dtype)
        eps = self._unet(torch.cat([lat, lat, lat]), torch.cat([img, img, torch.zeros_like(img)]),
                         self.timesteps(t, b).repeat(3), torch.cat([text, uncond, uncond]))  # fmt: skip
        eps_text, eps_image, eps_uncond = eps.chunk(3)
        return (
            eps_uncond
            + guidance_scale * (eps_text - eps_image)
            + image_guidance_scale * (eps_image - eps_uncond)
        )


def _generators(seed: int | Sequence[int], n: int) -> list[torch.Generator]:
    seeds = [int(seed)] * n if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != n:
        raise AdLiftError(f"got {len(seeds)} seeds for {n} images")
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


class IP2PEditor:
    """An InstructPix2Pix editor over diffusers' ``StableDiffusionInstructPix2PixPipeline``.

    Load with :meth:`from_pretrained` (hub id or local directory) or :meth:`tiny` (untrained
    offline test model); :func:`adlift.editors.load_editor` picks by name. Images are float
    tensors [B, 3, H, W] in [0, 1] on any device; results come back float32 on the input's device.
    """

    def __init__(self, pipe: StableDiffusionInstructPix2PixPipeline, *, model: str, name: str = "ip2p",
                 untrained: bool = False):  # fmt: skip
        self.pipe = pipe
        self.model = model
        self.name = name
        #: True for the tiny test model: its edits mean nothing and must be labelled as such.
        self.untrained = untrained
        pipe.set_progress_bar_config(disable=True)
        self.surface = IP2PSurface.from_pipeline(pipe)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: str | os.PathLike | None = None,
        name: str = "ip2p",
        untrained: bool = False,
    ) -> IP2PEditor:
        """Load ``model`` (hub id or ``save_pretrained`` directory); fp16 on CUDA, fp32 on CPU by default.

        Raises :class:`~adlift.editors.weights.MissingWeightsError` (an AdLiftError) when the
        weights are not available.
        """
        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or default_dtype(device)
        pipe = load_ip2p_pipeline(model, device=device, dtype=dtype, cache_dir=cache_dir)
        return cls(pipe, model=os.fspath(model), name=name, untrained=untrained)

    @classmethod
    def tiny(
        cls,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> IP2PEditor:
        """The untrained tiny IP2P (:mod:`adlift.editors.tiny`), loaded through ``from_pretrained``.

        ``cache_dir`` is where the generated model is kept (default: :func:`~adlift.editors.tiny.adlift_cache_dir`).
        Float32 on every device by default (fp16 buys nothing at this size).
        """
        from adlift.editors.tiny import tiny_pipeline_dir

        path = tiny_pipeline_dir(seed, cache_dir)  # built and saved once, then loaded like real weights
        device = torch.device(device) if device is not None else default_device()
        pipe = load_ip2p_pipeline(path, device=device, dtype=dtype or torch.float32)
        return cls(pipe, model=f"tiny(seed={seed})", name="tiny", untrained=True)

    # ------------------------------------------------------------------ properties
    #: The device and dtype of the model (its UNet's).
    device = property(lambda self: self.surface.device)
    dtype = property(lambda self: self.surface.dtype)

    def metadata(self) -> dict:
        """What to record next to anything this editor produced (JSON-serialisable)."""
        import diffusers

        return {
            "editor": self.name,
            "model": self.model,
            "untrained_test_model": bool(self.untrained),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "diffusers": diffusers.__version__,
        }

    # ------------------------------------------------------------------ what an edit should give
    def reference_edit_for(self, instruction: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The exact answer of ``instruction``, if this editor knows one: a function images [B, 3, H, W]
        in [0, 1] -> the correctly edited images [B, 3, H, W]; None when no answer is known.

        The extension point of *edit success* (:func:`adlift.evaluate.run.protection_records`:
        PSNR/SSIM of an edit to the reference). InstructPix2Pix has no known answer for free-form
        instructions, so this returns None; :class:`~adlift.editors.mini.MiniEditor` returns its
        exact transforms. An editor with computable answers overrides this method.
        """
        return None

    def default_guidance(self, mode: str) -> float:
        """The text guidance this editor edits with when none is given: ``mode`` "2d" (an edit of
        each image: InstructPix2Pix' 7.5), "3d" (Instruct-GS2GS' dataset updates: 12.5) or "dge"
        (DGE's multi-view edits: 7.5)."""
        if mode not in EDIT_MODES:
            raise AdLiftError(f"mode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
        return {"2d": IP2P_GUIDANCE, "3d": GS2GS_GUIDANCE, "dge": DGE_GUIDANCE}[mode]

    # ------------------------------------------------------------------ editing
    @torch.no_grad()
    def edit(
        self,
        images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
        instruction: str,
        *,
        steps: int = 20,
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        seed: int | Sequence[int] = 0,
        batch_size: int = 4,
        progress: bool = False,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Edit images with the diffusers pipeline itself: returns [B, 3, H, W] in [0, 1].

        Every image gets its own ``torch.Generator`` seeded with ``seed`` (or ``seed[i]``), so a
        result does not depend on batching or on the other images. Sizes that are not multiples of
        8 are padded (reflection) and cropped back. ``on_step(done, total)`` is called after every
        denoising step (total = steps x batches), e.g. to drive a progress bar.
        """
        check_images(images, values=False)
        if steps < 1:
            raise AdLiftError(f"steps must be >= 1, got {steps}")
        gens = _generators(seed, images.shape[0])
        out = []
        starts = range(0, images.shape[0], max(1, batch_size))
        from tqdm.auto import tqdm

        done = [0]
        total = steps * len(starts)

        def step_end(pipe, i, t, callback_kwargs):
            done[0] += 1
            on_step(done[0], total)
            return callback_kwargs

        extra = {"callback_on_step_end": step_end} if on_step is not None else {}
        for s in tqdm(starts, desc="editing (IP2P)", unit="batch", disable=not progress):
            chunk = images[s : s + batch_size].to(self.device, self.dtype).clamp(0.0, 1.0)
            x, size = self.surface.pad(chunk)
            with quiet_hf():
                res = self.pipe(
                    prompt=[instruction] * x.shape[0],
                    image=x,
                    num_inference_steps=steps,
                    guidance_scale=guidance_scale,
                    image_guidance_scale=image_guidance_scale,
                    generator=gens[s : s + batch_size],
                    output_type="pt",
                    **extra,
                ).images  # [b, 3, H', W'] in [0, 1]
            out.append(self.surface.crop(res, size).to(images.device, torch.float32))
        return torch.cat(out)

    @torch.no_grad()
    def edit_from_render(
        self,
        current: torch.Tensor,  # [B, 3, H, W] in [0, 1]: renders of the scene being edited
        original: torch.Tensor,  # [B, 3, H, W] in [0, 1]: the original views to condition on
        instruction: str,
        *,
        t_range: tuple[float, float] = (0.70, 0.98),
        steps: int = 20,
        guidance_scale: float = 12.5,
        image_guidance_scale: float = 1.5,
        seed: int | Sequence[int] = 0,
        batch_size: int = 4,
    ) -> torch.Tensor:
        """Instruct-GS2GS's dataset-update edit: returns [B, 3, H, W] in [0, 1].

        Per image: draw an integer timestep t0 uniformly in ``[t_range[0] T, t_range[1] T]``
        (T = training timesteps), encode the *current* render (a VAE posterior sample), noise it to
        t0, and run ``steps`` deterministic DDIM steps from t0 to a clean latent with IP2P's
        guided noise estimate conditioned on the *original* view. All randomness (t0, the VAE sample,
        the noise) comes from a generator seeded with ``seed`` (or ``seed[i]``).
        """
        check_images(current, "current renders", values=False)
        check_images(original, "original views", values=False)
        if current.shape != original.shape:
            raise AdLiftError(
                f"current {list(current.shape)} and original {list(original.shape)} views differ in shape"
            )
        lo, hi = t_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise AdLiftError(f"t_range must satisfy 0 <= low <= high <= 1, got {t_range}")
        if steps < 1:
            raise AdLiftError(f"steps must be >= 1, got {steps}")
        sf = self.surface
        n_train = sf.num_train_timesteps
        t_lo = min(n_train - 1, max(1, round(lo * n_train)))
        t_hi = min(n_train - 1, max(t_lo, round(hi * n_train)))
        gens = _generators(seed, current.shape[0])
        text = sf.text_embeddings(instruction)
        uncond = sf.empty_text_embeddings()
        out = []
        for s in range(0, current.shape[0], max(1, batch_size)):
            cur = current[s : s + batch_size].to(self.device, self.dtype).clamp(0.0, 1.0)
            org = original[s : s + batch_size].to(self.device, self.dtype).clamp(0.0, 1.0)
            g = gens[s : s + batch_size]
            mean, std = sf.encode_latent_dist(cur)  # [b, 4, h, w]
            t0 = torch.stack([torch.randint(t_lo, t_hi + 1, (), generator=gi) for gi in g])  # [b]
            vae_noise = torch.stack([torch.randn(mean.shape[1:], generator=gi) for gi in g]).to(mean)
            noise = torch.stack([torch.randn(mean.shape[1:], generator=gi) for gi in g]).to(mean)
            latents = (mean + std * vae_noise) * sf.scaling_factor
            x = sf.add_noise(latents, noise, t0)
            image_latents = sf.encode_image(org)
            # Evenly spaced integer timesteps from t0 down towards 0, one row per image: [b, steps].
            frac = torch.arange(steps, 0, -1, dtype=torch.float64) / steps  # [steps]: 1 .. 1/steps
            ts = (t0.double()[:, None] * frac[None, :]).round().long().clamp_min(0)
            for i in range(steps):
                t = ts[:, i].to(self.device)
                t_prev = ts[:, i + 1].to(self.device) if i + 1 < steps else torch.full_like(t, -1)
                eps = sf.predict_noise(x, t, image_latents, text, guidance_scale, image_guidance_scale, uncond)
                x = sf.ddim_step(x, eps, t, t_prev)
            out.append(sf.decode_latents(x, cur.shape[-2:]).to(current.device, torch.float32))
        return torch.cat(out)


@EDITORS.register("ip2p", help=f"InstructPix2Pix ({DEFAULT_MODEL}), from the hub cache or downloaded")
def load_ip2p(*, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
              cache_dir: str | os.PathLike | None = None) -> IP2PEditor:  # fmt: skip
    """The released InstructPix2Pix (:data:`~adlift.editors.weights.DEFAULT_MODEL`)."""
    return IP2PEditor.from_pretrained(DEFAULT_MODEL, device=device, dtype=dtype, cache_dir=cache_dir)
