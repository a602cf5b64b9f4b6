"""One entry point for cameras: files in any supported format, or a camera-rig spec.

:func:`load_cameras` accepts

* a nerfstudio ``transforms.json`` (or a directory holding one),
* a COLMAP sparse model (``sparse/0``, the ``sparse`` directory, the scene directory holding
  it, or one of its ``cameras``/``images`` ``.txt``/``.bin`` files),
* the ``cameras.json`` of the INRIA 3DGS training code (or the model directory holding it),
* a spec ``orbit:N[,key=value...]`` (see :func:`parse_camera_spec`).

A directory holding several of these is read in that order of preference. Any ``.json`` file is
recognised by its content (an object with ``frames`` or a list of cameras), whatever its name.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from adlift.cameras import Cameras, orbit_cameras, split_train_novel
from adlift.errors import AdLiftError, CameraError, FileFormatError
from adlift.io.colmap import find_colmap_model, read_colmap
from adlift.io.gs_cameras import read_gs_cameras_json
from adlift.io.nerfstudio import read_json_file, read_transforms_with_splits

if TYPE_CHECKING:
    from adlift.scene import GaussianScene

#: Values of ``load_cameras(split=...)``.
SPLITS = ("train", "novel", "all")

#: Interleaving of the hold-out split when a camera source has no split lists: every 8th view is
#: novel, the convention of the INRIA 3DGS ``--eval`` split (llffhold=8) and Mip-NeRF 360.
HOLDOUT_EVERY = 8

#: Image size of an orbit when neither the spec's ``size=`` nor ``width``/``height`` give one.
DEFAULT_ORBIT_SIZE = (256, 256)

_SPEC_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.*)$", re.DOTALL)
_ORBIT_KEYS = ("elev", "radius", "fov", "size", "center", "up", "azim")


@dataclasses.dataclass(frozen=True)
class OrbitSpec:
    """A parsed ``orbit:N,key=value,...`` camera spec."""

    num_views: int
    """Number of cameras, evenly spaced in azimuth (``orbit:N``)."""
    elevation_deg: tuple[float, float] = (10.0, 30.0)
    """Elevation range in degrees above the equator (``elev=lo:hi`` or ``elev=deg``)."""
    radius: float | None = None
    """Distance to the centre (``radius=``); None frames the scene's bounds."""
    fov_deg: float = 45.0
    """Horizontal field of view in degrees (``fov=``)."""
    size: tuple[int, int] | None = None
    """Image width, height (``size=WxH`` or ``size=N`` for N x N); None: the default size."""
    center: tuple[float, float, float] | None = None
    """Point looked at (``center=x:y:z``); None: the scene's centre, or the origin without a scene."""
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """World up direction (``up=x:y:z``); the bundled scenes are +z up."""
    azimuth_start_deg: float = 0.0
    """Azimuth of the first camera in degrees (``azim=``)."""


def is_camera_spec(value: object) -> bool:
    """True if ``value`` is a string shaped like ``name:args`` that is not an existing path."""
    if not isinstance(value, str) or not _SPEC_RE.match(value) or os.path.exists(value):
        return False
    # "C:..." is a Windows drive, not a spec.
    return len(value.split(":", 1)[0]) > 1


def _spec_error(spec: str, problem: str) -> CameraError:
    return CameraError(f"camera spec {spec!r}: {problem}")


def _spec_float(spec: str, key: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise _spec_error(spec, f"{key} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise _spec_error(spec, f"{key} must be finite, got {text!r}")
    return v


def _spec_floats(spec: str, key: str, text: str, n: int) -> tuple[float, ...]:
    parts = text.split(":")
    if len(parts) != n:
        raise _spec_error(spec, f"{key} takes {n} numbers separated by ':', got {text!r}")
    return tuple(_spec_float(spec, key, p) for p in parts)


def _spec_size(spec: str, text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise _spec_error(spec, f"size must be WxH or N with positive integers, got {text!r}")
    w = int(parts[0])
    return (w, int(parts[1]) if len(parts) == 2 else w)


def parse_camera_spec(spec: str) -> OrbitSpec:
    """Parse ``orbit:N[,elev=lo:hi][,radius=R][,fov=DEG][,size=WxH][,center=x:y:z][,up=x:y:z][,azim=DEG]``.

    Example: ``orbit:24,elev=-10:40,radius=3.5,fov=45,size=256x256``. Malformed specs raise
    :class:`CameraError` naming the spec and the problem.
    """
    m = _SPEC_RE.match(spec.strip()) if isinstance(spec, str) else None
    if m is None:
        raise CameraError(f"camera spec {spec!r}: expected 'orbit:N[,key=value...]'")
    kind, rest = m.group(1).lower(), m.group(2)
    if kind != "orbit":
        raise _spec_error(spec, f"unknown camera spec '{m.group(1)}'; known: orbit:N[,key=value...]")
    head, *options = [p.strip() for p in rest.split(",")]
    if not head.isdigit() or int(head) < 1:
        raise _spec_error(spec, f"the number of views must be a positive integer, got {head!r}")
    fields: dict = {"num_views": int(head)}
    for opt in options:
        key, sep, val = opt.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not sep or not key or not val:
            raise _spec_error(spec, f"options are key=value, got {opt!r}")
        if key not in _ORBIT_KEYS:
            raise _spec_error(spec, f"unknown option {key!r}; known: {', '.join(_ORBIT_KEYS)}")
        if key == "elev":
            lo_hi = val.split(":")
            if len(lo_hi) not in (1, 2):
                raise _spec_error(spec, f"elev takes DEG or LO:HI, got {val!r}")
            lo, hi = (_spec_float(spec, key, p) for p in (lo_hi * 2)[:2])
            if not -89.0 <= lo <= hi <= 89.0:
                raise _spec_error(spec, f"elev must satisfy -89 <= lo <= hi <= 89, got {val!r}")
            fields["elevation_deg"] = (lo, hi)
        elif key == "radius":
            fields["radius"] = _spec_float(spec, key, val)
            if fields["radius"] <= 0:
                raise _spec_error(spec, f"radius must be positive, got {val!r}")
        elif key == "fov":
            fields["fov_deg"] = _spec_float(spec, key, val)
            if not 0.0 < fields["fov_deg"] < 180.0:
                raise _spec_error(spec, f"fov must be in (0, 180) degrees, got {val!r}")
        elif key == "size":
            fields["size"] = _spec_size(spec, val)
        elif key == "center":
            fields["center"] = _spec_floats(spec, key, val, 3)
        elif key == "up":
            fields["up"] = _spec_floats(spec, key, val, 3)
            if math.hypot(*fields["up"]) < 1e-9:
                raise _spec_error(spec, "up must be a non-zero vector")
        elif key == "azim":
            fields["azimuth_start_deg"] = _spec_float(spec, key, val)
    return OrbitSpec(**fields)


def _target_size(base: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    """``width`` x ``height`` with a missing side following ``base``'s aspect ratio."""
    for name, v in (("width", width), ("height", height)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0):
            raise CameraError(f"{name} must be a positive integer, got {v!r}")
    if width is None and height is None:
        return base
    if width is None:
        width = max(1, round(base[0] * height / base[1]))
    if height is None:
        height = max(1, round(base[1] * width / base[0]))
    return int(width), int(height)


def orbit_from_spec(
    spec: str | OrbitSpec,
    scene: "GaussianScene | None" = None,
    *,
    width: int | None = None,
    height: int | None = None,
) -> Cameras:
    """The orbit cameras a spec describes, framed on ``scene`` when it gives no radius."""
    text = spec if isinstance(spec, str) else repr(spec)
    orbit = parse_camera_spec(spec) if isinstance(spec, str) else spec
    w, h = _target_size(orbit.size or DEFAULT_ORBIT_SIZE, width, height)
    center, radius = orbit.center, orbit.radius
    if scene is not None and (center is None or radius is None):
        try:
            scene_center, half_diagonal = scene.center_and_radius()
        except AdLiftError as e:
            raise _spec_error(text, f"cannot frame the scene ({e}); give radius= and center=") from None
        if center is None:
            center = tuple(float(v) for v in scene_center)
        if radius is None:
            if not half_diagonal > 1e-9:
                raise _spec_error(text, "the scene has no extent to frame (all Gaussians at one point); give radius=")
            # Distance at which the scene's bounding sphere (radius = half the diagonal of its
            # robust bounding box) would exactly fill the narrower field of view is
            # r / sin(fov / 2). That sphere is loose (a ball of radius R has a box half-diagonal
            # of sqrt(3) R), so we come 15 % closer: at the default 45 degrees this is 2.2 x the
            # half diagonal, where a compact object spans about 70 % of the frame and only the
            # box's far corners, rarely occupied, could leave it.
            f = 0.5 * w / math.tan(math.radians(orbit.fov_deg) / 2)
            narrow_half_fov = math.atan(0.5 * min(w, h) / f)
            radius = 0.85 * half_diagonal / math.sin(narrow_half_fov)
    if radius is None:
        raise _spec_error(text, "an orbit needs a scene to frame or an explicit radius= (and optionally center=x:y:z)")
    return orbit_cameras(
        orbit.num_views,
        center if center is not None else (0.0, 0.0, 0.0),
        radius,
        width=w,
        height=h,
        fov_deg=orbit.fov_deg,
        elevation_deg=orbit.elevation_deg,
        azimuth_start_deg=orbit.azimuth_start_deg,
        up=orbit.up,
    )


def detect_camera_format(path: str | Path) -> tuple[str, Path]:
    """(format, file or model directory) of a camera source: format is "nerfstudio", "colmap"
    or "gs_cameras". Raises FileFormatError for a missing path or one with no camera file."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, "no such file or directory")
    if path.is_dir():
        if (path / "transforms.json").is_file():
            return "nerfstudio", path / "transforms.json"
        if (path / "cameras.json").is_file():
            return "gs_cameras", path / "cameras.json"
        model = find_colmap_model(path)
        if model is not None:
            return "colmap", model
        raise FileFormatError(
            path,
            "no camera file found (expected transforms.json, cameras.json, or a COLMAP model "
            "in ., sparse/ or sparse/0/)",
        )
    if path.suffix.lower() == ".json":
        doc = read_json_file(path)
        if isinstance(doc, dict) and "frames" in doc:
            return "nerfstudio", path
        if isinstance(doc, list):
            return "gs_cameras", path
        raise FileFormatError(
            path,
            "is neither a nerfstudio transforms.json (an object with 'frames') "
            "nor a 3DGS cameras.json (a list of cameras)",
        )
    if find_colmap_model(path) is not None:
        return "colmap", path.parent
    raise FileFormatError(
        path, "unrecognised camera file (expected a .json, or a COLMAP cameras/images .txt/.bin)"
    )


def select_split(cameras: Cameras, split: str, splits: dict[str, list[int]] | None, source: str) -> Cameras:
    """The ``split`` of ``cameras``: from the source's own lists, else every 8th view is novel."""
    if split not in SPLITS:
        raise CameraError(f"unknown camera split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return cameras
    if splits:
        ids = splits[split]
        if not ids:
            raise CameraError(f"{source}: the {split} split is empty")
        return cameras[ids]
    try:
        train, novel = split_train_novel(cameras, every=HOLDOUT_EVERY)
    except CameraError as e:
        raise CameraError(f"{source}: {e}") from None
    return train if split == "train" else novel


def load_cameras(
    path_or_spec: str | os.PathLike,
    *,
    scene: "GaussianScene | None" = None,
    split: str = "all",
    width: int | None = None,
    height: int | None = None,
) -> Cameras:
    """Cameras from a file, a directory or a spec (see the module docstring).

    ``split`` picks "train", "novel" or "all" views: a transforms.json's own split lists when it
    has them, otherwise an interleaved hold-out (every 8th view novel). ``width``/``height``
    re-size the cameras (:meth:`Cameras.resized`; one alone keeps the aspect ratio); an orbit is
    built at that size directly. ``scene`` frames an orbit spec that has no radius.
    Every malformed input raises :class:`CameraError` or :class:`FileFormatError` in one line.
    """
    if split not in SPLITS:
        raise CameraError(f"unknown camera split {split!r}; choose one of {', '.join(SPLITS)}")
    if is_camera_spec(path_or_spec):
        cams = orbit_from_spec(path_or_spec, scene, width=width, height=height)
        return select_split(cams, split, None, f"camera spec {path_or_spec!r}")
    if not isinstance(path_or_spec, (str, os.PathLike)):
        raise CameraError(f"cameras must be given as a path or a spec string, got {type(path_or_spec).__name__}")
    fmt, source = detect_camera_format(path_or_spec)
    splits = None
    if fmt == "nerfstudio":
        cams, splits = read_transforms_with_splits(source)
    elif fmt == "colmap":
        cams = read_colmap(source)
    else:
        cams = read_gs_cameras_json(source)
    cams = select_split(cams, split, splits, str(source))
    _target_size((cams.width, cams.height), width, height)  # validates width / height
    return cams.resized(width, height)
