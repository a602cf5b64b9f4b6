"""The end-of-run summary of a protection, as a rich table (``adlift protect`` and ``ns-train
adlift-protect`` print the same one).

    print_summary(result.summary)                 # to stdout
    CONSOLE.print(summary_table(result.summary))  # to any rich console
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def summary_table(summary: dict) -> "Table":
    """One row per split (train, novel): loss raw -> protected, PSNR, max L-infinity, share within budget;
    the caption says how much of the training-view loss reduction the novel views keep."""
    from rich.table import Table

    table = Table(title="protection summary", title_justify="left")
    for header in ("split", "views", "loss raw -> protected", "PSNR dB", "max L-inf /255", "within budget (min)"):
        table.add_column(header, justify="left" if header == "split" else "right")
    for split in ("train", "novel"):
        s = summary.get(split)
        if s is None:
            continue
        table.add_row(split, str(s["views"]), f"{s['loss_raw']:.4g} -> {s['loss_protected']:.4g}", f"{s['psnr']:.1f}",
                      f"{s['linf_255_max']:.1f}", f"{100 * s['within_budget_min']:.2f}%")  # fmt: skip
    if "novel_share" in summary:
        table.caption = f"novel views keep {100 * summary['novel_share']:.0f}% of the training-view loss reduction"
        table.caption_justify = "left"
    return table


def export_table(export: dict) -> "Table":
    """One row per split of the manifest's ``export`` section (:mod:`adlift.protect.exported`): the
    protection measured on a decode of the written file."""
    from rich.table import Table

    fitted = export.get("quantised_in_fit")
    table = Table(title=f"after export: decode of {export.get('path', '')}", title_justify="left")
    for header in ("split", "within eta+2/255", "loss reduction kept", "perturbation cosine (vs raw file)",
                   "max L-inf /255", "PSNR dB"):  # fmt: skip
        table.add_column(header, justify="left" if header == "split" else "right")
    pct = lambda v: "n/a" if v is None or v != v else f"{100 * v:.1f}%"  # noqa: E731
    num = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    for split, s in (export.get("splits") or {}).items():
        table.add_row(split, pct(s.get("within_eta_2")), pct(s.get("loss_reduction_kept")),
                      f"{num(s.get('cosine'))} ({num(s.get('cosine_vs_raw_file'))})",
                      f"{s['linf_255_max']:.1f}", f"{s['psnr']:.1f}")  # fmt: skip
    table.caption = (f"fitted with the {fitted} quantiser in the loop" if fitted
                     else "fitted in float32 (no quantiser in the loop)")  # fmt: skip
    table.caption_justify = "left"
    return table


def format_summary(summary: dict, width: int = 100) -> str:
    """:func:`summary_table` rendered as plain text (no colour codes)."""
    import io

    from rich.console import Console

    console = Console(width=width, no_color=True, highlight=False, file=io.StringIO())
    console.print(summary_table(summary))
    return console.file.getvalue().rstrip("\n")


def print_summary(summary: dict, console: "Console | None" = None, export: dict | None = None) -> None:
    """Print :func:`summary_table` to ``console`` (default: a console on stdout), then
    :func:`export_table` of ``export`` (the manifest's export section) when given."""
    from rich.console import Console

    console = console or Console(highlight=False)
    console.print(summary_table(summary))
    if export:
        console.print(export_table(export))

