"""Settings of a protection run (shared by Lifted PGD and the baselines).

:class:`ProtectConfig` is the one definition of the protection options: ``adlift protect`` nests it
without a prefix (``--eta``, ``--rounds``, ``--init``, ``loss:unet --loss.unet-mode sds``) and the
nerfstudio plugin nests it as ``--pipeline.model.protect.*``, so names, defaults and help text are
written once, here. Fields the caller fills itself (rendering backend and background, checkpoint,
progress) are hidden from the command line (``tyro.conf.Suppress``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal, Optional, Tuple

import tyro

# The built-in protection methods register themselves in METHODS when imported.
import adlift.protect.lifted  # noqa: F401  (lifted-pgd)
import adlift.protect.baselines  # noqa: F401  (fit2d, direct)
from adlift.attacks.eot import EOTConfig
from adlift.attacks.losses import EncoderLossConfig, LossConfig
from adlift.attacks.pgd import Budget
from adlift.errors import AdLiftError
from adlift.io.json_safe import to_jsonable
from adlift.protect.methods import METHODS
from adlift.protect.safeguard import SafeguardConfig
from adlift.render.api import BACKENDS


@dataclasses.dataclass
class ProtectConfig:
    """One protection run: method, budget, schedule, safeguard and loss."""

    method: METHODS.literal() = "lifted-pgd"  # type: ignore[valid-type]
    """lifted-pgd (AdLift), fit2d (PGD every view, then fit once) or direct (loss through the renderer)."""

    eta: Budget = 8 / 255
    """L-infinity budget of the change of any rendered pixel (8/255 is invisible)."""

    rounds: int = 2
    """Outer rounds over all training views."""

    pgd_steps: int = 10
    """Loss-gradient (PGD) steps per view and round (every method gets this same editor budget)."""

    step_size: Budget = 2 / 255
    """First PGD sign step in image space; decays to a quarter of it over a view's steps."""

    gradient_blur: float = 0.0
    """Standard deviation (pixels) of a Gaussian blur applied to the loss gradient before the sign
    step; 0 = off. Smoother perturbations are easier for Gaussians to carry and to see from new views."""

    fit_steps: int = 10
    """Image-to-Gaussian fitting steps per view and round (fit2d: the same total, once)."""

    replay: int = 2
    """Earlier views' targets rendered with the current one in each fitting step (anti-forgetting)."""

    budget_weight: float = 10.0
    """Weight of the penalty on rendered pixels leaving the budget around the raw render (fitting, direct)."""

    view_order: Literal["given", "shuffled"] = "given"
    """Order of the training views in a round: as given (neighbouring views in a row), or shuffled per round."""

    view_batch: Optional[int] = None
    """Views protected together in one unit: their PGD targets are made from the same state (shared out
    among the ranks of a torchrun launch), then fitted together. Default: the number of processes (1 without
    torchrun). The same value gives the same protected scene on any number of processes."""

    safeguard: Annotated[SafeguardConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=SafeguardConfig)
    """Safeguard initialisation and trainable groups."""

    eot: EOTConfig = dataclasses.field(default_factory=EOTConfig)
    """Expectation over random purifications (JPEG, blur, resize, noise) of every loss gradient; off by default."""

    loss: LossConfig = dataclasses.field(default_factory=EncoderLossConfig)  # type: ignore[valid-type]
    """Adversarial loss: encoder (VAE latent, PhotoGuard), unet (noise prediction, AdvDM/SDS) or pipeline
    (k denoising steps of the edit); each kind has its own options."""

    quantise_as: tyro.conf.Suppress[Optional[str]] = None
    """Fit with this scene format's quantiser in the loop (straight-through through its real codec,
    adlift.protect.quantise), so the written file keeps the protection; None: fit in float32. adlift
    protect sets it to a lossy output format (--no-quantise-in-fit turns it off)."""

    quantise_options: tyro.conf.Suppress[tuple[tuple[str, str], ...]] = ()
    """Write/read options of the quantiser's codec round trip, as (name, value) pairs: those the written
    file gets (adlift protect --spz-axes gives (("spz_axes", "raw"),)); empty: each format's defaults."""

    quantise_every: int = 10
    """With a lossy output format: refresh the codec round trip of the quantiser in the loop after this many
    optimiser steps, reusing the last residual in between (1: every step, exact; SOG's palette is slow)."""

    seed: int = 0
    """Seed of every random draw: the same seed, settings and inputs give the same protected scene."""

    checkpoint_every: int = 4
    """Save the checkpoint after this many work units (views) and at the end of every round (adlift protect;
    under ns-train, nerfstudio saves every --steps-per-save)."""

    backend: tyro.conf.Suppress[BACKENDS.literal("auto")] = "auto"  # type: ignore[valid-type]
    """Rasteriser used for rendering and fitting (set from the command's render options)."""

    background: tyro.conf.Suppress[Tuple[float, float, float]] = (0.0, 0.0, 0.0)
    """Background colour R G B in [0, 1] (set from the command's render options)."""

    checkpoint: tyro.conf.Suppress[Optional[Path]] = None
    """Where to save progress (atomically); an existing checkpoint of the same run is resumed."""

    progress: tyro.conf.Suppress[bool] = True
    """Show a progress bar with loss, PSNR and L-infinity."""

    def validate(self) -> None:
        METHODS.check(self.method)
        if not 0.0 < self.eta <= 1.0:
            raise AdLiftError(f"eta must lie in (0, 1] (e.g. 8/255), got {self.eta}")
        for name in ("rounds", "pgd_steps", "checkpoint_every", "quantise_every"):
            if getattr(self, name) < 1:
                raise AdLiftError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.view_batch is not None and self.view_batch < 1:
            raise AdLiftError(f"view-batch must be >= 1, got {self.view_batch}")
        for name in ("fit_steps", "replay"):
            if getattr(self, name) < 0:
                raise AdLiftError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.gradient_blur < 0:
            raise AdLiftError(f"gradient-blur must be >= 0, got {self.gradient_blur}")
        if self.step_size <= 0 or self.budget_weight < 0:
            raise AdLiftError("step-size must be > 0 and budget-weight >= 0")
        if len(self.background) != 3 or any(not 0.0 <= c <= 1.0 for c in self.background):
            raise AdLiftError(f"background colours must lie in [0, 1], got {self.background}")
        if self.backend != "auto":
            BACKENDS.check(self.backend)
        if self.quantise_as is not None:
            from adlift.io.formats import SCENE_FORMATS

            SCENE_FORMATS.check(self.quantise_as)
        self.safeguard.validate()
        self.eot.validate()
        self.loss.validate()

    def for_ranks(self, world_size: int) -> "ProtectConfig":
        """This config with ``view_batch`` set (the number of processes when it is not given)."""
        return dataclasses.replace(self, view_batch=self.view_batch or world_size)

    def to_json(self) -> dict:
        """Every setting as plain JSON types; the loss with its ``kind`` (what manifest.json records)."""
        doc = to_jsonable(self)
        doc["loss"] = self.loss.to_json()
        return doc

    def fingerprint(self) -> dict:
        """The settings a checkpoint must share with the run resuming it (JSON-serialisable)."""
        doc = self.to_json()
        for key in ("checkpoint", "checkpoint_every", "progress", "backend"):
            doc.pop(key, None)
        if doc.get("quantise_as") is None:  # no quantiser in the loop: the fingerprint of runs before it existed
            doc.pop("quantise_as", None)
            doc.pop("quantise_every", None)
        if not doc.get("quantise_options"):  # the format's defaults: as before the option existed
            doc.pop("quantise_options", None)
        return doc
