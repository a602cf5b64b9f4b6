"""The protection-method registry: :data:`METHODS` maps a name (``ProtectConfig.method``) to a
:class:`ProtectionMethod`, a planner and a unit runner.

A method splits a run into *work units* (e.g. "round 1, view 7"): ``plan(state)`` lists them and
``run_unit(state, unit)`` does one on the shared :class:`~adlift.protect.engine.ProtectionState`,
returning a record of numbers for the history and progress bar: ``loss_start`` and ``loss``, the
adversarial loss of the unit's start and of its result (the PGD target the safeguard is fitted to;
for direct, the protected render), both by ``AdversarialLoss.evaluate`` (fixed noise, no EOT);
``psnr`` and ``linf_255`` of the protected render against the raw one; ``end_of_round`` (checkpoint
after it); anything else the method reports. The engine runs the units in order and gives every method checkpoints,
resume and progress. Each method registers itself next to its code::

    METHODS.add("lifted-pgd", ProtectionMethod(plan, run_view), help="...")

and :mod:`adlift.protect.config` imports the built-in method modules (so that
``ProtectConfig.method``'s choices are :meth:`METHODS.literal() <adlift.registry.Registry.literal>`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from adlift.registry import Registry

if TYPE_CHECKING:
    from adlift.protect.engine import ProtectionState

#: (state) -> the run's work units, in order.
Planner = Callable[["ProtectionState"], list]
#: (state, unit) -> a record of numbers (history, progress bar, nerfstudio's writers).
UnitRunner = Callable[["ProtectionState", object], dict]


@dataclasses.dataclass(frozen=True)
class ProtectionMethod:
    """A protection method: how a run is split into units, and how one unit is done."""

    plan: Planner
    """The run's work units."""

    run_unit: UnitRunner
    """Does one unit; returns its record."""


#: Protection method name -> :class:`ProtectionMethod` (registration order = the order users see).
METHODS: Registry[ProtectionMethod] = Registry("protection method")
