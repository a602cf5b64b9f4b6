"""Browser camera <-> AdLift cameras.

viser reports a client's camera as ``wxyz`` and ``position``, the rotation R and translation t of
``P_world = [R | t] p_camera`` with OpenCV camera axes (x right, y down, z forward, the axes of
:mod:`adlift.cameras`), plus the vertical field of view ``fov`` (radians) and ``aspect`` =
width / height of the browser canvas. So our world-to-camera viewmat is simply ``[R | t]^-1`` and
the intrinsics are a centred pinhole with square pixels. Nothing here imports viser.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from adlift.cameras import Cameras
from adlift.errors import CameraError
from adlift.rotations import matrix_to_quat, quat_to_matrix


@dataclasses.dataclass(frozen=True)
class BrowserCamera:
    """A browser camera as viser reports it (OpenCV axes, camera-to-world)."""

    wxyz: tuple[float, float, float, float]
    """Rotation camera -> world as a quaternion (w, x, y, z)."""
    position: tuple[float, float, float]
    """Camera centre in world coordinates."""
    fov: float
    """Vertical field of view in radians."""
    aspect: float
    """Width / height of the canvas."""

    @classmethod
    def from_handle(cls, camera) -> "BrowserCamera":
        """A frozen copy of a viser ``CameraHandle``'s state (0.2.x and 1.x)."""
        return cls(
            tuple(float(v) for v in np.asarray(camera.wxyz).reshape(4)),
            tuple(float(v) for v in np.asarray(camera.position).reshape(3)),
            float(camera.fov),
            float(camera.aspect),
        )

    def validate(self) -> None:
        values = (*self.wxyz, *self.position, self.fov, self.aspect)
        if not all(math.isfinite(v) for v in values):
            raise CameraError("browser camera has non-finite values")
        if not 0.0 < self.fov < math.pi or self.aspect <= 0.0 or np.linalg.norm(self.wxyz) < 1e-9:
            raise CameraError(f"browser camera has an unusable fov {self.fov} or aspect {self.aspect}")

    def camtoworld(self) -> np.ndarray:
        """Camera-to-world matrix [4, 4] (OpenCV axes)."""
        c2w = np.eye(4)
        c2w[:3, :3] = quat_to_matrix(self.wxyz)
        c2w[:3, 3] = self.position
        return c2w

    def to_cameras(self, width: int, name: str = "browser") -> Cameras:
        """One AdLift camera ``width`` pixels wide with the browser's aspect, pose and vertical fov."""
        self.validate()
        width = max(1, int(width))
        height = max(1, round(width / self.aspect))
        fy = 0.5 * height / math.tan(0.5 * self.fov)
        K = torch.tensor([[fy, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
        viewmat = torch.from_numpy(np.linalg.inv(self.camtoworld())).float()
        return Cameras(viewmat[None], K[None], width, height, [name])

    def key(self, scale: float = 1.0, step: float = 1e-3) -> tuple:
        """A hashable key equal for poses closer than ``step`` (positions in units of ``scale``)."""
        q = np.asarray(self.wxyz, dtype=np.float64)
        q = q / np.linalg.norm(q)
        q = -q if q[0] < 0 else q
        pos = np.asarray(self.position) / max(scale, 1e-12)
        return (
            tuple(int(round(v / step)) for v in q),
            tuple(int(round(v / step)) for v in pos),
            int(round(self.fov / step)),
            int(round(self.aspect / step)),
        )


def camera_pose(cameras: Cameras, index: int) -> BrowserCamera:
    """The browser camera that looks like view ``index`` of ``cameras`` (pose, vertical fov, aspect).

    The browser camera is a centred pinhole: a view with an off-centre principal point or
    non-square pixels is matched in pose and vertical field of view only.
    """
    c2w = torch.linalg.inv(cameras.viewmats[index].detach().to("cpu", torch.float64)).numpy()
    fov = float(cameras.fov_y[index])
    return BrowserCamera(
        tuple(float(v) for v in matrix_to_quat(c2w[:3, :3])),
        tuple(float(v) for v in c2w[:3, 3]),
        fov,
        cameras.width / cameras.height,
    )


def world_up(cameras: list[Cameras]) -> np.ndarray:
    """The world's up direction as the cameras see it: their mean -y axis, snapped to a world
    axis when within 15 degrees of one (bundled scenes: +z; COLMAP scenes: often -y)."""
    ups = [-torch.linalg.inv(c.viewmats.detach().to("cpu", torch.float64))[:, :3, 1] for c in cameras if len(c)]
    if not ups:
        return np.array([0.0, 0.0, 1.0])
    up = torch.cat(ups).mean(0).numpy()
    norm = np.linalg.norm(up)
    if norm < 1e-6:
        return np.array([0.0, 0.0, 1.0])
    up = up / norm
    axis = int(np.argmax(np.abs(up)))
    snapped = np.zeros(3)
    snapped[axis] = np.sign(up[axis])
    return snapped if float(up @ snapped) > math.cos(math.radians(15)) else up
