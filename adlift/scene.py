"""GaussianScene: the 3D Gaussian Splatting asset as plain tensors.

Parameters are stored *unactivated*, exactly as the INRIA 3DGS .ply stores them:

=================  ==========  ===========================================================
field              shape       meaning
=================  ==========  ===========================================================
``means``          [N, 3]      centres in world coordinates
``quats``          [N, 4]      rotations as quaternions (w, x, y, z), any norm
``log_scales``     [N, 3]      log of the standard deviations along the local axes
``opacity_logits`` [N]         logit of the opacity (sigmoid gives opacity in (0, 1))
``sh``             [N, K, 3]   spherical-harmonics coefficients, K = (d + 1)^2, d in 0..3;
                               ``sh[:, 0]`` is the DC term
=================  ==========  ===========================================================
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Iterable, Sequence

import numpy as np
import torch

from adlift.errors import SceneError

#: The zeroth-order real spherical-harmonic constant: colour = SH_C0 * dc + 0.5.
SH_C0 = 0.28209479177387814

#: Number of SH coefficients per channel for each supported degree.
SH_COEFFS_TO_DEGREE = {1: 0, 4: 1, 9: 2, 16: 3}


def sh_coeffs_for_degree(degree: int) -> int:
    """Number of SH coefficients per colour channel for ``degree`` (0..3)."""
    try:
        d = operator.index(degree)  # ints and numpy ints; not floats or bools
    except TypeError:
        d = None
    if isinstance(degree, bool) or d not in (0, 1, 2, 3):
        raise SceneError(f"SH degree must be 0, 1, 2 or 3, got {degree!r}")
    return (d + 1) ** 2


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse of the DC colour mapping: rgb [..., 3] in [0, 1] -> DC coefficients [..., 3]."""
    return (rgb - 0.5) / SH_C0


@dataclasses.dataclass(eq=False)  # tensors have no truth value: compare with torch.testing, not ==
class GaussianScene:
    """A set of 3D Gaussians with the INRIA 3DGS parameterisation (see the module docstring).

    Construction checks shapes, dtypes and devices; pass ``check_finite=False`` to skip the
    (synchronising) NaN/Inf check in hot loops where the tensors are known to be finite.
    """

    means: torch.Tensor  # [N, 3]
    quats: torch.Tensor  # [N, 4] (w, x, y, z)
    log_scales: torch.Tensor  # [N, 3]
    opacity_logits: torch.Tensor  # [N]
    sh: torch.Tensor  # [N, K, 3]
    check_finite: dataclasses.InitVar[bool] = True

    def __post_init__(self, check_finite: bool) -> None:
        self._check_shapes()
        if check_finite:
            self.check_values()

    # ------------------------------------------------------------------ validation
    def _check_shapes(self) -> None:
        fields = {
            "means": self.means,
            "quats": self.quats,
            "log_scales": self.log_scales,
            "opacity_logits": self.opacity_logits,
            "sh": self.sh,
        }
        for name, value in fields.items():
            if not isinstance(value, torch.Tensor):
                raise SceneError(f"GaussianScene.{name} must be a torch.Tensor, got {type(value).__name__}")
            if not value.is_floating_point():
                raise SceneError(f"GaussianScene.{name} must be a floating-point tensor, got {value.dtype}")
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
        }
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise SceneError(f"GaussianScene.means must have shape [N, 3], got {list(self.means.shape)}")
        for name, shape in expected.items():
            value = fields[name]
            if tuple(value.shape) != shape:
                want = ", ".join(["N"] + [str(d) for d in shape[1:]])
                raise SceneError(f"GaussianScene.{name} must have shape [{want}] with N={n}, got {list(value.shape)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise SceneError(f"GaussianScene.sh must have shape [N={n}, K, 3], got {list(self.sh.shape)}")
        if self.sh.shape[1] not in SH_COEFFS_TO_DEGREE:
            raise SceneError(
                f"GaussianScene.sh has K={self.sh.shape[1]} coefficients per channel; "
                "K must be (d+1)^2 for an SH degree d in 0..3 (1, 4, 9 or 16)"
            )
        dtypes = {value.dtype for value in fields.values()}
        if len(dtypes) != 1:
            raise SceneError(f"GaussianScene tensors must share one dtype, got {sorted(str(d) for d in dtypes)}")
        devices = {value.device for value in fields.values()}
        if len(devices) != 1:
            raise SceneError(f"GaussianScene tensors must be on one device, got {sorted(str(d) for d in devices)}")

    def check_values(self) -> None:
        """Raise :class:`SceneError` if any parameter is NaN or infinite."""
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
            value = getattr(self, name)
            if value.numel() and bool(torch.isfinite(value.sum())):
                continue  # NaN and Inf propagate through a sum (an overflow falls through to the full check)
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = (~finite).reshape(value.shape[0], -1).any(dim=1).nonzero()
                raise SceneError(
                    f"GaussianScene.{name} has non-finite values (NaN/Inf) in {bad.numel()} Gaussian(s), "
                    f"first at index {int(bad[0])}"
                )

    # ------------------------------------------------------------------ basic properties
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        """Number of Gaussians N."""
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        """Spherical-harmonics degree d (K = (d+1)^2 coefficients per channel)."""
        return SH_COEFFS_TO_DEGREE[self.sh.shape[1]]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def tensors(self) -> dict[str, torch.Tensor]:
        """The five parameter tensors by field name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------ activated accessors
    @property
    def scales(self) -> torch.Tensor:
        """Standard deviations along the local axes, exp(log_scales): [N, 3]."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        """Opacities in (0, 1), sigmoid(opacity_logits): [N]."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def normalized_quats(self) -> torch.Tensor:
        """Unit quaternions (w, x, y, z): [N, 4]. A zero quaternion maps to the identity."""
        norm = self.quats.norm(dim=-1, keepdim=True)
        identity = torch.zeros_like(self.quats)
        identity[:, 0] = 1.0
        return torch.where(norm > 0, self.quats / norm.clamp_min(1e-12), identity)

    @property
    def rgb(self) -> torch.Tensor:
        """View-independent colour from the DC term, SH_C0 * dc + 0.5 clamped to [0, 1]: [N, 3]."""
        return (SH_C0 * self.sh[:, 0] + 0.5).clamp(0.0, 1.0)

    def bounds(self, quantile: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-aligned bounds of the means: (min [3], max [3]).

        With ``quantile`` q in (0, 0.5), the q and 1-q quantiles per axis instead, which ignores
        stray floaters when framing cameras.
        """
        if self.num_gaussians == 0:
            raise SceneError("cannot take the bounds of an empty GaussianScene")
        if quantile is None:
            return self.means.amin(dim=0), self.means.amax(dim=0)
        if not 0.0 < quantile < 0.5:
            raise SceneError(f"bounds quantile must be in (0, 0.5), got {quantile}")
        q = torch.tensor([quantile, 1.0 - quantile], dtype=self.dtype, device=self.device)
        lo_hi = torch.quantile(self.means.detach().to(torch.float64), q.to(torch.float64), dim=0).to(self.dtype)
        return lo_hi[0], lo_hi[1]

    def center_and_radius(self, quantile: float | None = 0.01) -> tuple[torch.Tensor, float]:
        """Centre [3] of the (robust) bounding box and half its diagonal."""
        lo, hi = self.bounds(quantile)
        return (lo + hi) / 2, float((hi - lo).norm()) / 2

    # ------------------------------------------------------------------ constructors
    @classmethod
    def empty(cls, sh_degree: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu") -> "GaussianScene":
        """A scene with zero Gaussians."""
        k = sh_coeffs_for_degree(sh_degree)
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        return cls(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, k, 3))

    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,  # [N, 3]
        rgb: torch.Tensor,  # [N, 3] in [0, 1]
        scales: torch.Tensor,  # [N, 3] > 0
        opacities: torch.Tensor,  # [N] in (0, 1)
        quats: torch.Tensor | None = None,  # [N, 4]
        sh_degree: int = 0,
    ) -> "GaussianScene":
        """Build a scene from activated values (colour, scale, opacity) with zero higher-order SH.

        ``opacities`` are clamped into the open interval (0, 1) so that their logits are finite;
        ``scales`` must be positive.
        """
        if not isinstance(means, torch.Tensor) or means.ndim != 2 or means.shape[1] != 3:
            raise SceneError(f"from_activated: means must be a tensor of shape [N, 3], got {_shape(means)}")
        n = means.shape[0]
        for name, value, shape in (("rgb", rgb, (n, 3)), ("scales", scales, (n, 3)), ("opacities", opacities, (n,)),
                                   ("quats", quats, (n, 4))):  # fmt: skip
            if name == "quats" and value is None:
                continue
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                want = ", ".join(["N"] + [str(d) for d in shape[1:]])
                raise SceneError(f"from_activated: {name} must have shape [{want}] with N={n}, got {_shape(value)}")
        if not means.is_floating_point():
            raise SceneError(f"from_activated: means must be a floating-point tensor, got {means.dtype}")
        if n and not bool((scales > 0).all()):
            raise SceneError("from_activated: scales must be positive (they are stored as log-scales)")
        if quats is None:
            quats = torch.zeros(n, 4, dtype=means.dtype, device=means.device)
            quats[:, 0] = 1.0
        sh = torch.zeros(n, sh_coeffs_for_degree(sh_degree), 3, dtype=means.dtype, device=means.device)
        sh[:, 0] = rgb_to_sh_dc(rgb.to(means.device, means.dtype))
        eps = torch.finfo(means.dtype).eps
        opacities = opacities.to(means.dtype).clamp(eps, 1 - eps)  # keeps NaN, which construction rejects
        dev, dt = means.device, means.dtype
        return cls(means, quats.to(dev, dt), torch.log(scales.to(dev, dt)), torch.logit(opacities.to(dev)), sh)

    # ------------------------------------------------------------------ transforms
    def _map(self, fn, check_finite: bool = False) -> "GaussianScene":
        return GaussianScene(**{k: fn(v) for k, v in self.tensors().items()}, check_finite=check_finite)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "GaussianScene":
        """Copy to ``device`` and/or ``dtype`` (a no-op copy when nothing changes)."""
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> "GaussianScene":
        """The same values without autograd history."""
        return self._map(lambda t: t.detach())

    def clone(self) -> "GaussianScene":
        """A deep copy (keeps autograd history, like ``Tensor.clone``)."""
        return self._map(lambda t: t.clone())

    def subset(self, index: torch.Tensor | Sequence[int] | slice) -> "GaussianScene":
        """The Gaussians selected by a boolean mask [N], integer indices [M] or a slice.

        Masks and indices may be tensors, numpy arrays or Python sequences (a list of bools is a
        mask). Indices may repeat and may be negative, as in ``Tensor.__getitem__``.
        """
        n = self.num_gaussians
        if isinstance(index, slice):
            if index.step == 0:
                raise SceneError("subset slice step cannot be zero")
            if index.step is not None and index.step < 0:  # torch slicing has no negative steps
                index = list(range(n)[index])
            else:
                return self._map(lambda t: t[index])
        if not isinstance(index, torch.Tensor):
            try:
                index = torch.as_tensor(np.asarray(index))
            except (TypeError, ValueError, RuntimeError):
                raise SceneError(
                    f"subset needs a boolean mask, integer indices or a slice, got {type(index).__name__}"
                ) from None
            if index.numel() == 0:
                index = index.to(torch.long)
        if index.dtype == torch.bool:
            if tuple(index.shape) != (n,):
                raise SceneError(f"subset mask must have shape [N={n}], got {list(index.shape)}")
        elif index.is_floating_point() or index.is_complex():
            raise SceneError(f"subset indices must be integers or booleans, got {index.dtype}")
        elif index.ndim != 1:
            raise SceneError(f"subset indices must be one-dimensional, got shape {list(index.shape)}")
        elif index.numel() > 0 and (int(index.max()) >= n or int(index.min()) < -n):
            raise SceneError(
                f"subset index out of range for a scene of {n} Gaussians "
                f"(got indices from {int(index.min())} to {int(index.max())})"
            )
        else:
            index = index.to(torch.long)  # uint8 tensors would index as (deprecated) masks
        index = index.to(self.device)
        return self._map(lambda t: t[index])

    def with_sh_degree(self, degree: int) -> "GaussianScene":
        """The same scene with SH degree ``degree``: extra coefficients zero, surplus ones dropped."""
        k = sh_coeffs_for_degree(degree)
        have = self.sh.shape[1]
        if k == have:
            return self
        if k < have:
            sh = self.sh[:, :k]
        else:
            pad = torch.zeros(self.num_gaussians, k - have, 3, dtype=self.dtype, device=self.device)
            sh = torch.cat([self.sh, pad], dim=1)
        return GaussianScene(self.means, self.quats, self.log_scales, self.opacity_logits, sh, check_finite=False)

    @staticmethod
    def concat(scenes: Iterable["GaussianScene"]) -> "GaussianScene":
        """Concatenate scenes in order; SH degrees are raised to the highest one (zero padded)."""
        scenes = list(scenes)
        if not scenes:
            raise SceneError("GaussianScene.concat needs at least one scene")
        degree = max(s.sh_degree for s in scenes)
        dtypes = {s.dtype for s in scenes}
        devices = {s.device for s in scenes}
        if len(dtypes) != 1 or len(devices) != 1:
            raise SceneError(
                "GaussianScene.concat needs scenes of one dtype and device, got "
                f"dtypes {sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}"
            )
        scenes = [s.with_sh_degree(degree) for s in scenes]
        names = [f.name for f in dataclasses.fields(GaussianScene)]
        return GaussianScene(
            **{name: torch.cat([getattr(s, name) for s in scenes], dim=0) for name in names}, check_finite=False
        )

    def summary(self) -> dict:
        """Statistics a person reads first: count, SH degree, bounds, opacity and scale statistics."""
        out: dict = {"num_gaussians": self.num_gaussians, "sh_degree": self.sh_degree, "dtype": str(self.dtype)}
        if self.num_gaussians == 0:
            return out
        with torch.no_grad():
            lo, hi = self.bounds()
            op = self.opacities.double()
            sc = self.scales.double()
            max_scale = sc.amax(dim=1)

            def stats(x: torch.Tensor) -> dict:
                q = torch.quantile(x, torch.tensor([0.05, 0.5, 0.95], dtype=x.dtype)) if x.numel() < 16_000_000 else None
                d = {"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max())}
                if q is not None:
                    d.update({"p05": float(q[0]), "median": float(q[1]), "p95": float(q[2])})
                return d

            out["bounds_min"] = [float(v) for v in lo]
            out["bounds_max"] = [float(v) for v in hi]
            out["extent"] = [float(v) for v in hi - lo]
            out["opacity"] = stats(op)
            out["max_scale"] = stats(max_scale)
            out["nearly_transparent_fraction"] = float((op < 1 / 255).double().mean())
            out["degenerate_quat_count"] = int((self.quats.norm(dim=-1) == 0).sum())
            out["isotropy_ratio_median"] = float(torch.median(sc.amax(dim=1) / sc.amin(dim=1)))
            if not math.isfinite(out["isotropy_ratio_median"]):
                out["isotropy_ratio_median"] = None
        return out


def _shape(value) -> str:
    return str(list(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__
