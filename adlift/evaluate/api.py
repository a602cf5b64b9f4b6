"""Evaluate a protection end to end: resolve the inputs, load scenes, cameras, editor, CLIP and LPIPS,
run :func:`~adlift.evaluate.run.evaluate`, write the report, grids and plot. ``adlift evaluate``
and ``ns-adlift-evaluate`` are this function plus option parsing.

    output = run_evaluation(EvaluateInputs(outdir=Path("outputs/protected")), EvaluateConfig(), RenderOptions())
    output.print()                        # the summary table (rich) and the files written
    output.out / "report.json"

Progress lines go through ``echo`` (default ``print``); nothing else is printed here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from adlift.errors import AdLiftError
from adlift.evaluate.inputs import EvaluateInputs, ResolvedInputs
from adlift.evaluate.report import ReportContext
from adlift.evaluate.run import EvaluateConfig, EvaluationResult, evaluate
from adlift.render.options import RenderOptions

Echo = Callable[[str], Any]


def _print(line: str) -> None:
    print(line, flush=True)


@dataclasses.dataclass
class EvaluationOutput:
    """What :func:`run_evaluation` did: the inputs it resolved, the result, the report and its files."""

    inputs: ResolvedInputs
    """Scenes, cameras, instruction, eta and editor as resolved."""
    result: EvaluationResult
    """Per-view metrics, robustness, summaries and images."""
    report: dict
    """report.json's content."""
    out: Path
    """The directory written."""
    files: dict[str, str]
    """File name -> what it shows (besides report.json)."""

    def print(self, console=None) -> None:
        """The summary table (rich) and the files written, on ``console`` (default: stdout)."""
        from rich.console import Console

        from adlift.evaluate.report import summary_table

        console = console or Console(highlight=False)
        console.print(summary_table(self.report))
        if self.report.get("removal"):
            from adlift.evaluate.report import removal_table

            console.print(removal_table(self.report["removal"]))
        pngs = ", ".join(k for k in self.files if k.endswith(".png"))
        console.print(f"wrote {self.out / 'report.json'}, report.md, {pngs}", soft_wrap=True)


def load_clip_metric(reference: str, device: torch.device, echo: Echo = _print):
    """(ClipScorer or None, report.json's ``clip`` record); ``none`` switches CLIP off, missing weights
    are reported through ``echo`` and leave the CLIP metrics unavailable."""
    from adlift.evaluate.clip_metrics import MissingClipError, load_clip

    if reference.strip().lower() == "none":
        return None, {"available": False, "model": None, "untrained": False, "reason": "switched off (--clip none)"}
    try:
        clip = load_clip(reference, device=device)
    except MissingClipError as e:
        echo(f"CLIP metrics unavailable: {e}")
        return None, {"available": False, "model": reference, "untrained": False, "reason": str(e)}
    meta = clip.metadata()
    return clip, {"available": True, "model": meta.get("model", reference), "untrained": bool(meta.get("untrained")),
                  "reason": None}  # fmt: skip


def load_lpips_metric(wanted: bool):
    """(LpipsMetric or None, report.json's ``lpips`` record)."""
    from adlift.image_metrics import LpipsMetric, lpips_unavailable_reason

    if not wanted:
        return None, {"available": False, "reason": "switched off (--no-lpips)"}
    metric = LpipsMetric.load()
    if metric is None:
        return None, {"available": False, "reason": lpips_unavailable_reason()}
    return metric, {"available": True, "reason": None}


def load_splits(source: str, scene, render: RenderOptions) -> dict:
    """{"train": Cameras, "novel": Cameras} of a camera source at the render size (novel may be absent)."""
    from adlift.io.cameras import load_cameras

    splits = {}
    for split in ("train", "novel"):
        try:
            splits[split] = load_cameras(source, scene=scene, split=split, width=render.width, height=render.height)
        except AdLiftError:
            if split == "train":
                raise
    return splits


def protection_loss(manifest, editor, instruction: str, echo: Echo = _print):
    """The adversarial loss the removal attacks measure with: the loss the manifest records (its kind
    and options, rebuilt on ``editor``), else the default encoder loss."""
    from adlift.attacks import AdversarialLoss
    from adlift.attacks.losses.base import loss_config

    recorded = (manifest.config.get("loss") if manifest is not None else None) or {}
    if isinstance(recorded, dict) and recorded.get("kind"):
        options = {k: v for k, v in recorded.items() if k != "kind"}
        try:
            config = loss_config(str(recorded["kind"]), **options)
            return AdversarialLoss(editor.surface, instruction, config)
        except (AdLiftError, TypeError) as e:
            echo(f"removal attacks: the recorded loss does not rebuild ({e}); measuring with the encoder loss")
    return AdversarialLoss(editor.surface, instruction)


def run_evaluation(
    inputs: EvaluateInputs,
    config: EvaluateConfig | None = None,
    render: RenderOptions | None = None,
    *,
    echo: Echo = _print,
) -> EvaluationOutput:
    """Evaluate what ``inputs`` names with ``config``, rendering with ``render``; writes report.json,
    report.md, grid_<split>.png and metrics.png into the resolved output directory."""
    from adlift.editors import load_editor
    from adlift.editors.untrained import warn_untrained
    from adlift.io.formats import read_scene

    render = render or RenderOptions()
    render.validate()
    resolved = inputs.resolve(render)
    config = dataclasses.replace(config or EvaluateConfig(), eta=resolved.eta, backend=render.backend,
                                 background=resolved.background)  # fmt: skip
    config.validate()
    device = render.torch_device()
    raw = read_scene(resolved.raw).to(device)
    protected = read_scene(resolved.protected).to(device)
    splits = load_splits(resolved.cameras, raw, render)
    editor = load_editor(resolved.editor, device=device)
    warn_untrained(editor, echo)
    # The guidance the edits use (the editor's default unless given), recorded in report.json's settings.
    config = dataclasses.replace(config, guidance_scale=config.guidance_for(editor))
    clip, clip_info = load_clip_metric(inputs.clip, device, echo)
    lpips, lpips_info = load_lpips_metric(inputs.lpips)
    echo(f"evaluating {resolved.protected} against {resolved.raw} ({config.mode}, "
         f"{', '.join(f'{len(c)} {s}' for s, c in splits.items())} views, at most {config.views_per_split or 'all'} "
         f"per split; {len(config.purifications)} purifications)")  # fmt: skip
    removal_loss = protection_loss(resolved.manifest, editor, resolved.instruction, echo) if config.removal else None
    result = evaluate(raw, protected, splits, resolved.instruction, editor, config, clip=clip, lpips=lpips,
                      removal_loss=removal_loss)  # fmt: skip
    if not result.edit_success["available"] and getattr(editor, "model_organism", False):
        echo(f"edit success unavailable: {result.edit_success['reason']}")
    context = ReportContext(
        instruction=resolved.instruction, editor=editor.metadata(), clip=clip_info, lpips=lpips_info, render=render,
        sources={"raw": resolved.raw, "protected": resolved.protected, "cameras": resolved.cameras,
                 "manifest": resolved.manifest_path},
    )  # fmt: skip
    report, files = write_evaluation(resolved.out, result, config, context)
    return EvaluationOutput(resolved, result, report, resolved.out, files)


def write_evaluation(
    out: Path, result: EvaluationResult, config: EvaluateConfig, context: ReportContext
) -> tuple[dict, dict[str, str]]:
    """grid_<split>.png, metrics.png, report.json and report.md (with removal attacks also removal.json
    and removal.png) into ``out``; (report, files)."""
    from adlift.editors.untrained import untrained_banner, untrained_note
    from adlift.evaluate.figures import save_grid, save_plots, save_removal_plot
    from adlift.evaluate.report import build_report, write_removal, write_report

    banner = untrained_banner(context.editor, "evaluation")
    files = {}
    for split, images in result.images.items():
        name = f"grid_{split}.png"
        save_grid(out / name, images, config.eta, split, banner)
        files[name] = f"{split} views: raw | protected | |diff| / eta | edit(raw) | edit(protected)"
    title = f'"{context.instruction}" ({config.mode})' + untrained_note(context.editor, "evaluation")
    save_plots(out / "metrics.png", result.views, result.robustness, title)
    files["metrics.png"] = "metrics per view (train vs novel) and robustness per purification"
    if result.removal is not None:
        save_removal_plot(out / "removal.png", result.removal, title)
        files["removal.json"] = "removal attacks on the protected file alone: closeness to raw, protection left"
        files["removal.png"] = "removal attacks: PSNR to the raw renders vs protection remaining"
    files["report.md"] = "this report as tables"
    report = build_report(result, config, context, files)
    write_report(out, report)
    if result.removal is not None:
        write_removal(out, report)
    return report, files
