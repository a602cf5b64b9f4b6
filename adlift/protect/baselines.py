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

from adlift.attacks.pgd import PGDConfig, image_pgd
from adlift.protect.engine import budget_excess
from adlift.protect.lifted import plan as plan_by_view
from adlift.protect.methods import METHODS, ProtectionMethod

if TYPE_CHECKING:
    from adlift.protect.engine import ProtectionState


# ---------------------------------------------------------------------------------- fit2d
def plan_fit2d(state: "ProtectionState") -> list[tuple[str, int, bool]]:
    """Units: ("pgd", view) for every view, then ("fit", k) chunks of ``fit_steps`` steps."""
    n = len(state.views)
    units = [("pgd", v, False) for v in range(n)]
    chunks = state.config.rounds * n
    units += [("fit", k, (k + 1) % n == 0) for k in range(chunks)]
    return units


def run_fit2d(state: "ProtectionState", unit: tuple[str, int, bool]) -> dict:
    """A "pgd" unit: image PGD of one raw view to its target; a "fit" unit: ``fit_steps`` fitting steps."""
    kind, index, last = unit
    cfg = state.config
    if kind == "pgd":
        raw = state.raw_renders[index : index + 1]
        pgd = PGDConfig(eta=cfg.eta, steps=cfg.rounds * cfg.pgd_steps - 1, step_size=cfg.step_size)
        result = image_pgd(raw, state.loss, pgd, generator=state.generator)
        state.targets[index] = result.images.detach()
        reference = raw if state.loss.needs_reference else None
        return {"stage": "pgd", "view": state.cameras.names[index],
                "loss_start": float(state.loss.evaluate(raw, reference)[0]),
                "loss": float(state.loss.evaluate(state.targets[index], reference)[0])}  # fmt: skip
    fit_l1 = state.fit(None, cfg.fit_steps, pool=list(range(len(state.views))))
    v = index % len(state.views)
    return {"stage": "fit", "chunk": index + 1, "fit_l1": fit_l1, **state.view_quality(v), "end_of_round": last}


# ---------------------------------------------------------------------------------- direct
#: direct walks the views like Lifted PGD does: (round, view, last of its round).
plan_direct = plan_by_view


def run_direct(state: "ProtectionState", unit: tuple[int, int, bool]) -> dict:
    """One view of one round: ``pgd_steps`` Adam steps of the loss through the renderer (budget as a penalty)."""
    r, v, last = unit
    cfg = state.config
    raw = state.raw_renders[v : v + 1]
    reference = raw if state.loss.needs_reference else None
    opt = state.params.optimizer
    start = float(state.loss.evaluate(state.render_protected([v]), reference)[0])
    for _ in range(cfg.pgd_steps):
        rgb = state.render_safeguarded([v])  # [1, 3, H, W], gradients reach the safeguard
        adv = state.loss(rgb.clamp(0.0, 1.0), reference, state.generator)
        total = adv.mean() + cfg.budget_weight * budget_excess(rgb, raw, cfg.eta)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    state.targets[v] = state.render_protected([v])
    return {"round": r + 1, "view": state.cameras.names[v], "loss_start": start,
            "loss": float(state.loss.evaluate(state.targets[v], reference)[0]),
            **state.view_quality(v), "end_of_round": last}  # fmt: skip


METHODS.add("fit2d", ProtectionMethod(plan_fit2d, run_fit2d),
            help="baseline: PGD every raw view on its own, then fit the safeguard to all targets")  # fmt: skip
METHODS.add("direct", ProtectionMethod(plan_direct, run_direct),
            help="baseline: loss backpropagated through the renderer, the budget only a penalty")  # fmt: skip
