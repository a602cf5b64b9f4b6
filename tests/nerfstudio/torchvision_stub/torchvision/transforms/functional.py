"""``resize`` of [..., C, H, W] tensors (test-only stand-in for torchvision's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(img: torch.Tensor, size, interpolation=None, max_size=None, antialias=None) -> torch.Tensor:
    """Resize like torchvision: an int sets the shorter side (aspect kept), a pair sets (H, W)."""
    h, w = img.shape[-2:]
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
        s = size if isinstance(size, int) else size[0]
        if h <= w:
            new = (s, max(1, round(w * s / h)))
        else:
            new = (max(1, round(h * s / w)), s)
    else:
        new = (int(size[0]), int(size[1]))
    x = img.float()
    batched = x.ndim == 4
    x = x if batched else x[None]
    out = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=True)
    out = out if batched else out[0]
    if not img.is_floating_point():
        out = out.round().clamp(0, 255).to(img.dtype)
    return out


def pil_to_tensor(pic) -> torch.Tensor:
    """A PIL image as a uint8 tensor [C, H, W]."""
    import numpy as np

    array = np.asarray(pic)
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
