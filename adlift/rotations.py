"""Rotations: quaternions (w, x, y, z) <-> 3x3 matrices, the one place their formulas live.

:func:`quat_to_rotmat` (batched torch, differentiable) is used by the renderer's projection and the
viewer's splats; :func:`quat_to_matrix` / :func:`matrix_to_quat` (one float64 numpy rotation) by the
COLMAP reader/writer and the viewer's browser cameras.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] from quaternions [..., 4] (w, x, y, z), normalised here.

    A zero quaternion gives the identity (every product term vanishes).
    """
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # [..., 4]
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def quat_to_matrix(wxyz) -> np.ndarray:
    """Quaternion (w, x, y, z) -> rotation matrix [3, 3] (float64 numpy; the quaternion is normalised)."""
    return quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, dtype=np.float64))).numpy()


def matrix_to_quat(rot) -> np.ndarray:
    """Rotation matrix [3, 3] -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method)."""
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q
