"""The comparison panel: one labelled image of raw | protected | edits | |difference| heatmap.

Cells are uint8 arrays [H, W, 3]; a cell without an image (an edit not run yet, or running) is
drawn as a grey placeholder carrying a short note. Layout "grid" (for the browser's side panel)
puts each edit under its input::

    raw        | protected        | |protected - raw| x gain
    edit(raw)  | edit(protected)  | colour scale of the heatmap

Layout "row" puts the five images side by side (raw, protected, |diff|, edit(raw), edit(protected)).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

#: Colour map of the |difference| heatmap (matplotlib name).
HEATMAP_CMAP = "inferno"
LABEL_HEIGHT = 18
PAD = 4
BACKGROUND = (24, 24, 28)
PLACEHOLDER = (70, 70, 78)
TEXT = (235, 235, 235)
#: Columns of the "grid" layout, and the cell order of both layouts.
GRID_COLUMNS = 3
GRID_CELLS = ("raw", "protected", "diff", "edit_raw", "edit_protected", "scale")
ROW_CELLS = ("raw", "protected", "diff", "edit_raw", "edit_protected")


@dataclasses.dataclass
class Cell:
    """One panel cell: an image [H, W, 3] uint8 (or None for a placeholder) under a label."""

    label: str
    image: np.ndarray | None = None
    note: str = ""
    """Text drawn on a placeholder (and under nothing else)."""


def to_rgb8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """[3, H, W] or [1, 3, H, W] float in [0, 1] (or [H, W, 3] uint8) -> [H, W, 3] uint8."""
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
            return image
        image = torch.from_numpy(np.asarray(image))
    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 4:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image [3, H, W], got {list(x.shape)}")
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def difference_map(raw: torch.Tensor, protected: torch.Tensor) -> torch.Tensor:
    """Per-pixel max over channels of |protected - raw|: [H, W] in [0, 1] (inputs [3, H, W] or [1, 3, H, W])."""
    d = (protected.detach().float() - raw.detach().float()).abs()
    if d.ndim == 4:
        d = d[0]
    return d.amax(dim=0)


def heatmap(diff: torch.Tensor | np.ndarray, gain: float, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """|difference| [H, W] times ``gain``, clipped to [0, 1], through a colour map: [H, W, 3] uint8."""
    from matplotlib import colormaps

    d = diff.detach().cpu().numpy() if isinstance(diff, torch.Tensor) else np.asarray(diff)
    v = np.clip(d.astype(np.float64) * float(gain), 0.0, 1.0)
    rgba = colormaps[cmap](v)
    return (rgba[..., :3] * 255.0).round().astype(np.uint8)


def font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def colour_scale(width: int, height: int, gain: float, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """A horizontal colour bar from 0 to 255/gain (in /255 units) with its end values written on it."""
    ramp = np.tile(np.linspace(0.0, 1.0 / max(gain, 1e-12), max(width, 2))[None, :], (max(height // 3, 4), 1))
    bar = heatmap(ramp, gain, cmap)
    img = Image.new("RGB", (width, height), BACKGROUND)
    top = (height - bar.shape[0]) // 2
    img.paste(Image.fromarray(bar), (0, top))
    draw = ImageDraw.Draw(img)
    size = text_size(width)
    f = font(size)
    draw.text((2, top - size - 4), "0", fill=TEXT, font=f)
    right = f"{255.0 / max(gain, 1e-12):.3g}/255"
    tw = draw.textlength(right, font=f)
    draw.text((width - tw - 2, top - size - 4), right, fill=TEXT, font=f)
    draw.text((2, top + bar.shape[0] + 3), f"|protected - raw| x {gain:.3g}", fill=TEXT, font=f)
    return np.asarray(img)


def _fit(image: np.ndarray, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.fromarray(image)
    return img if img.size == (w, h) else img.resize((w, h), Image.BILINEAR)


def _placeholder(size: tuple[int, int], note: str) -> Image.Image:
    w, h = size
    img = Image.new("RGB", (w, h), PLACEHOLDER)
    draw = ImageDraw.Draw(img)
    size = text_size(w)
    f = font(size)
    lines = _wrap(note, draw, f, w - 12)
    step = int(size * 1.4)
    y = h // 2 - step * len(lines) // 2
    for line in lines:
        tw = draw.textlength(line, font=f)
        draw.text(((w - tw) / 2, y), line, fill=TEXT, font=f)
        y += step
    return img


def _wrap(text: str, draw: ImageDraw.ImageDraw, f, width: int) -> list[str]:
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=f) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def compose(cells: list[Cell], columns: int, cell_size: tuple[int, int]) -> np.ndarray:
    """Cells on a grid of ``columns``, each ``cell_size`` (w, h) under a label strip: [H, W, 3] uint8."""
    w, h = cell_size
    rows = -(-len(cells) // columns)
    width = columns * w + (columns + 1) * PAD
    height = rows * (h + LABEL_HEIGHT) + (rows + 1) * PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    f = font(text_size(w))
    for k, cell in enumerate(cells):
        r, c = divmod(k, columns)
        x = PAD + c * (w + PAD)
        y = PAD + r * (h + LABEL_HEIGHT + PAD)
        label = Image.new("RGB", (w, LABEL_HEIGHT), BACKGROUND)  # clipped to the cell's width
        ImageDraw.Draw(label).text((2, 2), cell.label, fill=TEXT, font=f)
        sheet.paste(label, (x, y))
        tile = _fit(cell.image, (w, h)) if cell.image is not None else _placeholder((w, h), cell.note)
        sheet.paste(tile, (x, y + LABEL_HEIGHT))
    return np.asarray(sheet)


def text_size(cell_width: int) -> int:
    """Font size for cells ``cell_width`` pixels wide (13 from 160 px up, smaller below)."""
    return int(min(13, max(7, cell_width // 12)))


def comparison_panel(
    raw: torch.Tensor,  # [3, H, W] in [0, 1]
    protected: torch.Tensor | None,  # [3, H, W] in [0, 1]
    edit_raw: torch.Tensor | None,  # [3, H', W'] in [0, 1]
    edit_protected: torch.Tensor | None,  # [3, H', W'] in [0, 1]
    *,
    gain: float,
    edit_note: str = "no edit of this view yet",
    edit_label: str = "edit",
    layout: Literal["grid", "row"] = "grid",
) -> np.ndarray:
    """The panel for one view; missing images become placeholders with ``edit_note``."""
    raw8 = to_rgb8(raw)
    h, w = raw8.shape[:2]
    if protected is not None:
        prot8 = to_rgb8(protected)
        diff8 = heatmap(difference_map(raw, protected), gain)
        prot_cell = Cell("protected", prot8)
        diff_cell = Cell(f"|diff| x {gain:.3g}", diff8)
    else:
        prot_cell = Cell("protected", None, "no protected scene given")
        diff_cell = Cell("|diff|", None, "no protected scene given")
    er = Cell(f"{edit_label}(raw)", to_rgb8(edit_raw) if edit_raw is not None else None, edit_note)
    ep = Cell(f"{edit_label}(protected)", to_rgb8(edit_protected) if edit_protected is not None else None,
              edit_note if protected is not None else "no protected scene given")  # fmt: skip
    raw_cell = Cell("raw", raw8)
    if layout == "row":
        return compose([raw_cell, prot_cell, diff_cell, er, ep], 5, (w, h))
    scale = Cell("colour scale", colour_scale(w, h, gain))
    return compose([raw_cell, prot_cell, diff_cell, er, ep, scale], GRID_COLUMNS, (w, h))


def panel_cell_boxes(n_cells: int, columns: int, cell_size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) of the images (below their labels) in a :func:`compose` sheet."""
    w, h = cell_size
    boxes = []
    for k in range(n_cells):
        r, c = divmod(k, columns)
        x = PAD + c * (w + PAD)
        y = PAD + r * (h + LABEL_HEIGHT + PAD) + LABEL_HEIGHT
        boxes.append((x, y, x + w, y + h))
    return boxes
