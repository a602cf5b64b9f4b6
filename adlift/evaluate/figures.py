"""Pictures of an evaluation: per-split image grids and metric plots (matplotlib, written atomically).

``grid_<split>.png``: one row per view, raw | protected | |protected - raw| x gain | edit(raw) |
edit(protected). ``metrics.png``: invisibility and protection metrics per view, training views
and novel views in two colours, plus the robustness of the protection under each purification.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from adlift.evaluate.run import SplitImages

SPLIT_COLOURS = {"train": "tab:blue", "novel": "tab:orange"}


def save_grid(path: Path, images: SplitImages, eta: float, split: str, banner: str = "", max_rows: int = 8) -> Path:
    """One row per view (at most ``max_rows``): raw | protected | |diff| / eta | edit(raw) | edit(protected)."""
    from adlift.image_metrics import difference_image
    from adlift.render.images import contact_sheet, save_png, with_banner

    n = min(max_rows, len(images.names))
    diff = difference_image(images.protected[:n], images.raw[:n], eta)
    cells = torch.stack([images.raw[:n], images.protected[:n], diff, images.edit_raw[:n], images.edit_protected[:n]],
                        dim=1).flatten(0, 1)  # fmt: skip  [5n, 3, H, W]
    labels = [lab for name in images.names[:n]
              for lab in (f"{split}:{name}", "protected", "|diff| / eta", "edit(raw)", "edit(prot)")]  # fmt: skip
    return save_png(with_banner(contact_sheet(cells, labels, columns=5), banner), path)


def _series(views: list[dict], key: str, split: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, v in enumerate(x for x in views if x["split"] == split):
        value = v.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(i)
            ys.append(value)
    return xs, ys


#: Panels of metrics.png: (title, [(field, label, line style)]).
PANELS = [
    ("invisibility: PSNR protected vs raw (dB)", [("psnr", "", "-o")]),
    ("invisibility: SSIM protected vs raw", [("ssim", "", "-o")]),
    ("CLIP directional similarity of the edit", [("clip_direction_raw", "raw", ":x"),
                                                 ("clip_direction_protected", "protected", "-o")]),  # fmt: skip
    ("edit(raw) vs edit(protected): PSNR (dB)", [("edit_deviation_psnr", "", "-o")]),
]


def save_plots(path: Path, views: list[dict], robustness: list[dict], title: str = "") -> Path:
    """metrics.png: four per-view panels (train vs novel) and a robustness panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adlift.io.atomic import atomic_path

    splits = [s for s in ("train", "novel") if any(v["split"] == s for v in views)]
    fig, axes = plt.subplots(1, 5, figsize=(22, 4.2))
    for ax, (panel_title, fields) in zip(axes, PANELS):
        plotted = False
        for split in splits:
            for key, label, style in fields:
                xs, ys = _series(views, key, split)
                if xs:
                    ax.plot(xs, ys, style, color=SPLIT_COLOURS[split], label=f"{split} {label}".strip(), ms=4)
                    plotted = True
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("view (index within its split)")
        if plotted:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "unavailable", ha="center", va="center", transform=ax.transAxes)
    ax = axes[-1]
    ax.set_title("robustness: CLIP dir. of edit(purified protected)", fontsize=9)
    names = list(dict.fromkeys(r["purification"] for r in robustness))
    width = 0.8 / max(1, len(splits))
    drawn = False
    for k, split in enumerate(splits):
        vals = {r["purification"]: r.get("clip_direction_protected") for r in robustness if r["split"] == split}
        ys = [vals.get(n) for n in names]
        if names and any(y is not None for y in ys):
            ax.bar([i + k * width for i in range(len(names))], [y or 0.0 for y in ys], width,
                   color=SPLIT_COLOURS[split], label=split)  # fmt: skip
            drawn = True
    if drawn:
        ax.set_xticks([i + width * (len(splits) - 1) / 2 for i in range(len(names))], names, rotation=30, fontsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no purifications or no CLIP", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
