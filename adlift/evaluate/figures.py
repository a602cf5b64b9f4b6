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


def save_removal_plot(path: Path, removal: dict, title: str = "") -> Path:
    """removal.png: per attack, PSNR of its renders to the raw renders (x) vs the protection left (y),
    with the protected file's point, the recovery line (its PSNR + the margin) and the targets.
    Identical renders (infinite PSNR) sit at the right edge, marked "inf"; attacks without a protection
    measure at y = 0 with hollow markers; skipped attacks are listed under the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adlift.evaluate.removal import ACCEPTABLE_PSNR_DB, RECOVERY_MARGIN_DB, REMAINING_TARGET
    from adlift.io.atomic import atomic_path

    base = removal["protected"]
    measured = [r for r in removal["attacks"] if not r.get("skipped")]
    finite_x = [r["psnr_to_raw"] for r in [base, *measured]
                if isinstance(r.get("psnr_to_raw"), (int, float)) and math.isfinite(r["psnr_to_raw"])]  # fmt: skip
    right = (max(finite_x) if finite_x else 60.0) + 4.0

    def x_of(row: dict) -> float:
        value = row.get("psnr_to_raw")
        return right if value is None or not math.isfinite(value) else float(value)

    fig, ax = plt.subplots(figsize=(9, 6))
    for row in measured:
        left = row.get("protection_remaining")
        colour = "tab:red" if row.get("recovers") else "tab:orange" if row["verdict"] == "strips" else "tab:blue"
        y = 100.0 * left if left is not None and math.isfinite(left) else 0.0
        ax.plot(x_of(row), y, "o", color=colour, mfc=colour if left is not None else "none", ms=7)
        label = row["attack"] + (" (inf)" if x_of(row) == right else "")
        ax.annotate(label, (x_of(row), y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.plot(x_of(base), 100.0, "*", color="black", ms=14, label="protected file")
    if base.get("psnr_to_raw") is not None and math.isfinite(base["psnr_to_raw"]):
        ax.axvline(base["psnr_to_raw"] + RECOVERY_MARGIN_DB, color="tab:red", ls="--",
                   label=f"recovery line (protected + {RECOVERY_MARGIN_DB:g} dB)")  # fmt: skip
    ax.axvline(ACCEPTABLE_PSNR_DB, color="grey", ls=":", label=f"{ACCEPTABLE_PSNR_DB:g} dB (attack too costly below)")
    ax.axhline(100.0 * REMAINING_TARGET, color="grey", ls="-.", lw=0.8, label=f"{REMAINING_TARGET:.0%} protection left")
    ax.set_xlabel("PSNR of the attacked scene's renders to the raw renders (dB)")
    ax.set_ylabel(f"protection left (%, by {removal.get('measure') or 'no measure'})")
    ax.legend(fontsize=7, loc="best")
    skipped = removal.get("skipped") or {}
    if skipped:
        fig.text(0.01, 0.01, "skipped: " + "; ".join(f"{a} ({why})" for a, why in skipped.items()), fontsize=6,
                 wrap=True)  # fmt: skip
    ax.set_title((title + "\n" if title else "") + "removal attacks on the protected file alone", fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if skipped else 0, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
