"""The loss registry, the settings every loss kind shares, and :class:`AdversarialLoss`.

A loss kind is one module of this package: a config dataclass (a subclass of :class:`LossSettings`
with the kind's own options) whose :meth:`~LossSettings.compute` maps images to one value per image,
registered with ``@register_loss("name", help=...)``. :data:`LOSSES` maps names to config classes;
``adlift.attacks.losses.LossConfig`` is the Union of the registered classes (tyro subcommands
``loss:encoder``, ``loss:unet``, ...).

:class:`AdversarialLoss` binds a config to an editor surface and an instruction and adds what every
kind shares: expectation over random purifications (EOT), gradients truncated at the image, and
the paired, noise-fixed :meth:`~AdversarialLoss.evaluate`.

A kind that needs more than the attacked image (``dge``: the renders of DGE's key views, which every
attacked image attends to jointly) gets it once from :meth:`AdversarialLoss.prepare` (images and their
cameras; the protection engine passes the raw renders of the training views and the training cameras
before the first unit, for every method, also when resuming, on every rank), which keeps what
:meth:`LossSettings.prepare` returns as :attr:`AdversarialLoss.context`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import torch
import torch.nn.functional as F

from adlift.attacks.eot import EOTConfig, random_purification
from adlift.errors import AdLiftError
from adlift.image_metrics import check_images
from adlift.registry import Registry

if TYPE_CHECKING:
    from adlift.cameras import Cameras
    from adlift.editors.ip2p import IP2PSurface


@dataclasses.dataclass
class LossSettings:
    """Settings every loss kind has; a kind's config subclasses this and adds its own options."""

    kind: ClassVar[str] = ""
    """The registered name (set by :func:`register_loss`)."""

    eval_seed: int = 1234
    """Seed of the fixed noise and timesteps of the paired loss evaluation (raw vs protected images)."""

    def validate(self) -> None:
        """AdLiftError for impossible settings (a kind adds its checks)."""

    def describe(self) -> str:
        """A short label, e.g. ``encoder(gray)``."""
        return self.kind

    @property
    def needs_reference(self) -> bool:
        """Whether the loss needs the clean images (``reference``)."""
        return False

    def prepare(
        self,
        loss: "AdversarialLoss",
        images: torch.Tensor,  # [V, 3, H, W] in [0, 1]: the raw renders of the training views
        cameras: Cameras | None,  # their V cameras, or None for images without cameras
    ) -> object | None:
        """The context :meth:`compute` reads as ``loss.context``, made once from the scene's views (default:
        None, no context). Called by :meth:`AdversarialLoss.prepare`; must not depend on the process (every
        rank of a distributed run prepares its own copy from the same renders)."""
        return None

    def compute(
        self,
        loss: "AdversarialLoss",
        x: torch.Tensor,  # [B, 3, H, W] in [0, 1] (after the EOT draw, if any)
        reference: torch.Tensor | None,  # [B, 3, H, W] clean images, when needs_reference
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Per-image loss [B] (float32), differentiable w.r.t. ``x``; lower = better protected."""
        raise NotImplementedError

    def to_json(self) -> dict:
        """``{"kind": name, **settings}`` (what manifests and checkpoint fingerprints record)."""
        from adlift.io.json_safe import to_jsonable

        return {"kind": self.kind, **to_jsonable(self)}


#: Loss kind name -> its config class (a :class:`LossSettings` subclass).
LOSSES: Registry[type[LossSettings]] = Registry("loss")

C = TypeVar("C", bound=type)


def register_loss(name: str, help: str = "") -> Callable[[C], C]:
    """Class decorator: register a :class:`LossSettings` subclass as loss kind ``name``."""

    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, LossSettings) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"loss {name!r}: register a dataclass subclassing LossSettings")
        cls.kind = name
        return LOSSES.add(name, cls, help)

    return decorate


def loss_config(kind: str, **options) -> LossSettings:
    """A config of the loss registered as ``kind`` (AdLiftError listing the kinds otherwise)."""
    return LOSSES.get(kind)(**options)


def describe_loss(config: LossSettings, eot: EOTConfig | None = None) -> str:
    """The label manifests and progress lines show: ``encoder(gray)``, ``unet(advdm)+eot4``."""
    return config.describe() + (f"+eot{eot.samples}" if eot is not None and eot.samples else "")


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
    """A registered loss config bound to an editor surface and an instruction.

    ``loss(images, reference, generator)`` -> [B] (differentiable; one EOT draw when EOT is on);
    :meth:`gradient` averages over EOT samples; :meth:`evaluate` is the paired, noise-fixed value.
    """

    def __init__(self, surface: IP2PSurface, instruction: str, config: LossSettings | None = None,
                 eot: EOTConfig | None = None):  # fmt: skip
        from adlift.attacks.losses.encoder import EncoderLossConfig

        self.surface = surface
        self.instruction = instruction
        self.config = config if config is not None else EncoderLossConfig()
        if not isinstance(self.config, LossSettings) or LOSSES.get(self.config.kind) is not type(self.config):
            raise AdLiftError(f"not a registered loss config: {type(self.config).__name__}")
        self.config.validate()
        self.eot = eot if eot is not None else EOTConfig()
        self.eot.validate()
        if not isinstance(instruction, str) or not instruction.strip():
            raise AdLiftError("the instruction is empty; give the edit to protect against, e.g. 'turn him into a clown'")
        target = getattr(self.config, "target", None)
        self._user_target = load_target_image(self.config.target_image) if target == "image" else None
        self._target_cache: dict[tuple[int, int], torch.Tensor] = {}
        self.context: object | None = None
        """What :meth:`prepare` made for the loss kind (None before it, and for kinds that need none)."""

    def prepare(
        self,
        images: torch.Tensor,  # [V, 3, H, W] in [0, 1]: the raw renders of the training views
        cameras: Cameras | None = None,  # their V cameras; None for images without cameras (2D)
    ) -> None:
        """Give the loss what its kind needs beyond the attacked image (:meth:`LossSettings.prepare`; the
        ``dge`` kind: its key views' renders), kept as :attr:`context`. The protection engine calls it once
        with the raw renders and the training cameras; calling it again replaces the context. ``V`` may be
        0 (no views: a ``dge`` image then attends to itself alone)."""
        if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[0] == 0):
            check_images(images, "the views a loss is prepared with", values=False)
        if cameras is not None and len(cameras) != images.shape[0]:
            raise AdLiftError(f"{images.shape[0]} views need as many cameras to prepare the loss, got {len(cameras)}")
        with torch.no_grad():
            self.context = self.config.prepare(self, images.detach(), cameras)

    @property
    def needs_reference(self) -> bool:
        """Whether the loss needs the clean image (encoder ``away``)."""
        return self.config.needs_reference

    def describe(self) -> str:
        """The loss label with its EOT samples, e.g. ``unet(advdm)+eot4``."""
        return describe_loss(self.config, self.eot)

    # ------------------------------------------------------------------ targets (kinds with a ``target``)
    def target_pixels(self, size: tuple[int, int]) -> torch.Tensor:
        """The target image at ``size`` = (H, W): [1, 3, H, W] on the surface device."""
        h, w = size
        sf = self.surface
        if self.config.target == "image":
            img = F.interpolate(self._user_target, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            return img.clamp(0.0, 1.0).to(sf.device, sf.dtype)
        value = 0.0 if self.config.target == "zero" else 0.5
        return torch.full((1, 3, h, w), value, device=sf.device, dtype=sf.dtype)

    def target_latent(self, size: tuple[int, int]) -> torch.Tensor:
        """VAE latent of the target for images of ``size`` (cached): [1, 4, h, w]."""
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

    # ------------------------------------------------------------------ the loss
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
        if self.eot.samples:
            x, _ = random_purification(images, self.eot, gen)
        return self.config.compute(self, x, reference, gen)

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
        samples = max(1, self.eot.samples)
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
        eot = self.eot
        self.eot = EOTConfig()
        try:
            out = []
            for i in range(images.shape[0]):
                gen = torch.Generator().manual_seed(self.config.eval_seed)
                ref = reference[i : i + 1].to(self.surface.device) if reference is not None else None
                out.append(self(images[i : i + 1].to(self.surface.device), ref, gen).float().cpu())
            return torch.cat(out)
        finally:
            self.eot = eot
