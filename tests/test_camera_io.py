"""Camera files and specs: transforms.json, COLMAP (text / binary), 3DGS cameras.json, orbit specs."""

from __future__ import annotations

import json
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from adlift import AdLiftError, CameraError, FileFormatError
from adlift.cameras import Cameras, orbit_cameras
from adlift.io import load_cameras, write_colmap_binary, write_colmap_text, write_gs_cameras_json, write_transforms
from adlift.io.cameras import detect_camera_format, parse_camera_spec
from adlift.io.colmap import read_colmap
from adlift.rotations import matrix_to_quat, quat_to_matrix
from adlift.io.gs_cameras import read_gs_cameras_json
from adlift.io.nerfstudio import apply_dataparser_transform, read_transforms
from adlift.scene import GaussianScene
from tests.helpers import random_scene


def project(cams: Cameras, points) -> torch.Tensor:
    """Pixel coordinates [C, P, 2] of world points [P, 3]."""
    pts = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 3)
    view = cams.viewmats.to(torch.float64)
    cam = pts @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]
    homog = cam @ cams.Ks.to(torch.float64).transpose(1, 2)
    return homog[..., :2] / homog[..., 2:3]


def rig(n: int = 10, *, varied_intrinsics: bool = False, width: int = 64, height: int = 48) -> Cameras:
    cams = orbit_cameras(n, (0.3, -0.2, 0.5), 3.5, width=width, height=height, elevation_deg=(-20.0, 45.0))
    if varied_intrinsics:
        Ks = cams.Ks.clone()
        Ks[:, 0, 0] += torch.arange(n) * 1.5
        Ks[:, 1, 1] += torch.arange(n) * 2.25
        Ks[:, 0, 2] += torch.linspace(-3, 3, n)
        Ks[:, 1, 2] -= torch.linspace(-2, 2, n)
        cams = Cameras(cams.viewmats, Ks, width, height, cams.names)
    return cams


def assert_same(a: Cameras, b: Cameras) -> None:
    assert (a.width, a.height) == (b.width, b.height)
    assert a.names == b.names
    torch.testing.assert_close(a.viewmats.double(), b.viewmats.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(a.Ks.double(), b.Ks.double(), atol=1e-5, rtol=0)


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def transforms_doc(**top) -> dict:
    """A minimal valid transforms.json: two frames, cameras on +z / -z looking at the origin."""
    doc = {"w": 40, "h": 30, "fl_x": 50.0, "fl_y": 50.0, "cx": 20.0, "cy": 15.0}
    back = [[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, -5], [0, 0, 0, 1]]  # rotated 180 degrees about y
    doc["frames"] = [
        {"file_path": "images/a.png", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]},
        {"file_path": "images/b.png", "transform_matrix": back},
    ]
    doc.update(top)
    return doc


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("varied", [False, True])
def test_transforms_round_trip(tmp_path, varied):
    cams = rig(varied_intrinsics=varied)
    write_transforms(tmp_path / "transforms.json", cams)
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert ("fl_x" in doc["frames"][0]) == varied  # per-frame intrinsics only when they differ
    assert_same(load_cameras(tmp_path / "transforms.json"), cams)
    assert_same(load_cameras(str(tmp_path)), cams)  # a directory holding transforms.json


@pytest.mark.parametrize("writer", [write_colmap_text, write_colmap_binary])
@pytest.mark.parametrize("varied", [False, True])
def test_colmap_round_trip(tmp_path, writer, varied):
    cams = rig(varied_intrinsics=varied)
    writer(tmp_path / "sparse" / "0", cams)
    files = sorted(p.name for p in (tmp_path / "sparse" / "0").iterdir())
    ext = "txt" if writer is write_colmap_text else "bin"
    assert files == [f"cameras.{ext}", f"images.{ext}", f"points3D.{ext}"]  # atomic writes left no temp files
    for path in (tmp_path / "sparse" / "0", tmp_path / "sparse", tmp_path, tmp_path / "sparse" / "0" / f"images.{ext}"):
        assert_same(load_cameras(path), cams)


def test_gs_cameras_json_round_trip(tmp_path):
    cams = rig()
    write_gs_cameras_json(tmp_path / "cameras.json", cams)
    assert_same(load_cameras(tmp_path / "cameras.json"), cams)
    assert_same(load_cameras(tmp_path), cams)
    # Off-centre principal points cannot be stored: warned about, read back centred.
    with pytest.warns(UserWarning, match="principal point"):
        write_gs_cameras_json(tmp_path / "off.json", rig(varied_intrinsics=True))
    back = load_cameras(tmp_path / "off.json")
    torch.testing.assert_close(back.Ks[:, :2, 2], torch.tensor([32.0, 24.0]).expand(10, 2))


def test_gs_cameras_json_sorted_by_name(tmp_path):
    cams = rig(4)
    write_gs_cameras_json(tmp_path / "cameras.json", cams[[2, 0, 3, 1]])  # 3DGS writes test views first
    assert_same(load_cameras(tmp_path / "cameras.json"), cams)


def test_cross_format_consistency(tmp_path):
    cams = rig(9)
    write_transforms(tmp_path / "ns" / "transforms.json", cams)
    write_colmap_text(tmp_path / "txt", cams)
    write_colmap_binary(tmp_path / "bin", cams)
    write_gs_cameras_json(tmp_path / "gs" / "cameras.json", cams)
    loaded = [load_cameras(tmp_path / d) for d in ("ns", "txt", "bin", "gs")]
    for other in loaded[1:]:
        assert_same(other, loaded[0])
    assert_same(loaded[0], cams)
    point = torch.tensor([[0.1, 0.2, 0.3]])
    for other in loaded:
        torch.testing.assert_close(project(other, point), project(cams, point), atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- conventions
def test_transforms_opengl_to_opencv_flip(tmp_path):
    """Written by hand: an OpenGL camera at (0, 0, 5) with identity rotation looks down -z at the origin."""
    doc = {
        "camera_model": "PINHOLE", "w": 200, "h": 100, "fl_x": 100.0, "fl_y": 100.0, "cx": 100.0, "cy": 50.0,
        "frames": [{"file_path": "./images/frame_00001.jpg",
                    "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5], [0, 0, 0, 1]]}],
    }  # fmt: skip
    cams = load_cameras(write_json(tmp_path / "transforms.json", doc))
    assert cams.names == ["frame_00001"] and (cams.width, cams.height) == (200, 100)
    uv = project(cams, [[0, 0, 0], [0, 1, 0], [1, 0, 0]])[0]
    torch.testing.assert_close(uv[0], torch.tensor([100.0, 50.0], dtype=torch.float64))  # principal point
    assert uv[1, 1] < 50.0 and uv[1, 0] == pytest.approx(100.0)  # world +y is up in the image
    assert uv[2, 0] > 100.0  # world +x is to the right
    torch.testing.assert_close(cams.centers[0], torch.tensor([0.0, 0.0, 5.0]))
    # In front of the camera: positive OpenCV depth.
    assert float((cams.viewmats[0, :3, :3] @ torch.zeros(3) + cams.viewmats[0, :3, 3])[2]) == pytest.approx(5.0)


def test_colmap_convention_hand_written(tmp_path):
    """COLMAP poses are OpenCV world-to-camera: identity qvec with tvec (0, 0, 5) sits at (0, 0, -5)."""
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("# comment\n1 SIMPLE_PINHOLE 200 100 100 100 50\n")
    q = Rotation.from_euler("z", 90, degrees=True).as_quat()  # (x, y, z, w)
    (model / "images.txt").write_text(
        "# Image list\n"
        "1 1 0 0 0 0 0 5 1 b.jpg\n"
        "10.5 20.5 3 11.0 12.0 -1\n"  # a real 2D-point line is skipped
        f"2 {q[3]} {q[0]} {q[1]} {q[2]} 0 0 5 1 a b.jpg\n"
        "\n"
    )
    cams = load_cameras(tmp_path)
    assert cams.names == ["a b", "b"]  # sorted by image name; names may hold spaces
    uv = project(cams, [[0, 0, 0], [0, 1, 0]])
    torch.testing.assert_close(uv[:, 0], torch.tensor([[100.0, 50.0]] * 2, dtype=torch.float64))
    assert uv[1, 1, 1] > 50.0  # identity pose: world +y is image-down (OpenCV)
    torch.testing.assert_close(cams.centers[1], torch.tensor([0.0, 0.0, -5.0]))
    torch.testing.assert_close(cams.viewmats[0, :3, :3].double(), torch.as_tensor(Rotation.from_quat(q).as_matrix()), atol=1e-6, rtol=0)


def test_quaternion_helpers_match_scipy():
    rots = Rotation.random(64, random_state=0)
    # Include rotations by ~180 degrees about each axis: the other branches of the conversion.
    extra = Rotation.from_rotvec(np.eye(3) * math.pi * 0.999)
    for r in list(rots) + list(extra):
        x, y, z, w = r.as_quat()
        np.testing.assert_allclose(quat_to_matrix(np.array([w, x, y, z])), r.as_matrix(), atol=1e-12)
        q = matrix_to_quat(r.as_matrix())
        assert q[0] >= 0
        np.testing.assert_allclose(quat_to_matrix(q), r.as_matrix(), atol=1e-10)


def test_gs_cameras_json_convention(tmp_path):
    """3DGS stores rotation = camera-to-world rotation (transpose of COLMAP's R) and the centre."""
    r_w2c = Rotation.from_euler("xyz", [10, -30, 70], degrees=True).as_matrix()
    t = np.array([0.2, -0.1, 4.0])
    entry = {"id": 0, "img_name": "IMG_1", "width": 80, "height": 60, "position": (-r_w2c.T @ t).tolist(),
             "rotation": r_w2c.T.tolist(), "fx": 70.0, "fy": 72.0}  # fmt: skip
    cams = read_gs_cameras_json(write_json(tmp_path / "cameras.json", [entry]))
    torch.testing.assert_close(cams.viewmats[0, :3, :3].double(), torch.as_tensor(r_w2c), atol=1e-6, rtol=0)
    torch.testing.assert_close(cams.viewmats[0, :3, 3].double(), torch.as_tensor(t), atol=1e-6, rtol=0)
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[70.0, 0, 40], [0, 72, 30], [0, 0, 1]]))


# ----------------------------------------------------------------------------- transforms.json details
def test_transforms_per_frame_intrinsics(tmp_path):
    doc = transforms_doc()
    for key in ("fl_x", "fl_y", "cx", "cy"):
        del doc[key]
    doc["frames"][0].update(fl_x=40.0, fl_y=41.0, cx=19.0, cy=14.0)
    doc["frames"][1].update(fl_x=60.0)  # fl_y defaults to fl_x, principal point to the centre
    cams = read_transforms(write_json(tmp_path / "t.json", doc))
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[40.0, 0, 19], [0, 41, 14], [0, 0, 1]]))
    torch.testing.assert_close(cams.Ks[1], torch.tensor([[60.0, 0, 20], [0, 60, 15], [0, 0, 1]]))
    # As in nerfstudio, a top-level intrinsic applies to every frame and wins.
    doc["fl_x"] = 55.0
    cams = read_transforms(write_json(tmp_path / "t.json", doc))
    assert cams.Ks[:, 0, 0].tolist() == [55.0, 55.0]


def test_transforms_per_frame_sizes(tmp_path):
    doc = transforms_doc()
    del doc["w"], doc["h"]
    doc["frames"][0].update(w=40, h=30)
    doc["frames"][1].update(w=40, h=30)
    assert (load_cameras(write_json(tmp_path / "ok.json", doc)).width) == 40
    doc["frames"][1].update(w=80)
    path = write_json(tmp_path / "mixed.json", doc)
    with pytest.raises(FileFormatError, match="different image sizes") as info:
        load_cameras(path)
    assert str(path) in str(info.value)


def test_transforms_camera_angle_x(tmp_path):
    doc = transforms_doc(camera_angle_x=2 * math.atan(0.5))  # fl_x = w / 2 / tan(angle / 2) = w
    del doc["fl_x"], doc["fl_y"]
    cams = read_transforms(write_json(tmp_path / "t.json", doc))
    assert cams.Ks[0, 0, 0].item() == pytest.approx(40.0) and cams.Ks[0, 1, 1].item() == pytest.approx(40.0)


def test_transforms_distortion_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"distortion \(k1, p2\) is ignored"):
        load_cameras(write_json(tmp_path / "t.json", transforms_doc(camera_model="OPENCV", k1=0.1, k2=0.0, p2=1e-3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cameras(write_json(tmp_path / "z.json", transforms_doc(camera_model="OPENCV", k1=0.0, p1=0.0)))


@pytest.mark.parametrize("model", ["OPENCV_FISHEYE", "EQUIRECTANGULAR", "FOO"])
def test_transforms_unsupported_camera_model(tmp_path, model):
    path = write_json(tmp_path / "transforms.json", transforms_doc(camera_model=model))
    with pytest.raises(CameraError, match=f"{model}.*supported: SIMPLE_PINHOLE, PINHOLE") as info:
        load_cameras(path)
    assert str(path) in str(info.value)


def test_transforms_splits(tmp_path):
    cams = rig(6)
    write_transforms(tmp_path / "transforms.json", cams, {"train": cams.names[:4], "novel": cams.names[4:]})
    assert load_cameras(tmp_path, split="train").names == cams.names[:4]
    assert load_cameras(tmp_path, split="novel").names == cams.names[4:]
    assert load_cameras(tmp_path, split="all").names == cams.names
    doc = json.loads((tmp_path / "transforms.json").read_text())
    # val_filenames stand in for a missing test list; paths are compared normalised.
    del doc["test_filenames"]
    doc["val_filenames"] = ["./images/orbit_0001.png"]
    write_json(tmp_path / "val" / "transforms.json", doc)
    assert load_cameras(tmp_path / "val", split="novel").names == ["orbit_0001"]
    # Only a train list: novel views are the rest.
    del doc["val_filenames"]
    write_json(tmp_path / "train_only" / "transforms.json", doc)
    assert load_cameras(tmp_path / "train_only", split="novel").names == cams.names[4:]


def test_default_split_every_eighth(tmp_path):
    cams = rig(17)
    write_transforms(tmp_path / "transforms.json", cams)
    assert load_cameras(tmp_path, split="novel").names == ["orbit_0000", "orbit_0008", "orbit_0016"]
    assert len(load_cameras(tmp_path, split="train")) == 14
    write_colmap_binary(tmp_path / "colmap", cams)
    assert load_cameras(tmp_path / "colmap", split="novel").names == ["orbit_0000", "orbit_0008", "orbit_0016"]


def test_split_errors(tmp_path):
    cams = rig(3)
    write_transforms(tmp_path / "transforms.json", cams, {"train": cams.names, "novel": []})
    with pytest.raises(CameraError, match="novel split is empty"):
        load_cameras(tmp_path, split="novel")
    with pytest.raises(CameraError, match="unknown camera split 'test'"):
        load_cameras(tmp_path, split="test")
    write_json(tmp_path / "bad.json", transforms_doc(test_filenames=["images/zzz.png"]))
    with pytest.raises(FileFormatError, match="test_filenames' lists 'images/zzz.png'"):
        load_cameras(tmp_path / "bad.json", split="train")


def test_size_override(tmp_path):
    cams = rig(3)
    write_transforms(tmp_path / "transforms.json", cams)
    small = load_cameras(tmp_path, width=32)
    assert (small.width, small.height) == (32, 24)
    torch.testing.assert_close(small.Ks[:, :2, 2], torch.tensor([16.0, 12.0]).expand(3, 2))
    assert (load_cameras(tmp_path, width=10, height=20).height) == 20
    with pytest.raises(CameraError, match="width must be a positive integer"):
        load_cameras(tmp_path, width=0)


def test_apply_dataparser_transform(tmp_path):
    cams = rig(4)
    rot = Rotation.from_euler("xyz", [20, 5, -40], degrees=True).as_matrix()
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, [0.5, -1.0, 2.0]
    applied = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0.0]])
    write_json(tmp_path / "dataparser_transforms.json", {"transform": m[:3].tolist(), "scale": 0.25})
    write_json(tmp_path / "transforms.json", transforms_doc(applied_transform=applied.tolist()))
    # nerfstudio's transform maps *original* coordinates; the saved poses are already `applied`.
    moved = apply_dataparser_transform(cams, tmp_path / "dataparser_transforms.json", transforms=tmp_path)
    x = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    a4 = np.vstack([applied, [0, 0, 0, 1]])
    full = torch.as_tensor(m @ np.linalg.inv(a4))
    x_new = 0.25 * (full[:3, :3] @ x + full[:3, 3])
    torch.testing.assert_close(project(moved, x_new), project(cams, x), atol=1e-3, rtol=0)
    assert not torch.allclose(moved.viewmats, cams.viewmats, atol=1e-3)
    # Without the transforms file no applied_transform is undone.
    plain = apply_dataparser_transform(cams, tmp_path / "dataparser_transforms.json")
    x_plain = 0.25 * (torch.as_tensor(rot) @ x + torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(project(plain, x_plain), project(cams, x), atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- COLMAP details
def test_colmap_prefers_binary_and_models(tmp_path):
    write_colmap_text(tmp_path, rig(3))
    write_colmap_binary(tmp_path, rig(5))
    assert len(load_cameras(tmp_path)) == 5  # as COLMAP, the binary model wins
    assert len(load_cameras(tmp_path / "cameras.txt")) == 5  # the directory's model is read


def test_colmap_camera_models(tmp_path):
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 4 1 a.png\n\n2 1 0 0 0 0 0 4 2 b.png\n\n")
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 64 48 50 51 30 20\n2 OPENCV 64 48 60 61 32 24 0 0 0 0\n")
    cams = load_cameras(tmp_path)
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[50.0, 0, 30], [0, 51, 20], [0, 0, 1]]))
    torch.testing.assert_close(cams.Ks[1], torch.tensor([[60.0, 0, 32], [0, 61, 24], [0, 0, 1]]))
    (tmp_path / "cameras.txt").write_text("1 SIMPLE_RADIAL 64 48 50 30 20 0.01\n2 RADIAL 64 48 55 32 24 0 0\n")
    with pytest.warns(UserWarning, match=r"distortion \(camera 1 \(SIMPLE_RADIAL\)\) is ignored"):
        cams = load_cameras(tmp_path)
    torch.testing.assert_close(cams.Ks[1], torch.tensor([[55.0, 0, 32], [0, 55, 24], [0, 0, 1]]))
    (tmp_path / "cameras.txt").write_text("1 OPENCV_FISHEYE 64 48 50 50 30 20 0 0 0 0\n2 PINHOLE 64 48 50 51 30 20\n")
    with pytest.raises(CameraError, match="OPENCV_FISHEYE model; supported: SIMPLE_PINHOLE"):
        load_cameras(tmp_path)


def _binary_model(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    write_colmap_binary(model, rig(3))
    return model


def test_colmap_binary_layout(tmp_path):
    """Bytes as COLMAP's read_images_binary expects: the header, NUL-ended name, 2D point count."""
    model = _binary_model(tmp_path)
    data = (model / "images.bin").read_bytes()
    assert struct.unpack_from("<Q", data)[0] == 3
    image_id, *pose, cam_id = struct.unpack_from("<i7di", data, 8)
    assert image_id == 1 and cam_id == 1
    end = data.index(b"\x00", 8 + 64)
    assert data[8 + 64 : end] == b"orbit_0000.png"
    assert struct.unpack_from("<Q", data, end + 1)[0] == 0
    cam = (model / "cameras.bin").read_bytes()
    assert struct.unpack_from("<QiiQQ", cam) == (1, 1, 1, 64, 48)  # one shared PINHOLE camera (model id 1)
    assert len(cam) == 8 + 24 + 4 * 8


def test_colmap_binary_skips_2d_points(tmp_path):
    model = _binary_model(tmp_path)
    data = bytearray((model / "images.bin").read_bytes())
    end = data.index(b"\x00", 8 + 64)
    points = struct.pack("<Q", 2) + struct.pack("<ddqddq", 1.0, 2.0, 7, 3.0, 4.0, -1)
    data[end + 1 : end + 9] = points
    (model / "images.bin").write_bytes(bytes(data))
    assert_same(load_cameras(model), rig(3))


# ----------------------------------------------------------------------------- bad inputs
def _bad_transforms(tmp_path: Path, change) -> Path:
    doc = transforms_doc()
    change(doc)
    return write_json(tmp_path / "transforms.json", doc)


def _raw(tmp_path: Path, text: str, name: str = "transforms.json") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _truncated(tmp_path: Path, name: str, keep: int) -> Path:
    model = _binary_model(tmp_path)
    data = (model / name).read_bytes()
    (model / name).write_bytes(data[: len(data) - keep] if keep > 0 else data[:-keep or None])
    return model


def _gs(tmp_path: Path, extra: dict | None = None, **changes) -> Path:
    """A one-camera 3DGS cameras.json with ``changes``; ``extra`` adds a second camera."""
    entry = {"id": 0, "img_name": "a", "width": 4, "height": 4, "position": [0, 0, 0],
             "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "fx": 1, "fy": 1}  # fmt: skip
    entries = [entry | changes] + ([entry | extra] if extra else [])
    return write_json(tmp_path / "cameras.json", entries)


def _colmap_text(tmp_path: Path, cameras: str, images: str) -> Path:
    (tmp_path / "cameras.txt").write_text(cameras)
    (tmp_path / "images.txt").write_text(images)
    return tmp_path


BAD_FILES = {
    "missing file": (lambda p: p / "nope.json", "no such file"),
    "invalid json": (lambda p: _raw(p, '{"frames": [}'), "invalid JSON"),
    "json scalar": (lambda p: _raw(p, "3"), "neither a nerfstudio transforms.json"),
    "no frames key": (lambda p: _raw(p, '{"w": 3}', "t/transforms.json").parent, "missing key 'frames'"),
    "zero frames": (lambda p: _bad_transforms(p, lambda d: d.update(frames=[])), "zero frames"),
    "frames not list": (lambda p: _bad_transforms(p, lambda d: d.update(frames={})), "'frames' must be a list"),
    "missing matrix": (lambda p: _bad_transforms(p, lambda d: d["frames"][1].pop("transform_matrix")), r"frames\[1\] \(images/b.png\) is missing 'transform_matrix'"),  # noqa: E501
    "3x3 matrix": (lambda p: _bad_transforms(p, lambda d: d["frames"][0].update(transform_matrix=[[1, 0, 0]] * 3)), "must be a 4x4"),  # noqa: E501
    "ragged matrix": (lambda p: _bad_transforms(p, lambda d: d["frames"][0]["transform_matrix"][2].pop()), "must be a 4x4"),
    "nan in matrix": (lambda p: _raw(p, json.dumps(transforms_doc()).replace("5]", "NaN]", 1)), "finite number, got nan"),
    "string in matrix": (lambda p: _bad_transforms(p, lambda d: d["frames"][0]["transform_matrix"][0].__setitem__(0, "1")), "finite number, got '1'"),  # noqa: E501
    "scaled matrix": (lambda p: _bad_transforms(p, lambda d: d["frames"][0]["transform_matrix"][0].__setitem__(0, 2)), "not orthonormal"),  # noqa: E501
    "bad bottom row": (lambda p: _bad_transforms(p, lambda d: d["frames"][0]["transform_matrix"][3].__setitem__(0, 1)), r"last row \[0, 0, 0, 1\]"),  # noqa: E501
    "no focal": (lambda p: _bad_transforms(p, lambda d: (d.pop("fl_x"), d.pop("fl_y"))), "no focal length"),
    "no size": (lambda p: _bad_transforms(p, lambda d: d.pop("h")), "no image size"),
    "zero width": (lambda p: _bad_transforms(p, lambda d: d.update(w=0)), "positive integer"),
    "negative focal": (lambda p: _bad_transforms(p, lambda d: d.update(fl_x=-3.0)), "focal lengths must be positive"),
    "no file_path": (lambda p: _bad_transforms(p, lambda d: d["frames"][0].pop("file_path")), "no 'file_path'"),
    "gs empty list": (lambda p: _raw(p, "[]", "cameras.json"), "zero cameras"),
    "gs missing keys": (lambda p: _raw(p, '[{"img_name": "a", "width": 4}]', "cameras.json"), "missing key.*height, position, rotation, fx, fy"),  # noqa: E501
    "gs bad rotation": (lambda p: _gs(p, rotation=[[1, 0, 0], [0, 1, 0], [0, 0, -1]]), "not a rotation matrix"),
    "gs short position": (lambda p: _gs(p, position=[0, 0]), "position must be a list of 3"),
    "gs nan focal": (lambda p: _gs(p, fx=float("nan")), "fx must be a finite number"),
    "gs mixed sizes": (lambda p: _gs(p, width=4, extra={"img_name": "b", "width": 5}), "different image sizes"),
    "empty directory": (lambda p: p, "no camera file found"),
    "unknown extension": (lambda p: _raw(p, "hello", "cams.yaml"), "unrecognised camera file"),
    "truncated cameras.bin": (lambda p: _truncated(p, "cameras.bin", 5), "truncated: the 4 parameters of camera 1"),
    "truncated images.bin": (lambda p: _truncated(p, "images.bin", 4), "truncated"),
    "images.bin cut in name": (lambda p: _truncated(p, "images.bin", 12), "no terminating NUL"),
    "empty cameras.bin": (lambda p: _truncated(p, "cameras.bin", 10**6), "truncated: the camera count"),
    "unknown model id": (lambda p: (lambda m: ((m / "cameras.bin").write_bytes(struct.pack("<QiiQQ", 1, 1, 42, 8, 8)), m)[1])(_binary_model(p)), "unknown camera model id 42"),  # noqa: E501
    "missing images file": (lambda p: (lambda m: ((m / "images.bin").unlink(), m)[1])(_binary_model(p)), "images.bin is missing beside it"),  # noqa: E501
    "colmap bad number": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 four 4\n", "1 1 0 0 0 0 0 1 1 a.png\n\n"), "line 1: a camera parameter must be float, got 'four'"),  # noqa: E501
    "colmap wrong param count": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4\n", "1 1 0 0 0 0 0 1 1 a.png\n\n"), "PINHOLE takes 4 parameters, got 3"),  # noqa: E501
    "colmap unknown model": (lambda p: _colmap_text(p, "1 WEIRD 8 8 4 4 4\n", "1 1 0 0 0 0 0 1 1 a.png\n\n"), "WEIRD model; supported"),  # noqa: E501
    "colmap missing camera": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4 4\n", "1 1 0 0 0 0 0 1 7 a.png\n\n"), "refers to camera 7"),  # noqa: E501
    "colmap zero images": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4 4\n", "# none\n"), "zero registered images"),
    "colmap short image line": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4 4\n", "1 1 0 0 0 0 0 1\n\n"), "line 1: expected 'IMAGE_ID"),  # noqa: E501
    "colmap zero quaternion": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4 4\n", "1 0 0 0 0 0 0 1 1 a.png\n\n"), "zero quaternion"),  # noqa: E501
    "colmap mixed sizes": (lambda p: _colmap_text(p, "1 PINHOLE 8 8 4 4 4 4\n2 PINHOLE 8 9 4 4 4 4\n", "1 1 0 0 0 0 0 1 1 a.png\n\n2 1 0 0 0 0 0 1 2 b.png\n\n"), "different image sizes"),  # noqa: E501
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_camera_files(tmp_path, case):
    make, match = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AdLiftError, match=match) as info:
        load_cameras(path)
    assert isinstance(info.value, (CameraError, FileFormatError))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path) in message  # names the file (or the directory) at fault


BAD_SPECS = {
    "orbit:abc": "number of views must be a positive integer, got 'abc'",
    "orbit:0": "number of views must be a positive integer, got '0'",
    "orbit:": "number of views",
    "foo:3": "unknown camera spec 'foo'",
    "orbit:4,radius": "options are key=value",
    "orbit:4,zoom=2": "unknown option 'zoom'",
    "orbit:4,radius=-1": "radius must be positive",
    "orbit:4,radius=nan": "radius must be finite",
    "orbit:4,fov=200": r"fov must be in \(0, 180\)",
    "orbit:4,elev=50:10": "elev must satisfy",
    "orbit:4,elev=1:2:3": "elev takes DEG or LO:HI",
    "orbit:4,size=0x3": "size must be WxH",
    "orbit:4,size=12xy": "size must be WxH",
    "orbit:4,center=1:2": "center takes 3 numbers",
    "orbit:4,up=0:0:0": "up must be a non-zero vector",
    "orbit:4": "an orbit needs a scene to frame or an explicit radius=",
    "orbit:4,fov=45": "an orbit needs a scene",
}


@pytest.mark.parametrize("spec", sorted(BAD_SPECS))
def test_bad_specs(spec):
    with pytest.raises(CameraError, match=BAD_SPECS[spec]) as info:
        load_cameras(spec)
    assert repr(spec) in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- orbit specs
def test_parse_orbit_spec():
    spec = parse_camera_spec("orbit:24,elev=-10:40,radius=3.5,fov=45,size=256x128,center=1:2:3,azim=15")
    assert spec.num_views == 24 and spec.elevation_deg == (-10.0, 40.0) and spec.radius == 3.5
    assert spec.fov_deg == 45.0 and spec.size == (256, 128) and spec.center == (1.0, 2.0, 3.0)
    assert spec.azimuth_start_deg == 15.0
    assert parse_camera_spec("orbit:3,size=64").size == (64, 64)
    assert parse_camera_spec("orbit:3,elev=20").elevation_deg == (20.0, 20.0)


def test_orbit_spec_with_radius_and_centre():
    cams = load_cameras("orbit:6,radius=2.5,size=40x30,center=1:0:-1,elev=-10:40")
    assert len(cams) == 6 and (cams.width, cams.height) == (40, 30)
    centre = torch.tensor([1.0, 0.0, -1.0])
    torch.testing.assert_close((cams.centers - centre).norm(dim=-1), torch.full((6,), 2.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(project(cams, centre)[:, 0], torch.tensor([[20.0, 15.0]] * 6, dtype=torch.float64), atol=1e-4, rtol=0)
    elevation = torch.rad2deg(torch.asin((cams.centers[:, 2] - centre[2]) / 2.5))
    assert -10.0 - 1e-3 <= float(elevation.min()) and float(elevation.max()) <= 40.0 + 1e-3
    origin = load_cameras("orbit:3,radius=2")
    torch.testing.assert_close(origin.centers.norm(dim=-1), torch.full((3,), 2.0), atol=1e-5, rtol=0)
    assert (origin.width, origin.height) == (256, 256)
    # width / height build the orbit at that size directly (square pixels, centred principal point).
    wide = load_cameras("orbit:3,radius=2", width=96, height=64)
    assert (wide.width, wide.height) == (96, 64)
    torch.testing.assert_close(wide.Ks[:, 0, 0], wide.Ks[:, 1, 1])
    assert load_cameras("orbit:3,radius=2,size=40x20", width=80).height == 40


def test_orbit_spec_frames_the_scene():
    scene = random_scene(400, seed=3)
    scene = GaussianScene(scene.means * torch.tensor([2.0, 1.0, 0.5]) + torch.tensor([5.0, -3.0, 1.0]),
                          scene.quats, scene.log_scales, scene.opacity_logits, scene.sh)  # fmt: skip
    centre, half_diagonal = scene.center_and_radius()
    cams = load_cameras("orbit:8,size=64x64", scene=scene)
    torch.testing.assert_close(project(cams, centre)[:, 0], torch.full((8, 2), 32.0, dtype=torch.float64), atol=1e-3, rtol=0)
    dist = (cams.centers - centre).norm(dim=-1)
    torch.testing.assert_close(dist, torch.full((8,), 0.85 * half_diagonal / math.sin(math.radians(22.5))), rtol=1e-4, atol=0)
    uv = project(cams, scene.means)
    inside = ((uv >= 0) & (uv <= 64)).all(dim=-1).float().mean()
    assert float(inside) > 0.97  # the object is in frame ...
    spread = uv.quantile(0.99, dim=1) - uv.quantile(0.01, dim=1)
    assert float(spread.max(dim=-1).values.min()) > 0.4 * 64  # ... and fills a good part of it
    # An explicit radius still looks at the scene centre.
    far = load_cameras("orbit:4,radius=30", scene=scene)
    torch.testing.assert_close((far.centers - centre).norm(dim=-1), torch.full((4,), 30.0), atol=1e-4, rtol=0)


def test_orbit_spec_degenerate_scenes():
    point = GaussianScene.from_activated(torch.zeros(3, 3), torch.rand(3, 3), torch.ones(3, 3) * 0.1, torch.full((3,), 0.5))
    with pytest.raises(CameraError, match="no extent"):
        load_cameras("orbit:4", scene=point)
    with pytest.raises(CameraError, match="cannot frame the scene"):
        load_cameras("orbit:4", scene=GaussianScene.empty())


def test_orbit_spec_split():
    cams = load_cameras("orbit:16,radius=2")
    assert load_cameras("orbit:16,radius=2", split="novel").names == [cams.names[0], cams.names[8]]
    assert len(load_cameras("orbit:16,radius=2", split="train")) == 14


def test_existing_path_wins_over_spec_and_content_detection(tmp_path, monkeypatch):
    cams = rig(2)
    monkeypatch.chdir(tmp_path)
    write_transforms(tmp_path / "orbit:3", cams)  # a file literally named like a spec
    Path("orbit:3").rename("orbit:3.json")
    assert detect_camera_format("orbit:3.json") == ("nerfstudio", Path("orbit:3.json"))
    assert_same(load_cameras("orbit:3.json"), cams)
    write_gs_cameras_json(tmp_path / "renamed.json", cams)
    assert detect_camera_format(tmp_path / "renamed.json")[0] == "gs_cameras"


def test_directory_preference(tmp_path):
    write_colmap_binary(tmp_path / "sparse" / "0", rig(3))
    write_gs_cameras_json(tmp_path / "cameras.json", rig(4))
    assert len(load_cameras(tmp_path)) == 4  # cameras.json before a COLMAP model
    write_transforms(tmp_path / "transforms.json", rig(5))
    assert len(load_cameras(tmp_path)) == 5  # transforms.json first
    assert len(read_colmap(tmp_path)) == 3
