"""The 3DGS photometric loss: (1 - lambda) L1 + lambda D-SSIM (Kerbl et al. 2023, lambda = 0.2).

D-SSIM here is ``1 - mean SSIM`` (3DGS' convention) over an 11x11 Gaussian window (sigma 1.5),
computed with :func:`kornia.metrics.ssim`. Note that :func:`kornia.losses.ssim_loss` returns
``(1 - SSIM) / 2`` instead, which would halve the structural term.
"""

from __future__ import annotations

import torch

from adlift.errors import AdLiftError

#: SSIM window size of 3DGS.
SSIM_WINDOW = 11


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise AdLiftError(
            "photometric loss needs two image batches [B, C, H, W] of one shape, "
            f"got {list(pred.shape)} and {list(target.shape)}"
        )


def dssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = SSIM_WINDOW) -> torch.Tensor:
    """1 - mean SSIM of images [B, C, H, W] in [0, 1] (a 0-d tensor; 0 for identical images).

    The window shrinks (to an odd size) for images smaller than it, which kornia's reflect
    padding needs.
    """
    import kornia

    _check_pair(pred, target)
    side = min(pred.shape[-2:])
    w = min(window_size, side if side % 2 == 1 else side - 1)
    if w < 3:
        raise AdLiftError(f"images of {pred.shape[-2]}x{pred.shape[-1]} pixels are too small for SSIM")
    return 1.0 - kornia.metrics.ssim(pred, target, w, max_val=1.0).mean()


def l1_dssim_loss(
    pred: torch.Tensor,  # [B, C, H, W] in [0, 1]
    target: torch.Tensor,  # [B, C, H, W] in [0, 1]
    ssim_lambda: float = 0.2,
) -> torch.Tensor:
    """(1 - ssim_lambda) * mean |pred - target| + ssim_lambda * D-SSIM: a 0-d tensor."""
    _check_pair(pred, target)
    l1 = (pred - target).abs().mean()
    if ssim_lambda == 0:
        return l1
    return (1.0 - ssim_lambda) * l1 + ssim_lambda * dssim(pred, target)
