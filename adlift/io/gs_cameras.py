"""The ``cameras.json`` that the INRIA 3DGS training code writes beside its point_cloud/.

It is a JSON list with one entry per camera (``camera_to_JSON`` in 3DGS's
``utils/camera_utils.py``)::

    {"id": 0, "img_name": "IMG_0001", "width": W, "height": H,
     "position": [3], "rotation": [[3], [3], [3]], "fx": .., "fy": ..}

3DGS builds its cameras from COLMAP (OpenCV axes): it keeps ``R`` = the transpose of COLMAP's
world-to-camera rotation and ``T`` = COLMAP's tvec, forms ``Rt = [R^T | T]`` (world-to-camera)
and writes ``inv(Rt)``: so ``rotation`` is the camera-to-world rotation (its columns are the
camera's x-right, y-down, z-forward axes in world coordinates) and ``position`` the camera
centre. The principal point is not stored; 3DGS renders with it at the image centre.

Entries are sorted by ``img_name``: 3DGS writes its test cameras first, and sorting restores the
name order its ``--eval`` split (every 8th view by name) was taken in.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from adlift.cameras import Cameras
from adlift.errors import CameraError, FileFormatError
from adlift.io.atomic import write_text_atomic
from adlift.io.nerfstudio import finite_number, positive_int, read_json_file

_KEYS = ("img_name", "width", "height", "position", "rotation", "fx", "fy")


def _vector(path: Path, value: object, n: int, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != n:
        raise FileFormatError(path, f"{what} must be a list of {n} numbers, got {value!r}")
    return [finite_number(path, v, what) for v in value]


def read_gs_cameras_json(path: str | Path) -> Cameras:
    """Cameras of an INRIA 3DGS ``cameras.json`` (or a directory holding one), sorted by name."""
    path = Path(path)
    if path.is_dir():
        path = path / "cameras.json"
    doc = read_json_file(path)
    if not isinstance(doc, list):
        raise FileFormatError(
            path, f"expected a JSON list of cameras (INRIA 3DGS cameras.json), got a JSON {type(doc).__name__}"
        )
    if not doc:
        raise FileFormatError(path, "has zero cameras")
    entries = []
    for i, cam in enumerate(doc):
        if not isinstance(cam, dict):
            raise FileFormatError(path, f"camera [{i}] must be an object, got {type(cam).__name__}")
        missing = [k for k in _KEYS if k not in cam]
        if missing:
            raise FileFormatError(path, f"camera [{i}] is missing key(s) {', '.join(missing)}")
        name = str(cam["img_name"])
        where = f"camera [{i}] ({name})"
        width = positive_int(path, cam["width"], f"{where} width")
        height = positive_int(path, cam["height"], f"{where} height")
        position = _vector(path, cam["position"], 3, f"{where} position")
        rows = cam["rotation"]
        if not isinstance(rows, list) or len(rows) != 3:
            raise FileFormatError(path, f"{where} rotation must be a 3x3 matrix, got {rows!r}")
        rotation = [_vector(path, r, 3, f"{where} rotation row") for r in rows]
        fx = finite_number(path, cam["fx"], f"{where} fx")
        fy = finite_number(path, cam["fy"], f"{where} fy")
        if fx <= 0 or fy <= 0:
            raise FileFormatError(path, f"{where}: focal lengths must be positive, got fx={fx}, fy={fy}")
        r = torch.tensor(rotation, dtype=torch.float64)
        if float((r @ r.T - torch.eye(3, dtype=torch.float64)).abs().max()) > 1e-3 or float(torch.linalg.det(r)) <= 0:
            raise FileFormatError(path, f"{where} rotation is not a rotation matrix (orthonormal, det +1)")
        entries.append((name, width, height, r, torch.tensor(position, dtype=torch.float64), fx, fy))
    sizes = sorted({(e[1], e[2]) for e in entries})
    if len(sizes) > 1:
        raise FileFormatError(
            path, f"cameras have different image sizes {sizes}; AdLift needs one size per camera file"
        )
    entries.sort(key=lambda e: e[0])
    (width, height), = sizes
    view = torch.eye(4, dtype=torch.float64).repeat(len(entries), 1, 1)
    Ks = torch.zeros(len(entries), 3, 3, dtype=torch.float64)
    for i, (_, _, _, r, c, fx, fy) in enumerate(entries):
        view[i, :3, :3] = r.T  # world-to-camera rotation
        view[i, :3, 3] = -(r.T @ c)
        Ks[i] = torch.tensor([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    try:
        return Cameras(view.float(), Ks.float(), width, height, [e[0] for e in entries])
    except CameraError as e:
        raise CameraError(f"{path}: {e}") from None


def write_gs_cameras_json(path: str | Path, cameras: Cameras) -> Path:
    """Write ``cameras`` as an INRIA 3DGS ``cameras.json`` (atomically).

    The format has no principal point: cameras whose principal point is off the image centre
    are written anyway, with a warning, and read back centred.
    """
    c2w = cameras.to("cpu", torch.float64).camtoworlds
    Ks = cameras.Ks.detach().to("cpu", torch.float64)
    centre = torch.tensor([cameras.width / 2, cameras.height / 2], dtype=torch.float64)
    if len(cameras) and float((Ks[:, :2, 2] - centre).abs().max()) > 1e-3:
        warnings.warn(
            f"{path}: cameras.json cannot store an off-centre principal point; it will be read back at the centre",
            stacklevel=2,
        )
    doc = [
        {
            "id": i,
            "img_name": name,
            "width": cameras.width,
            "height": cameras.height,
            "position": c2w[i, :3, 3].tolist(),
            "rotation": c2w[i, :3, :3].tolist(),
            "fy": float(Ks[i, 1, 1]),
            "fx": float(Ks[i, 0, 0]),
        }
        for i, name in enumerate(cameras.names)
    ]
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return Path(path)
