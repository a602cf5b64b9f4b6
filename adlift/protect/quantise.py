"""The target format's quantiser in the protection fit (straight-through), so writing the file keeps
the protection.

With ``ProtectConfig.quantise_as`` set (``adlift protect`` sets it to a lossy output format), the
engine renders, in every PGD start, fitting step and measurement, **what the file will hold**: the
whole protected scene (frozen set, if any, and safeguard) is put in the published order the file is
written in (:func:`adlift.protect.publish.publish_order`; a ``.compressed.ply`` quantises 256
consecutive Gaussians together), written and decoded by the format's own codec
(:func:`adlift.io.quantise.roundtrip`), and put back in the working order. Each trainable tensor
``t`` becomes ``q`` in the forward pass and passes its gradient to ``t`` unchanged
(straight-through), so the optimiser keeps moving the float parameters while the loss and the budget
see the quantised values.

A higher SH coefficient (above degree 0) gets a gradient only where the file holds it finely enough
for the budget: a straight-through step there jumps a whole quantisation step, which must move a pixel
by at most half of eta. At the first round trip each coefficient ``k`` is judged by its largest
round-trip error ``e_k`` (half a step) and the largest magnitude of its basis function over the sphere
``Y_k``: it trains iff ``2 e_k Y_k <= eta / 2`` (:func:`trainable_sh`). On the SH-1 crate at 8/255 this
trains degree 1 of ``.compressed.ply`` (8 bits over [-4, 4)) and of a SOG whose palette holds every
Gaussian, and freezes ``.spz``'s (5 bits over [-1, 1): trained, only 97.5 % of pixels stayed within
eta + 2/255); a file that drops a band (``.splat``) decodes it as 0 with a large error, so it never
trains (benchmarks/format_protection.py; docs/FORMATS.md). DC colour and opacity (8 bits or finer in
every web format) and every other trainable group always train.

The round trip is refreshed when the optimiser has taken ``quantise_every`` steps since the last one;
in between, the forward pass is ``t + (q - t_then)`` (the last residual, reused: SOG's palette
clustering takes seconds). With ``quantise_every = 1`` every forward pass after an optimiser step is
exactly the decode of the file the current parameters would write. The last round trip is in the
checkpoint (:meth:`FormatQuantiser.state_dict`), so a resumed run is bit-identical to an uninterrupted
one. Under torchrun each rank does
its own round trip (deterministic) at its first render after the block changes; every rank renders its
share of every fitting step, so they refresh at the same step and hold the same residual.
"""

from __future__ import annotations

import torch

from adlift.scene import GaussianScene


class _StraightThrough(torch.autograd.Function):
    """``forward(t, q, keep) = q`` exactly; the gradient goes to ``t`` unchanged (times ``keep``)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, q: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:  # noqa: D102
        ctx.keep = keep
        return q.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return (grad if ctx.keep is None else grad * ctx.keep), None, None


def straight_through(t: torch.Tensor, q: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """``q`` in the forward pass, the identity's gradient to ``t`` (``q`` itself if ``t`` needs none).

    ``keep`` (broadcast against ``t``, 0 or 1): where it is 0 the gradient stops (the higher SH bands,
    module docstring)."""
    q = q.to(t.dtype)
    return _StraightThrough.apply(t, q, keep) if t.requires_grad else q


def basis_peaks(degree: int, samples: int = 20_000) -> torch.Tensor:
    """[(degree + 1)^2] largest |value| of each real SH basis function over the sphere (a dense
    Fibonacci sampling, within 0.1 % of the true maximum)."""
    from adlift.render.sh import sh_basis

    i = torch.arange(samples, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / samples
    phi = i * torch.pi * (3 - 5**0.5)
    r = (1 - z * z).sqrt()
    dirs = torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1)
    return sh_basis(degree, dirs).abs().amax(dim=0).float()


def trainable_sh(original: torch.Tensor, decoded: torch.Tensor, eta: float) -> torch.Tensor:
    """[1, K, 1] float keep-mask of SH coefficients (module docstring): 1 for DC, and for a higher
    coefficient k iff 2 * max|decoded - original|_k * max|Y_k| <= eta / 2. original, decoded: [N, K, 3]."""
    k = original.shape[1]
    error = (decoded - original).abs().amax(dim=(0, 2)) if original.shape[0] else torch.zeros(k)
    peaks = basis_peaks({1: 0, 4: 1, 9: 2, 16: 3}[k]).to(error.device)
    keep = 2 * error.float() * peaks <= eta / 2
    keep[0] = True
    return keep.to(original.dtype)[None, :, None]


def optimiser_steps(optimizer: torch.optim.Optimizer) -> int:
    """How many steps ``optimizer`` has taken (Adam's ``step`` state; 0 before the first)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if step is not None:
                return int(step)
    return 0


def file_values(frozen: GaussianScene, safeguard: GaussianScene, format: str,
                **options) -> tuple[GaussianScene, GaussianScene]:  # fmt: skip
    """(frozen, safeguard) as a file of ``format`` holds them, written in the published order of
    their concatenation (what :func:`adlift.protect.output.write_protection` writes, with the write
    ``options`` it gets, e.g. ``spz_axes``), rows back in the working order; detached float32."""
    from adlift.io.quantise import roundtrip
    from adlift.protect.publish import publish_order

    working = GaussianScene.concat([frozen.detach(), safeguard.detach()]) if frozen.num_gaussians else safeguard.detach()
    order = publish_order(working)
    decoded = roundtrip(working.subset(order), format, **options)
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order), device=order.device)
    decoded = decoded.subset(back)
    n = frozen.num_gaussians
    return decoded.subset(slice(0, n)), decoded.subset(slice(n, None))


class FormatQuantiser:
    """Straight-through round trip through ``format`` (module docstring), refreshed every ``every``
    optimiser steps; ``options``: the format's write/read options (``spz_axes``)."""

    def __init__(self, format: str, every: int = 1, options: dict | None = None, eta: float = 8 / 255):
        self.format = format
        self.every = max(1, int(every))
        self.options = dict(options or {})
        self.eta = float(eta)
        self.keep_sh: torch.Tensor | None = None  # [1, K, 1]: set at the first round trip (trainable_sh)
        from adlift.io.formats import SCENE_FORMATS

        self.held_sh = (SCENE_FORMATS.get(format).max_sh_degree + 1) ** 2  # coefficients the file has at all
        self.block: int | None = None  # optimiser steps // every at the last refresh
        self.frozen: GaussianScene | None = None  # the frozen set as the file holds it
        self.residual: dict[str, torch.Tensor] = {}  # safeguard field -> q - t at the last refresh
        self.refreshes = 0

    def reset(self) -> None:
        """Forget the last round trip (the next call refreshes and judges the SH coefficients again)."""
        self.block, self.frozen, self.residual, self.keep_sh = None, None, {}, None

    def state_dict(self) -> dict:
        """The last round trip (tensors and numbers, for a checkpoint): a resumed run reuses it exactly
        where an uninterrupted one would."""
        return {"block": -1 if self.block is None else self.block,
                "frozen": None if self.frozen is None else {k: v.cpu() for k, v in self.frozen.tensors().items()},
                "residual": {k: v.cpu() for k, v in self.residual.items()},
                "keep_sh": None if self.keep_sh is None else self.keep_sh.cpu()}  # fmt: skip

    def load_state_dict(self, state: dict | None, device: torch.device) -> None:
        """Continue from :meth:`state_dict` (None: a checkpoint without one; the next call refreshes)."""
        if not state or int(state.get("block", -1)) < 0:
            self.reset()
            return
        self.block = int(state["block"])
        frozen = state.get("frozen")
        self.frozen = GaussianScene(**{k: v.to(device) for k, v in frozen.items()}, check_finite=False) if frozen else None
        self.residual = {k: v.to(device) for k, v in state["residual"].items()}
        keep = state.get("keep_sh")
        self.keep_sh = keep.to(device) if keep is not None else None

    def __call__(self, frozen: GaussianScene, safeguard: GaussianScene, steps: int) -> tuple[GaussianScene, GaussianScene]:
        """(frozen, safeguard) as the file holds them; the safeguard's trainable tensors straight-through."""
        tensors = safeguard.tensors()
        block = steps // self.every
        refresh = block != self.block or not self.residual
        if refresh:
            frozen_q, safeguard_q = file_values(frozen, safeguard, self.format, **self.options)
            self.frozen = frozen_q.to(dtype=frozen.dtype)
            q = safeguard_q.tensors()
            if self.keep_sh is None:
                self.keep_sh = trainable_sh(tensors["sh"].detach(), q["sh"].to(tensors["sh"].dtype), self.eta)
                self.keep_sh[:, self.held_sh :] = 0
            self.residual = {k: (q[k].to(t.dtype) - t.detach()) for k, t in tensors.items()}
            self.block = block
            self.refreshes += 1
        keep = {"sh": self.keep_sh.to(tensors["sh"].dtype)} if not bool(self.keep_sh.all()) else {}
        if refresh:
            out = {k: straight_through(t, q[k], keep.get(k)) for k, t in tensors.items()}
        else:
            out = {k: straight_through(t, t.detach() + self.residual[k], keep.get(k)) for k, t in tensors.items()}
        return self.frozen, GaussianScene(**out, check_finite=False)
