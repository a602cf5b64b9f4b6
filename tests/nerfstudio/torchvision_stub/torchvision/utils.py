"""``save_image`` for [C, H, W] / [B, C, H, W] float images in [0, 1] (test-only stand-in)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def save_image(tensor: torch.Tensor, fp, format: str | None = None, **_ignored) -> None:
    """Write an image tensor (a batch is written side by side) as an 8-bit image file."""
    t = tensor.detach().float().cpu()
    if t.ndim == 4:
        t = torch.cat(list(t), dim=-1)
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    array = (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(np.ascontiguousarray(array)).save(fp, format=format)
