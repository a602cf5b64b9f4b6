"""Cameras: validation, indexing, resizing, look-at / orbit rigs and the train/novel split."""

from __future__ import annotations

import math

import pytest
import torch

from adlift import AdLiftError, CameraError
from adlift.cameras import (
    Cameras,
    intrinsics_matrix,
    look_at_viewmats,
    opengl_c2w_to_viewmats,
    orbit_cameras,
    split_train_novel,
)


def project(cams: Cameras, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [C, P, 2] and depths [C, P] of world points [P, 3] in every camera."""
    pts = points.to(torch.float64)
    view = cams.viewmats.to(torch.float64)
    cam = pts @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]
    K = cams.Ks.to(torch.float64)
    uv = cam[..., :2] / cam[..., 2:3]
    u = K[:, None, 0, 0] * uv[..., 0] + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * uv[..., 1] + K[:, None, 1, 2]
    return torch.stack([u, v], dim=-1), cam[..., 2]


def make(n: int = 5, width: int = 64, height: int = 48) -> Cameras:
    return orbit_cameras(n, (0.0, 0.0, 0.0), 3.0, width=width, height=height)


# ----------------------------------------------------------------------------- validation
def _valid():
    return torch.eye(4).repeat(2, 1, 1), intrinsics_matrix(50.0, 50.0, 32.0, 24.0).repeat(2, 1, 1)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda v, k: (v[:, :3], k, 64, 48), r"viewmats must have shape"),
        (lambda v, k: (v, k[:1], 64, 48), r"Ks must have shape"),
        (lambda v, k: (v.long(), k, 64, 48), r"floating-point"),
        (lambda v, k: (v, k, 0, 48), r"image size"),
        (lambda v, k: (v, k, 64.5, 48), r"image size"),
        (lambda v, k: (v, k, "64", 48), r"image size"),
        (lambda v, k: (v, k, float("nan"), 48), r"image size"),
        (lambda v, k: (v.index_put((torch.tensor([0]), torch.tensor([0]), torch.tensor([3])), torch.tensor(float("nan"))), k, 64, 48), r"NaN"),  # noqa: E501
        (lambda v, k: (v, k * torch.tensor([[-1.0, 1, 1], [1, 1, 1], [1, 1, 1]]), 64, 48), r"focal"),
        (lambda v, k: (v * torch.tensor([2.0, 1, 1, 1])[:, None], k, 64, 48), r"orthonormal"),
        # A mirrored camera (det -1) is orthonormal but not a rotation: a flipped axis.
        (lambda v, k: (v * torch.tensor([1.0, -1, 1, 1])[:, None], k, 64, 48), r"reflection"),
        (lambda v, k: (v + torch.tensor([0, 0, 0, 1.0])[:, None] * torch.tensor([0.5, 0, 0, 0]), k, 64, 48), r"last row \[0, 0, 0, 1\]"),  # noqa: E501
        (lambda v, k: (v, k + torch.tensor([[0, 0, 0], [0, 0, 0], [0, 0, 1.0]]), 64, 48), r"Ks must have last row"),
    ],
)
def test_cameras_validation_errors(mutate, match):
    v, k = _valid()
    with pytest.raises(CameraError, match=match):
        Cameras(*mutate(v, k))


def test_cameras_names_default_and_count():
    v, k = _valid()
    assert Cameras(v, k, 64, 48).names == ["view_0000", "view_0001"]
    with pytest.raises(CameraError, match="names has 1 entries for 2 cameras"):
        Cameras(v, k, 64, 48, ["a"])
    assert issubclass(CameraError, AdLiftError)


def test_cameras_equality_is_identity_not_an_error():
    a, b = make(), make()
    assert a == a and a != b  # dataclass eq on tensors used to raise "ambiguous truth value"
    assert a in [b, a]


# ----------------------------------------------------------------------------- indexing
def test_getitem_variants():
    cams = make(6)
    assert cams[2].names == ["orbit_0002"] and len(cams[2]) == 1
    assert cams[-1].names == ["orbit_0005"]
    assert cams[1:4].names == ["orbit_0001", "orbit_0002", "orbit_0003"]
    assert cams[::2].names == ["orbit_0000", "orbit_0002", "orbit_0004"]
    assert cams[[4, 0]].names == ["orbit_0004", "orbit_0000"]
    assert cams[[-1]].names == ["orbit_0005"]
    assert cams[torch.tensor([3, 1])].names == ["orbit_0003", "orbit_0001"]
    mask = torch.tensor([True, False, False, True, False, True])
    assert cams[mask].names == ["orbit_0000", "orbit_0003", "orbit_0005"]
    assert len(cams[[]]) == 0
    torch.testing.assert_close(cams[[4, 0]].viewmats, cams.viewmats[[4, 0]])
    torch.testing.assert_close(cams[[4, 0]].Ks, cams.Ks[[4, 0]])


@pytest.mark.parametrize(
    "index, match",
    [
        (6, "out of range"),
        (-7, "out of range"),
        ([0, 9], "out of range"),
        (torch.tensor([True, False]), "mask"),
        (torch.tensor([0.0, 1.0]), "integers"),
        (True, "bool"),
    ],
)
def test_getitem_errors(index, match):
    with pytest.raises(CameraError, match=match):
        make(6)[index]


# ----------------------------------------------------------------------------- resizing
def test_resized_keeps_centred_principal_point_and_scales_projections():
    cams = make(3, width=64, height=48)
    point = torch.tensor([[0.3, -0.2, 0.4]])
    uv, _ = project(cams, point)
    small = cams.resized(32, 36)
    assert (small.width, small.height) == (32, 36)
    torch.testing.assert_close(small.Ks[:, 0, 2], torch.full((3,), 16.0))
    torch.testing.assert_close(small.Ks[:, 1, 2], torch.full((3,), 18.0))
    uv_small, _ = project(small, point)
    torch.testing.assert_close(uv_small, uv * torch.tensor([32 / 64, 36 / 48], dtype=torch.float64))
    torch.testing.assert_close(small.viewmats, cams.viewmats)
    assert cams.width == 64 and float(cams.Ks[0, 0, 2]) == 32.0  # the original is untouched


def test_resized_one_side_keeps_aspect_and_errors():
    cams = make(2, width=64, height=48)
    assert (cams.resized(width=128).width, cams.resized(width=128).height) == (128, 96)
    assert (cams.resized(height=24).width, cams.resized(height=24).height) == (32, 24)
    assert cams.resized() is cams
    with pytest.raises(CameraError, match="positive"):
        cams.resized(0, 10)


# ----------------------------------------------------------------------------- look-at
def test_look_at_axes_opencv():
    # Camera on -y looking at the origin, +z up: right is +x, image down is -z.
    view = look_at_viewmats(torch.tensor([[0.0, -5.0, 0.0]]), torch.zeros(3))[0]
    torch.testing.assert_close(view[:3, :3] @ torch.zeros(3, dtype=torch.float64) + view[:3, 3], torch.tensor([0.0, 0, 5], dtype=torch.float64))
    rot = view[:3, :3]
    torch.testing.assert_close(rot[0], torch.tensor([1.0, 0, 0], dtype=torch.float64))  # x right
    torch.testing.assert_close(rot[1], torch.tensor([0.0, 0, -1], dtype=torch.float64))  # y down = -up
    torch.testing.assert_close(rot[2], torch.tensor([0.0, 1, 0], dtype=torch.float64))  # z forward
    assert float(torch.linalg.det(rot)) == pytest.approx(1.0)


def test_look_at_errors():
    with pytest.raises(CameraError, match="sits exactly on its target"):
        look_at_viewmats(torch.zeros(1, 3), torch.zeros(3))
    with pytest.raises(CameraError, match="parallel to the up vector"):
        look_at_viewmats(torch.tensor([[0.0, 0.0, 5.0]]), torch.zeros(3))


def test_opengl_round_trip():
    cams = make(4)
    c2w_gl = cams.to_camtoworlds_opengl()
    # OpenGL cameras look down their -z: the column -z of c2w points from the camera to the centre.
    forward = -c2w_gl[:, :3, 2]
    to_centre = -cams.centers / cams.centers.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(forward, to_centre, atol=1e-5, rtol=0)
    back = Cameras.from_camtoworlds_opengl(c2w_gl, cams.Ks, cams.width, cams.height)
    torch.testing.assert_close(back.viewmats, cams.viewmats, atol=1e-5, rtol=0)
    torch.testing.assert_close(opengl_c2w_to_viewmats(c2w_gl[:, :3]), back.viewmats)


# ----------------------------------------------------------------------------- orbit
@pytest.mark.parametrize("size", [(64, 64), (80, 40)])
def test_orbit_looks_at_centre(size):
    centre = torch.tensor([0.5, -1.0, 2.0])
    cams = orbit_cameras(12, centre, 4.0, width=size[0], height=size[1], elevation_deg=(-20.0, 50.0))
    uv, depth = project(cams, centre[None])
    torch.testing.assert_close(uv[:, 0], torch.tensor([size[0] / 2, size[1] / 2], dtype=torch.float64).expand(12, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(depth[:, 0], torch.full((12,), 4.0, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close((cams.centers - centre).norm(dim=-1), torch.full((12,), 4.0), atol=1e-4, rtol=0)
    # Square pixels: fx == fy, and fov=45 horizontally.
    torch.testing.assert_close(cams.Ks[:, 0, 0], cams.Ks[:, 1, 1])
    torch.testing.assert_close(cams.fov_x, torch.full((12,), math.radians(45.0)))


def test_orbit_y_axis_points_against_up():
    cams = orbit_cameras(8, (0, 0, 0), 3.0, elevation_deg=(-30.0, 30.0))
    y_axes = cams.viewmats[:, 1, :3]  # camera y axis in world coordinates
    assert bool((y_axes[:, 2] < -0.5).all())
    # A point above the centre appears above the image centre (smaller row).
    uv, _ = project(cams, torch.tensor([[0.0, 0.0, 0.5]]))
    assert bool((uv[:, 0, 1] < cams.height / 2).all())
    # Other up axis: +y up.
    cams_y = orbit_cameras(8, (0, 0, 0), 3.0, up=(0.0, 1.0, 0.0))
    assert bool((cams_y.viewmats[:, 1, 1] < -0.5).all())


@pytest.mark.parametrize("elev", [(-10.0, 40.0), (20.0, 20.0), (-60.0, -5.0)])
def test_orbit_elevation_range(elev):
    cams = orbit_cameras(16, (1.0, 2.0, 3.0), 2.0, elevation_deg=elev)
    rel = cams.centers.to(torch.float64) - torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    elevation = torch.rad2deg(torch.asin(rel[:, 2] / rel.norm(dim=-1)))
    assert float(elevation.min()) == pytest.approx(elev[0], abs=1e-3)
    assert float(elevation.max()) == pytest.approx(elev[1], abs=1e-3)
    azimuth = torch.atan2(rel[:, 1], rel[:, 0])
    steps = torch.remainder(azimuth.diff(), 2 * math.pi)
    torch.testing.assert_close(steps, torch.full_like(steps, 2 * math.pi / 16), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_views=0), "number of views"),
        (dict(num_views=2.5), "number of views"),
        (dict(num_views=float("nan")), "number of views"),
        (dict(radius=0.0), "radius"),
        (dict(radius=float("nan")), "radius"),
        (dict(fov_deg=180.0), "field of view"),
        (dict(elevation_deg=(30.0, 10.0)), "elevation"),
        (dict(elevation_deg=(0.0, 90.0)), "elevation"),
    ],
)
def test_orbit_errors(kwargs, match):
    args = dict(num_views=4, center=(0, 0, 0), radius=2.0) | kwargs
    with pytest.raises(CameraError, match=match):
        orbit_cameras(**args)


# ----------------------------------------------------------------------------- split
def test_split_train_novel_interleaves():
    cams = make(17)
    train, novel = split_train_novel(cams, every=8)
    assert novel.names == ["orbit_0000", "orbit_0008", "orbit_0016"]
    assert train.names == [f"orbit_{i:04d}" for i in range(17) if i % 8]
    train, novel = split_train_novel(cams, every=4, offset=1)
    assert novel.names == ["orbit_0001", "orbit_0005", "orbit_0009", "orbit_0013"]
    assert len(train) + len(novel) == 17 and not set(train.names) & set(novel.names)
    torch.testing.assert_close(novel.viewmats, cams.viewmats[[1, 5, 9, 13]])


def test_split_train_novel_errors():
    with pytest.raises(CameraError, match="every >= 2"):
        split_train_novel(make(4), every=1)
    with pytest.raises(CameraError, match="no training views"):
        split_train_novel(make(1), every=8)


def test_concat_to_and_centres():
    a, b = make(2), make(3, width=64, height=48)
    both = Cameras.concat([a, b])
    assert len(both) == 5 and both.names == a.names + b.names
    with pytest.raises(CameraError, match="different image sizes"):
        Cameras.concat([a, make(1, width=32, height=32)])
    d = a.to(dtype=torch.float64)
    assert d.viewmats.dtype == torch.float64 and d.names == a.names
    torch.testing.assert_close(a.centers, a.camtoworlds[:, :3, 3])
