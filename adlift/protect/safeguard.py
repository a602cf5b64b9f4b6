"""Safeguard Gaussians: the trainable set Lifted PGD optimises, and the frozen set drawn with it.

Initialisation (``SafeguardConfig.init``):

``inplace`` (the default)
    The asset's own Gaussians are the safeguard: no copies and no frozen set, the count stays
    1.0x and the first render *is* the raw render (nothing changed yet). Training moves the
    chosen groups of every Gaussian a view sees inside the budget, so the published file holds
    one set of Gaussians in which protection and asset cannot be told apart (docs/THREAT_MODEL.md).
``split``
    Duplicate every raw Gaussian and give both copies the opacity ``a' = 1 - sqrt(1 - a)``: two
    coincident layers of opacity a' let through ``(1 - a')^2 = 1 - a`` at a Gaussian's centre,
    so the first render matches the raw render there. (Away from the centre, where the Gaussian's
    weight g < 1, the pair gives ``1 - (1 - a' g)^2`` instead of ``a g``; the first round of fitting
    absorbs that difference, and the projection keeps every target inside the budget around the
    *raw* render regardless.)
``sample``
    The same split for a ``fraction`` of the raw Gaussians only: those contributing most to the
    training views (views in which the Gaussian is visible x opacity x projected size proxy).

For split and sample, the raw copies ("frozen") never change after initialisation; they make the
file up to 2x larger and leave exact duplicate pairs in it from which the raw asset can be
recovered (docs/THREAT_MODEL.md). The safeguard trains the groups in ``trainable`` (SH colour,
opacity, scale, position, rotation), each with its own learning rate.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from adlift.cameras import Cameras
from adlift.errors import AdLiftError
from adlift.scene import GaussianScene

#: Trainable parameter group -> the scene field it trains (each group has its ``lr_<group>``).
GROUP_FIELDS = {
    "sh": "sh",
    "opacity": "opacity_logits",
    "scale": "log_scales",
    "position": "means",
    "rotation": "quats",
}
GROUPS: tuple[str, ...] = tuple(GROUP_FIELDS)
Group = Literal[GROUPS]  # type: ignore[valid-type]

#: Safeguard initialisations (the first is the default).
INITS: tuple[str, ...] = ("inplace", "split", "sample")


@dataclasses.dataclass
class SafeguardConfig:
    """How safeguard Gaussians are created and which of their parameters train."""

    init: Literal["inplace", "split", "sample"] = "inplace"
    """inplace: train the asset's own Gaussians (count 1.0x, nothing the file can give back);
    split: duplicate every raw Gaussian, opacity a -> 1 - sqrt(1 - a) for both copies (2.0x);
    sample: do that only for the most-contributing fraction of the raw Gaussians (1 + fraction x).
    split and sample leave recoverable duplicate pairs (docs/THREAT_MODEL.md)."""

    fraction: float = 0.5
    """sample: share of the raw Gaussians that get a safeguard copy."""

    trainable: tuple[Group, ...] = ("sh", "opacity")
    """Parameter groups of the safeguard that are optimised (split/sample: the raw copies stay frozen)."""

    lr_sh: float = 0.02
    """Adam learning rate of the SH coefficients (colour). inplace: 0.02 keeps the loss reduction of 0.05
    with fewer pixels outside the budget (a full-opacity Gaussian's colour shows more than a split
    copy's); split measured best at 0.05 (benchmarks/README.md)."""

    lr_opacity: float = 0.05
    """Adam learning rate of the opacity logits."""

    lr_scale: float = 0.005
    """Adam learning rate of the log-scales."""

    lr_position: float = 0.00016
    """Adam learning rate of the means, times the scene extent (3DGS' convention)."""

    lr_rotation: float = 0.001
    """Adam learning rate of the quaternions."""

    def validate(self) -> None:
        if self.init not in INITS:
            raise AdLiftError(f"unknown safeguard init {self.init!r}; choose {', '.join(INITS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise AdLiftError(f"safeguard fraction must lie in (0, 1], got {self.fraction}")
        if not self.trainable:
            raise AdLiftError("at least one safeguard parameter group must be trainable")
        bad = set(self.trainable) - set(GROUPS)
        if bad:
            raise AdLiftError(f"unknown safeguard groups {sorted(bad)}; choose from {', '.join(GROUPS)}")
        for g in GROUPS:
            if getattr(self, f"lr_{g}") < 0:
                raise AdLiftError(f"lr_{g} must be >= 0")


def split_opacity_logits(logits: torch.Tensor) -> torch.Tensor:
    """logit(1 - sqrt(1 - sigmoid(l))) for opacity logits [N], stable for large |l|.

    Two layers of the returned opacity transmit exactly what one layer of the input does.
    """
    x = logits.to(torch.float64)
    log_transmit_half = 0.5 * torch.nn.functional.logsigmoid(-x)  # log sqrt(1 - a)
    # a' = 1 - exp(h) with h = log sqrt(1 - a) < 0; logit(a') = log(-expm1(h)) - h.
    out = torch.log(-torch.expm1(log_transmit_half)) - log_transmit_half
    return out.to(logits.dtype)


def contribution_scores(raw: GaussianScene, cameras: Cameras, *, backend: str = "auto") -> torch.Tensor:
    """How much each raw Gaussian shows in ``cameras``: [N] = views visible x opacity x size^2."""
    from adlift.render import render

    with torch.no_grad():
        visible = torch.zeros(raw.num_gaussians, device=raw.device)
        for i in range(len(cameras)):
            visible += render(raw, cameras[i].to(raw.device), backend=backend).visible[0].float()
        size = raw.log_scales.exp().prod(dim=-1).pow(2.0 / 3.0)  # [N] area proxy
        return visible * raw.opacities * size


@dataclasses.dataclass
class SafeguardInit:
    """Result of :func:`init_safeguard`."""

    frozen: GaussianScene
    """split/sample: the raw Gaussians with split opacities where they got a copy; never trained.
    inplace: empty (0 Gaussians)."""

    safeguard: GaussianScene
    """The initial safeguard Gaussians (inplace: the raw scene itself; split/sample: copies of raw ones)."""

    source_index: torch.Tensor
    """[M] long: the raw Gaussian each safeguard Gaussian starts from (inplace: 0..N-1)."""


def init_safeguard(
    raw: GaussianScene, cameras: Cameras, config: SafeguardConfig, *, backend: str = "auto"
) -> SafeguardInit:
    """Create the safeguard for ``raw`` (see the module docstring); ``raw`` itself is not modified."""
    config.validate()
    raw = raw.detach()
    n = raw.num_gaussians
    if n == 0:
        raise AdLiftError("the scene has no Gaussians to protect")
    if config.init == "inplace":
        index = torch.arange(n, device=raw.device)
        safeguard = GaussianScene(**{k: v.clone() for k, v in raw.tensors().items()}, check_finite=True)
        return SafeguardInit(raw.subset(index[:0]), safeguard, index)
    if config.init == "split" or config.fraction >= 1.0:
        index = torch.arange(n, device=raw.device)
    else:
        scores = contribution_scores(raw, cameras, backend=backend)
        k = max(1, round(config.fraction * n))
        # Stable order: highest score first, ties by index, then kept in index order.
        order = torch.argsort(-scores.cpu().double(), stable=True)[:k]
        index = order.sort().values.to(raw.device)
    split_logits = split_opacity_logits(raw.opacity_logits[index])
    frozen_logits = raw.opacity_logits.clone()
    frozen_logits[index] = split_logits
    frozen = GaussianScene(raw.means.clone(), raw.quats.clone(), raw.log_scales.clone(), frozen_logits,
                           raw.sh.clone(), check_finite=False)  # fmt: skip
    sub = raw.subset(index)
    safeguard = GaussianScene(sub.means, sub.quats, sub.log_scales, split_logits.clone(), sub.sh, check_finite=True)
    return SafeguardInit(frozen, safeguard, index)


class SafeguardParams:
    """The safeguard's tensors, split into trainable leaves and fixed ones, plus its optimiser."""

    def __init__(self, safeguard: GaussianScene, config: SafeguardConfig, extent: float):
        self.config = config
        self.extent = float(extent)
        self.trainable_fields = {GROUP_FIELDS[g] for g in config.trainable}
        self.tensors: dict[str, torch.Tensor] = {}
        for name, value in safeguard.detach().tensors().items():
            t = value.clone()
            if name in self.trainable_fields:
                t.requires_grad_(True)
            self.tensors[name] = t
        groups = []
        for g in GROUPS:
            field = GROUP_FIELDS[g]
            if field in self.trainable_fields:
                lr = getattr(config, f"lr_{g}") * (self.extent if g == "position" else 1.0)
                groups.append({"params": [self.tensors[field]], "lr": lr, "name": g})
        self.optimizer = torch.optim.Adam(groups, eps=1e-15)

    def scene(self) -> GaussianScene:
        """The current safeguard as a scene (trainable tensors carry gradients)."""
        return GaussianScene(**self.tensors, check_finite=False)

    def state_dict(self) -> dict:
        return {"tensors": {k: v.detach().cpu() for k, v in self.tensors.items()},
                "optimizer": self.optimizer.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in self.tensors.items():
                if tuple(state["tensors"][k].shape) != tuple(v.shape):
                    raise AdLiftError("the checkpoint's safeguard does not match this scene; delete it or use another --out")
                v.copy_(state["tensors"][k])
        self.optimizer.load_state_dict(state["optimizer"])
