"""Real spherical harmonics up to degree 3, in the 3DGS (INRIA / gsplat) convention.

``colour = sum_k basis_k(d) * coeff_k + 0.5``, clamped below at 0, where ``d`` is the unit
direction from the camera centre to the Gaussian mean.  The basis order and signs are those of
the INRIA reference (``-C1 y, C1 z, -C1 x`` for degree 1, ...), which gsplat uses too.
"""

from __future__ import annotations

import torch

from adlift.scene import SH_C0

# Standard real SH normalisation constants (Sloan, "Stupid SH tricks"), as in 3DGS (SH_C0, the
# degree-0 one, is defined with the scene model: colour = SH_C0 * dc + 0.5).
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """The (degree + 1)^2 real SH basis functions at unit directions.

    dirs: [..., 3] unit vectors.  Returns [..., (degree + 1)^2].
    """
    if degree not in (0, 1, 2, 3):
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    ones = torch.ones_like(dirs[..., 0])
    out = [SH_C0 * ones]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Evaluate SH of ``degree`` (coefficients beyond it are ignored).

    dirs: [..., 3] directions (normalised here; need not be unit).
    coeffs: [..., K, 3] with K >= (degree + 1)^2.
    Returns the raw SH value [..., 3] (add 0.5 and clamp for a 3DGS colour: :func:`sh_to_rgb`).
    """
    k = (degree + 1) ** 2
    if coeffs.shape[-2] < k:
        raise ValueError(f"SH degree {degree} needs {k} coefficients, got {coeffs.shape[-2]}")
    if degree == 0:
        return SH_C0 * coeffs[..., 0, :]
    unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # [..., 3]
    basis = sh_basis(degree, unit)  # [..., k]
    return torch.einsum("...k,...kc->...c", basis, coeffs[..., :k, :])  # [..., 3] (a batched GEMM)


def sh_to_rgb(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """3DGS colour: ``max(eval_sh + 0.5, 0)``; dirs [..., 3], coeffs [..., K, 3] -> [..., 3]."""
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)
