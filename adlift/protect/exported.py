"""How much of the protection the written file keeps: the protected asset decoded and measured.

:func:`measure_export` renders the decode of the protected file (``read_scene`` of what
:func:`adlift.protect.output.write_protection` wrote, with the same scene options) from every
training and novel view and compares it with the raw render and with the protected scene as the run
measured it (float32, before export). Per split:

* ``within_eta_2`` — share of pixels whose largest channel difference to the raw render is at most
  eta + 2/255 (the issue's target: >= 99 %);
* ``loss_reduction_kept`` — (loss raw - loss of the decode) / (loss raw - loss protected): the share of
  the run's adversarial loss reduction the file keeps (paired, fixed-noise losses; target >= 90 %;
  null where the run reduced the loss by less than 1 % of the raw loss: nothing to keep);
* ``cosine`` — cosine between the render perturbations (protected - raw) before and (decoded - raw)
  after export, over all pixels of the split (target >= 0.9);
* ``cosine_vs_raw_file``: the same with the raw scene written in the same format as the "after"
  reference, (decoded - raw file) against (protected - raw): the format's own error on the asset taken out;
* ``linf_255_max`` and ``psnr`` (the lowest) of the decode against the raw render.

Lossless formats (ply) are not measured: the file holds exactly what the run measured.
"""

from __future__ import annotations

import torch

from adlift.attacks.losses import AdversarialLoss
from adlift.cameras import Cameras
from adlift.image_metrics import linf_per_image, psnr_per_image, within_budget_per_image
from adlift.protect.config import ProtectConfig
from adlift.scene import GaussianScene

#: The tolerance of ``within_eta_2`` above eta (two 8-bit levels).
EXPORT_TOLERANCE = 2 / 255

#: ``loss_reduction_kept`` is a ratio only where the run reduced the loss by more than this share of the raw
#: loss (else None: a ratio of two near-zero reductions is noise).
MIN_REDUCTION = 0.01


def cosine(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """Cosine between two tensors flattened (float64); None when either is zero."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else None


def split_export_metrics(
    loss: AdversarialLoss | None,
    raw: torch.Tensor,  # [C, 3, H, W] raw renders
    protected: torch.Tensor,  # [C, 3, H, W] renders of the protected scene before export
    decoded: torch.Tensor,  # [C, 3, H, W] renders of the decoded file
    eta: float,
    raw_file: torch.Tensor | None = None,  # [C, 3, H, W] renders of the raw scene as the format holds it
) -> dict:
    """The numbers of one split (module docstring); the loss entries only with a ``loss``."""
    row = {
        "views": int(raw.shape[0]),
        "within_eta_2": float(within_budget_per_image(decoded, raw, eta, EXPORT_TOLERANCE).mean()),
        "cosine": cosine(protected - raw, decoded - raw),
        "cosine_vs_raw_file": None if raw_file is None else cosine(protected - raw, decoded - raw_file),
        "linf_255_max": float(linf_per_image(decoded, raw).max()) * 255.0,
        "psnr": float(psnr_per_image(decoded, raw).min()),
    }
    if loss is not None:
        ref = raw if loss.needs_reference else None

        def mean_loss(images: torch.Tensor) -> float:
            return float(torch.cat([loss.evaluate(images[i : i + 1], None if ref is None else ref[i : i + 1])
                                    for i in range(len(images))]).double().mean())  # fmt: skip

        lr, lp, ld = mean_loss(raw), mean_loss(protected), mean_loss(decoded)
        kept = (lr - ld) / (lr - lp) if lr - lp > MIN_REDUCTION * abs(lr) else None
        row.update(loss_raw=lr, loss_protected=lp, loss_decoded=ld, loss_reduction_kept=kept)
    return row


def measure_export(
    decoded: GaussianScene,
    protected: GaussianScene,
    raw: GaussianScene,
    splits: dict[str, Cameras],
    config: ProtectConfig,
    loss: AdversarialLoss | None = None,
    format: str | None = None,
) -> dict:
    """Per split name (train, novel) the numbers of :func:`split_export_metrics` for the ``decoded``
    file against ``raw``, ``protected`` being the scene before export; ``format``: the file's (for
    ``cosine_vs_raw_file``)."""
    from adlift.io.quantise import roundtrip
    from adlift.protect.api import render_views

    raw_file = roundtrip(raw, format) if format is not None else None
    out = {}
    for name, cams in splits.items():
        if cams is None or len(cams) == 0:
            continue
        cams = cams.to(protected.device)
        with torch.no_grad():
            images = [render_views(s.to(protected.device), cams, config) for s in (raw, protected, decoded)]
            reference = render_views(raw_file.to(protected.device), cams, config) if raw_file is not None else None
        out[name] = split_export_metrics(loss, *images, config.eta, reference)
    return out
