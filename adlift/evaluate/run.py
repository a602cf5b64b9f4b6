"""Evaluate a protection: invisibility, protection against the editor, robustness to purification.

:func:`evaluate` compares the raw and the protected scene on the training and the novel views:

1. **Invisibility** per view: PSNR, SSIM, LPIPS (when its weights load; otherwise None with the
   reason), L-infinity and the share of pixels within eta + 1/255, protected render vs raw render.
2. **Protection**: the editor edits raw and protected renders with the same instruction and seeds
   (``mode="2d"``), or edits the raw and the protected *scene* Instruct-GS2GS-style (``mode="3d"``)
   or DGE-style (``mode="dge"``: consistent multi-view edit, then one fit;
   :mod:`adlift.editors.dge`) and both edited scenes are rendered. Per view: CLIP similarity of each edit to the edited
   caption, CLIP directional similarity (source render -> its edit, vs. the caption direction),
   the deviation edit(raw) vs edit(protected) (PSNR, SSIM, LPIPS), and how much each edit changed
   its input (edit(protected) vs protected, edit(raw) vs raw). When the editor knows the exact
   answer of the instruction (:meth:`~adlift.editors.ip2p.IP2PEditor.reference_edit_for`: the mini
   editor's instructions), also **edit success**: PSNR/SSIM of edit(raw) to reference(raw) and of
   edit(protected) to reference(protected), and its fall (raw - protected, dB; positive = the
   protection works). In 3d and dge modes the edits are renders of the edited scenes and the reference is
   applied to the raw / protected renders. Without a reference these keys are None.
3. **Robustness**: each purification (JPEG, blur, resize, noise) is applied to the protected
   renders, which are then edited in 2D; the protection metrics are computed again against the
   2D edit of the raw renders (in every mode: a 3D edit per purification would cost a scene
   optimisation each). Edit success there is edit(purified) vs reference(purified), its fall
   relative to the success of the unpurified raw edit.

Nothing here writes files: :mod:`adlift.evaluate.report` and :mod:`adlift.evaluate.figures` do.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Annotated, Literal, Optional

import torch
import tyro
from tqdm.auto import tqdm

from adlift.attacks.pgd import Budget

from adlift.cameras import Cameras
from adlift.editors.dge import NoCheckpointDGEConfig
from adlift.errors import AdLiftError
from adlift.evaluate.clip_metrics import ClipScorer, captions_for
from adlift.image_metrics import LpipsMetric, image_pair_metrics, psnr_per_image, ssim_per_image
from adlift.evaluate.purify import DEFAULT_PURIFICATIONS, Purifications, apply_purification
from adlift.evaluate.removal import REMOVAL_ATTACKS, RemovalAttacks
from adlift.scene import GaussianScene


@dataclasses.dataclass
class EvaluateConfig:
    """Settings of :func:`evaluate` (``adlift evaluate`` and ``ns-adlift-evaluate`` nest them as options)."""

    mode: Literal["2d", "3d", "dge"] = "2d"
    """2d: InstructPix2Pix on each render; 3d: Instruct-GS2GS-style edit of both scenes, then render;
    dge: DGE-style edit (consistent multi-view edit, one direct fit) of both scenes, then render."""

    eta: tyro.conf.Suppress[Budget] = 8 / 255
    """The protection's L-infinity budget (for the within-budget share and the difference images);
    the commands take it from the manifest or --eta."""

    steps: int = 20
    """Diffusion steps per edit."""

    guidance_scale: Annotated[Optional[float], tyro.conf.arg(metavar="FLOAT")] = None
    """Text guidance; default: the editor's (InstructPix2Pix: 7.5 in 2d, Instruct-GS2GS' 12.5 in 3d, DGE's 7.5
    in dge; mini: 3.0)."""

    image_guidance_scale: float = 1.5
    """Image guidance of the edits."""

    seed: int = 0
    """Seed of the edits (the raw and the protected view of a pair get the same one)."""

    views_per_split: int = 8
    """At most this many views per split, evenly spaced (0 = all)."""

    purifications: Annotated[Purifications, tyro.conf.arg(name="purify")] = DEFAULT_PURIFICATIONS
    """Purifications applied to the protected renders before editing (empty = no robustness part)."""

    caption: Annotated[Optional[str], tyro.conf.arg(metavar="TEXT")] = None
    """A caption of the scene for CLIP (default "a photo"); the edited caption appends the instruction."""

    rounds_3d: int = 1
    """3d: dataset-update rounds of each scene edit."""

    gs_steps_3d: int = 200
    """3d: Gaussian optimisation steps per round."""

    dge: Annotated[NoCheckpointDGEConfig, tyro.conf.arg(name="dge")] = dataclasses.field(
        default_factory=NoCheckpointDGEConfig
    )
    """dge: DGE's settings (key views, matching, noise level, fitting steps; DGE's defaults)."""

    removal: bool = False
    """Also run the removal-attack suite on the protected file alone (order, deduplication, pruning,
    outliers, SH truncation, format round trips, re-fitting; adlift.evaluate.removal) and measure how
    close each stripped scene comes to the raw one, how much protection remains and what the attack
    costs: removal.json, removal.png and a table in report.md."""

    removal_attacks: RemovalAttacks = REMOVAL_ATTACKS.names()
    """With --removal: the attacks to run (default: all of them; help: :data:`RemovalAttacks`)."""

    removal_refit_steps: int = 300
    """With --removal: Adam steps of the refit attack (its cost grows with them)."""

    removal_refit_views: int = 24
    """With --removal: orbit views the attacker frames from the protected scene's bounds (refit, big-point pruning)."""

    background: tyro.conf.Suppress[tuple[float, float, float]] = (0.0, 0.0, 0.0)
    """Background colour of the renders (the commands: the protection's, or --background)."""

    backend: tyro.conf.Suppress[str] = "auto"
    """Render backend (the commands: --backend)."""

    batch_size: tyro.conf.Suppress[int] = 4
    """Views per editor batch."""

    progress: tyro.conf.Suppress[bool] = True
    """Show progress bars."""

    def validate(self) -> None:
        if self.mode not in ("2d", "3d", "dge"):
            raise AdLiftError(f"mode must be 2d, 3d or dge, got {self.mode!r}")
        self.dge.validate()
        if not 0.0 < self.eta <= 1.0:
            raise AdLiftError(f"eta must lie in (0, 1], got {self.eta}")
        if self.steps < 1 or self.views_per_split < 0 or self.rounds_3d < 1 or self.gs_steps_3d < 0:
            raise AdLiftError("need steps >= 1, views_per_split >= 0, rounds_3d >= 1 and gs_steps_3d >= 0")
        names = [p.name for p in self.purifications]
        if len(set(names)) != len(names):
            raise AdLiftError(f"purifications repeat a name: {', '.join(names)}")
        for name in self.removal_attacks:
            REMOVAL_ATTACKS.check(name)
        if self.removal and not self.removal_attacks:
            raise AdLiftError("--removal needs at least one attack in --removal-attacks")
        if len(set(self.removal_attacks)) != len(self.removal_attacks):
            raise AdLiftError(f"removal attacks repeat a name: {', '.join(self.removal_attacks)}")
        if self.removal_refit_steps < 0 or self.removal_refit_views < 1:
            raise AdLiftError("need removal_refit_steps >= 0 and removal_refit_views >= 1")

    @property
    def text_guidance(self) -> float:
        """``guidance_scale``, else InstructPix2Pix' default for the mode (7.5 in 2d and dge, 12.5 in 3d);
        :meth:`guidance_for` asks the editor instead."""
        if self.guidance_scale is not None:
            return self.guidance_scale
        return 12.5 if self.mode == "3d" else 7.5

    def guidance_for(self, editor) -> float:
        """The text guidance of the edits with ``editor``: ``guidance_scale``, else the editor's
        ``default_guidance(mode)`` (an editor without one: :attr:`text_guidance`)."""
        if self.guidance_scale is not None:
            return float(self.guidance_scale)
        default = getattr(editor, "default_guidance", None)
        return float(default(self.mode)) if default is not None else self.text_guidance


@dataclasses.dataclass
class SplitImages:
    """The images of one split, all [C, 3, H, W] in [0, 1] on the CPU."""

    names: list[str]
    raw: torch.Tensor
    protected: torch.Tensor
    edit_raw: torch.Tensor
    edit_protected: torch.Tensor


@dataclasses.dataclass
class EvaluationResult:
    """What :func:`evaluate` returns: per-view records, robustness, summaries and the images."""

    views: list[dict]
    """One record per view: name, split and every metric (None where unavailable)."""

    robustness: list[dict]
    """One record per (split, purification): means of the protection metrics on purified renders."""

    summary: dict
    """Means per split: ``{"train": {...}, "novel": {...}}``."""

    images: dict[str, SplitImages]
    """Renders and edits per split, for grids."""

    captions: tuple[str, str]
    """(before, after) captions of the CLIP metrics."""

    seconds: float

    edit_success: dict = dataclasses.field(default_factory=lambda: {"available": False, "reason": None})
    """{available, reason} of the edit-success metrics (:func:`edit_success_info`)."""

    removal: dict | None = None
    """With ``config.removal``: the removal-attack record
    (:func:`adlift.evaluate.removal.removal_report`), else None."""


#: What edit success is, wherever it is shown.
EDIT_SUCCESS_NOTE = ("edit success = PSNR of the edit to the instruction's exact answer (mini editor only; "
                     "a model organism, not a claim about InstructPix2Pix)")  # fmt: skip


def edit_success_info(editor, instruction: str, reference) -> dict:
    """report.json's ``edit_success`` record: {available, reason} (reason None when available)."""
    if reference is not None:
        return {"available": True, "reason": None}
    name = getattr(editor, "name", type(editor).__name__)
    where = ("its instructions are listed in docs/MINI_EDITOR.md" if getattr(editor, "instructions", None)
             else "only the mini editor's instructions have one")  # fmt: skip
    return {"available": False, "reason": f"editor {name!r} knows no exact answer to {instruction!r}; {where}"}


def pick_views(cameras: Cameras, limit: int) -> Cameras:
    """At most ``limit`` views of ``cameras``, evenly spaced (all of them for limit 0)."""
    n = len(cameras)
    if limit <= 0 or n <= limit:
        return cameras
    idx = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [0]
    return cameras[idx]


def render_all(scene: GaussianScene, cameras: Cameras, config: EvaluateConfig) -> torch.Tensor:
    """Clamped renders [C, 3, H, W] on the CPU with the evaluation's backend and background."""
    from adlift.render import render_images

    return render_images(scene, cameras, backend=config.backend, background=config.background).cpu()


def _edit_2d(editor, images: torch.Tensor, instruction: str, config: EvaluateConfig) -> torch.Tensor:
    return editor.edit(images, instruction, steps=config.steps, guidance_scale=config.text_guidance,
                       image_guidance_scale=config.image_guidance_scale, seed=config.seed,
                       batch_size=config.batch_size).cpu()  # fmt: skip


def _scene_edit_config(config: EvaluateConfig):
    """The :class:`~adlift.editors.scene_edit.SceneEditConfig` of the 3d and dge scene edits: the
    evaluation's diffusion and render settings (3d also its rounds and steps)."""
    from adlift.editors.scene_edit import SceneEditConfig

    return SceneEditConfig(rounds=config.rounds_3d, gs_steps=config.gs_steps_3d, steps=config.steps,
                           guidance_scale=config.text_guidance, image_guidance_scale=config.image_guidance_scale,
                           background=config.background, backend=config.backend, seed=config.seed,
                           batch_size=config.batch_size, progress=config.progress)  # fmt: skip


def _edit_scenes(editor, scenes: dict[str, GaussianScene], train: Cameras, instruction: str,
                config: EvaluateConfig) -> dict[str, GaussianScene]:  # fmt: skip
    """3d and dge modes: each of ``scenes`` (raw, protected) edited from the ``train`` views with the same
    settings and seed (dge: :func:`adlift.editors.dge.edit_scenes_dge`, which the viewer runs too)."""
    cfg = _scene_edit_config(config)
    if config.mode == "dge":
        from adlift.editors.dge import edit_scenes_dge

        return {name: r.scene for name, r in edit_scenes_dge(scenes, train, editor, instruction, config.dge,
                                                              cfg).items()}  # fmt: skip
    from adlift.editors.scene_edit import edit_scene

    return {name: edit_scene(scene, train.to(scene.device), editor, instruction, cfg).scene
            for name, scene in scenes.items()}  # fmt: skip


def _clip_scores(clip: ClipScorer | None, source: torch.Tensor, edited: torch.Tensor, captions) -> dict:
    """{"text": [C], "direction": [C]} CLIP scores of edits, or None values without CLIP."""
    if clip is None:
        n = source.shape[0]
        return {"text": [None] * n, "direction": [None] * n}
    before, after = captions
    return {
        "text": clip.text_image_similarity(edited, after).tolist(),
        "direction": clip.directional_similarity(source, edited, before, after).tolist(),
    }


def _prefixed(rows: list[dict], prefix: str, keys=("psnr", "ssim", "lpips")) -> list[dict]:
    return [{f"{prefix}_{k}": r.get(k) for k in keys} for r in rows]


#: The edit-success keys of a protection record (None without a reference edit).
EDIT_SUCCESS_KEYS = ("edit_success_raw_psnr", "edit_success_raw_ssim", "edit_success_protected_psnr",
                     "edit_success_protected_ssim", "edit_success_fall_psnr")  # fmt: skip

Reference = Callable[[torch.Tensor], torch.Tensor]


def psnr_fall(before: float, after: float) -> float:
    """``before - after`` in dB, with equal values (two infinite PSNRs included) falling by 0."""
    return 0.0 if before == after else before - after


def edit_success_records(edit_raw: torch.Tensor, edit_protected: torch.Tensor, raw: torch.Tensor,
                         protected: torch.Tensor, reference: Reference | None) -> list[dict]:  # fmt: skip
    """Per view: PSNR/SSIM of edit(raw) to reference(raw) and of edit(protected) to
    reference(protected), and the fall raw - protected (dB); every value None without ``reference``."""
    if reference is None:
        return [dict.fromkeys(EDIT_SUCCESS_KEYS) for _ in range(raw.shape[0])]
    rows = []
    for edited, source in ((edit_raw, raw), (edit_protected, protected)):
        ref = reference(source).to(edited)
        rows.append((psnr_per_image(edited, ref).tolist(), ssim_per_image(edited, ref).tolist()))
    (psnr_r, ssim_r), (psnr_p, ssim_p) = rows
    return [{"edit_success_raw_psnr": psnr_r[i], "edit_success_raw_ssim": ssim_r[i],
             "edit_success_protected_psnr": psnr_p[i], "edit_success_protected_ssim": ssim_p[i],
             "edit_success_fall_psnr": psnr_fall(psnr_r[i], psnr_p[i])} for i in range(raw.shape[0])]  # fmt: skip


def protection_records(
    raw: torch.Tensor,  # [C, 3, H, W]
    protected: torch.Tensor,  # [C, 3, H, W] (possibly purified)
    edit_raw: torch.Tensor,  # [C, 3, H, W]
    edit_protected: torch.Tensor,  # [C, 3, H, W]
    clip: ClipScorer | None,
    lpips: LpipsMetric | None,
    captions: tuple[str, str],
    reference: Reference | None = None,
) -> list[dict]:
    """Per view: CLIP scores of both edits, edit deviation, how much each edit changed its input and,
    with ``reference`` (images -> the instruction's exact answer), edit success
    (:func:`edit_success_records`; None values without it)."""
    clip_raw = _clip_scores(clip, raw, edit_raw, captions)
    clip_prot = _clip_scores(clip, protected, edit_protected, captions)
    deviation = _prefixed(image_pair_metrics(edit_raw, edit_protected, lpips=lpips), "edit_deviation")
    change_prot = _prefixed(image_pair_metrics(edit_protected, protected, lpips=lpips), "edit_change_protected")
    change_raw = _prefixed(image_pair_metrics(edit_raw, raw, lpips=lpips), "edit_change_raw")
    success = edit_success_records(edit_raw, edit_protected, raw, protected, reference)
    rows = []
    for i in range(raw.shape[0]):
        rows.append({
            "clip_text_raw": clip_raw["text"][i], "clip_text_protected": clip_prot["text"][i],
            "clip_direction_raw": clip_raw["direction"][i], "clip_direction_protected": clip_prot["direction"][i],
            **deviation[i], **change_prot[i], **change_raw[i], **success[i],
        })  # fmt: skip
    return rows


def mean_of(rows: list[dict]) -> dict:
    """Mean of every numeric field over rows (None/inf-aware: infinities of one sign give that
    infinity, of both signs None; all-None gives None)."""
    keys = [k for k in rows[0] if k not in ("name", "split", "purification")] if rows else []
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        odd = {v for v in vals if not math.isfinite(v)}
        if not vals:
            out[k] = None
        elif not odd:
            out[k] = math.fsum(vals) / len(vals)
        else:  # +inf or -inf alone is the mean; both, or NaN, have none
            only = next(iter(odd)) if len(odd) == 1 else math.nan
            out[k] = None if math.isnan(only) else only
    return out


def evaluate(
    raw: GaussianScene,
    protected: GaussianScene,
    splits: dict[str, Cameras],
    instruction: str,
    editor,
    config: EvaluateConfig | None = None,
    *,
    clip: ClipScorer | None = None,
    lpips: LpipsMetric | None = None,
    removal_loss=None,
) -> EvaluationResult:
    """Evaluate ``protected`` against ``raw`` on the views of ``splits`` ({"train": cams, "novel": cams}).

    ``editor`` is an :class:`~adlift.editors.IP2PEditor`; without ``clip`` or ``lpips`` their
    metrics are None, and edit success is None unless ``editor.reference_edit_for(instruction)``
    gives a reference. With ``config.guidance_scale`` None the edits use the editor's
    ``default_guidance``. 3d and dge modes edit both scenes from the "train" split's views (all of them).
    With ``config.removal`` also the removal-attack suite
    (:func:`~adlift.evaluate.removal.removal_report`; ``removal_loss``: the protection's
    adversarial loss, default the encoder loss).
    """
    config = config or EvaluateConfig()
    config.validate()
    config = dataclasses.replace(config, guidance_scale=config.guidance_for(editor))
    if not instruction.strip():
        raise AdLiftError("the instruction is empty; give the edit the protection is meant to stop")
    if not splits or any(len(c) == 0 for c in splits.values()):
        raise AdLiftError("evaluation needs at least one view in every split it is given")
    if config.mode != "2d" and "train" not in splits:
        raise AdLiftError(f"{config.mode} evaluation edits the scenes from the training views; give a train split")
    tic = time.perf_counter()
    captions = captions_for(instruction, config.caption)
    reference_for = getattr(editor, "reference_edit_for", None)
    reference = reference_for(instruction) if reference_for is not None else None
    edited_scenes = None
    if config.mode != "2d":
        edited = _edit_scenes(editor, {"raw": raw, "protected": protected}, splits["train"], instruction, config)
        edited_scenes = (edited["raw"], edited["protected"])

    views: list[dict] = []
    robustness: list[dict] = []
    images: dict[str, SplitImages] = {}
    summary: dict[str, dict] = {}
    steps = len(splits) * (2 + len(config.purifications))
    bar = tqdm(total=steps, desc="evaluating", unit="step", disable=not config.progress)
    for split, all_cams in splits.items():
        cams = pick_views(all_cams, config.views_per_split)
        r, p = render_all(raw, cams, config), render_all(protected, cams, config)
        invisible = image_pair_metrics(r, p, eta=config.eta, lpips=lpips)
        bar.update(1)
        if edited_scenes is None:
            er, ep = _edit_2d(editor, r, instruction, config), _edit_2d(editor, p, instruction, config)
        else:
            er, ep = render_all(edited_scenes[0], cams, config), render_all(edited_scenes[1], cams, config)
        prot = protection_records(r, p, er, ep, clip, lpips, captions, reference)
        bar.update(1)
        rows = [{"name": n, "split": split, **inv, **pr} for n, inv, pr in zip(cams.names, invisible, prot)]
        views += rows
        images[split] = SplitImages(list(cams.names), r, p, er, ep)
        summary[split] = {"views": len(rows), **mean_of(rows)}
        # Robustness is a 2D protocol in both modes: the reference is the 2D edit of the raw render.
        er_2d = er if edited_scenes is None or not config.purifications else _edit_2d(editor, r, instruction, config)
        for purification in config.purifications:
            gen = torch.Generator().manual_seed(config.seed)
            pq = apply_purification(p, purification, generator=gen)
            epq = _edit_2d(editor, pq, instruction, config)
            recs = protection_records(r, pq, er_2d, epq, clip, lpips, captions, reference)
            purified_vs_raw = image_pair_metrics(r, pq)
            for rec, pv in zip(recs, purified_vs_raw):
                rec["purified_psnr"] = pv["psnr"]
            robustness.append({"split": split, "purification": purification.name, **mean_of(recs)})
            bar.update(1)
    bar.close()
    removal = None
    if config.removal:
        from adlift.evaluate.removal import removal_report

        removal = removal_report(raw, protected, splits, editor, instruction, config, loss=removal_loss)
    return EvaluationResult(views, robustness, summary, images, captions, time.perf_counter() - tic,
                            edit_success_info(editor, instruction, reference), removal)
