"""Adversarial losses against InstructPix2Pix editors (white-box, through :class:`IP2PSurface`).

Every loss maps images [B, 3, H, W] in [0, 1] to one value per image [B]; **lower means better
protected**, so every attack minimises. Each kind is one module with its config dataclass (its own
options only) registered in :data:`LOSSES`:

``encoder`` (:mod:`.encoder`)   PhotoGuard's encoder attack on the VAE latent
``unet`` (:mod:`.unet`)         the UNet's noise prediction for the instruction (AdvDM or SDS(-))
``pipeline`` (:mod:`.pipeline`) k checkpointed denoising steps of the real edit
``dge`` (:mod:`.dge`)           those steps as DGE runs them: jointly with DGE's key views

:data:`LossConfig` is the Union of the registered configs: a config field typed ``LossConfig``
becomes the tyro subcommands ``loss:encoder``, ``loss:unet``, ``loss:pipeline``, ``loss:dge``, and options of
one kind never show for another. :class:`AdversarialLoss` (:mod:`.base`) binds a config to an editor
and an instruction, with EOT, truncated gradients and the paired :meth:`~AdversarialLoss.evaluate`.

Randomness (timesteps, noise, EOT draws) comes from a ``torch.Generator`` the caller passes, so
an attack is deterministic for a seed. :meth:`AdversarialLoss.evaluate` uses a fixed seed and no
EOT, so the losses of a raw and a protected image are paired and comparable.

    loss = AdversarialLoss(editor.surface, "turn him into a clown", UnetLossConfig(unet_mode="sds"))
    loss = AdversarialLoss(editor.surface, "turn him into a clown", loss_config("unet"), eot=EOTConfig(samples=4))
"""

from __future__ import annotations

from typing import Annotated, Union

import tyro

from adlift.attacks.losses.base import (
    LOSSES,
    AdversarialLoss,
    LossSettings,
    describe_loss,
    load_target_image,
    loss_config,
    register_loss,
)

# The built-in kinds, in the order users see them (importing a module registers its kind).
from adlift.attacks.losses.encoder import EncoderLossConfig
from adlift.attacks.losses.unet import UnetLossConfig
from adlift.attacks.losses.pipeline import PipelineLossConfig
from adlift.attacks.losses.dge import DGELossConfig

#: Any registered loss config; as a tyro field, one subcommand per kind (``loss:encoder``, ...).
LossConfig = Union[tuple(Annotated[cls, tyro.conf.subcommand(name, description=LOSSES.entry(name).help)]
                         for name, cls in LOSSES.items())]  # type: ignore[valid-type]  # fmt: skip

__all__ = [
    "LOSSES",
    "AdversarialLoss",
    "DGELossConfig",
    "EncoderLossConfig",
    "LossConfig",
    "LossSettings",
    "PipelineLossConfig",
    "UnetLossConfig",
    "describe_loss",
    "load_target_image",
    "loss_config",
    "register_loss",
]
