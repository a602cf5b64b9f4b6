"""The bundled scenes in scenes/: they load, are the size and kind documented, their camera rigs
frame the object, and scenes/generate.py regenerates them byte for byte."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adlift.io import read_ply

ROOT = Path(__file__).resolve().parents[1]
SCENES_DIR = ROOT / "scenes"
GENERATE = SCENES_DIR / "generate.py"

#: Bundled scene -> SH degree (as documented in scenes/README.md).
SCENES = {"bust": 0, "crate": 1}
NUM_VIEWS, NUM_NOVEL = 32, 4
MAX_TOTAL_BYTES = 10_000_000


@functools.lru_cache(maxsize=None)
def _scene(name: str):
    """The bundled scene (read once per session; tests only read it)."""
    return read_ply(SCENES_DIR / name / "scene.ply")


def _transforms(name: str) -> dict:
    return json.loads((SCENES_DIR / name / "transforms.json").read_text(encoding="utf-8"))


def _load_generate(monkeypatch):
    """Import scenes/generate.py (not a package) as a module for the duration of one test."""
    pytest.importorskip("scipy")
    pytest.importorskip("skimage")
    spec = importlib.util.spec_from_file_location("adlift_scenes_generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(SCENES))
def test_scene_loads_with_documented_size_and_sh_degree(name):
    scene = _scene(name)
    assert 5_000 <= scene.num_gaussians <= 50_000
    assert scene.sh_degree == SCENES[name]
    scene.check_values()  # finite
    assert scene.dtype == torch.float32
    # Opaque surface splats: high opacity, flat (one thin axis), unit-ish quaternions.
    assert float(scene.opacities.min()) >= 0.9
    scales = scene.scales
    assert float((scales.amin(dim=1) / scales.amax(dim=1)).max()) < 0.2
    assert torch.allclose(scene.quats.norm(dim=1), torch.ones(scene.num_gaussians), atol=1e-4)
    # Centred near the origin, about 1-2 units across, z up.
    lo, hi = scene.bounds()
    assert float(((lo + hi) / 2).abs().max()) < 0.25
    assert 0.5 < float((hi - lo).max()) < 2.5
    # Colours span a real range (textures, not one flat colour).
    assert float(scene.rgb.std(dim=0).min()) > 0.05


def test_crate_has_view_dependent_colour():
    scene = _scene("crate")
    rest = scene.sh[:, 1:]
    assert float(rest.abs().max()) > 0.01
    assert float(rest.abs().max()) < 0.5  # a small sheen, not a different colour per view


def test_total_size_of_bundled_scenes():
    total = sum(p.stat().st_size for p in SCENES_DIR.rglob("*") if p.is_file() and p.parent != SCENES_DIR)
    assert total <= MAX_TOTAL_BYTES, f"bundled scenes take {total / 1e6:.1f} MB, over the 10 MB budget"
    for preview in SCENES_DIR.glob("*/*.png"):
        assert preview.stat().st_size <= 150_000, preview


@pytest.mark.parametrize("name", sorted(SCENES))
def test_transforms_json_structure_and_split(name):
    doc = _transforms(name)
    for key in ("w", "h", "fl_x", "fl_y", "cx", "cy"):
        assert isinstance(doc[key], (int, float)) and doc[key] > 0, key
    frames = doc["frames"]
    assert len(frames) == NUM_VIEWS
    paths = [f["file_path"] for f in frames]
    assert len(set(paths)) == len(paths)
    for frame in frames:
        m = np.asarray(frame["transform_matrix"], dtype=np.float64)
        assert m.shape == (4, 4) and np.isfinite(m).all()
        np.testing.assert_allclose(m[3], [0, 0, 0, 1])
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-5)  # a rotation
    train, novel = doc["train_filenames"], doc["test_filenames"]
    assert len(novel) == NUM_NOVEL and len(train) == NUM_VIEWS - NUM_NOVEL
    assert not set(train) & set(novel)
    assert sorted(train + novel) == sorted(paths)
    # Interleaved hold-out: every 8th view is novel.
    assert novel == [paths[i] for i in range(0, NUM_VIEWS, 8)]


@pytest.mark.parametrize("name", sorted(SCENES))
def test_cameras_look_at_and_frame_the_object(name):
    """Every camera has the object centre in front of it, near the image centre, and sees
    (nearly) all of the object inside the image (OpenGL c2w: the camera looks along -z)."""
    doc = _transforms(name)
    scene = _scene(name)
    means = scene.means.double().numpy()
    lo, hi = means.min(axis=0), means.max(axis=0)
    center = (lo + hi) / 2
    w, h = doc["w"], doc["h"]
    for frame in doc["frames"]:
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        rot, eye = c2w[:3, :3], c2w[:3, 3]

        def project(points):
            cam = (points - eye) @ rot  # world -> OpenGL camera axes (x right, y up, z back)
            depth = -cam[:, 2]
            u = doc["fl_x"] * cam[:, 0] / depth + doc["cx"]
            v = -doc["fl_y"] * cam[:, 1] / depth + doc["cy"]
            return u, v, depth

        u, v, depth = project(center[None])
        assert depth[0] > 0, f"{frame['file_path']}: object centre is behind the camera"
        assert abs(u[0] - w / 2) < 0.2 * w and abs(v[0] - h / 2) < 0.2 * h, frame["file_path"]
        u, v, depth = project(means)
        assert (depth > 0).all()
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        assert inside.mean() > 0.99, f"{frame['file_path']}: only {inside.mean():.1%} of the object in view"
        # ... and the object fills a good part of the frame.
        assert (u.max() - u.min()) > 0.4 * w, frame["file_path"]


def test_bust_face_is_seen_by_train_and_novel_views():
    """The bust's face (on -y) is turned towards several training and novel cameras."""
    doc = _transforms("bust")
    by_path = {f["file_path"]: np.asarray(f["transform_matrix"]) for f in doc["frames"]}

    def facing(paths):
        # Camera position direction seen from the object: the face looks along -y.
        return [p for p in paths if by_path[p][1, 3] / np.linalg.norm(by_path[p][:3, 3]) < -math.cos(math.radians(60))]

    assert len(facing(doc["train_filenames"])) >= 10
    assert len(facing(doc["test_filenames"])) >= 2


def test_generate_check_passes():
    """`python scenes/generate.py --check` regenerates every scene byte for byte (a few seconds)."""
    pytest.importorskip("scipy")
    pytest.importorskip("skimage")
    result = subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "regenerate byte-identically" in result.stdout


def test_generate_check_reports_mismatch_and_missing(tmp_path, monkeypatch, capsys):
    generate = _load_generate(monkeypatch)

    def fake_write_scene(name, out_dir):
        target = Path(out_dir) / name
        target.mkdir(parents=True, exist_ok=True)
        for f in generate.SCENE_FILES:
            (target / f).write_bytes(b"fresh " + f.encode())

    monkeypatch.setattr(generate, "write_scene", fake_write_scene)
    root = tmp_path / "scenes"
    (root / "bust").mkdir(parents=True)
    (root / "bust" / "scene.ply").write_bytes(b"fresh scene.ply")  # identical
    (root / "bust" / "transforms.json").write_bytes(b"stale")  # differs
    assert generate.check(["bust"], root) == 1
    err = capsys.readouterr().err
    assert "transforms.json differs" in err and "scene.ply" not in err
    (root / "bust" / "transforms.json").write_bytes(b"fresh transforms.json")
    assert generate.check(["bust"], root) == 0
    assert generate.check(["crate"], root) == 1  # nothing there
    assert "missing" in capsys.readouterr().err
