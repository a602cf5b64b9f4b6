"""``protect()``: run a protection method and measure the result on training and novel views."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from adlift import distributed
from adlift.attacks.losses import AdversarialLoss
from adlift.cameras import Cameras
from adlift.errors import AdLiftError
from adlift.image_metrics import linf_per_image, psnr_per_image, within_budget_per_image
from adlift.protect.config import ProtectConfig
from adlift.protect.engine import ProtectionState, run_next_unit, run_units
from adlift.protect.methods import METHODS
from adlift.protect.publish import publish_order
from adlift.scene import GaussianScene


@dataclasses.dataclass
class ProtectResult:
    """A protected scene and how well it is protected."""

    protected: GaussianScene
    """The protected scene, one standard 3DGS scene in the published order
    (:func:`adlift.protect.publish.published_scene`): what protected.ply holds, safe to write as it is.
    inplace: the asset's Gaussians, trained; split/sample: frozen raw copies (split opacities) and the
    safeguard, interleaved."""

    safeguard_mask: torch.Tensor
    """[N] bool: which Gaussians of :attr:`protected` were trained (inplace: all). The creator's private
    knowledge; nothing in the published file says it."""

    source_index: torch.Tensor
    """[M] for each Gaussian of :attr:`safeguard`, in order, the Gaussian of the input scene it started
    from: ``raw.subset(source_index)`` is the safeguard before training."""

    views: list[dict]
    """Per-view metrics (name, split, loss_raw, loss_protected, linf_255, psnr, within_budget)."""

    summary: dict
    """Means over training and novel views, and the novel views' share of the loss reduction."""

    history: list[dict]
    """One record per work unit (view) with losses, PSNR, L-infinity and seconds."""

    seconds: float
    """Optimisation time (without the final evaluation)."""

    @property
    def num_frozen(self) -> int:
        """Gaussians that were never trained (split/sample: the raw copies; inplace: 0)."""
        return int((~self.safeguard_mask).sum())

    @property
    def safeguard(self) -> GaussianScene:
        """The safeguard (trained) Gaussians alone, in the published order (inplace: the whole scene)."""
        return self.protected.subset(self.safeguard_mask)


def view_metrics(
    loss: AdversarialLoss,
    raw: torch.Tensor,  # [C, 3, H, W] raw renders in [0, 1]
    protected: torch.Tensor,  # [C, 3, H, W] protected renders in [0, 1]
    names: list[str],
    split: str,
    eta: float,
    group: "distributed.Group | None" = None,
) -> list[dict]:
    """Loss (paired, fixed noise), L-infinity, PSNR and share of pixels within eta + 1/255, per view.

    With a distributed ``group`` each rank evaluates the loss on its share of the views and every rank
    gets all of them (the loss is per image with fixed draws: the numbers do not depend on the split)."""
    group = group or distributed.Group()
    reference = raw if loss.needs_reference else None
    losses = torch.zeros(len(names), 2, dtype=torch.float64)
    for i in distributed.shard(range(len(names)), group):
        ref = reference[i : i + 1] if reference is not None else None
        losses[i] = torch.cat([loss.evaluate(raw[i : i + 1], ref), loss.evaluate(protected[i : i + 1], ref)]).double()
    if group.distributed:
        distributed.all_reduce_sum_(losses, group, "measuring views")
    psnr = psnr_per_image(protected, raw)
    linf = linf_per_image(protected, raw)
    within = within_budget_per_image(protected, raw, eta)
    return [
        {"name": name, "split": split, "loss_raw": float(losses[i, 0]), "loss_protected": float(losses[i, 1]),
         "linf_255": float(linf[i]) * 255.0, "psnr": float(psnr[i]), "within_budget": float(within[i])}
        for i, name in enumerate(names)
    ]  # fmt: skip


def summarise(views: list[dict]) -> dict:
    """Means per split; ``novel_share`` = novel loss reduction / training loss reduction."""
    summary: dict = {}
    for split in ("train", "novel"):
        rows = [v for v in views if v["split"] == split]
        if not rows:
            continue
        mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
        summary[split] = {
            "views": len(rows),
            "loss_raw": mean("loss_raw"),
            "loss_protected": mean("loss_protected"),
            "loss_reduction": mean("loss_raw") - mean("loss_protected"),
            "psnr": mean("psnr"),
            "linf_255_max": max(r["linf_255"] for r in rows),
            "within_budget_min": min(r["within_budget"] for r in rows),
            "within_budget_mean": mean("within_budget"),
        }
    if "train" in summary and "novel" in summary and summary["train"]["loss_reduction"] > 0:
        summary["novel_share"] = summary["novel"]["loss_reduction"] / summary["train"]["loss_reduction"]
    return summary


def render_views(scene: GaussianScene, cameras: Cameras, config: ProtectConfig) -> torch.Tensor:
    """Clamped renders [C, 3, H, W] of ``scene`` with the run's backend and background."""
    from adlift.render import render_images

    return render_images(scene, cameras, backend=config.backend, background=config.background)


class ProtectionRun:
    """A protection run driven one work unit at a time, for a caller's own training loop.

    :func:`protect` runs every unit at once; a host such as nerfstudio's trainer calls
    :meth:`step` once per iteration instead (one unit = one view of one round for Lifted PGD),
    then :meth:`result`. ``state.checkpoint_state()`` / ``state.restore()`` make it resumable (the plugin keeps
    them in nerfstudio's checkpoints; ``config.checkpoint`` makes :func:`protect` save and resume a file).
    """

    def __init__(self, raw: GaussianScene, train_cameras: Cameras, loss: AdversarialLoss,
                 config: ProtectConfig | None = None):  # fmt: skip
        config = config or ProtectConfig()
        config.validate()
        if not isinstance(raw, GaussianScene) or raw.num_gaussians == 0:
            raise AdLiftError("protect needs a non-empty GaussianScene")
        self.loss = loss
        self.train_cameras = train_cameras
        self.state = ProtectionState(raw, train_cameras, loss, config)
        self.config = self.state.config  # view_batch set for the number of processes
        self.method = METHODS.get(config.method)
        self.units = self.method.plan(self.state)

    @property
    def total(self) -> int:
        """Number of work units of the whole run."""
        return len(self.units)

    @property
    def done(self) -> int:
        """Work units finished so far (including those restored from a checkpoint)."""
        return self.state.units_done

    @property
    def finished(self) -> bool:
        return self.state.units_done >= len(self.units)

    def step(self) -> dict:
        """Run the next unit; returns its record (loss, PSNR, L-infinity, seconds, ...)."""
        if self.finished:
            raise AdLiftError("the protection run has no units left")
        return run_next_unit(self.state, self.units, self.method)

    def protected_scene(self) -> GaussianScene:
        """The current protected scene, detached, in the working order (frozen Gaussians, if any,
        then the safeguard)."""
        return self.state.protected_scene().detach().clone()  # a copy: inplace's scene is the trained tensors

    def result(self, novel_cameras: Cameras | None = None) -> ProtectResult:
        """The protected scene and its per-view metrics on the training and ``novel_cameras`` views."""
        state, config, loss = self.state, self.config, self.loss
        if novel_cameras is not None and len(novel_cameras) == 0:
            novel_cameras = None
        working = self.protected_scene()  # frozen (if any), then the safeguard
        order = publish_order(working)
        protected = working.subset(order)  # the published order: what files hold and what is measured
        protected.check_values()
        n_frozen = state.frozen.num_gaussians
        mask = order >= n_frozen
        source_index = state.source_index[order[mask] - n_frozen]
        names = list(self.train_cameras.names)
        views = view_metrics(loss, state.raw_renders, render_views(protected, state.cameras, config), names, "train",
                             config.eta, state.group)  # fmt: skip
        if novel_cameras is not None:
            novel_cameras = novel_cameras.to(state.device)
            raw_novel = render_views(state.raw, novel_cameras, config)
            prot_novel = render_views(protected, novel_cameras, config)
            views += view_metrics(loss, raw_novel, prot_novel, list(novel_cameras.names), "novel", config.eta,
                                  state.group)  # fmt: skip
        summary = summarise(views)
        if any(not math.isfinite(v["loss_protected"]) for v in views):
            raise AdLiftError("protection diverged (non-finite loss); lower the learning rates or the step size")
        return ProtectResult(protected, mask.cpu(), source_index.cpu(), views, summary, state.history,
                             state.seconds)  # fmt: skip


def protect(
    raw: GaussianScene,
    train_cameras: Cameras,
    loss: AdversarialLoss,
    config: ProtectConfig | None = None,
    *,
    novel_cameras: Cameras | None = None,
    on_unit: Callable[[int, int], None] | None = None,
) -> ProtectResult:
    """Protect ``raw`` against ``loss``'s editor and instruction from ``train_cameras``.

    ``novel_cameras`` (never used for optimisation) are measured too. ``config.checkpoint``
    makes the run resumable. ``raw`` is not modified.
    """
    run = ProtectionRun(raw, train_cameras, loss, config)
    run_units(run.state, run.method, on_unit=on_unit)
    return run.result(novel_cameras)
