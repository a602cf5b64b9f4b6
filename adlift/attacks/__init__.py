"""Adversarial losses against InstructPix2Pix editors and image-space PGD.

    from adlift.attacks import AdversarialLoss, EncoderLossConfig, PGDConfig, image_pgd
    loss = AdversarialLoss(editor.surface, "turn him into a clown", EncoderLossConfig(target="gray"))
    protected = image_pgd(images, loss, PGDConfig(eta=8/255, steps=50)).images

Every loss is "lower = better protected"; see :mod:`adlift.attacks.losses`.
"""

from adlift.attacks.eot import EOTConfig, random_purification
from adlift.attacks.losses import (
    LOSSES,
    AdversarialLoss,
    EncoderLossConfig,
    LossConfig,
    LossSettings,
    PipelineLossConfig,
    UnetLossConfig,
    describe_loss,
    load_target_image,
    loss_config,
)
from adlift.attacks.purifications import PURIFICATIONS, apply_purification_kind
from adlift.attacks.pgd import Budget, PGDConfig, PGDResult, format_budget, image_pgd, parse_budget, pgd_step, project_linf

__all__ = [
    "AdversarialLoss",
    "Budget",
    "EOTConfig",
    "EncoderLossConfig",
    "LOSSES",
    "LossConfig",
    "LossSettings",
    "PipelineLossConfig",
    "UnetLossConfig",
    "describe_loss",
    "format_budget",
    "loss_config",
    "PGDConfig",
    "PGDResult",
    "PURIFICATIONS",
    "apply_purification_kind",
    "image_pgd",
    "load_target_image",
    "parse_budget",
    "pgd_step",
    "project_linf",
    "random_purification",
]
