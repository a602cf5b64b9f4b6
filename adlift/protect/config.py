"""Settings of a protection run (shared by Lifted PGD and the baselines)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from adlift.attacks.losses import LossConfig
from adlift.errors import AdLiftError
from adlift.protect.safeguard import SafeguardConfig

Method = Literal["lifted-pgd", "fit2d", "direct"]
METHODS: tuple[str, ...] = ("lifted-pgd", "fit2d", "direct")


@dataclasses.dataclass
class ProtectConfig:
    """One protection run: method, budget, schedule, safeguard and loss."""

    method: Method = "lifted-pgd"
    """lifted-pgd (AdLift), fit2d (PGD every view, then fit once) or direct (loss through the renderer)."""

    eta: float = 8 / 255
    """L-infinity budget around the raw render, in [0, 1] units (8/255 is invisible)."""

    rounds: int = 2
    """Outer rounds over all training views."""

    pgd_steps: int = 10
    """Loss-gradient steps per view and round (every method gets this same editor budget)."""

    step_size: float = 2 / 255
    """First PGD step (sign step in image space); decays to step_size / 4 over a view's steps."""

    gradient_blur: float = 0.0
    """Standard deviation (pixels) of a Gaussian blur applied to the loss gradient before the sign
    step; 0 = off. Smoother perturbations are easier for Gaussians to carry and to see from new views."""

    fit_steps: int = 10
    """Image-to-Gaussian fitting steps per view and round (fit2d: the same total, once)."""

    replay: int = 2
    """Earlier views' targets rendered with the current one in each fitting step (anti-forgetting)."""

    budget_weight: float = 10.0
    """Weight of the penalty on pixels leaving the budget around the raw render (fitting, direct)."""

    view_order: Literal["given", "shuffled"] = "given"
    """Order of the training views in a round: as given (neighbouring views in a row), or shuffled per round."""

    safeguard: SafeguardConfig = dataclasses.field(default_factory=SafeguardConfig)
    """Safeguard initialisation and trainable groups."""

    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    """Adversarial loss."""

    seed: int = 0
    """Seed of every random draw: the same seed gives the same protection."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser used for rendering and fitting."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour R G B in [0, 1]."""

    checkpoint: Path | None = None
    """Where to save progress (atomically); an existing checkpoint of the same run is resumed."""

    checkpoint_every: int = 4
    """Save the checkpoint after this many work units (views) and at the end of every round."""

    progress: bool = True
    """Show a progress bar with loss, PSNR and L-infinity."""

    def validate(self) -> None:
        if self.method not in METHODS:
            raise AdLiftError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not 0.0 < self.eta <= 1.0:
            raise AdLiftError(f"eta must lie in (0, 1] (e.g. 8/255), got {self.eta}")
        for name in ("rounds", "pgd_steps", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise AdLiftError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("fit_steps", "replay"):
            if getattr(self, name) < 0:
                raise AdLiftError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.gradient_blur < 0:
            raise AdLiftError(f"gradient-blur must be >= 0, got {self.gradient_blur}")
        if self.step_size <= 0 or self.budget_weight < 0:
            raise AdLiftError("step-size must be > 0 and budget-weight >= 0")
        if any(not 0.0 <= c <= 1.0 for c in self.background):
            raise AdLiftError(f"background colours must lie in [0, 1], got {self.background}")
        self.safeguard.validate()
        self.loss.validate()

    def fingerprint(self) -> dict:
        """The settings a checkpoint must share with the run resuming it (JSON-serialisable)."""
        d = to_jsonable(dataclasses.asdict(self))
        for key in ("checkpoint", "checkpoint_every", "progress", "backend"):
            d.pop(key, None)
        return d


def to_jsonable(value):
    """dataclass dicts with Paths and tuples -> plain JSON types."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
