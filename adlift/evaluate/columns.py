"""Every per-view metric AdLift reports, declared once: its key, headers, number format, meaning and
the tables that show it (report.md, the console summary of ``adlift evaluate``, the viewer), and the
per-attack fields of the removal-attack table (``removal``).

    METRICS.get("psnr").cell(41.237)          # '41.24'
    columns("invisibility")                   # the Metric rows of report.md's invisibility table
    METRICS.describe()                        # "key: meaning" lines (report.json's docs)

To show a new metric, compute it (a per-image function in :mod:`adlift.image_metrics` added to
``image_pair_metrics``, or a per-edit score in :func:`adlift.evaluate.run.protection_records`) and
add one :func:`_metric` line below naming the tables it belongs in.
"""

from __future__ import annotations

import dataclasses
import math

from adlift.registry import Registry

#: The tables a metric can appear in: report.md's summary/per-view tables, the console summary
#: of ``adlift evaluate``, the viewer's per-view table and the removal-attack table (report.md and
#: the console; one row per attack of :mod:`adlift.evaluate.removal`).
TABLES = ("invisibility", "protection", "robustness", "views", "summary", "viewer", "removal")


@dataclasses.dataclass(frozen=True)
class Metric:
    """How one metric is shown."""

    key: str
    """The field of a view record in report.json / manifest.json."""

    header: str
    """Column header in report.md and the console summary."""

    fmt: str
    """Format of one value (``str.format``)."""

    tables: tuple[str, ...]
    """Where it is shown (names from :data:`TABLES`)."""

    short: str = ""
    """A shorter header for the viewer's narrow side panel (default: ``header``)."""

    def cell(self, value) -> str:
        """``value`` formatted: n/a for None (unavailable), inf for an infinite PSNR."""
        return format_cell(value, self.fmt)

    @property
    def short_header(self) -> str:
        return self.short or self.header


def format_cell(value, fmt: str) -> str:
    """One table cell: n/a for None, inf for infinities, ``fmt`` for numbers, str() otherwise."""
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


#: Every metric, in the order tables show them.
METRICS: Registry[Metric] = Registry("metric")


def _metric(key: str, header: str, fmt: str, help: str, tables: tuple[str, ...], short: str = "") -> None:
    bad = set(tables) - set(TABLES)
    if bad:
        raise ValueError(f"metric {key!r}: unknown tables {sorted(bad)}")
    METRICS.add(key, Metric(key, header, fmt, tuple(tables), short), help)


# Invisibility: protected render vs raw render (high PSNR/SSIM, low LPIPS = invisible).
_metric("psnr", "PSNR dB", "{:.2f}", "PSNR of the protected vs the raw render (null = identical)",
        ("invisibility", "views", "summary", "viewer"))  # fmt: skip
_metric("ssim", "SSIM", "{:.4f}", "SSIM of the protected vs the raw render", ("invisibility", "views", "summary", "viewer"))
_metric("lpips", "LPIPS", "{:.4f}", "LPIPS of the protected vs the raw render (null when lpips is unavailable)",
        ("invisibility", "views"))  # fmt: skip
_metric("linf_255", "max L-inf /255", "{:.1f}", "largest change of any pixel channel, in 8-bit levels",
        ("invisibility", "views", "viewer"), short="L∞/255")  # fmt: skip
_metric("within_budget", "within eta", "{:.2%}", "share of pixels within eta + 1/255 of the raw render",
        ("invisibility", "views", "summary", "viewer"), short="≤ η")  # fmt: skip
# Robustness: the purified protected render vs the raw one.
_metric("purified_psnr", "purified vs raw PSNR", "{:.2f}", "PSNR of the purified protected render vs the raw render",
        ("robustness",))  # fmt: skip
# Protection: lower CLIP scores and a low edit(raw) vs edit(prot) PSNR = the protection works.
_metric("clip_text_raw", "CLIP text: edit(raw)", "{:.4f}", "CLIP similarity of edit(raw) to the edited caption",
        ("protection", "views"))  # fmt: skip
_metric("clip_text_protected", "CLIP text: edit(prot)", "{:.4f}",
        "CLIP similarity of edit(protected) to the edited caption", ("protection", "robustness", "views"))
_metric("clip_direction_raw", "CLIP dir: raw", "{:.4f}", "CLIP directional similarity of the edit of the raw render",
        ("protection", "views", "summary", "viewer"), short="CLIP dir raw")  # fmt: skip
_metric("clip_direction_protected", "CLIP dir: prot", "{:.4f}",
        "CLIP directional similarity of the edit of the protected render",
        ("protection", "robustness", "views", "summary", "viewer"), short="CLIP dir prot")  # fmt: skip
_metric("edit_deviation_psnr", "edit(raw) vs edit(prot) PSNR", "{:.2f}",
        "PSNR between edit(raw) and edit(protected) (low = the protected edit went elsewhere)",
        ("protection", "robustness", "views", "summary", "viewer"), short="edit raw vs prot dB")  # fmt: skip
_metric("edit_deviation_ssim", "... SSIM", "{:.4f}", "SSIM between edit(raw) and edit(protected)",
        ("protection", "robustness"))  # fmt: skip
_metric("edit_deviation_lpips", "... LPIPS", "{:.4f}", "LPIPS between edit(raw) and edit(protected)", ())
_metric("edit_change_protected_psnr", "edit(prot) vs prot PSNR", "{:.2f}",
        "PSNR of edit(protected) vs its input (high = the edit barely changed it)", ("protection",))
_metric("edit_change_protected_ssim", "edit(prot) vs prot SSIM", "{:.4f}", "SSIM of edit(protected) vs its input", ())
_metric("edit_change_protected_lpips", "edit(prot) vs prot LPIPS", "{:.4f}", "LPIPS of edit(protected) vs its input",
        ())  # fmt: skip
_metric("edit_change_raw_psnr", "edit(raw) vs raw PSNR", "{:.2f}", "PSNR of edit(raw) vs its input", ("protection",))
_metric("edit_change_raw_ssim", "edit(raw) vs raw SSIM", "{:.4f}", "SSIM of edit(raw) vs its input", ())
_metric("edit_change_raw_lpips", "edit(raw) vs raw LPIPS", "{:.4f}", "LPIPS of edit(raw) vs its input", ())
# Edit success (editors that know the instruction's exact answer, i.e. the mini editor; null otherwise):
# PSNR/SSIM of an edit to reference_edit of its input. A positive fall = the protection works.
_EDIT_SUCCESS = "edit to the instruction's exact answer (mini editor only; null without one)"
_metric("edit_success_raw_psnr", "edit success raw dB", "{:.2f}",
        f"PSNR of edit(raw) vs reference(raw): {_EDIT_SUCCESS}", ("protection", "views"), short="success raw dB")
_metric("edit_success_raw_ssim", "edit success raw SSIM", "{:.4f}", "SSIM of edit(raw) vs reference(raw)",
        ("protection",))  # fmt: skip
_metric("edit_success_protected_psnr", "edit success prot dB", "{:.2f}",
        f"PSNR of edit(protected) vs reference(protected) (robustness: of the purified render): {_EDIT_SUCCESS}",
        ("protection", "robustness", "views"), short="success prot dB")  # fmt: skip
_metric("edit_success_protected_ssim", "edit success prot SSIM", "{:.4f}",
        "SSIM of edit(protected) vs reference(protected)", ("protection",))  # fmt: skip
_metric("edit_success_fall_psnr", "success fall dB", "{:.2f}",
        "edit success raw - edit success protected, dB (positive = the protection spoils the edit; robustness: "
        "relative to the unpurified raw edit); null without an exact answer",
        ("protection", "robustness", "views", "summary", "viewer"))  # fmt: skip
# Recorded by adlift protect in manifest.json (the viewer shows them when there is no report).
_metric("loss_raw", "loss raw", "{:.4g}", "the editor loss of the raw render (manifest.json)", ("viewer",))
_metric("loss_protected", "loss prot", "{:.4g}", "the editor loss of the protected render (manifest.json)",
        ("viewer",))  # fmt: skip

# Removal attacks (adlift evaluate --removal): one row per attack on the protected file alone.
_metric("gaussians", "Gaussians", "{:d}", "Gaussians in the scene after the attack", ("removal",), short="count")
_metric("psnr_to_raw", "PSNR to raw dB", "{:.2f}",
        "PSNR of the attacked scene's renders vs the raw renders (null in a measured row = identical)",
        ("removal",), short="to raw dB")  # fmt: skip
_metric("closer_db", "closer than file dB", "{:+.2f}",
        "PSNR to raw minus the protected file's PSNR to raw (> 1 dB: the attack recovers the asset)", ("removal",),
        short="closer dB")  # fmt: skip
_metric("protection_remaining", "protection left", "{:.0%}",
        "share of the protected file's edit-success fall (else adversarial-loss reduction) that remains",
        ("removal",), short="left")  # fmt: skip
_metric("psnr_to_protected", "PSNR to protected dB", "{:.2f}",
        "PSNR of the attacked scene's renders vs the protected renders: what the attack costs visually",
        ("removal",), short="cost dB")  # fmt: skip
_metric("verdict", "verdict", "{}", "recovers | too costly | strips | holds | n/a | skipped", ("removal",))


def columns(table: str) -> list[Metric]:
    """The metrics shown in ``table`` (one of :data:`TABLES`), in display order."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
    return [m for _, m in METRICS.items() if table in m.tables]
