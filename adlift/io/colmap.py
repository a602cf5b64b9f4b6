"""COLMAP sparse models (``cameras`` + ``images``, text or binary) as :class:`Cameras`.

COLMAP stores, per registered image, the world-to-camera rotation as a unit quaternion
``qvec = (w, x, y, z)`` and the translation ``tvec``, with OpenCV camera axes (x right, y down,
z forward): exactly AdLift's ``viewmats``, so no axis flip is needed. Its image coordinates put
the upper-left corner of the upper-left pixel at (0, 0), the same convention as ``Ks``.

Layouts (COLMAP's ``Reconstruction::Read/Write{Cameras,Images}{Text,Binary}``, little-endian):

* ``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` per line, ``#`` comments.
* ``images.txt``: two lines per image, ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` and a
  (possibly empty) line of 2D points ``X Y POINT3D_ID ...``.
* ``cameras.bin``: uint64 count, then per camera int32 id, int32 model id, uint64 width,
  uint64 height, float64 params[num_params(model)].
* ``images.bin``: uint64 count, then per image int32 id, float64 qvec[4], float64 tvec[3],
  int32 camera id, a NUL-terminated name, uint64 number of 2D points, and that many
  (float64 x, float64 y, int64 point3D id) records (24 bytes each), which are skipped here.

Supported camera models: SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV; radial and
tangential distortion is ignored with a warning (AdLift renders pinhole views; undistort with
``colmap image_undistorter`` for exact pixels). Camera names are image file stems, and cameras
are sorted by image name (as the INRIA 3DGS loader does, so ``split_train_novel(every=8)`` picks
its ``--eval`` test views).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import torch

from adlift.cameras import Cameras
from adlift.io.camera_checks import single_image_size
from adlift.errors import CameraError, FileFormatError
from adlift.io.atomic import atomic_path, write_text_atomic
from adlift.rotations import matrix_to_quat, quat_to_matrix

#: COLMAP camera models: id -> (name, number of parameters); the id is the position in COLMAP's
#: list. All of COLMAP's, so a binary file with a model we do not support still parses up to a
#: clear error.
MODELS: dict[int, tuple[str, int]] = dict(enumerate([
    ("SIMPLE_PINHOLE", 3), ("PINHOLE", 4), ("SIMPLE_RADIAL", 4), ("RADIAL", 5), ("OPENCV", 8),
    ("OPENCV_FISHEYE", 8), ("FULL_OPENCV", 12), ("FOV", 5), ("SIMPLE_RADIAL_FISHEYE", 4), ("RADIAL_FISHEYE", 5),
    ("THIN_PRISM_FISHEYE", 12), ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
]))  # fmt: skip
MODEL_IDS = {name: (mid, n) for mid, (name, n) in MODELS.items()}

#: Models AdLift reads, with the parameter index of (fx, fy, cx, cy) and of the distortion terms.
SUPPORTED: dict[str, tuple[tuple[int, int, int, int], tuple[int, ...]]] = {
    "SIMPLE_PINHOLE": ((0, 0, 1, 2), ()),
    "PINHOLE": ((0, 1, 2, 3), ()),
    "SIMPLE_RADIAL": ((0, 0, 1, 2), (3,)),
    "RADIAL": ((0, 0, 1, 2), (3, 4)),
    "OPENCV": ((0, 1, 2, 3), (4, 5, 6, 7)),
}

_CAMERA_FILES = ("cameras.bin", "cameras.txt")
_IMAGE_FILES = ("images.bin", "images.txt")


# ------------------------------------------------------------------------------- locating
def find_colmap_model(path: str | Path) -> Path | None:
    """The directory holding a COLMAP model for ``path`` or None.

    ``path`` may be the model directory itself (``sparse/0``), ``sparse`` holding ``0``, a scene
    directory holding ``sparse/0`` (or ``sparse`` directly), or one of the model's files.
    """
    path = Path(path)
    if path.is_file():
        return path.parent if path.name in _CAMERA_FILES + _IMAGE_FILES else None
    for cand in (path, path / "0", path / "sparse" / "0", path / "sparse"):
        if cand.is_dir() and any((cand / f).is_file() for f in _CAMERA_FILES + _IMAGE_FILES):
            return cand
    return None


def _model_files(model_dir: Path) -> tuple[Path, Path]:
    """(cameras file, images file) of a model; binary preferred, as COLMAP itself does."""
    for ext in ("bin", "txt"):
        cams, imgs = model_dir / f"cameras.{ext}", model_dir / f"images.{ext}"
        if cams.is_file() and imgs.is_file():
            return cams, imgs
    for ext in ("bin", "txt"):
        cams, imgs = model_dir / f"cameras.{ext}", model_dir / f"images.{ext}"
        if cams.is_file() != imgs.is_file():
            have, lack = (cams, imgs) if cams.is_file() else (imgs, cams)
            raise FileFormatError(have, f"incomplete COLMAP model: {lack.name} is missing beside it")
    raise FileFormatError(model_dir, "no COLMAP model here (expected cameras.bin/images.bin or cameras.txt/images.txt)")


# ------------------------------------------------------------------------------- parsing
class _Reader:
    """Bounds-checked little-endian reads from a bytes buffer."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as e:
            raise FileFormatError(path, f"cannot be read ({e.strerror or e})") from None
        self.pos = 0

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise FileFormatError(
                self.path, f"truncated: {what} needs {size} bytes at offset {self.pos}, file has {len(self.data)}"
            )
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, size: int, what: str) -> None:
        if size < 0 or self.pos + size > len(self.data):
            raise FileFormatError(
                self.path, f"truncated: {what} needs {size} bytes at offset {self.pos}, file has {len(self.data)}"
            )
        self.pos += size

    def cstring(self, what: str) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise FileFormatError(self.path, f"truncated: {what} at offset {self.pos} has no terminating NUL")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FileFormatError(self.path, f"{what} at offset {self.pos} is not UTF-8") from None


def _read_cameras_binary(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    r = _Reader(path)
    (count,) = r.take("Q", "the camera count")
    cams = {}
    for k in range(count):
        cam_id, model_id, width, height = r.take("iiQQ", f"camera {k}")
        if model_id not in MODELS:
            raise FileFormatError(path, f"camera {cam_id} has unknown camera model id {model_id}")
        name, n = MODELS[model_id]
        params = list(r.take("d" * n, f"the {n} parameters of camera {cam_id}"))
        cams[cam_id] = (name, width, height, params)
    return cams


def _read_images_binary(path: Path) -> list[tuple[int, list[float], list[float], int, str]]:
    r = _Reader(path)
    (count,) = r.take("Q", "the image count")
    images = []
    for k in range(count):
        vals = r.take("i7di", f"image {k}")
        name = r.cstring(f"the name of image {vals[0]}")
        (npts,) = r.take("Q", f"the 2D point count of image {name!r}")
        r.skip(24 * npts, f"the {npts} 2D points of image {name!r}")
        images.append((vals[0], list(vals[1:5]), list(vals[5:8]), vals[8], name))
    return images


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise FileFormatError(path, "is not UTF-8 text") from None
    except OSError as e:
        raise FileFormatError(path, f"cannot be read ({e.strerror or e})") from None


def _parse(path: Path, lineno: int, kind, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise FileFormatError(path, f"line {lineno}: {what} must be {kind.__name__}, got {text!r}") from None


def _read_cameras_text(path: Path) -> dict[int, tuple[str, int, int, list[float]]]:
    cams = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        elems = line.split()
        if len(elems) < 4:
            raise FileFormatError(path, f"line {lineno}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
        cam_id = _parse(path, lineno, int, elems[0], "CAMERA_ID")
        model = elems[1]
        width = _parse(path, lineno, int, elems[2], "WIDTH")
        height = _parse(path, lineno, int, elems[3], "HEIGHT")
        params = [_parse(path, lineno, float, e, "a camera parameter") for e in elems[4:]]
        if model in MODEL_IDS and len(params) != MODEL_IDS[model][1]:
            raise FileFormatError(
                path, f"line {lineno}: camera model {model} takes {MODEL_IDS[model][1]} parameters, got {len(params)}"
            )
        cams[cam_id] = (model, width, height, params)
    return cams


def _read_images_text(path: Path) -> list[tuple[int, list[float], list[float], int, str]]:
    lines = _read_lines(path)
    images = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        lineno = i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        # The header line of an image; the next line holds its 2D points (maybe empty): skip it.
        i += 1
        elems = line.split(maxsplit=9)
        if len(elems) < 10:
            raise FileFormatError(path, f"line {lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        image_id = _parse(path, lineno, int, elems[0], "IMAGE_ID")
        nums = [_parse(path, lineno, float, e, "a pose value") for e in elems[1:8]]
        cam_id = _parse(path, lineno, int, elems[8], "CAMERA_ID")
        images.append((image_id, nums[:4], nums[4:], cam_id, elems[9].strip()))
    return images


# ------------------------------------------------------------------------------- public API
def read_colmap(path: str | Path) -> Cameras:
    """Cameras of a COLMAP sparse model (see :func:`find_colmap_model` for accepted paths)."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, "no such file or directory")
    model_dir = find_colmap_model(path)
    if model_dir is None:
        raise FileFormatError(path, "no COLMAP model (cameras.bin/images.bin or cameras.txt/images.txt) found")
    cams_path, imgs_path = _model_files(model_dir)
    if cams_path.suffix == ".bin":
        cams, images = _read_cameras_binary(cams_path), _read_images_binary(imgs_path)
    else:
        cams, images = _read_cameras_text(cams_path), _read_images_text(imgs_path)
    if not images:
        raise FileFormatError(imgs_path, "has zero registered images")

    distorted: set[str] = set()
    viewmats, Ks, names, sizes = [], [], [], set()
    for image_id, qvec, tvec, cam_id, name in sorted(images, key=lambda im: im[4]):
        if cam_id not in cams:
            raise FileFormatError(imgs_path, f"image {name!r} refers to camera {cam_id}, which {cams_path.name} lacks")
        model, width, height, params = cams[cam_id]
        if model not in SUPPORTED:
            raise CameraError(
                f"{cams_path}: camera {cam_id} uses the {model} model; supported: {', '.join(SUPPORTED)} "
                "(run 'colmap image_undistorter' to get a PINHOLE model)"
            )
        if width <= 0 or height <= 0:
            raise FileFormatError(cams_path, f"camera {cam_id} has image size {width}x{height}")
        (ifx, ify, icx, icy), idist = SUPPORTED[model]
        values = [*qvec, *tvec, *params]
        if not all(math.isfinite(v) for v in values):
            raise FileFormatError(imgs_path, f"image {name!r} or its camera {cam_id} has non-finite values")
        if params[ifx] <= 0 or params[ify] <= 0:
            raise FileFormatError(cams_path, f"camera {cam_id} has a non-positive focal length")
        if any(params[k] != 0.0 for k in idist):
            distorted.add(f"camera {cam_id} ({model})")
        q = np.asarray(qvec, dtype=np.float64)
        qn = np.linalg.norm(q)
        if qn < 1e-8:
            raise FileFormatError(imgs_path, f"image {name!r} has a zero quaternion")
        view = np.eye(4)
        view[:3, :3] = quat_to_matrix(q / qn)
        view[:3, 3] = tvec
        viewmats.append(view)
        Ks.append([[params[ifx], 0.0, params[icx]], [0.0, params[ify], params[icy]], [0.0, 0.0, 1.0]])
        names.append(Path(name).stem)
        sizes.add((width, height))
    width, height = single_image_size(cams_path, sizes, distorted, "images")
    try:
        return Cameras(
            torch.as_tensor(np.stack(viewmats)).float(), torch.tensor(Ks, dtype=torch.float32), width, height, names
        )
    except CameraError as e:
        raise CameraError(f"{model_dir}: {e}") from None


def _colmap_records(cameras: Cameras, image_ext: str):
    """Shared cameras (one per distinct K) and per-image (qvec, tvec, camera id, name)."""
    view = cameras.viewmats.detach().to("cpu", torch.float64).numpy()
    Ks = cameras.Ks.detach().to("cpu", torch.float64).numpy()
    intrinsics: dict[tuple[float, ...], int] = {}
    images = []
    for i, name in enumerate(cameras.names):
        k = (float(Ks[i, 0, 0]), float(Ks[i, 1, 1]), float(Ks[i, 0, 2]), float(Ks[i, 1, 2]))
        cam_id = intrinsics.setdefault(k, len(intrinsics) + 1)
        images.append((i + 1, matrix_to_quat(view[i, :3, :3]), view[i, :3, 3], cam_id, f"{name}{image_ext}"))
    return intrinsics, images


def write_colmap_text(directory: str | Path, cameras: Cameras, *, image_ext: str = ".png") -> Path:
    """Write ``cameras`` as a COLMAP text model (cameras.txt, images.txt, empty points3D.txt).

    Intrinsics become PINHOLE cameras, one per distinct K; image names are camera name +
    ``image_ext``. Each file is written atomically. Returns ``directory``.
    """
    directory = Path(directory)
    intrinsics, images = _colmap_records(cameras, image_ext)
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    lines.append(f"# Number of cameras: {len(intrinsics)}")
    for (fx, fy, cx, cy), cam_id in intrinsics.items():
        lines.append(f"{cam_id} PINHOLE {cameras.width} {cameras.height} {fx!r} {fy!r} {cx!r} {cy!r}")
    write_text_atomic(directory / "cameras.txt", "\n".join(lines) + "\n")
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(images)}, mean observations per image: 0",
    ]
    for image_id, q, t, cam_id, name in images:
        nums = " ".join(repr(float(v)) for v in (*q, *t))
        lines += [f"{image_id} {nums} {cam_id} {name}", ""]
    write_text_atomic(directory / "images.txt", "\n".join(lines) + "\n")
    write_text_atomic(directory / "points3D.txt", "# 3D point list (empty: AdLift writes cameras only)\n")
    return directory


def write_colmap_binary(directory: str | Path, cameras: Cameras, *, image_ext: str = ".png") -> Path:
    """Write ``cameras`` as a COLMAP binary model (cameras.bin, images.bin, empty points3D.bin)."""
    directory = Path(directory)
    intrinsics, images = _colmap_records(cameras, image_ext)
    blob = [struct.pack("<Q", len(intrinsics))]
    for params, cam_id in intrinsics.items():
        blob.append(struct.pack("<iiQQ4d", cam_id, MODEL_IDS["PINHOLE"][0], cameras.width, cameras.height, *params))
    _write_bytes(directory / "cameras.bin", b"".join(blob))
    blob = [struct.pack("<Q", len(images))]
    for image_id, q, t, cam_id, name in images:
        encoded = name.encode("utf-8")
        if b"\x00" in encoded:
            raise CameraError(f"camera name {name!r} contains a NUL character, which COLMAP names cannot hold")
        blob.append(struct.pack("<i7di", image_id, *map(float, q), *map(float, t), cam_id))
        blob.append(encoded + b"\x00" + struct.pack("<Q", 0))
    _write_bytes(directory / "images.bin", b"".join(blob))
    _write_bytes(directory / "points3D.bin", struct.pack("<Q", 0))
    return directory


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
