"""The adlift CLI: help, info output, and the exit-2 one-line error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adlift.cli import main
from adlift.io.ply import write_ply
from tests.helpers import random_scene, run_cli


def test_help_lists_commands_and_exits_zero():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "info" in proc.stdout


def test_info_help_explains_options():
    proc = run_cli("info", "--help")
    assert proc.returncode == 0
    assert "--json" in proc.stdout and "Gaussian" in proc.stdout


def test_info_json_reports_scene_statistics(tmp_path: Path, capsys):
    scene = random_scene(n=123, sh_degree=2, seed=3)
    path = write_ply(scene, tmp_path / "s.ply")
    assert main(["info", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["num_gaussians"] == 123
    assert stats["sh_degree"] == 2
    lo, hi = scene.bounds()
    assert stats["bounds_min"] == pytest.approx(lo.tolist())
    assert stats["bounds_max"] == pytest.approx(hi.tolist())
    assert stats["opacity"]["max"] == pytest.approx(float(scene.opacities.max()), rel=1e-5)


def test_info_table_mentions_count(tmp_path: Path, capsys):
    path = write_ply(random_scene(n=77), tmp_path / "s.ply")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "77" in out and "SH degree" in out


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"ply\nformat ascii 1.0\nelement vertex 3\n"])
def test_bad_file_exits_2_with_one_line_and_no_traceback(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    proc = run_cli("info", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0]


def test_missing_file_exits_2(tmp_path: Path):
    proc = run_cli("info", str(tmp_path / "nope.ply"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_atomic_outputs_get_normal_permissions(tmp_path: Path):
    import os

    old = os.umask(0o022)
    try:
        path = write_ply(random_scene(n=3), tmp_path / "perm.ply")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("layout", ["inria", "gsplat", "nerfstudio"])
def test_info_reads_each_external_layout(tmp_path: Path, capsys, layout: str):
    from tests import ply_fixtures as fx

    params = fx.make_params(n=40, degree=3 if layout != "gsplat" else 1, seed=5)
    writer = {"inria": fx.inria_3dgs_ply, "gsplat": fx.gsplat_ply, "nerfstudio": fx.nerfstudio_ply}[layout]
    path = writer(tmp_path / f"{layout}.ply", params)
    assert main(["info", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["num_gaussians"] == 40
    assert stats["sh_degree"] == (3 if layout != "gsplat" else 1)
    assert stats["bounds_min"] == pytest.approx(params.means.min(axis=0).tolist(), rel=1e-6)


@pytest.mark.parametrize("name", ["bust", "crate"])
def test_info_on_bundled_scenes(capsys, name: str):
    root = Path(__file__).resolve().parents[1] / "scenes" / name
    assert main(["info", str(root / "scene.ply"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert 5_000 <= stats["num_gaussians"] <= 50_000
