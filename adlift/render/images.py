"""Image output helpers for the CLI: PNG files and a labelled contact sheet (Pillow)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from adlift.errors import AdLiftError
from adlift.io.atomic import atomic_path


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """[C, 3, H, W] float in [0, 1] -> [C, H, W, 3] uint8 (clamped, rounded)."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise AdLiftError(f"images must have shape [C, 3, H, W], got {list(rgb.shape)}")
    x = rgb.detach().to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return safe or "view"


def save_images(rgb: torch.Tensor, names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Write ``rgb`` [C, 3, H, W] as ``out_dir/<name>.png`` (atomic writes); returns the paths."""
    if len(names) != rgb.shape[0]:
        raise AdLiftError(f"save_images got {len(names)} names for {rgb.shape[0]} images")
    safe = [_safe_name(n) for n in names]
    if len(set(safe)) != len(safe):
        raise AdLiftError("save_images: image names must be distinct (after making them file-safe)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for img, name in zip(to_uint8(rgb), safe):
        paths.append(save_png(Image.fromarray(img), out_dir / f"{name}.png"))
    return paths


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Save a PIL image as PNG atomically (temp file + rename); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def contact_sheet(
    rgb: torch.Tensor, names: Sequence[str] | None = None, *, columns: int | None = None, pad: int = 4
) -> Image.Image:
    """A grid of the images ``rgb`` [C, 3, H, W], each labelled with its name underneath."""
    imgs = to_uint8(rgb)
    c, h, w, _ = imgs.shape
    if c == 0:
        raise AdLiftError("contact_sheet needs at least one image")
    names = list(names) if names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise AdLiftError(f"contact_sheet got {len(names)} names for {c} images")
    cols = columns or math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    label_h = 14 if names else 0
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + label_h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (img, name) in enumerate(zip(imgs, names)):
        x = pad + (k % cols) * (w + pad)
        y = pad + (k // cols) * (h + label_h + pad)
        sheet.paste(Image.fromarray(img), (x, y))
        draw.text((x + 2, y + h + 1), str(name)[: max(4, w // 6)], fill=(0, 0, 0))
    return sheet


def with_banner(sheet: Image.Image, text: str, colour: tuple[int, int, int] = (200, 0, 0)) -> Image.Image:
    """``sheet`` with ``text`` in white on a coloured strip above it (unchanged if text is empty)."""
    if not text:
        return sheet
    strip = 16
    framed = Image.new("RGB", (sheet.width, sheet.height + strip), colour)
    framed.paste(sheet, (0, strip))
    ImageDraw.Draw(framed).text((4, 2), text, fill=(255, 255, 255))
    return framed
