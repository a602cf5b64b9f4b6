"""Evaluation: how visible a protection is, whether it survives purification, how well edits follow the instruction.

    rows = image_pair_metrics(raw, protected, eta=8 / 255, lpips=LpipsMetric.load())   # per image
    purified = apply_purification(protected, parse_purifications("jpeg75")[0], generator)
    clip = load_clip("tiny")                                                             # or DEFAULT_CLIP
    before, after = captions_for("make it snowy", None)
    scores = clip.directional_similarity(raw, edited, before, after)                     # [B]

End to end (what ``adlift evaluate`` and ``ns-adlift-evaluate`` run)::

    from adlift.evaluate.api import run_evaluation
    from adlift.evaluate.inputs import EvaluateInputs
    output = run_evaluation(EvaluateInputs(outdir=Path("outputs/protected")), EvaluateConfig(), RenderOptions())

Modules, one job each: :mod:`~adlift.evaluate.inputs` (what to evaluate, from a protect OUTDIR's
manifest or explicit files), :mod:`~adlift.evaluate.run` (:class:`EvaluateConfig`, ``evaluate()``:
renders, edits, per-view records), :mod:`~adlift.evaluate.purify` (fixed-strength purifications),
:mod:`~adlift.evaluate.clip_metrics` (CLIP scores), :mod:`~adlift.evaluate.columns` (every metric's
headers and format, once), :mod:`~adlift.evaluate.report` (report.json/md, the console summary),
:mod:`~adlift.evaluate.figures` (grids, plots) and :mod:`~adlift.evaluate.api` (all of it, writing
the outputs). Image metrics live lower, in :mod:`adlift.image_metrics` (protection uses them too).

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
from adlift.evaluate.columns import METRICS
from adlift.evaluate.purify import (
    DEFAULT_PURIFICATIONS,
    Purification,
    apply_purification,
    format_purifications,
    parse_purifications,
    purification,
)
from adlift.evaluate.run import EvaluateConfig, EvaluationResult, evaluate

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_PURIFICATIONS",
    "EvaluateConfig",
    "EvaluationResult",
    "METRICS",
    "ClipScorer",
    "LpipsMetric",
    "MissingClipError",
    "Purification",
    "apply_purification",
    "build_tiny_clip",
    "captions_for",
    "check_images",
    "evaluate",
    "format_purifications",
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
