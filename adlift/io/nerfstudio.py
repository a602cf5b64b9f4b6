"""nerfstudio ``transforms.json``: camera-to-world poses in OpenGL axes plus pinhole intrinsics.

Written form (what :func:`write_transforms` produces and nerfstudio's ``nerfstudio-data``
parser reads)::

    {"camera_model": "OPENCV", "w": W, "h": H, "fl_x": .., "fl_y": .., "cx": .., "cy": ..,
     "frames": [{"file_path": "images/NAME.png", "transform_matrix": 4x4 c2w (OpenGL)}, ...],
     "train_filenames": [...], "test_filenames": [...]}

Intrinsics are written per frame when they differ between cameras.

Reading follows nerfstudio's ``nerfstudio-data`` parser (``nerfstudio_dataparser.py``):

* ``transform_matrix`` is camera-to-world with OpenGL/Blender camera axes (x right, y up,
  z backward); only its first three rows are used, so 3x4 matrices are accepted too.
* An intrinsic given at the top level (``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h``) applies
  to every frame and wins over per-frame values; otherwise each frame must carry it.
  ``cx``/``cy`` default to the image centre and ``fl_y`` to ``fl_x``; ``camera_angle_x`` (the
  Blender / instant-ngp form) stands in for a missing ``fl_x``.
* ``camera_model`` must be a perspective model (``SIMPLE_PINHOLE``, ``PINHOLE``,
  ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``; default ``OPENCV``). Distortion (``k1..k4``,
  ``p1``, ``p2``, ``distortion_params``) is ignored with a warning: AdLift renders pinhole views.
* Splits come from ``train_filenames`` / ``test_filenames`` (``val_filenames`` when there is
  no test list), matched against the frames' ``file_path``.
* ``applied_transform`` is *not* applied to the poses, exactly as nerfstudio does: it only
  records how the saved poses were derived from the original (e.g. COLMAP) frame, and
  nerfstudio uses it for point clouds, never for cameras. Note that nerfstudio then re-orients,
  re-centres and re-scales the poses for training (``dataparser_transforms.json``), and
  ``ns-export gaussian-splat`` writes the Gaussians in *that* frame: use
  :func:`apply_dataparser_transform` to bring cameras into the frame of such an export.
"""

from __future__ import annotations

import json
import math
import posixpath
from pathlib import Path
from typing import Any, Mapping

import torch

from adlift.cameras import Cameras
from adlift.io.camera_checks import single_image_size
from adlift.errors import CameraError, FileFormatError
from adlift.io.atomic import write_text_atomic

#: Split names AdLift uses and the nerfstudio transforms.json keys that hold them.
SPLIT_KEYS = {"train": "train_filenames", "novel": "test_filenames"}

#: nerfstudio camera models that are perspective (pinhole, possibly with distortion we ignore).
PERSPECTIVE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")

#: nerfstudio camera models that are not perspective, so no pinhole camera can stand in for them.
OTHER_MODELS = (
    "OPENCV_FISHEYE", "FISHEYE624", "EQUIRECTANGULAR", "OMNIDIRECTIONALSTEREO_L",
    "OMNIDIRECTIONALSTEREO_R", "VR180_L", "VR180_R", "ORTHOPHOTO",
)  # fmt: skip

_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def frame_file_path(name: str, image_dir: str = "images") -> str:
    """The ``file_path`` a frame named ``name`` gets in a written transforms.json."""
    return f"{image_dir}/{name}.png"


def write_transforms(
    path: str | Path,
    cameras: Cameras,
    splits: Mapping[str, list[str]] | None = None,
    *,
    image_dir: str = "images",
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write ``cameras`` as a nerfstudio transforms.json (atomically).

    ``splits`` maps "train" / "novel" to camera names; they are stored as nerfstudio's
    ``train_filenames`` / ``test_filenames`` so nerfstudio and :func:`load_cameras` agree.
    """
    c2w = cameras.to("cpu", torch.float64).to_camtoworlds_opengl()
    Ks = cameras.Ks.detach().to("cpu", torch.float64)
    intr = lambda K: {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}  # noqa: E731
    shared = bool((Ks - Ks[:1]).abs().max() < 1e-9) if len(cameras) else True
    doc: dict = {"camera_model": "OPENCV", "w": cameras.width, "h": cameras.height}
    if shared and len(cameras):
        doc.update(intr(Ks[0]))
    frames = []
    for i, name in enumerate(cameras.names):
        frame = {"file_path": frame_file_path(name, image_dir)}
        if not shared:
            frame.update(intr(Ks[i]))
        frame["transform_matrix"] = [[round(float(v), 10) for v in row] for row in c2w[i]]
        frames.append(frame)
    doc["frames"] = frames
    for split, names in (splits or {}).items():
        key = SPLIT_KEYS.get(split, f"{split}_filenames")
        doc[key] = [frame_file_path(n, image_dir) for n in names]
    if extra:
        doc.update(extra)
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return Path(path)


# ---------------------------------------------------------------------------------- reading
def read_json_file(path: str | Path) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed file raises FileFormatError."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, "no such file")
    if path.is_dir():
        raise FileFormatError(path, "is a directory, expected a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(path, "is not UTF-8 text, expected JSON") from None
    except OSError as e:
        raise FileFormatError(path, f"cannot be read ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FileFormatError(path, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def finite_number(path: Path, value: object, what: str) -> float:
    """``value`` as a float, or FileFormatError if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FileFormatError(path, f"{what} must be a finite number, got {value!r}")
    return float(value)


def positive_int(path: Path, value: object, what: str) -> int:
    """``value`` as a positive int (a whole float such as 512.0 is accepted)."""
    v = finite_number(path, value, what)
    if v != int(v) or v <= 0:
        raise FileFormatError(path, f"{what} must be a positive integer, got {value!r}")
    return int(v)


def pose_matrix(path: Path, value: object, what: str) -> torch.Tensor:
    """A pose given as nested lists, 4x4 or 3x4, checked -> float64 [4, 4] rigid transform."""
    rows = value if isinstance(value, list) else None
    if not rows or not all(isinstance(r, list) for r in rows):
        raise FileFormatError(path, f"{what} must be a 4x4 matrix (list of rows), got {type(value).__name__}")
    shape = (len(rows), *{len(r) for r in rows})
    if shape not in ((4, 4), (3, 4)):
        lengths = [len(r) for r in rows]
        raise FileFormatError(path, f"{what} must be a 4x4 (or 3x4) matrix, got rows of lengths {lengths}")
    m = torch.eye(4, dtype=torch.float64)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            m[i, j] = finite_number(path, v, f"{what}[{i}][{j}]")
    if float((m[3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().max()) > 1e-6:
        raise FileFormatError(path, f"{what} must have last row [0, 0, 0, 1], got {m[3].tolist()}")
    rot = m[:3, :3]
    if float((rot @ rot.T - torch.eye(3, dtype=torch.float64)).abs().max()) > 1e-3:
        raise FileFormatError(path, f"{what} has a rotation that is not orthonormal (a scaled or sheared pose?)")
    if float(torch.linalg.det(rot)) <= 0:
        raise FileFormatError(path, f"{what} has a reflection (det < 0) instead of a rotation")
    return m


def _normalise_file_path(p: str) -> str:
    return posixpath.normpath(p.replace("\\", "/"))


def read_transforms(path: str | Path) -> Cameras:
    """All cameras of a nerfstudio transforms.json (or a directory holding one), in frame order."""
    return read_transforms_with_splits(path)[0]


def read_transforms_with_splits(path: str | Path) -> tuple[Cameras, dict[str, list[int]]]:
    """Cameras of a transforms.json plus its splits: {"train": [...], "novel": [...]} frame indices.

    The split dict is empty when the file lists no ``*_filenames``; when it lists only one of
    train / novel, the other is the remaining frames.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    meta = read_json_file(path)
    if not isinstance(meta, dict):
        raise FileFormatError(path, f"expected a JSON object with 'frames', got a JSON {type(meta).__name__}")
    frames = meta.get("frames")
    if frames is None:
        raise FileFormatError(path, "missing key 'frames' (not a nerfstudio transforms.json?)")
    if not isinstance(frames, list):
        raise FileFormatError(path, f"'frames' must be a list, got {type(frames).__name__}")
    if not frames:
        raise FileFormatError(path, "has zero frames")

    model = meta.get("camera_model", "OPENCV")
    if not isinstance(model, str) or model.upper() not in PERSPECTIVE_MODELS:
        kind = "a non-perspective" if isinstance(model, str) and model.upper() in OTHER_MODELS else "an unknown"
        raise CameraError(
            f"{path}: camera_model {model!r} is {kind} camera model; supported: {', '.join(PERSPECTIVE_MODELS)} "
            "(undistort fisheye/360 captures to pinhole images first)"
        )

    def value(frame: dict, key: str, i: int) -> object:
        # nerfstudio: a top-level intrinsic applies to every frame and wins over per-frame ones.
        return meta[key] if key in meta else frame.get(key)

    def focal(frame: dict, i: int, axis: str, size: int, where: str) -> float | None:
        """fl_{axis}, else from camera_angle_{axis} (the field of view across ``size`` pixels), else None."""
        fl, angle = value(frame, f"fl_{axis}", i), value(frame, f"camera_angle_{axis}", i)
        if fl is None and angle is not None:
            angle = finite_number(path, angle, f"{where} camera_angle_{axis}")
            if not 0 < angle < math.pi:
                raise FileFormatError(path, f"{where}: camera_angle_{axis} must be in (0, pi) radians, got {angle}")
            return 0.5 * size / math.tan(0.5 * angle)
        return None if fl is None else finite_number(path, fl, f"{where} fl_{axis}")

    c2ws, Ks, sizes, names, file_paths = [], [], set(), [], []
    distorted: set[str] = set()
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise FileFormatError(path, f"frames[{i}] must be an object, got {type(frame).__name__}")
        fp = frame.get("file_path")
        if not isinstance(fp, str) or not fp:
            raise FileFormatError(path, f"frames[{i}] has no 'file_path' string")
        where = f"frames[{i}] ({fp})"
        if "transform_matrix" not in frame:
            raise FileFormatError(path, f"{where} is missing 'transform_matrix'")
        c2ws.append(pose_matrix(path, frame["transform_matrix"], f"{where} transform_matrix"))
        w, h = value(frame, "w", i), value(frame, "h", i)
        if w is None or h is None:
            raise FileFormatError(path, f"{where}: no image size; give 'w' and 'h' at the top level or per frame")
        w, h = positive_int(path, w, f"{where} w"), positive_int(path, h, f"{where} h")
        sizes.add((w, h))
        fx = focal(frame, i, "x", w, where)
        if fx is None:
            raise FileFormatError(
                path, f"{where}: no focal length; give 'fl_x' (and 'fl_y') at the top level or per frame"
            )
        fy = focal(frame, i, "y", h, where)
        fy = fx if fy is None else fy
        if fx <= 0 or fy <= 0:
            raise FileFormatError(path, f"{where}: focal lengths must be positive, got fl_x={fx}, fl_y={fy}")
        cx, cy = value(frame, "cx", i), value(frame, "cy", i)
        cx = w / 2 if cx is None else finite_number(path, cx, f"{where} cx")
        cy = h / 2 if cy is None else finite_number(path, cy, f"{where} cy")
        Ks.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        for key in _DISTORTION_KEYS:
            v = value(frame, key, i)
            if v is not None and finite_number(path, v, f"{where} {key}") != 0.0:
                distorted.add(key)
        dp = meta.get("distortion_params", frame.get("distortion_params"))
        if dp is not None:
            if not isinstance(dp, list):
                raise FileFormatError(path, f"{where} distortion_params must be a list of numbers")
            if any(finite_number(path, v, f"{where} distortion_params") != 0.0 for v in dp):
                distorted.add("distortion_params")
        names.append(Path(fp.replace("\\", "/")).stem)
        file_paths.append(fp)

    width, height = single_image_size(path, sizes, distorted, "frames")
    try:
        cameras = Cameras.from_camtoworlds_opengl(
            torch.stack(c2ws), torch.tensor(Ks, dtype=torch.float64), width, height, names
        ).to(dtype=torch.float32)
    except CameraError as e:
        raise CameraError(f"{path}: {e}") from None
    return cameras, _splits(path, meta, file_paths)


def _splits(path: Path, meta: dict, file_paths: list[str]) -> dict[str, list[int]]:
    """Frame indices of the train / novel split lists of a transforms.json (empty if none)."""
    by_path: dict[str, list[int]] = {}
    by_base: dict[str, list[int]] = {}
    for i, fp in enumerate(file_paths):
        norm = _normalise_file_path(fp)
        by_path.setdefault(norm, []).append(i)
        by_base.setdefault(posixpath.basename(norm), []).append(i)

    def indices(key: str) -> list[int]:
        entries = meta[key]
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise FileFormatError(path, f"'{key}' must be a list of file paths")
        out: set[int] = set()
        for e in entries:
            norm = _normalise_file_path(e)
            hit = by_path.get(norm)
            if hit is None and len(by_base.get(posixpath.basename(norm), [])) == 1:
                hit = by_base[posixpath.basename(norm)]
            if hit is None:
                raise FileFormatError(path, f"'{key}' lists {e!r}, which is not the file_path of any frame")
            out.update(hit)
        return sorted(out)

    novel_key = "test_filenames" if "test_filenames" in meta else "val_filenames"
    train = indices("train_filenames") if "train_filenames" in meta else None
    novel = indices(novel_key) if novel_key in meta else None
    if train is None and novel is None:
        return {}
    everything = range(len(file_paths))
    if train is None:
        train = [i for i in everything if i not in set(novel)]
    if novel is None:
        novel = [i for i in everything if i not in set(train)]
    return {"train": train, "novel": novel}


def apply_dataparser_transform(
    cameras: Cameras,
    dataparser_transforms: str | Path,
    *,
    transforms: str | Path | None = None,
) -> Cameras:
    """Move cameras read from a transforms.json into the frame nerfstudio trained in.

    nerfstudio re-orients, re-centres and re-scales the poses before training and saves that
    map as ``dataparser_transforms.json`` ({"transform": 3x4, "scale": s}) in the run's output
    directory; a splatfacto asset exported with ``ns-export gaussian-splat`` lives in that frame.
    The saved "transform" maps the *original* data frame to the training frame, i.e. it already
    includes ``applied_transform``; pass the ``transforms`` file the cameras came from so its
    ``applied_transform`` is undone first (nerfstudio's legacy default is used when the key is
    absent but ``colmap/sparse/0`` exists beside it, as nerfstudio does). Images are unchanged:
    a point X seen by a camera is seen at the same pixel as ``s * (M @ X)`` by the moved camera.
    """
    dp_path = Path(dataparser_transforms)
    doc = read_json_file(dp_path)
    if not isinstance(doc, dict) or "transform" not in doc or "scale" not in doc:
        raise FileFormatError(dp_path, "expected a JSON object with 'transform' (3x4) and 'scale'")
    m = pose_matrix(dp_path, doc["transform"], "transform")
    scale = finite_number(dp_path, doc["scale"], "scale")
    if scale <= 0:
        raise FileFormatError(dp_path, f"scale must be positive, got {scale}")
    if transforms is not None:
        t_path = Path(transforms)
        if t_path.is_dir():
            t_path = t_path / "transforms.json"
        meta = read_json_file(t_path)
        applied = meta.get("applied_transform") if isinstance(meta, dict) else None
        if applied is None and (t_path.parent / "colmap" / "sparse" / "0").exists():
            applied = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]]
        if applied is not None:
            m = m @ torch.linalg.inv(pose_matrix(t_path, applied, "applied_transform"))
    c2w = m.to(cameras.device) @ cameras.camtoworlds.to(torch.float64)
    c2w[:, :3, 3] *= scale
    return Cameras(
        torch.linalg.inv(c2w).to(cameras.viewmats.dtype), cameras.Ks.clone(), cameras.width, cameras.height,
        list(cameras.names),
    )
