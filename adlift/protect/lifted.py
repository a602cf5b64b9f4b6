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


def plan(state: "ProtectionState") -> list[tuple[int, int, bool]]:
    """Units (round, view, last of its round) for every round and view."""
    units = []
    for r in range(state.config.rounds):
        order = view_order(state, r)
        units += [(r, v, k == len(order) - 1) for k, v in enumerate(order)]
    return units


def run_view(state: "ProtectionState", unit: tuple[int, int, bool]) -> dict:
    """One view of one round: truncated-gradient PGD to a target, then fitting with replay.

    The record's ``loss_start`` is the loss of the PGD start (the current protected render, inside the
    budget) and ``loss`` the loss of the target the safeguard is then fitted to, both measured with
    :meth:`~adlift.attacks.losses.AdversarialLoss.evaluate` (fixed noise, no EOT: comparable between
    views and rounds, and drawing nothing from the run's generator); ``psnr`` / ``linf_255`` are those
    of the protected render after fitting."""
    r, v, last = unit
    cfg = state.config
    schedule = PGDConfig(eta=cfg.eta, steps=cfg.pgd_steps, step_size=cfg.step_size)
    raw = state.raw_renders[v : v + 1]  # [1, 3, H, W]
    x = project_linf(state.render_protected([v]), raw, cfg.eta)  # detached: gradient truncation
    reference = raw if state.loss.needs_reference else None
    start = float(state.loss.evaluate(x, reference)[0])
    for k in range(cfg.pgd_steps):
        _, grad = state.loss.gradient(x, reference, state.generator)
        grad = smooth_gradient(grad, cfg.gradient_blur)
        x = pgd_step(x, grad, raw, cfg.eta, schedule.step_at(k))
    state.targets[v] = x.detach()
    target_loss = float(state.loss.evaluate(state.targets[v], reference)[0])
    fit_l1 = state.fit(v, cfg.fit_steps)
    return {"round": r + 1, "view": state.cameras.names[v], "loss_start": start, "loss": target_loss,
            "fit_l1": fit_l1, **state.view_quality(v), "end_of_round": last}  # fmt: skip

METHODS.add("lifted-pgd", ProtectionMethod(plan, run_view),
            help="AdLift: truncated-gradient PGD per view, lifted into the safeguard by fitting with replay")  # fmt: skip
