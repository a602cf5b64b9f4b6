"""Per-view metrics (report.json of ``adlift evaluate``, else manifest.json of ``adlift protect``) as markdown."""

from __future__ import annotations

import math

#: Columns shown when present: (field, header, format). report.json first, then manifest.json fields.
COLUMNS = [
    ("psnr", "PSNR dB", "{:.1f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("linf_255", "L∞/255", "{:.1f}"),
    ("within_budget", "≤ η", "{:.1%}"),
    ("clip_direction_raw", "CLIP dir raw", "{:.3f}"),
    ("clip_direction_protected", "CLIP dir prot", "{:.3f}"),
    ("edit_deviation_psnr", "edit raw vs prot dB", "{:.1f}"),
    ("loss_raw", "loss raw", "{:.4g}"),
    ("loss_protected", "loss prot", "{:.4g}"),
]


def _cell(value, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def columns_for(views: list[dict], limit: int = 5) -> list[tuple[str, str, str]]:
    """The first ``limit`` known columns that some view has a value for."""
    return [c for c in COLUMNS if any(v.get(c[0]) is not None for v in views)][:limit]


def metrics_table(views: list[dict], source: str | None = None, limit: int = 5) -> str:
    """A markdown table: one row per view (name, split and the available metrics)."""
    if not views:
        return "No per-view metrics (run `adlift evaluate OUTDIR` to get them)."
    cols = columns_for(views, limit)
    head = "| view | split | " + " | ".join(h for _, h, _ in cols) + " |"
    rule = "|---|---|" + "---:|" * len(cols)
    rows = [f"| {v.get('name', '?')} | {v.get('split', '')} | " + " | ".join(_cell(v.get(k), f) for k, _, f in cols)
            + " |" for v in views]  # fmt: skip
    lines = [head, rule, *rows]
    if source:
        lines += ["", f"from `{source}`"]
    return "\n".join(lines)


def view_summary(label: str, record: dict | None) -> str:
    """One line about the current view: its name and its metrics when known."""
    if record is None:
        return f"**{label}**"
    cols = columns_for([record], limit=len(COLUMNS))
    values = ", ".join(f"{h} {_cell(record.get(k), f)}" for k, h, f in cols)
    return f"**{label}**: {values}" if values else f"**{label}**"
