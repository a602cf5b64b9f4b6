"""Image-space projected gradient descent under an L-infinity budget (Madry et al. 2018).

    result = image_pgd(images, loss, PGDConfig(eta=8/255, steps=50))
    result.images   # [B, 3, H, W], |result - images| <= eta everywhere, values in [0, 1]

Sign steps, optional uniform random start inside the ball, a geometric step-size decay from
``step_size`` to ``step_size_final``, projection onto the ball around the clean image and clamp
to [0, 1] after every step. The returned image is, per image, the iterate with the lowest loss
seen. :func:`pgd_step` and :func:`project_linf` are the pieces Lifted PGD reuses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Optional

import torch
import tyro
from tqdm.auto import tqdm

from adlift.attacks.losses import AdversarialLoss
from adlift.errors import AdLiftError
from adlift.image_metrics import check_images


def parse_budget(text: str | float, name: str = "budget") -> float:
    """A budget given as a number ("0.03") or a fraction ("8/255") -> float; AdLiftError if malformed.

    ``name`` (e.g. "--eta") names the setting in the error message."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        try:
            num, _, den = str(text).partition("/")
            value = float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError):
            raise AdLiftError(f"cannot read {name} {text!r}; write it like 8/255 or 0.031") from None
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise AdLiftError(f"{name} must lie in (0, 1] (e.g. 8/255), got {text!r}")
    return value


def format_budget(value: float) -> str:
    """A budget as the user would write it: 8/255 when it is a whole number of 8-bit levels, else the number."""
    levels = value * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{value:.6g}"


def _budget_from_cli(args: list[str]) -> float:
    # An AdLiftError raised while tyro parses passes through tyro unchanged, so the console script's
    # run_command prints it as one line and exits 2 (a ValueError would become tyro's boxed usage error).
    return parse_budget(args[0])


#: A config field holding an L-infinity budget: a float in the library, written ``8/255`` or ``0.031`` on
#: the command line (tyro), shown as ``8/255`` in --help.
Budget = Annotated[
    float,
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="N/255|FLOAT",
        instance_from_str=_budget_from_cli,
        is_instance=lambda value: isinstance(value, float),
        str_from_instance=lambda value: [format_budget(value)],
    ),
]


@dataclasses.dataclass
class PGDConfig:
    """L-infinity PGD settings."""

    eta: Budget = 8 / 255
    """Budget: the largest change of any pixel channel (8/255 is invisible)."""

    steps: int = 50
    """PGD iterations (each one loss gradient per EOT sample)."""

    step_size: Budget = 2 / 255
    """Size of the first sign step."""

    step_size_final: Optional[Budget] = None
    """Size of the last step; steps decay geometrically in between. Default: step_size / 4."""

    random_start: bool = True
    """Start from a uniformly random point of the ball instead of the clean image."""

    seed: int = 0
    """Seed of the random start and of the loss' random draws."""

    def validate(self) -> None:
        if not 0.0 < self.eta <= 1.0:
            raise AdLiftError(f"eta must lie in (0, 1], got {self.eta}")
        if self.steps < 0:
            raise AdLiftError(f"PGD steps must be >= 0, got {self.steps}")
        if self.step_size <= 0 or (self.step_size_final is not None and self.step_size_final <= 0):
            raise AdLiftError("PGD step sizes must be > 0")

    def step_at(self, k: int) -> float:
        """Step size of iteration k (0-based) of :attr:`steps`."""
        final = self.step_size_final if self.step_size_final is not None else self.step_size / 4
        if self.steps <= 1:
            return self.step_size
        return self.step_size * (final / self.step_size) ** (k / (self.steps - 1))


def project_linf(
    x: torch.Tensor,  # [B, 3, H, W]
    center: torch.Tensor,  # [B, 3, H, W] clean images
    eta: float,
) -> torch.Tensor:
    """Projection onto {|x - center| <= eta} intersected with [0, 1]^n (elementwise clamps)."""
    return torch.minimum(torch.maximum(x, center - eta), center + eta).clamp(0.0, 1.0)


def pgd_step(
    x: torch.Tensor,  # [B, 3, H, W] current iterate
    grad: torch.Tensor,  # [B, 3, H, W] gradient of the loss (to minimise) at x
    center: torch.Tensor,  # [B, 3, H, W] clean images
    eta: float,
    step: float,
) -> torch.Tensor:
    """One signed descent step, projected onto the budget around ``center`` and clamped to [0, 1]."""
    return project_linf(x - step * grad.sign(), center, eta)


@dataclasses.dataclass
class PGDResult:
    """Output of :func:`image_pgd`."""

    images: torch.Tensor
    """Protected images [B, 3, H, W] (the lowest-loss iterate per image)."""

    losses: torch.Tensor
    """Loss per iteration and image [steps + 1, B] (row 0: at the start point)."""

    best_loss: torch.Tensor
    """Loss of the returned images [B]."""


def image_pgd(
    images: torch.Tensor,  # [B, 3, H, W] in [0, 1]
    loss: AdversarialLoss,
    config: PGDConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> PGDResult:
    """Protect images with L-infinity PGD on ``loss`` (see the module docstring)."""
    config = config or PGDConfig()
    config.validate()
    check_images(images, values=False)
    gen = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    clean = images.detach().clamp(0.0, 1.0)
    x = clean.clone()
    if config.random_start:
        noise = torch.rand(clean.shape, generator=gen).to(clean) * 2 - 1
        x = project_linf(clean + config.eta * noise, clean, config.eta)
    reference = clean if loss.needs_reference else None
    history = []
    best = x.clone()
    best_loss = torch.full((x.shape[0],), math.inf)
    bar = tqdm(range(config.steps + 1), desc="PGD", unit="step", disable=not progress, leave=False)
    for k in bar:
        value, grad = loss.gradient(x, reference, gen)
        value = value.cpu()
        history.append(value)
        better = value < best_loss
        if bool(better.any()):
            best[better] = x[better]
            best_loss = torch.where(better, value, best_loss)
        if k == config.steps:
            break
        x = pgd_step(x, grad, clean, config.eta, config.step_at(k))
        bar.set_postfix(loss=f"{float(value.mean()):.4g}")
    return PGDResult(best, torch.stack(history), best_loss)
