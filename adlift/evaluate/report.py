"""``report.json`` and ``report.md`` of an evaluation (both written atomically).

``report.json`` (schema version :data:`REPORT_VERSION`):

* ``report_version``, ``adlift_version``, ``created`` (UTC ISO time), ``seconds``
* ``mode`` ("2d" | "3d"), ``instruction``, ``captions`` {before, after}, ``eta`` and ``eta_255``
* ``sources`` {raw, protected, cameras, manifest (or null)}
* ``editor``: its metadata (name, model, ``untrained_test_model``, device, dtype, diffusers)
* ``clip``: {available, model, untrained, reason}; ``lpips``: {available, reason}
  (unavailable metrics are null everywhere, never estimated)
* ``settings``: every :class:`~adlift.evaluate.run.EvaluateConfig` field
* ``summary``: per split ("train", "novel") the number of views and the mean of every metric
* ``views``: per view {name, split, psnr, ssim, lpips, linf_255, within_budget,
  clip_text_raw, clip_text_protected, clip_direction_raw, clip_direction_protected,
  edit_deviation_{psnr,ssim,lpips}, edit_change_protected_{psnr,ssim,lpips},
  edit_change_raw_{psnr,ssim,lpips}}
* ``robustness``: per (split, purification) the means of the protection metrics after purifying
  the protected renders, plus ``purified_psnr`` (purified protected vs raw render)
* ``files``: the grids and the plot written beside the report
* ``warning`` when the editor or CLIP is an untrained test model

Metric meanings: ``psnr``/``ssim``/``lpips``/``linf_255``/``within_budget`` compare protected and
raw renders (invisibility: high PSNR/SSIM, low LPIPS). ``clip_text_*`` is the CLIP similarity of
an edit to the after caption, ``clip_direction_*`` the CLIP directional similarity of the edit
(protection works when the protected values are lower than the raw ones). ``edit_deviation_*``
compares edit(raw) and edit(protected) (low PSNR = the protected edit went elsewhere).
``edit_change_*`` compares an edit with its input (high PSNR = the edit barely changed it).
JSON has no infinity: a PSNR of identical images is written as null.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from pathlib import Path

from adlift.evaluate.run import EvaluateConfig, EvaluationResult
from adlift.io.atomic import write_text_atomic
from adlift.io.json_safe import finite

REPORT_VERSION = 1

#: Columns of the per-split tables in report.md: (field, header, format).
INVISIBILITY_COLUMNS = [("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("lpips", "LPIPS", "{:.4f}"),
                        ("linf_255", "max L-inf /255", "{:.1f}"), ("within_budget", "within eta", "{:.2%}")]  # fmt: skip
PROTECTION_COLUMNS = [
    ("clip_text_raw", "CLIP text: edit(raw)", "{:.4f}"),
    ("clip_text_protected", "CLIP text: edit(prot)", "{:.4f}"),
    ("clip_direction_raw", "CLIP dir: raw", "{:.4f}"),
    ("clip_direction_protected", "CLIP dir: prot", "{:.4f}"),
    ("edit_deviation_psnr", "edit(raw) vs edit(prot) PSNR", "{:.2f}"),
    ("edit_deviation_ssim", "... SSIM", "{:.4f}"),
    ("edit_change_protected_psnr", "edit(prot) vs prot PSNR", "{:.2f}"),
    ("edit_change_raw_psnr", "edit(raw) vs raw PSNR", "{:.2f}"),
]
ROBUSTNESS_COLUMNS = [("purified_psnr", "purified vs raw PSNR", "{:.2f}")] + PROTECTION_COLUMNS[1:2] + \
    PROTECTION_COLUMNS[3:6]  # fmt: skip


def build_report(
    result: EvaluationResult,
    config: EvaluateConfig,
    *,
    instruction: str,
    editor_metadata: dict,
    clip_info: dict,
    lpips_info: dict,
    sources: dict,
    files: dict,
) -> dict:
    """The report as a JSON-ready dict (see the module docstring)."""
    import adlift

    settings = dataclasses.asdict(config)
    settings["purifications"] = [p.name for p in config.purifications]
    report = {
        "report_version": REPORT_VERSION,
        "adlift_version": adlift.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 3),
        "mode": config.mode,
        "instruction": instruction,
        "captions": {"before": result.captions[0], "after": result.captions[1]},
        "eta": config.eta,
        "eta_255": config.eta * 255.0,
        "sources": sources,
        "editor": editor_metadata,
        "clip": clip_info,
        "lpips": lpips_info,
        "settings": settings,
        "summary": result.summary,
        "views": result.views,
        "robustness": result.robustness,
        "files": files,
    }
    warnings = []
    if editor_metadata.get("untrained_test_model"):
        warnings.append("the editor is the untrained tiny test model: edits are noise, not real InstructPix2Pix edits")
    if clip_info.get("untrained"):
        warnings.append("CLIP is an untrained test model: its similarities are meaningless")
    if warnings:
        report["warning"] = "; ".join(warnings)
    return finite(report)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(value)


def _table(rows: list[dict], columns, first: tuple[str, str]) -> list[str]:
    key, header = first
    head = f"| {header} | " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = [f"| {r.get(key, '')} | " + " | ".join(_cell(r.get(k), f) for k, _, f in columns) + " |" for r in rows]
    return [head, rule, *body]


def markdown_report(report: dict) -> str:
    """report.md: what was evaluated, the summary per split, robustness and the per-view tables."""
    lines = ["# AdLift evaluation", ""]
    if report.get("warning"):
        lines += [f"> **Warning:** {report['warning']}.", ""]
    clip, lp = report["clip"], report["lpips"]
    lines += [
        f"- instruction: \"{report['instruction']}\" (captions \"{report['captions']['before']}\" -> "
        f"\"{report['captions']['after']}\")",
        f"- mode: {report['mode']}, editor: {report['editor'].get('model', report['editor'].get('editor'))}"
        + (" (untrained test model)" if report["editor"].get("untrained_test_model") else ""),
        f"- eta: {report['eta_255']:.3g}/255; protected: `{report['sources']['protected']}`; raw: "
        f"`{report['sources']['raw']}`",
        "- CLIP: " + (f"{clip['model']}" + (" (untrained test model)" if clip.get("untrained") else "")
                      if clip["available"] else f"unavailable ({clip['reason']})"),
        "- LPIPS: " + ("available" if lp["available"] else f"unavailable ({lp['reason']})"),
        f"- {report['seconds']:.0f} s",
        "",
        "Protection works when the edit of the protected scene follows the instruction less than the edit",
        "of the raw scene (lower CLIP scores, low PSNR between the two edits) while the protected renders",
        "stay close to the raw ones (high PSNR/SSIM, nearly all pixels within eta).",
        "",
        "## Summary (means per split)",
        "",
        "### Invisibility: protected vs raw renders",
        "",
    ]
    summary_rows = [{"split": f"{s} ({v['views']} views)", **v} for s, v in report["summary"].items()]
    lines += _table(summary_rows, INVISIBILITY_COLUMNS, ("split", "split")) + ["", "### Protection", ""]
    lines += _table(summary_rows, PROTECTION_COLUMNS, ("split", "split")) + [""]
    if report["robustness"]:
        lines += ["## Robustness: protected renders purified, then edited (2D)", ""]
        rows = [{"what": f"{r['split']}: {r['purification']}", **r} for r in report["robustness"]]
        lines += _table(rows, ROBUSTNESS_COLUMNS, ("what", "split: purification")) + [""]
    lines += ["## Per view", ""]
    rows = [{"view": f"{v['split']}: {v['name']}", **v} for v in report["views"]]
    lines += _table(rows, INVISIBILITY_COLUMNS + PROTECTION_COLUMNS[:4] + PROTECTION_COLUMNS[4:5], ("view", "view"))
    lines += ["", "## Files", ""] + [f"- `{name}`: {what}" for name, what in report["files"].items()] + [""]
    return "\n".join(lines)


def write_report(out: Path, report: dict) -> None:
    """OUT/report.json and OUT/report.md."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "report.md", markdown_report(report))
