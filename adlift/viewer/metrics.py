"""Per-view metrics (report.json of ``adlift evaluate``, else manifest.json of ``adlift protect``) as markdown.

The columns are the metrics :data:`adlift.evaluate.columns.METRICS` tags for the viewer (headers,
formats and order are declared there, once, for report.md too).
"""

from __future__ import annotations

from adlift.evaluate.columns import Metric, columns


#: Metrics the table keeps when it has more than ``limit`` to show: the protection's headline.
PINNED = ("edit_success_fall_psnr",)


def columns_for(views: list[dict], limit: int = 5) -> list[Metric]:
    """The first ``limit`` viewer metrics that some view has a value for, :data:`PINNED` ones kept
    when others must go (in the order METRICS declares them)."""
    have = [m for m in columns("viewer") if any(v.get(m.key) is not None for v in views)]
    pinned = [m for m in have if m.key in PINNED][:limit]
    rest = [m for m in have if m.key not in PINNED][: limit - len(pinned)]
    chosen = {m.key for m in pinned + rest}
    return [m for m in have if m.key in chosen]


def metrics_table(views: list[dict], source: str | None = None, limit: int = 5) -> str:
    """A markdown table: one row per view (name, split and the available metrics)."""
    if not views:
        return "No per-view metrics (run `adlift evaluate OUTDIR` to get them)."
    cols = columns_for(views, limit)
    head = "| view | split | " + " | ".join(m.short_header for m in cols) + " |"
    rule = "|---|---|" + "---:|" * len(cols)
    rows = [f"| {v.get('name', '?')} | {v.get('split', '')} | " + " | ".join(m.cell(v.get(m.key)) for m in cols)
            + " |" for v in views]  # fmt: skip
    lines = [head, rule, *rows]
    if source:
        lines += ["", f"from `{source}`"]
    return "\n".join(lines)


def view_summary(label: str, record: dict | None) -> str:
    """One line about the current view: its name and its metrics when known."""
    if record is None:
        return f"**{label}**"
    shown = columns_for([record], limit=len(columns("viewer")))
    values = ", ".join(f"{m.short_header} {m.cell(record.get(m.key))}" for m in shown)
    return f"**{label}**: {values}" if values else f"**{label}**"
