"""Cameras: pinhole cameras in the OpenCV convention, plus camera-rig generators.

Conventions (shared with gsplat, COLMAP and nerfstudio's rasterisers):

* ``viewmats`` [C, 4, 4] map world to camera coordinates; the camera looks along +z with
  x to the right and y down (OpenCV).
* ``Ks`` [C, 3, 3] are intrinsics in pixels; pixel (i, j) (column i, row j) is sampled at
  (i + 0.5, j + 0.5) in K's image coordinates, so a centred principal point is (W/2, H/2).
* All cameras of one ``Cameras`` share one ``width`` x ``height``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING, Sequence

import torch

from adlift.errors import CameraError

if TYPE_CHECKING:
    from adlift.scene import GaussianScene

#: Flip between OpenGL/Blender camera axes (x right, y up, z backward) and OpenCV ones.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def camera_centers(viewmats: torch.Tensor) -> torch.Tensor:
    """Camera centres [C, 3] in world coordinates from world-to-camera matrices [C, 4, 4]
    (``-R^T t``; in the matrices' dtype)."""
    rot = viewmats[:, :3, :3]
    return -(rot.transpose(1, 2) @ viewmats[:, :3, 3:])[..., 0]


@dataclasses.dataclass(eq=False)  # tensors have no truth value: compare with torch.testing, not ==
class Cameras:
    """A batch of C pinhole cameras sharing one image size (OpenCV axes, world-to-camera)."""

    viewmats: torch.Tensor  # [C, 4, 4] world-to-camera
    Ks: torch.Tensor  # [C, 3, 3] intrinsics in pixels
    width: int
    height: int
    names: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.viewmats, torch.Tensor) or self.viewmats.ndim != 3 or self.viewmats.shape[1:] != (4, 4):
            raise CameraError(f"Cameras.viewmats must have shape [C, 4, 4], got {_shape(self.viewmats)}")
        c = self.viewmats.shape[0]
        if not isinstance(self.Ks, torch.Tensor) or tuple(self.Ks.shape) != (c, 3, 3):
            raise CameraError(f"Cameras.Ks must have shape [C, 3, 3] with C={c}, got {_shape(self.Ks)}")
        if not (self.viewmats.is_floating_point() and self.Ks.is_floating_point()):
            raise CameraError("Cameras.viewmats and Cameras.Ks must be floating-point tensors")
        if self.Ks.device != self.viewmats.device:
            raise CameraError("Cameras.viewmats and Cameras.Ks must be on one device")
        try:
            size_ok = int(self.width) == self.width and int(self.height) == self.height
        except (TypeError, ValueError, OverflowError):
            size_ok = False
        if isinstance(self.width, bool) or isinstance(self.height, bool):
            size_ok = False
        if not size_ok or self.width <= 0 or self.height <= 0:
            raise CameraError(f"Cameras image size must be positive integers, got {self.width!r}x{self.height!r}")
        self.width, self.height = int(self.width), int(self.height)
        if not self.names:
            self.names = [f"view_{i:04d}" for i in range(c)]
        if len(self.names) != c:
            raise CameraError(f"Cameras.names has {len(self.names)} entries for {c} cameras")
        self.names = [str(n) for n in self.names]
        if not bool(torch.isfinite(self.viewmats).all() and torch.isfinite(self.Ks).all()):
            raise CameraError("Cameras contain NaN or infinite values")
        fx, fy = self.Ks[:, 0, 0], self.Ks[:, 1, 1]
        if not bool(((fx > 0) & (fy > 0)).all()):
            raise CameraError("Cameras focal lengths (Ks[:, 0, 0], Ks[:, 1, 1]) must be positive")
        rot = self.viewmats[:, :3, :3].to(torch.float64)
        eye = torch.eye(3, dtype=torch.float64, device=rot.device)
        if c and float((rot @ rot.transpose(1, 2) - eye).abs().max()) > 1e-3:
            raise CameraError("Cameras.viewmats rotations are not orthonormal (a scaled or sheared pose?)")
        if c and bool((torch.linalg.det(rot) <= 0).any()):
            raise CameraError(
                "Cameras.viewmats rotations are reflections (det < 0): a camera axis is flipped; "
                "check the OpenGL/OpenCV convention of the poses"
            )
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=self.viewmats.dtype, device=self.viewmats.device)
        if c and float((self.viewmats[:, 3] - bottom).abs().max()) > 1e-6:
            raise CameraError("Cameras.viewmats must have last row [0, 0, 0, 1]")
        last = torch.tensor([0.0, 0.0, 1.0], dtype=self.Ks.dtype, device=self.Ks.device)
        if c and float((self.Ks[:, 2] - last).abs().max()) > 1e-6:
            raise CameraError("Cameras.Ks must have last row [0, 0, 1]")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> "Cameras":
        """Select cameras by index, slice, index list or boolean mask; always returns a Cameras."""
        if isinstance(index, bool):
            raise CameraError("camera index must be an int, slice, index list or boolean mask, got a bool")
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise CameraError(f"camera index {index} out of range for {len(self)} cameras")
            index = [index % len(self)]
        if isinstance(index, slice):
            ids = list(range(len(self)))[index]
        else:
            try:
                t = torch.as_tensor(index)
            except (TypeError, ValueError, RuntimeError) as e:
                raise CameraError(f"invalid camera index {index!r}: {e}") from None
            if t.dtype == torch.bool:
                if t.ndim != 1 or t.shape[0] != len(self):
                    raise CameraError(f"boolean camera mask has shape {list(t.shape)}, expected [{len(self)}]")
                ids = t.nonzero().flatten().tolist()
            elif t.numel() == 0:
                ids = []
            elif t.is_floating_point() or t.is_complex():
                raise CameraError(f"camera indices must be integers, got dtype {t.dtype}")
            else:
                ids = t.flatten().tolist()
        for i in ids:
            if not -len(self) <= i < len(self):
                raise CameraError(f"camera index {i} out of range for {len(self)} cameras")
        ids = [i % len(self) for i in ids]
        sel = torch.as_tensor(ids, dtype=torch.long, device=self.viewmats.device)
        return Cameras(self.viewmats[sel], self.Ks[sel], self.width, self.height, [self.names[i] for i in ids])

    @property
    def device(self) -> torch.device:
        return self.viewmats.device

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Cameras":
        """Copy to ``device`` and/or ``dtype``."""
        return Cameras(
            self.viewmats.to(device=device, dtype=dtype),
            self.Ks.to(device=device, dtype=dtype),
            self.width,
            self.height,
            list(self.names),
        )

    @property
    def camtoworlds(self) -> torch.Tensor:
        """Camera-to-world matrices [C, 4, 4] (OpenCV axes)."""
        return torch.linalg.inv(self.viewmats)

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates [C, 3]."""
        return camera_centers(self.viewmats)

    @property
    def fov_x(self) -> torch.Tensor:
        """Horizontal field of view in radians [C]."""
        return 2 * torch.atan(self.width / (2 * self.Ks[:, 0, 0]))

    @property
    def fov_y(self) -> torch.Tensor:
        """Vertical field of view in radians [C]."""
        return 2 * torch.atan(self.height / (2 * self.Ks[:, 1, 1]))

    def resized(self, width: int | None = None, height: int | None = None) -> "Cameras":
        """The same cameras rendering at ``width`` x ``height`` (intrinsics scaled per axis).

        Giving only one of the two keeps the aspect ratio.
        """
        if width is None and height is None:
            return self
        if width is None:
            width = max(1, round(self.width * height / self.height))
        if height is None:
            height = max(1, round(self.height * width / self.width))
        if width <= 0 or height <= 0:
            raise CameraError(f"image size must be positive, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        Ks = self.Ks.clone()
        Ks[:, 0, :] *= sx
        Ks[:, 1, :] *= sy
        return Cameras(self.viewmats.clone(), Ks, width, height, list(self.names))

    @staticmethod
    def concat(cameras: Sequence["Cameras"]) -> "Cameras":
        """Concatenate camera batches of the same image size."""
        if not cameras:
            raise CameraError("Cameras.concat needs at least one Cameras")
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise CameraError(f"cannot concatenate cameras of different image sizes {sorted(sizes)}")
        return Cameras(
            torch.cat([c.viewmats for c in cameras]),
            torch.cat([c.Ks for c in cameras]),
            cameras[0].width,
            cameras[0].height,
            [n for c in cameras for n in c.names],
        )

    @classmethod
    def from_camtoworlds_opengl(
        cls, c2w: torch.Tensor, Ks: torch.Tensor, width: int, height: int, names: Sequence[str] = ()
    ) -> "Cameras":
        """Build from OpenGL/Blender camera-to-world matrices c2w [C, 4, 4] (or [C, 3, 4])."""
        return cls(opengl_c2w_to_viewmats(c2w), Ks, width, height, list(names))

    def to_camtoworlds_opengl(self) -> torch.Tensor:
        """OpenGL/Blender camera-to-world matrices [C, 4, 4] (inverse of the constructor above)."""
        flip = OPENGL_TO_OPENCV.to(self.viewmats)
        return self.camtoworlds @ flip


def _shape(x) -> str:
    return str(list(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _as_homogeneous(m: torch.Tensor) -> torch.Tensor:
    if m.ndim != 3 or m.shape[1:] not in ((3, 4), (4, 4)):
        raise CameraError(f"camera poses must have shape [C, 3, 4] or [C, 4, 4], got {list(m.shape)}")
    if m.shape[1] == 4:
        return m
    bottom = torch.zeros(m.shape[0], 1, 4, dtype=m.dtype, device=m.device)
    bottom[:, 0, 3] = 1.0
    return torch.cat([m, bottom], dim=1)


def opengl_c2w_to_viewmats(c2w: torch.Tensor) -> torch.Tensor:
    """OpenGL camera-to-world [C, 3|4, 4] -> OpenCV world-to-camera [C, 4, 4]."""
    c2w = _as_homogeneous(c2w)
    flip = OPENGL_TO_OPENCV.to(c2w)
    return torch.linalg.inv(c2w @ flip)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float, *, dtype=torch.float32) -> torch.Tensor:
    """A 3x3 pinhole intrinsics matrix."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def look_at_viewmats(
    eyes: torch.Tensor,  # [C, 3] camera centres
    target: torch.Tensor,  # [3] or [C, 3] point looked at
    up: Sequence[float] = (0.0, 0.0, 1.0),
) -> torch.Tensor:
    """World-to-camera matrices [C, 4, 4] (OpenCV) of cameras at ``eyes`` looking at ``target``.

    ``up`` is the world's up direction; the image's y axis (down) points against it.
    """
    eyes = eyes.to(torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64).expand_as(eyes)
    up_t = torch.as_tensor(up, dtype=torch.float64).expand_as(eyes)
    forward = target - eyes
    norm = forward.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-12).any()):
        raise CameraError("look_at: a camera sits exactly on its target")
    z = forward / norm
    x = torch.linalg.cross(z, up_t)  # right = forward x up
    xn = x.norm(dim=-1, keepdim=True)
    if bool((xn < 1e-9).any()):
        raise CameraError("look_at: viewing direction is parallel to the up vector; choose another up")
    x = x / xn
    y = torch.linalg.cross(z, x)
    rot = torch.stack([x, y, z], dim=1)  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=torch.float64).repeat(eyes.shape[0], 1, 1)
    view[:, :3, :3] = rot
    view[:, :3, 3] = -(rot @ eyes[..., None])[..., 0]
    return view


def orbit_cameras(
    num_views: int,
    center: Sequence[float] | torch.Tensor,
    radius: float,
    *,
    width: int = 256,
    height: int = 256,
    fov_deg: float = 45.0,
    elevation_deg: tuple[float, float] = (10.0, 30.0),
    azimuth_start_deg: float = 0.0,
    up: Sequence[float] = (0.0, 0.0, 1.0),
    name_prefix: str = "orbit",
) -> Cameras:
    """``num_views`` cameras on an orbit of ``radius`` around ``center``, all looking at it.

    Azimuths are evenly spaced over 360 degrees; elevations sweep ``elevation_deg`` (min, max)
    as a cosine over the orbit, so the rig sees the object from above and below its equator.
    The world's up axis is ``up`` (+z by default, as in the bundled scenes).
    """
    whole = isinstance(num_views, numbers.Integral) or (isinstance(num_views, float) and num_views.is_integer())
    if isinstance(num_views, bool) or not whole or num_views < 1:
        raise CameraError(f"an orbit needs a whole number of views >= 1, got {num_views!r}")
    num_views = int(num_views)
    if radius <= 0 or not math.isfinite(radius):
        raise CameraError(f"orbit radius must be positive and finite, got {radius}")
    if not 0.0 < fov_deg < 180.0:
        raise CameraError(f"orbit field of view must be in (0, 180) degrees, got {fov_deg}")
    lo, hi = elevation_deg
    if not -89.0 <= lo <= hi <= 89.0:
        raise CameraError(f"orbit elevation range must satisfy -89 <= min <= max <= 89, got {elevation_deg}")
    center_t = torch.as_tensor(center, dtype=torch.float64).reshape(3)
    up_t = torch.as_tensor(up, dtype=torch.float64)
    up_t = up_t / up_t.norm()
    # An orthonormal basis (a, b, up) of the world.
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(helper @ up_t)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    a = torch.linalg.cross(up_t, helper)
    a = a / a.norm()
    b = torch.linalg.cross(up_t, a)
    i = torch.arange(num_views, dtype=torch.float64)
    azimuth = math.radians(azimuth_start_deg) + 2 * math.pi * i / num_views
    phase = torch.cos(2 * math.pi * i / num_views * (2 if num_views > 2 else 1))
    elevation = torch.deg2rad((lo + hi) / 2 + (hi - lo) / 2 * phase)
    horizontal = torch.cos(elevation)[:, None] * (torch.cos(azimuth)[:, None] * a + torch.sin(azimuth)[:, None] * b)
    eyes = center_t + radius * (horizontal + torch.sin(elevation)[:, None] * up_t)
    viewmats = look_at_viewmats(eyes, center_t, up=up_t.tolist())
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = intrinsics_matrix(f, f * 1.0, width / 2, height / 2, dtype=torch.float64)
    names = [f"{name_prefix}_{k:04d}" for k in range(num_views)]
    return Cameras(viewmats.float(), K.expand(num_views, 3, 3).float().clone(), width, height, names)


def split_train_novel(cameras: Cameras, every: int = 8, offset: int = 0) -> tuple[Cameras, Cameras]:
    """Interleaved hold-out split: views ``offset, offset + every, ...`` are novel, the rest train."""
    if every < 2:
        raise CameraError(f"split_train_novel needs every >= 2, got {every}")
    novel = [i for i in range(len(cameras)) if i % every == offset % every]
    train = [i for i in range(len(cameras)) if i % every != offset % every]
    if not train:
        raise CameraError(f"split of {len(cameras)} cameras with every={every} leaves no training views")
    return cameras[train], cameras[novel]


def scene_extent(cameras: Cameras, scene: GaussianScene | None = None) -> float:
    """3DGS' spatial learning-rate scale: 1.1 x the largest camera-centre distance from their mean.

    With a single camera (zero spread) the scene's robust radius is used instead.
    """
    centers = cameras.centers.to(torch.float64)  # [C, 3]
    radius = float((centers - centers.mean(dim=0)).norm(dim=-1).max()) * 1.1 if len(cameras) else 0.0
    if radius <= 1e-8 and scene is not None and scene.num_gaussians:
        radius = scene.center_and_radius()[1]
    return radius if radius > 1e-8 else 1.0
