"""Baselines Lifted PGD is measured against, at the same editor budget (loss-gradient evaluations).

``fit2d``
    PGD every training view's raw render to convergence on its own (``rounds x pgd_steps`` steps,
    random start), then fit the safeguard to all those targets at once (the same total number of
    fitting steps as Lifted PGD, each on random views). The 2D perturbations of different views
    are independent, so the Gaussians must reconcile them after the fact.
``direct``
    No gradient truncation: backpropagate the adversarial loss through the renderer into the
    safeguard and step it with Adam (``rounds x pgd_steps`` steps per view); the budget is only a
    penalty (``budget_weight`` x the excess over eta), not a projection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from adlift.attacks.pgd import PGDConfig, image_pgd
from adlift.protect.engine import budget_excess
from adlift.protect.lifted import batch_record, batches
from adlift.protect.lifted import plan as plan_by_view
from adlift.protect.methods import METHODS, ProtectionMethod

if TYPE_CHECKING:
    from adlift.protect.engine import ProtectionState


# ---------------------------------------------------------------------------------- fit2d
def plan_fit2d(state: "ProtectionState") -> list[tuple[str, tuple[int, ...], bool]]:
    """Units: ("pgd", views) for every batch of ``view_batch`` views, then ("fit", (k,)) chunks of
    ``fit_steps`` steps."""
    n = len(state.views)
    units = [("pgd", views, False) for views in batches(list(range(n)), state.config.view_batch or 1)]
    chunks = state.config.rounds * n
    units += [("fit", (k,), (k + 1) % n == 0) for k in range(chunks)]
    return units


def run_fit2d(state: "ProtectionState", unit: tuple[str, tuple[int, ...], bool]) -> dict:
    """A "pgd" unit: image PGD of raw views to their targets (shared among ranks); a "fit" unit:
    ``fit_steps`` fitting steps."""
    kind, index, last = unit
    cfg = state.config
    if kind == "pgd":
        shape = state.raw_renders.shape[1:]
        pgd = PGDConfig(eta=cfg.eta, steps=cfg.rounds * cfg.pgd_steps - 1, step_size=cfg.step_size)

        def make_target(v: int) -> torch.Tensor:
            raw = state.raw_renders[v : v + 1]
            reference = raw if state.loss.needs_reference else None
            x = image_pgd(raw, state.loss, pgd, generator=state.view_generator("fit2d", 0, v)).images.detach()
            losses = torch.cat([state.loss.evaluate(raw, reference), state.loss.evaluate(x, reference)])
            return torch.cat([losses.to(x.device, torch.float64), x.reshape(-1).double()])

        rows = state.per_view(index, 2 + shape.numel(), make_target)
        for i, v in enumerate(index):
            state.targets[v] = rows[i, 2:].to(state.raw_renders.dtype).reshape(1, *shape)
        return {"stage": "pgd", **batch_record(state, 0, index, rows[:, :2])}
    fit_l1 = state.fit([], cfg.fit_steps, pool=list(range(len(state.views))))
    v = index[0] % len(state.views)
    return {"stage": "fit", "chunk": index[0] + 1, "fit_l1": fit_l1, **state.view_quality([v]), "end_of_round": last}


# ---------------------------------------------------------------------------------- direct
#: direct walks the views like Lifted PGD does: (round, views of the batch, last of its round).
plan_direct = plan_by_view


def run_direct(state: "ProtectionState", unit: tuple[int, tuple[int, ...], bool]) -> dict:
    """One batch of views of one round: ``pgd_steps`` Adam steps of their mean loss through the renderer
    (budget as a penalty)."""
    r, views, last = unit
    cfg = state.config
    opt = state.params.optimizer
    generators = {v: state.view_generator("direct", r, v) for v in views}

    def reference_of(v: int) -> torch.Tensor | None:
        return state.raw_renders[v : v + 1] if state.loss.needs_reference else None

    def group_loss(group: list[int], n: int = len(views)) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = state.render_safeguarded(group)  # [G, 3, H, W], gradients reach the safeguard
        adv = torch.stack([state.loss(rgb[i : i + 1].clamp(0.0, 1.0), reference_of(v), generators[v])[0]
                           for i, v in enumerate(group)])  # fmt: skip  (each view its own draws)
        excess = budget_excess(rgb, state.raw_renders[group], cfg.eta)  # [G]
        return (adv + cfg.budget_weight * excess).sum() / n, adv.detach().sum() / n

    def losses(v: int) -> torch.Tensor:
        return state.loss.evaluate(state.render_protected([v]), reference_of(v))

    start = state.per_view(views, 1, losses)
    for _ in range(cfg.pgd_steps):
        state.accumulate_gradient(views, group_loss)
        opt.step()
    end = state.per_view(views, 1, losses)
    for v in views:
        state.targets[v] = state.render_protected([v])
    return {**batch_record(state, r, views, torch.cat([start, end], dim=1)), **state.view_quality(views),
            "end_of_round": last}  # fmt: skip


METHODS.add("fit2d", ProtectionMethod(plan_fit2d, run_fit2d),
            help="baseline: PGD every raw view on its own, then fit the safeguard to all targets")  # fmt: skip
METHODS.add("direct", ProtectionMethod(plan_direct, run_direct),
            help="baseline: loss backpropagated through the renderer, the budget only a penalty")  # fmt: skip
