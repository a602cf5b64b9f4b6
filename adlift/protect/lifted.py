"""Lifted PGD (AdLift): PGD in image space, lifted into the safeguard Gaussians view by view.

For every training view v, in order, over ``rounds`` rounds (:func:`plan`, :func:`run_view`):

1. **Gradient truncation.** Render the protected scene at v and *detach* it: the adversarial
   loss is differentiated with respect to the image only, never through the rasteriser.
2. **Projected steps.** ``pgd_steps`` sign steps on that image, each projected onto the L-infinity
   ball of radius eta around the raw render of v and clamped to [0, 1]; the result is v's target.
   Starting from the current render (not the raw one) keeps what earlier views already lifted
   into the Gaussians: views are protected *progressively*.
3. **Image-to-Gaussian fitting.** ``fit_steps`` Adam steps on the safeguard only, matching v's
   target together with ``replay`` replayed targets of earlier views, so protecting one view does
   not undo another; a penalty keeps every render inside the budget.

With ``view_batch`` B > 1 a unit is B consecutive views of the round: steps 1-2 run for each of them
from the same state (split among the ranks of a distributed run), then step 3 fits all B targets
(plus the replayed ones) together. B = 1 is the sequential algorithm above.
"""

from __future__ import annotations

import torch

from typing import TYPE_CHECKING

from adlift.attacks.pgd import PGDConfig, pgd_step, project_linf
from adlift.protect.methods import METHODS, ProtectionMethod

if TYPE_CHECKING:
    from adlift.protect.engine import ProtectionState


def view_order(state: "ProtectionState", round_index: int) -> list[int]:
    """Training views of one round: as given, or a per-round permutation fixed by the seed."""
    n = len(state.views)
    if state.config.view_order == "given":
        return list(range(n))
    gen = torch.Generator().manual_seed(state.config.seed * 7919 + round_index)
    return torch.randperm(n, generator=gen).tolist()


def smooth_gradient(grad: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (std ``sigma`` px) of a gradient [B, 3, H, W]; unchanged for sigma 0."""
    if sigma <= 0:
        return grad
    import kornia

    k = 2 * max(1, round(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(grad, (k, k), (sigma, sigma), border_type="reflect")


def batches(order: list[int], size: int) -> list[tuple[int, ...]]:
    """``order`` cut into consecutive runs of ``size`` views (the last one may be shorter)."""
    return [tuple(order[k : k + size]) for k in range(0, len(order), size)]


def plan(state: "ProtectionState") -> list[tuple[int, tuple[int, ...], bool]]:
    """Units (round, views of the batch, last of its round) for every round."""
    units = []
    for r in range(state.config.rounds):
        groups = batches(view_order(state, r), state.config.view_batch or 1)
        units += [(r, views, k == len(groups) - 1) for k, views in enumerate(groups)]
    return units


def batch_record(state: "ProtectionState", r: int, views: tuple[int, ...], losses: torch.Tensor) -> dict:
    """The history record of a unit: round, view name(s), mean ``loss_start`` / ``loss`` over its views."""
    names = ",".join(state.cameras.names[v] for v in views)
    return {"round": r + 1, "view": names, "loss_start": float(losses[:, 0].mean()), "loss": float(losses[:, 1].mean())}


def run_view(state: "ProtectionState", unit: tuple[int, tuple[int, ...], bool]) -> dict:
    """One batch of views (one view by default) of one round: truncated-gradient PGD to a target per
    view, then fitting with replay.

    The record's ``loss_start`` is the loss of the PGD start (the current protected render, inside the
    budget) and ``loss`` the loss of the target the safeguard is then fitted to (means over the batch),
    both measured with :meth:`~adlift.attacks.losses.AdversarialLoss.evaluate` (fixed noise, no EOT:
    comparable between views and rounds); ``psnr`` (the lowest) / ``linf_255`` (the largest) are those
    of the protected renders after fitting."""
    r, views, last = unit
    cfg = state.config
    schedule = PGDConfig(eta=cfg.eta, steps=cfg.pgd_steps, step_size=cfg.step_size)
    shape = state.raw_renders.shape[1:]  # [3, H, W]

    def make_target(v: int) -> torch.Tensor:
        raw = state.raw_renders[v : v + 1]  # [1, 3, H, W]
        x = project_linf(state.render_protected([v]), raw, cfg.eta)  # detached: gradient truncation
        reference = raw if state.loss.needs_reference else None
        start = state.loss.evaluate(x, reference)[0]
        generator = state.view_generator("pgd", r, v)
        for k in range(cfg.pgd_steps):
            _, grad = state.loss.gradient(x, reference, generator)
            grad = smooth_gradient(grad, cfg.gradient_blur)
            x = pgd_step(x, grad, raw, cfg.eta, schedule.step_at(k))
        end = state.loss.evaluate(x, reference)[0]
        return torch.cat([torch.stack([start, end]).to(x.device, torch.float64), x.reshape(-1).double()])

    rows = state.per_view(views, 2 + shape.numel(), make_target)  # [B, 2 + 3HW]
    for i, v in enumerate(views):
        state.targets[v] = rows[i, 2:].to(state.raw_renders.dtype).reshape(1, *shape)
    fit_l1 = state.fit(views, cfg.fit_steps)
    return {**batch_record(state, r, views, rows[:, :2]), "fit_l1": fit_l1, **state.view_quality(views),
            "end_of_round": last}  # fmt: skip


METHODS.add("lifted-pgd", ProtectionMethod(plan, run_view),
            help="AdLift: truncated-gradient PGD per view, lifted into the safeguard by fitting with replay")  # fmt: skip
