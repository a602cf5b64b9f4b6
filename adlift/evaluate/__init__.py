"""Evaluation: how visible a protection is, whether it survives purification, how well edits follow the instruction.

    rows = image_pair_metrics(raw, protected, eta=8 / 255, lpips=LpipsMetric.load())   # per image
    purified = apply_purification(protected, parse_purifications("jpeg75")[0], generator)
    clip = load_clip("tiny")                                                             # or DEFAULT_CLIP
    before, after = captions_for("make it snowy", None)
    scores = clip.directional_similarity(raw, edited, before, after)                     # [B]

transformers is imported only when a CLIP model is loaded; lpips only when LPIPS is asked for.
"""

from __future__ import annotations

from adlift.evaluate.clip_metrics import (
    DEFAULT_CLIP,
    ClipScorer,
    MissingClipError,
    build_tiny_clip,
    captions_for,
    load_clip,
)
from adlift.image_metrics import (
    LpipsMetric,
    check_images,
    image_pair_metrics,
    linf_per_image,
    lpips_unavailable_reason,
    psnr_per_image,
    ssim_per_image,
    within_budget_per_image,
)
from adlift.evaluate.purify import (
    DEFAULT_PURIFICATIONS,
    Purification,
    apply_purification,
    parse_purifications,
    purification,
)

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_PURIFICATIONS",
    "ClipScorer",
    "LpipsMetric",
    "MissingClipError",
    "Purification",
    "apply_purification",
    "build_tiny_clip",
    "captions_for",
    "check_images",
    "image_pair_metrics",
    "linf_per_image",
    "load_clip",
    "lpips_unavailable_reason",
    "parse_purifications",
    "psnr_per_image",
    "purification",
    "ssim_per_image",
    "within_budget_per_image",
]
