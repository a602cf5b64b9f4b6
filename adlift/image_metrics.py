"""How visible a perturbation is: per-image PSNR, SSIM, L-inf, share within budget, LPIPS, and the
|difference| / eta image. Low in the package (torch and kornia only): protect, evaluate, the
viewer and the nerfstudio plugin all measure with it.

All functions take two image batches a, b [B, 3, H, W] in [0, 1] and return one value per image
[B] (float64), so raw/protected pairs can be reported view by view:

    rows = image_pair_metrics(raw, protected, eta=8 / 255, lpips=LpipsMetric.load())
    # [{"psnr": 38.2, "ssim": 0.97, "linf_255": 8.0, "within_budget": 1.0, "lpips": None}, ...]

LPIPS needs the ``lpips`` package (which needs torchvision) and its backbone weights in the torch
hub cache; when either is missing :meth:`LpipsMetric.load` returns None and
:func:`lpips_unavailable_reason` says why. LPIPS is never approximated by anything else.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from adlift.errors import AdLiftError

#: Slack allowed when checking that pixel values lie in [0, 1] (float rounding of renders/decoders).
RANGE_SLACK = 1e-4


def check_images(x: torch.Tensor, what: str = "images", *, values: bool = True) -> None:
    """AdLiftError unless ``x`` is a float batch [B, 3, H, W]; with ``values`` (the default) also
    finite and in [0, 1]. ``values=False`` checks the shape only (no device sync; for hot loops)."""
    if not isinstance(x, torch.Tensor):
        raise AdLiftError(f"{what} must be a torch.Tensor [B, 3, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise AdLiftError(f"{what} must be 4-D [B, 3, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise AdLiftError(f"{what} must have 3 channels [B, 3, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise AdLiftError(f"{what} must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise AdLiftError(f"{what} are empty, shape {tuple(x.shape)}")
    if not values:
        return
    if not bool(torch.isfinite(x).all()):
        raise AdLiftError(f"{what} contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        raise AdLiftError(f"{what} must have values in [0, 1], got [{lo:.4g}, {hi:.4g}]; clamp them first")


def difference_image(
    protected: torch.Tensor,  # [C, 3, H, W]
    raw: torch.Tensor,  # [C, 3, H, W]
    eta: float,
) -> torch.Tensor:
    """|protected - raw| scaled so that eta maps to full brightness: [C, 3, H, W] in [0, 1]."""
    return ((protected - raw).abs() / max(eta, 1e-8)).clamp(0.0, 1.0)


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked float64 copies of a pair of batches of the same shape."""
    check_images(a, "first images")
    check_images(b, "second images")
    if a.shape != b.shape:
        raise AdLiftError(f"image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a.detach().to(torch.float64), b.detach().to(a.device, torch.float64)


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB (peak 1) of a, b [B, 3, H, W] -> [B]; identical images give +inf, never NaN."""
    a, b = _pair(a, b)
    mse = (a - b).square().mean(dim=(1, 2, 3))
    inf = torch.full_like(mse, math.inf)
    return torch.where(mse > 0, -10.0 * torch.log10(mse.clamp_min(1e-300)), inf)


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM (kornia, Gaussian window ``window_size``, peak 1) of a, b [B, 3, H, W] -> [B].

    Images smaller than the window get the largest window kornia's reflect padding allows
    (2 * min(H, W) - 1).
    """
    import kornia

    a, b = _pair(a, b)
    window = min(window_size, 2 * min(a.shape[-2:]) - 1)
    ssim_map = kornia.metrics.ssim(a, b, window, max_val=1.0)  # [B, 3, H, W]
    return ssim_map.mean(dim=(1, 2, 3))


def linf_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest absolute difference over channels and pixels of a, b [B, 3, H, W] -> [B]."""
    a, b = _pair(a, b)
    return (a - b).abs().amax(dim=(1, 2, 3))


def within_budget_per_image(
    a: torch.Tensor, b: torch.Tensor, eta: float, tolerance: float = 1 / 255
) -> torch.Tensor:
    """Share of pixels of a, b [B, 3, H, W] whose largest channel difference is <= eta + tolerance -> [B].

    The tolerance (one 8-bit level by default) absorbs quantisation when images were saved as PNG.
    """
    if not (eta >= 0 and tolerance >= 0):
        raise AdLiftError(f"budget eta and tolerance must be >= 0, got eta={eta}, tolerance={tolerance}")
    a, b = _pair(a, b)
    per_pixel = (a - b).abs().amax(dim=1)  # [B, H, W]
    return (per_pixel <= eta + tolerance).to(torch.float64).mean(dim=(1, 2))


# ----------------------------------------------------------------------------------------- LPIPS

#: torchvision weight enums of the backbones the lpips package builds (it downloads them itself).
_LPIPS_BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


@functools.lru_cache(maxsize=None)
def _probe_lpips(net: str) -> tuple[torch.nn.Module | None, str | None]:
    """(the lpips model, None) or (None, one-line reason); built once per backbone, never downloading."""
    if net not in _LPIPS_BACKBONES:
        return None, f"LPIPS unavailable: unknown backbone {net!r}; choose from {', '.join(_LPIPS_BACKBONES)}"
    try:
        import lpips
        import torchvision
    except Exception as err:  # ImportError, or a broken torchvision build raising something else
        return None, f"LPIPS unavailable: the lpips package (and torchvision) is not installed ({type(err).__name__})"
    try:
        weights = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.is_file():
            return None, (
                f"LPIPS unavailable: the {net} backbone weights are not in the torch hub cache ({cached}); "
                "AdLift does not download during evaluation"
            )
        model = lpips.LPIPS(net=net, verbose=False).eval()
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return None, f"LPIPS unavailable: building lpips.LPIPS(net={net!r}) failed ({first})"
    for p in model.parameters():
        p.requires_grad_(False)
    return model, None


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    """Why :meth:`LpipsMetric.load` returns None for ``net`` (one line), or None if LPIPS works."""
    return _probe_lpips(net)[1]


class LpipsMetric:
    """LPIPS distance (Zhang et al. 2018) through the ``lpips`` package; lower = more similar."""

    def __init__(self, model: torch.nn.Module, net: str):
        self.model = model
        self.net = net

    @classmethod
    def load(cls, net: str = "alex") -> LpipsMetric | None:
        """The metric for backbone ``net``, or None if unavailable (see :func:`lpips_unavailable_reason`)."""
        model, _ = _probe_lpips(net)
        return None if model is None else cls(model, net)

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS of a, b [B, 3, H, W] in [0, 1] -> [B] (float64)."""
        check_images(a, "first images")
        check_images(b, "second images")
        if a.shape != b.shape:
            raise AdLiftError(f"image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        device = next(self.model.parameters()).device
        a = a.detach().to(device, torch.float32) * 2 - 1  # lpips expects [-1, 1]
        b = b.detach().to(device, torch.float32) * 2 - 1
        return self.model(a, b).reshape(a.shape[0]).to(torch.float64)


# ------------------------------------------------------------------------------------- summaries


def image_pair_metrics(
    a: torch.Tensor, b: torch.Tensor, eta: float | None = None, lpips: LpipsMetric | None = None
) -> list[dict]:
    """One JSON-friendly dict per image pair of a, b [B, 3, H, W].

    Keys: ``psnr`` (dB; ``float('inf')`` for identical images), ``ssim``, ``linf_255`` (L-inf in
    8-bit levels), ``within_budget`` (only when ``eta`` is given) and ``lpips`` (None when no
    metric is passed, i.e. LPIPS is unavailable).
    """
    columns = {
        "psnr": psnr_per_image(a, b),
        "ssim": ssim_per_image(a, b),
        "linf_255": linf_per_image(a, b) * 255.0,
    }
    if eta is not None:
        columns["within_budget"] = within_budget_per_image(a, b, eta)
    lp = lpips(a, b) if lpips is not None else None
    rows = []
    for i in range(a.shape[0]):
        row = {k: float(v[i]) for k, v in columns.items()}
        row["lpips"] = float(lp[i]) if lp is not None else None
        rows.append(row)
    return rows
