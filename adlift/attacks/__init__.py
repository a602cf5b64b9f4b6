"""Adversarial losses against InstructPix2Pix editors and image-space PGD.

    from adlift.attacks import AdversarialLoss, LossConfig, PGDConfig, image_pgd
    loss = AdversarialLoss(editor.surface, "turn him into a clown", LossConfig(kind="encoder"))
    protected = image_pgd(images, loss, PGDConfig(eta=8/255, steps=50)).images

Every loss is "lower = better protected"; see :mod:`adlift.attacks.losses`.
"""

from adlift.attacks.eot import EOTConfig, random_purification
from adlift.attacks.losses import LOSS_KINDS, AdversarialLoss, LossConfig, load_target_image
from adlift.attacks.purifications import PURIFICATIONS, apply_purification_kind
from adlift.attacks.pgd import PGDConfig, PGDResult, image_pgd, parse_budget, pgd_step, project_linf

__all__ = [
    "AdversarialLoss",
    "EOTConfig",
    "LOSS_KINDS",
    "LossConfig",
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
