"""`adlift render`: PNGs per view and a contact sheet; bad cameras exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlift.cli import main
from tests.helpers import SCENES, run_cli


def test_render_bundled_scene_novel_views(tmp_path: Path):
    out = tmp_path / "out"
    args = ["render", str(SCENES / "bust" / "scene.ply"), "--cameras", str(SCENES / "bust" / "transforms.json")]
    assert main([*args, "--split", "novel", "--width", "48", "--out", str(out), "--backend", "torch"]) == 0
    pngs = sorted(p.name for p in out.glob("bust_*.png"))
    assert pngs == ["bust_0000.png", "bust_0008.png", "bust_0016.png", "bust_0024.png"]
    img = np.asarray(Image.open(out / "bust_0016.png"))
    assert img.shape == (48, 48, 3)
    # The bust fills the middle of a frontal view on a black background.
    assert img[20:28, 20:28].mean() > 40 and img[:2, :2].max() < 5
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width >= 2 * 48 and sheet.height >= 2 * 48


def test_render_orbit_spec_and_background(tmp_path: Path):
    out = tmp_path / "orbit"
    args = ["render", str(SCENES / "crate" / "scene.ply"), "--cameras", "orbit:3,size=32x24"]
    assert main([*args, "--out", str(out), "--background", "1", "1", "1"]) == 0
    imgs = [np.asarray(Image.open(out / f"orbit_{i:04d}.png")) for i in range(3)]
    assert all(im.shape == (24, 32, 3) for im in imgs)
    assert all(im[0, 0].min() > 250 for im in imgs)  # white background in the corners
    assert not np.array_equal(imgs[0], imgs[1])  # different viewpoints


@pytest.mark.parametrize("spec", ["orbit:0", "orbit:abc", "nonexistent_cameras.json"])
def test_render_bad_cameras_exit_2(tmp_path: Path, spec: str):
    proc = run_cli("render", str(SCENES / "crate" / "scene.ply"), "--cameras", spec, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(
    "option,message",
    [(["--width", "0"], "--width must be >= 1"), (["--background", "2", "0", "0"], "--background must be three")],
)
def test_render_bad_render_options_exit_2(tmp_path: Path, option: list, message: str):
    """The shared RenderOptions are validated before anything is read or written."""
    proc = run_cli("render", str(SCENES / "crate" / "scene.ply"), "--cameras", "orbit:1", *option,
                   "--out", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_render_unknown_scene_type_exit_2(tmp_path: Path):
    bad = tmp_path / "scene.obj"
    bad.write_bytes(b"v 0 0 0\n")
    proc = run_cli("render", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"adlift: error: {bad}: unknown scene file type (.obj); supported scene formats: "
                                   "ply (.ply), compressed-ply (.compressed.ply / .ply), spz (.spz), splat (.splat), "
                                   "sog (.sog / meta.json)")  # fmt: skip
