"""The scene-format registry: detection by extension and content, one-line errors, round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adlift import AdLiftError, FileFormatError, GaussianScene
from adlift.io import SCENE_FORMATS, SceneFormat, detect_scene_format, read_scene, write_scene
from adlift.io import ply
from tests import ply_fixtures as fx

#: The registered formats as messages list them.
ALL = "ply (.ply), compressed-ply (.compressed.ply / .ply), spz (.spz), splat (.splat), sog (.sog / meta.json)"


def _scene(n: int = 7, degree: int = 2) -> GaussianScene:
    p = fx.make_params(n, degree, seed=n)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return GaussianScene(t(p.means), t(p.quats), t(p.log_scales), t(p.opacity), t(p.sh))


def _error(path, call=read_scene) -> str:
    """``call(path)`` must raise a one-line FileFormatError naming the file; returns its problem."""
    with pytest.raises(FileFormatError) as info:
        call(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return info.value.problem


@pytest.fixture
def registry(monkeypatch):
    """SCENE_FORMATS, restored after the test (tests register made-up formats)."""
    monkeypatch.setattr(SCENE_FORMATS, "_entries", dict(SCENE_FORMATS._entries))
    return SCENE_FORMATS


def _fake(magic: bytes, *, extensions=(".fake",), writable=True) -> SceneFormat:
    """A made-up format: ``magic`` followed by nothing; reads as an empty scene."""

    def read(path, *, dtype):
        return _scene(0).to(dtype=dtype)

    def write(scene, path, *, comments):
        path.write_bytes(magic)
        return path

    return SceneFormat(extensions, lambda head: head.startswith(magic), read, write if writable else None)


# ---------------------------------------------------------------------------------------------
# round trips and detection
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["s.ply", "S.PLY", "my.scene.ply"])
def test_round_trip_through_the_registry(tmp_path, name):
    scene = _scene()
    path = write_scene(scene, tmp_path / name, comments=["made by a test"])
    assert path == tmp_path / name and detect_scene_format(path) == "ply"
    back = read_scene(path)
    for field in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(back, field), getattr(scene, field)), field
    assert b"comment made by a test" in path.read_bytes()
    assert read_scene(path, dtype=torch.float64).dtype == torch.float64


def test_explicit_format_for_an_unregistered_extension(tmp_path):
    path = write_scene(_scene(), tmp_path / "scene.bin", format="ply")
    assert path.read_bytes().startswith(b"ply\n")


@pytest.mark.parametrize("writer", [fx.inria_3dgs_ply, fx.gsplat_ply, fx.nerfstudio_ply])
def test_real_writers_are_detected_as_ply(tmp_path, writer):
    path = writer(tmp_path / "x.ply", fx.make_params(3, 1))
    assert ply.sniff(path.read_bytes()[:100]) and detect_scene_format(path) == "ply"


def test_sniffer_tells_compressed_ply_apart():
    inria = fx.ply_bytes([fx.vertex_element(fx.gaussian_columns(fx.make_params(2, 0), normals=True))])
    compressed_header = b"ply\r\nformat binary_little_endian 1.0\r\nelement vertex 2\r\n"
    compressed_header += b"property uint packed_position\r\n"
    assert ply.sniff(inria) and ply.sniff(b"ply\r\n")
    assert not ply.sniff(compressed_header) and ply.is_compressed_header(compressed_header)
    assert not ply.sniff(b"PLY\n") and not ply.sniff(b"") and not ply.sniff(b"solid cube\n")
    # A property merely *named* like a packed one is not the compressed layout.
    assert not ply.is_compressed_header(b"ply\ncomment packed_position is not here\n")


def test_compressed_ply_named_ply_reaches_its_reader(tmp_path):
    """compressed-ply also lists .ply: its sniffer claims the file, its reader reads it."""
    path = fx.gsplat_compressed_ply(tmp_path / "c.ply")
    assert detect_scene_format(path) == "compressed-ply" and read_scene(path).num_gaussians == 3


def test_broken_ply_gets_the_readers_specific_error(tmp_path):
    assert _error(fx.write_file(tmp_path / "e.ply", b"")) == "empty file, expected a PLY file"
    assert "not a PLY file" in _error(fx.write_file(tmp_path / "r.ply", b"solid cube\n"))
    truncated = fx.gaussian_ply(tmp_path / "t.ply", fx.make_params(4, 0), count=5)
    assert "truncated data" in _error(truncated)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path):
    assert _error(tmp_path / "nope.ply") == "no such file"
    (tmp_path / "dir.ply").mkdir()
    assert _error(tmp_path / "dir.ply").startswith("is a directory, expected a scene file (ply (.ply)")


def test_unknown_extension_lists_the_formats(tmp_path):
    problem = _error(fx.write_file(tmp_path / "scene.obj", b"v 0 0 0\n"))
    assert problem == f"unknown scene file type (.obj); supported scene formats: {ALL}"
    assert "(no extension)" in _error(fx.write_file(tmp_path / "scene", b"v 0 0 0\n"))


def test_ply_content_with_another_extension_says_rename(tmp_path):
    path = fx.gaussian_ply(tmp_path / "scene.bin", fx.make_params(2, 0))
    problem = _error(path)
    assert problem.startswith("unknown scene file type (.bin); its content looks like ply: rename it to end with .ply")
    assert problem.endswith(f"supported scene formats: {ALL}")


def test_content_of_another_registered_format(tmp_path, registry):
    registry.add("fake", _fake(b"FAKE"), help="a test format")
    problem = _error(fx.write_file(tmp_path / "scene.ply", b"FAKE"))
    assert problem == "named like a ply file but its content is fake; rename it to end with .fake"
    ply_named_fake = fx.gaussian_ply(tmp_path / "scene.fake", fx.make_params(2, 0))
    assert _error(ply_named_fake) == "named like a fake file but its content is ply; rename it to end with .ply"
    assert detect_scene_format(fx.write_file(tmp_path / "ok.fake", b"FAKE")) == "fake"
    assert f"supported scene formats: {ALL}, fake (.fake)" in _error(fx.write_file(tmp_path / "x.y", b"?"))


def test_longer_extension_and_shared_extension(tmp_path):
    """How compressed-ply registers: its own longer extension, and .ply told apart by content."""
    assert detect_scene_format(fx.gsplat_compressed_ply(tmp_path / "a.compressed.ply")) == "compressed-ply"
    assert detect_scene_format(fx.gsplat_compressed_ply(tmp_path / "a.ply")) == "compressed-ply"
    assert detect_scene_format(fx.gaussian_ply(tmp_path / "b.ply", fx.make_params(2, 0))) == "ply"
    inria_named_compressed = fx.gaussian_ply(tmp_path / "b.compressed.ply", fx.make_params(2, 0))
    assert _error(inria_named_compressed).startswith("named like a compressed-ply file but its content is ply")


# ---------------------------------------------------------------------------------------------
# write_scene
# ---------------------------------------------------------------------------------------------
def test_write_unknown_extension_is_refused(tmp_path):
    with pytest.raises(AdLiftError) as info:
        write_scene(_scene(), tmp_path / "scene.obj")
    assert str(info.value).startswith(f"cannot write {tmp_path / 'scene.obj'}: unknown scene file type")
    assert "ply (.ply)" in str(info.value) and list(tmp_path.iterdir()) == []


def test_write_format_contradicting_the_extension(tmp_path, registry):
    registry.add("fake", _fake(b"FAKE"))
    with pytest.raises(AdLiftError, match=r"as fake: its name says ply; name it \*\.fake"):
        write_scene(_scene(), tmp_path / "scene.ply", format="fake")
    with pytest.raises(AdLiftError, match="unknown scene format 'nope'; choose one of: ply, compressed-ply, spz, splat, sog, fake"):
        write_scene(_scene(), tmp_path / "scene.ply", format="nope")
    assert write_scene(_scene(), tmp_path / "s.fake").read_bytes() == b"FAKE"
    assert list(tmp_path.iterdir()) == [tmp_path / "s.fake"]


def test_read_only_format(tmp_path, registry):
    registry.add("fake", _fake(b"FAKE", writable=False))
    with pytest.raises(AdLiftError, match="the fake scene format is read-only"):
        write_scene(_scene(), tmp_path / "s.fake")


# ---------------------------------------------------------------------------------------------
# adlift info goes through the registry
# ---------------------------------------------------------------------------------------------
def test_info_names_the_format(tmp_path, capsys):
    import json

    from adlift.cli import main

    path = write_scene(_scene(5, 1), tmp_path / "s.ply")
    assert main(["info", str(path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["format"] == "ply" and stats["num_gaussians"] == 5 and stats["sh_degree"] == 1
    assert main(["info", str(path)]) == 0
    table = capsys.readouterr().out
    assert "ply: INRIA 3DGS layout" in table and "Gaussians" in table and "5" in table


def test_every_scene_file_goes_through_the_registry():
    """Outside adlift/io, scene files are read and written with read_scene / write_scene only, so a
    newly registered format works everywhere (the library, the commands, scenes/, benchmarks/)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("adlift", "scenes", "benchmarks") for p in (root / d).rglob("*.py")]
    offenders = [
        f"{p.relative_to(root)}:{i}"
        for p in files
        if "io" not in p.relative_to(root).parts[:2]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "read_ply(" in line or "write_ply(" in line or "import read_ply" in line or "import write_ply" in line
    ]
    assert offenders == []
