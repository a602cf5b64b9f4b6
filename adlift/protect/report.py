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


def format_summary(summary: dict, width: int = 100) -> str:
    """:func:`summary_table` rendered as plain text (no colour codes)."""
    import io

    from rich.console import Console

    console = Console(width=width, no_color=True, highlight=False, file=io.StringIO())
    console.print(summary_table(summary))
    return console.file.getvalue().rstrip("\n")


def print_summary(summary: dict, console: "Console | None" = None) -> None:
    """Print :func:`summary_table` to ``console`` (default: a console on stdout)."""
    from rich.console import Console

    (console or Console(highlight=False)).print(summary_table(summary))

