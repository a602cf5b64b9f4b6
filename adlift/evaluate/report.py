"""``report.json`` and ``report.md`` of an evaluation (both written atomically).

``report.json`` (schema version :data:`REPORT_VERSION`):

* ``report_version``, ``adlift_version``, ``created`` (UTC ISO time), ``seconds``
* ``mode`` ("2d" | "3d" | "dge"), ``instruction``, ``captions`` {before, after}, ``eta`` and ``eta_255``
* ``sources`` {raw, protected, cameras, manifest (or null)}
* ``editor``: its metadata (name, model, ``untrained_test_model``, device, dtype, diffusers)
* ``clip``: {available, model, untrained, reason}; ``lpips``: {available, reason}
  (unavailable metrics are null everywhere, never estimated)
* ``edit_success``: {available, reason, note}: whether the editor knows the instruction's exact
  answer (:meth:`~adlift.editors.ip2p.IP2PEditor.reference_edit_for`; the mini editor's
  instructions), which the ``edit_success_*`` metrics measure against
* ``settings``: every :class:`~adlift.evaluate.run.EvaluateConfig` field (purifications by name)
* ``render``: the :class:`~adlift.render.options.RenderOptions` (width, height, backend, device,
  background) when given
* ``summary``: per split ("train", "novel") the number of views and the mean of every metric
* ``views``: per view {name, split, psnr, ssim, lpips, linf_255, within_budget,
  clip_text_raw, clip_text_protected, clip_direction_raw, clip_direction_protected,
  edit_deviation_{psnr,ssim,lpips}, edit_change_protected_{psnr,ssim,lpips},
  edit_change_raw_{psnr,ssim,lpips}, edit_success_{raw,protected}_{psnr,ssim}, edit_success_fall_psnr}
  (edit success: PSNR/SSIM of edit(x) to reference_edit(x); the fall = raw - protected in dB,
  positive = the protection works; null without an exact answer)
* ``robustness``: per (split, purification) the means of the protection metrics after purifying
  the protected renders, plus ``purified_psnr`` (purified protected vs raw render); edit success of
  the purified render's edit to reference(purified), its fall relative to the unpurified raw edit
* ``removal`` (only with ``--removal``): the removal-attack record, also written alone as
  ``removal.json`` (:func:`write_removal`, which adds ``adlift_version``, ``created``, ``instruction``
  and ``sources``): ``measure`` ("edit success fall" | "adversarial loss" | null) and
  ``measure_note``, ``loss`` (its label), ``views``, ``raw`` {gaussians, loss, edit_success},
  ``protected`` (the protected file's row), ``attacks`` (one row per attack: attack, gaussians,
  psnr_to_raw, psnr_to_protected, closer_db = psnr_to_raw - the protected file's, loss,
  loss_reduction, edit_success, success_fall, loss_remaining, fall_remaining,
  protection_remaining (the share of the protected file's fall / loss reduction left, by
  ``measure``), recovers, verdict (recovers | too costly | strips | holds | n/a | skipped), skipped
  (the reason, or null), seconds), ``recovered`` / ``stripped`` (attack names), ``skipped``
  {attack: reason}, ``thresholds``, ``context`` (the attacker's settings), ``seconds``. A PSNR of
  null in a measured row means identical images (infinite PSNR).
* ``files``: the grids and the plot written beside the report
* ``warning`` when the editor or CLIP is an untrained test model
  or a model organism (:func:`adlift.editors.untrained.label_record`)

Metric meanings: :data:`adlift.evaluate.columns.METRICS` (``METRICS.describe()``), which also
decides the columns of report.md and the console summary. JSON has no infinity: a PSNR of
identical images is written as null.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from adlift.evaluate.columns import Metric, columns, format_cell
from adlift.evaluate.run import EDIT_SUCCESS_NOTE, EvaluateConfig, EvaluationResult
from adlift.io.atomic import write_text_atomic
from adlift.io.json_safe import finite, to_jsonable, write_json_atomic

if TYPE_CHECKING:
    from rich.table import Table

REPORT_VERSION = 1

#: The sentence report.json and report.md add when CLIP is an untrained test model.
UNTRAINED_CLIP = "CLIP is an untrained test model: its similarities are meaningless"


@dataclasses.dataclass
class ReportContext:
    """What a report records besides the result: the instruction, the models and the inputs."""

    instruction: str
    """The edit evaluated."""
    editor: dict
    """The editor's metadata (:meth:`~adlift.editors.ip2p.IP2PEditor.metadata`)."""
    clip: dict
    """{available, model, untrained, reason} of CLIP."""
    lpips: dict
    """{available, reason} of LPIPS."""
    sources: dict
    """{raw, protected, cameras, manifest}: what was read."""
    render: object | None = None
    """The :class:`~adlift.render.options.RenderOptions` used, if any."""


def build_report(result: EvaluationResult, config: EvaluateConfig, context: ReportContext, files: dict) -> dict:
    """The report as a JSON-ready dict (see the module docstring)."""
    import adlift
    from adlift.editors.untrained import label_record

    settings = to_jsonable(config)
    settings["purifications"] = [p.name for p in config.purifications]
    report = {
        "report_version": REPORT_VERSION,
        "adlift_version": adlift.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 3),
        "mode": config.mode,
        "instruction": context.instruction,
        "captions": {"before": result.captions[0], "after": result.captions[1]},
        "eta": config.eta,
        "eta_255": config.eta * 255.0,
        "sources": to_jsonable(context.sources),
        "editor": context.editor,
        "clip": context.clip,
        "lpips": context.lpips,
        "edit_success": {**result.edit_success, "note": EDIT_SUCCESS_NOTE},
        "settings": settings,
        **({"render": to_jsonable(context.render)} if context.render is not None else {}),
        "summary": result.summary,
        "views": result.views,
        "robustness": result.robustness,
        "files": files,
    }
    if result.removal is not None:
        report["removal"] = result.removal
    warnings = []
    if label_record(context.editor, "evaluation"):
        warnings.append(label_record(context.editor, "evaluation"))
    if context.clip.get("untrained"):
        warnings.append(UNTRAINED_CLIP)
    if warnings:
        report["warning"] = "; ".join(warnings)
    return finite(report)


def _table(rows: list[dict], metrics: list[Metric], first: tuple[str, str]) -> list[str]:
    key, header = first
    head = f"| {header} | " + " | ".join(m.header for m in metrics) + " |"
    rule = "|---|" + "---:|" * len(metrics)
    body = [f"| {r.get(key, '')} | " + " | ".join(m.cell(r.get(m.key)) for m in metrics) + " |" for r in rows]
    return [head, rule, *body]


def markdown_report(report: dict) -> str:
    """report.md: what was evaluated, the summary per split, robustness and the per-view tables."""
    from adlift.editors.untrained import untrained_note

    lines = ["# AdLift evaluation", ""]
    if report.get("warning"):
        lines += [f"> **Warning:** {report['warning']}.", ""]
    clip, lp = report["clip"], report["lpips"]
    success = report.get("edit_success") or {"available": False, "reason": "not recorded"}
    lines += [
        f"- instruction: \"{report['instruction']}\" (captions \"{report['captions']['before']}\" -> "
        f"\"{report['captions']['after']}\")",
        f"- mode: {report['mode']}, editor: {report['editor'].get('model', report['editor'].get('editor'))}"
        + untrained_note(report["editor"], "evaluation"),
        f"- eta: {report['eta_255']:.3g}/255; protected: `{report['sources']['protected']}`; raw: "
        f"`{report['sources']['raw']}`",
        "- CLIP: " + (f"{clip['model']}" + (" (untrained test model)" if clip.get("untrained") else "")
                      if clip["available"] else f"unavailable ({clip['reason']})"),
        "- LPIPS: " + ("available" if lp["available"] else f"unavailable ({lp['reason']})"),
        "- edit success: " + ("measured against the instruction's exact answer" if success["available"]
                              else f"n/a ({success['reason']})"),
        f"- {report['seconds']:.0f} s",
        "",
        "Protection works when the edit of the protected scene follows the instruction less than the edit",
        "of the raw scene (lower CLIP scores, low PSNR between the two edits, a positive success fall) while",
        "the protected renders stay close to the raw ones (high PSNR/SSIM, nearly all pixels within eta).",
        f"{EDIT_SUCCESS_NOTE[0].upper()}{EDIT_SUCCESS_NOTE[1:]}: \"edit success raw dB\" is edit(raw) vs",
        "reference(raw), \"edit success prot dB\" edit(protected) vs reference(protected), and \"success fall dB\"",
        "= raw - protected, positive when the protection spoils the edit (n/a: the editor knows no exact answer).",
        "",
        "## Summary (means per split)",
        "",
        "### Invisibility: protected vs raw renders",
        "",
    ]
    summary_rows = [{"split": f"{s} ({v['views']} views)", **v} for s, v in report["summary"].items()]
    lines += _table(summary_rows, columns("invisibility"), ("split", "split")) + ["", "### Protection", ""]
    lines += _table(summary_rows, columns("protection"), ("split", "split")) + [""]
    if report["robustness"]:
        lines += ["## Robustness: protected renders purified, then edited (2D)", ""]
        rows = [{"what": f"{r['split']}: {r['purification']}", **r} for r in report["robustness"]]
        lines += _table(rows, columns("robustness"), ("what", "split: purification")) + [""]
    if report.get("removal"):
        lines += removal_markdown(report["removal"]) + [""]
    lines += ["## Per view", ""]
    rows = [{"view": f"{v['split']}: {v['name']}", **v} for v in report["views"]]
    lines += _table(rows, columns("views"), ("view", "view"))
    lines += ["", "## Files", ""] + [f"- `{name}`: {what}" for name, what in report["files"].items()] + [""]
    return "\n".join(lines)


def _removal_cell(row: dict, metric: Metric) -> str:
    if row.get("skipped") and metric.key != "verdict":
        return "-"
    if row.get(metric.key) is None and metric.key in ("psnr_to_raw", "psnr_to_protected", "closer_db"):
        return "inf"  # JSON null in a measured row: identical images
    return metric.cell(row.get(metric.key))


def removal_markdown(removal: dict) -> list[str]:
    """report.md's removal-attack section: what was measured, one row per attack, skipped attacks."""
    from adlift.evaluate.removal import ACCEPTABLE_PSNR_DB, RECOVERY_MARGIN_DB, REMAINING_TARGET

    metrics = columns("removal")
    lines = [
        "## Removal attacks on the protected file alone",
        "",
        "Each attack processes the published protected scene alone (not the raw scene, the manifest or the",
        f"protection's cameras). \"PSNR to raw dB\": its renders vs the raw renders ({removal['views']} views); it",
        f"**recovers** the asset when that is more than {RECOVERY_MARGIN_DB:g} dB above the protected file's.",
        "\"protection left\": the share of the protected file's protection that remains. \"PSNR to protected dB\":",
        f"what the attack costs visually. Verdicts: recovers; too costly (under {ACCEPTABLE_PSNR_DB:g} dB to raw);",
        f"strips (at least {ACCEPTABLE_PSNR_DB:g} dB to raw and less than {REMAINING_TARGET:.0%} of the protection left);",
        "holds.",
        "",
    ]
    if removal["measure"] == "edit success fall":
        lines += [f"Protection measured by the edit-success fall ({EDIT_SUCCESS_NOTE}).", ""]
    elif removal["measure"] == "adversarial loss":
        lines += [f"Protection measured by the reduction of the adversarial loss {removal['loss']} "
                  f"({removal['measure_note']}).", ""]  # fmt: skip
    else:
        lines += [f"No measure of the protection: {removal['measure_note']}.", ""]
    head = "| attack | " + " | ".join(m.header for m in metrics) + " |"
    lines += [head, "|---|" + "---:|" * len(metrics)]
    for row in [removal["protected"], *removal["attacks"]]:
        lines.append(f"| {row['attack']} | " + " | ".join(_removal_cell(row, m) for m in metrics) + " |")
    recovered = removal.get("recovered") or []
    names = ", ".join(f"**{a}**" for a in recovered) if recovered else "none"
    lines += ["", f"Recovered the raw asset: {names}."]
    for attack, reason in (removal.get("skipped") or {}).items():
        lines.append(f"- skipped {attack}: {reason}")
    return lines


def removal_table(removal: dict) -> "Table":
    """The console table of the removal attacks (rich): the metrics tagged "removal", short headers."""
    from rich.table import Table

    metrics = columns("removal")
    table = Table(title=f"removal attacks ({removal['measure'] or 'no protection measure'})", title_justify="left",
                  collapse_padding=True)  # fmt: skip
    widest = max(len(r["attack"]) for r in [removal["protected"], *removal["attacks"]])
    table.add_column("attack", no_wrap=True, min_width=widest)  # whole names; the numbers wrap their headers
    for m in metrics:
        table.add_column(m.short_header, justify="right", no_wrap=m.key == "verdict")
    for row in [removal["protected"], *removal["attacks"]]:
        table.add_row(row["attack"], *(_removal_cell(row, m) for m in metrics))
    notes = [f"skipped {a}: {why}" for a, why in (removal.get("skipped") or {}).items()]
    recovered = removal.get("recovered") or []
    notes.insert(0, "recovered the raw asset: " + (", ".join(recovered) if recovered else "none"))
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table


def write_removal(out: Path, report: dict) -> Path:
    """OUT/removal.json: the report's removal record with what it was measured on."""
    record = {key: report.get(key) for key in ("adlift_version", "created", "instruction", "mode", "sources", "editor")}
    write_json_atomic(out / "removal.json", {**record, **report["removal"]})
    return out / "removal.json"


def write_report(out: Path, report: dict) -> None:
    """OUT/report.json and OUT/report.md."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "report.json", report)
    write_text_atomic(out / "report.md", markdown_report(report))


def summary_table(report: dict) -> "Table":
    """The console summary (rich): one row per split with the metrics tagged "summary"."""
    from rich.table import Table

    metrics = columns("summary")
    title = f'evaluation: "{report["instruction"]}" ({report["mode"]})'
    table = Table(title=title, title_justify="left", collapse_padding=True)  # nine columns fit 80 characters
    table.add_column("split")
    table.add_column("views", justify="right")
    for m in metrics:  # short headers fit 80 columns; ASCII ones only (consoles need not speak UTF-8)
        table.add_column(m.short_header if m.short_header.isascii() else m.header, justify="right")
    for split, s in report["summary"].items():
        table.add_row(split, str(s.get("views", "")), *(format_cell(s.get(m.key), m.fmt) for m in metrics))
    captions = []
    if (report.get("edit_success") or {}).get("available"):
        captions.append(EDIT_SUCCESS_NOTE)
    if report.get("warning"):
        captions.append(f"WARNING: {report['warning']}")
    if captions:
        table.caption = "\n".join(captions)
        table.caption_justify = "left"
    return table
