"""nerfstudio ``transforms.json``: camera-to-world poses in OpenGL axes plus pinhole intrinsics.

Written form (what :func:`write_transforms` produces and nerfstudio's ``nerfstudio-data``
parser reads)::

    {"camera_model": "OPENCV", "w": W, "h": H, "fl_x": .., "fl_y": .., "cx": .., "cy": ..,
     "frames": [{"file_path": "images/NAME.png", "transform_matrix": 4x4 c2w (OpenGL)}, ...],
     "train_filenames": [...], "test_filenames": [...]}

Intrinsics are written per frame when they differ between cameras.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from adlift.cameras import Cameras
from adlift.io.atomic import write_text_atomic

#: Split names AdLift uses and the nerfstudio transforms.json keys that hold them.
SPLIT_KEYS = {"train": "train_filenames", "novel": "test_filenames"}


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
