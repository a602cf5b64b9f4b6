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


def _removal_points(rows: list[dict], right: float) -> list[tuple[float, float, bool, str, str]]:
    """(x, y, measured, colour, label) per group of attacks that land on the same spot (within 0.05 dB
    and 0.5 %); the label is their numbers (1-based, in ``rows`` order), e.g. ``3,4,5``."""
    points: list[list] = []
    for number, row in enumerate(rows, start=1):
        value, left = row.get("psnr_to_raw"), row.get("protection_remaining")
        x = right if value is None or not math.isfinite(value) else float(value)
        has_y = left is not None and math.isfinite(left)
        y = 100.0 * left if has_y else 0.0
        colour = "tab:red" if row.get("recovers") else "tab:orange" if row.get("verdict") == "strips" else "tab:blue"
        for p in points:
            if abs(p[0] - x) < 0.05 and abs(p[1] - y) < 0.5 and p[2] == has_y and p[3] == colour:
                p[4].append(str(number))
                break
        else:
            points.append([x, y, has_y, colour, [str(number)]])
    return [(x, y, has_y, colour, ",".join(numbers)) for x, y, has_y, colour, numbers in points]


def save_removal_plot(path: Path, removal: dict, title: str = "") -> Path:
    """removal.png: per attack, PSNR of its renders to the raw renders (x) vs the protection left (y),
    with the protected file's point (star), the recovery line (its PSNR + the margin) and the targets;
    left every attack, middle a zoom on +-3 dB around the protected file, right the numbered list of
    attacks with their values. Red: recovers the asset; orange: strips the protection; hollow: no
    protection measure (y = 0); identical renders (infinite PSNR) at the right edge; skipped attacks
    in the list."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adlift.evaluate.removal import ACCEPTABLE_PSNR_DB, RECOVERY_MARGIN_DB, REMAINING_TARGET
    from adlift.io.atomic import atomic_path

    base = removal["protected"]
    rows = removal["attacks"]
    measured = [r for r in rows if not r.get("skipped")]
    finite_x = [r["psnr_to_raw"] for r in [base, *measured]
                if isinstance(r.get("psnr_to_raw"), (int, float)) and math.isfinite(r["psnr_to_raw"])]  # fmt: skip
    right = (max(finite_x) if finite_x else 60.0) + 4.0
    base_x = base.get("psnr_to_raw")
    base_x = right if base_x is None or not math.isfinite(base_x) else float(base_x)
    points = [p for p in _removal_points(rows, right)
              if not all(rows[int(n) - 1].get("skipped") for n in p[4].split(","))]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(17, 6.5), gridspec_kw={"width_ratios": [1, 1, 0.6]})
    for zoom, ax in zip((False, True), axes[:2]):
        lo, hi = base_x - 3.0, base_x + 3.0
        for x, y, has_y, colour, label in points:
            shown = min(max(x, lo), hi) if zoom else x
            ax.plot(shown, y, "o", color=colour, mfc=colour if has_y else "none", ms=7)
            ax.annotate(label + ("" if shown == x else " >" if x > hi else " <"), (shown, y),
                        textcoords="offset points", xytext=(5, 5), fontsize=7)  # fmt: skip
        ax.plot(base_x, 100.0, "*", color="black", ms=14, label="protected file")
        if base_x != right:
            ax.axvline(base_x + RECOVERY_MARGIN_DB, color="tab:red", ls="--",
                       label=f"recovery line (protected + {RECOVERY_MARGIN_DB:g} dB)")  # fmt: skip
        if not zoom or lo <= ACCEPTABLE_PSNR_DB <= hi:
            ax.axvline(ACCEPTABLE_PSNR_DB, color="grey", ls=":", label=f"{ACCEPTABLE_PSNR_DB:g} dB (too costly below)")
        ax.axhline(100.0 * REMAINING_TARGET, color="grey", ls="-.", lw=0.8,
                   label=f"{REMAINING_TARGET:.0%} protection left")  # fmt: skip
        if zoom:
            ax.set_xlim(lo - 0.3, hi + 0.6)
        ax.set_xlabel("PSNR of the attacked scene's renders to the raw renders (dB)")
        ax.set_ylabel(f"protection left (%, by {removal.get('measure') or 'no measure'})")
        ax.set_title("zoom: +-3 dB around the protected file (< > off scale)" if zoom else "every attack", fontsize=9)
        ax.legend(fontsize=7, loc="center left")
    lines = []
    for number, row in enumerate(rows, start=1):
        if row.get("skipped"):
            lines.append(f"{number:2d} {row['attack']}: skipped")
            continue
        value, left = row.get("psnr_to_raw"), row.get("protection_remaining")
        psnr = "inf" if value is None or not math.isfinite(value) else f"{value:.2f}"
        share = "n/a" if left is None else f"{100 * left:.0f}%"
        lines.append(f"{number:2d} {row['attack']}: {psnr} dB, {share}, {row['verdict']}")
    axes[2].axis("off")
    axes[2].text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7,
                 transform=axes[2].transAxes)  # fmt: skip
    fig.suptitle((title + "\n" if title else "") + "removal attacks on the protected file alone", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path
