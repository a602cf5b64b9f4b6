"""3DGS .ply reading and writing: layouts of real writers, round trips, and every kind of bad file.

Fixture files are built by ``tests/ply_fixtures.py`` (hand-written headers, ``struct``-packed
rows) so that neither adlift nor plyfile produces the files they are checked against.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import time
import tracemalloc

import numpy as np
import plyfile
import pytest
import torch

from adlift import AdLiftError, FileFormatError, GaussianScene, SceneError
from adlift.io.ply import read_ply, write_ply
from tests import ply_fixtures as fx

FIELDS = ["means", "quats", "log_scales", "opacity_logits", "sh"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def params_to_scene(p: fx.Params, dtype=torch.float32) -> GaussianScene:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
    return GaussianScene(t(p.means), t(p.quats), t(p.log_scales), t(p.opacity), t(p.sh))


def assert_matches_params(scene: GaussianScene, p: fx.Params) -> None:
    """Exact equality of every value (fixtures hold float32 values, so nothing is rounded)."""
    assert scene.num_gaussians == p.n and scene.sh.shape[1] == p.k
    np.testing.assert_array_equal(scene.means.numpy(), p.means)
    np.testing.assert_array_equal(scene.quats.numpy(), p.quats)
    np.testing.assert_array_equal(scene.log_scales.numpy(), p.log_scales)
    np.testing.assert_array_equal(scene.opacity_logits.numpy(), p.opacity)
    np.testing.assert_array_equal(scene.sh.numpy(), p.sh)


def assert_bit_equal(a: GaussianScene, b: GaussianScene) -> None:
    """Same dtype, shapes and bits (distinguishes -0.0 from 0.0)."""
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert torch.equal(x.contiguous().view(torch.int32), y.contiguous().view(torch.int32)), name


def read_error(path, **kwargs) -> FileFormatError:
    """read_ply must raise a one-line FileFormatError that names the file."""
    with pytest.raises(FileFormatError) as info:
        read_ply(path, **kwargs)
    err = info.value
    assert isinstance(err, AdLiftError)
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    return err


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the test run) if the block runs longer than ``seconds``."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def special_scene(degree: int) -> GaussianScene:
    """Random values plus the float32 corner cases a round trip must keep bit for bit."""
    p = fx.make_params(9, degree, seed=degree)
    s = params_to_scene(p)
    specials = torch.tensor([-0.0, 1e-45, -1e-45, 1.1754944e-38, 3.4028235e38, -3.4028235e38, 1.0 + 2**-23, 0.0])
    s.means[0] = specials[:3]
    s.quats[1] = specials[3:7]
    s.log_scales[2] = specials[5:]
    s.opacity_logits[3] = -0.0
    s.sh[4, 0] = specials[:3]
    s.sh[5, -1] = specials[4:7]
    return s


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 9])
@pytest.mark.parametrize("normals", [True, False])
def test_round_trip_bit_exact(tmp_path, degree, n, normals):
    scene = special_scene(degree).subset(slice(0, n))
    first = write_ply(scene, tmp_path / "a.ply", normals=normals)
    assert first == tmp_path / "a.ply"
    back = read_ply(first)
    assert back.num_gaussians == n and back.sh_degree == degree
    assert_bit_equal(back, scene)
    write_ply(back, tmp_path / "b.ply", normals=normals)
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_written_file_layout(tmp_path, degree):
    """What we write, checked with plyfile (an independent reader): INRIA property order, float32
    little endian, zero normals, comments kept."""
    p = fx.make_params(4, degree, seed=5)
    write_ply(params_to_scene(p), tmp_path / "s.ply", comments=["made by adlift", "second"])
    ply = plyfile.PlyData.read(str(tmp_path / "s.ply"))
    assert not ply.text and ply.byte_order == "<"
    assert ply.comments == ["made by adlift", "second"]
    assert [el.name for el in ply.elements] == ["vertex"]
    vertex = ply["vertex"]
    assert [prop.name for prop in vertex.properties] == list(fx.gaussian_columns(p, normals=True))
    assert all(vertex.data.dtype[i] == np.dtype("<f4") for i in range(len(vertex.properties)))
    for name, values in fx.gaussian_columns(p, normals=True).items():
        np.testing.assert_array_equal(vertex[name], values, err_msg=name)

    write_ply(params_to_scene(p), tmp_path / "nonormals.ply", normals=False)
    names = [prop.name for prop in plyfile.PlyData.read(str(tmp_path / "nonormals.ply"))["vertex"].properties]
    assert names == list(fx.gaussian_columns(p, normals=False)) and "nx" not in names


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_f_rest_is_channel_major_on_write(tmp_path, degree):
    """Set single coefficients and check which f_rest column they land in."""
    k = (degree + 1) ** 2
    scene = GaussianScene.from_activated(
        torch.zeros(2, 3), torch.full((2, 3), 0.5), torch.ones(2, 3), torch.full((2,), 0.5), sh_degree=degree
    )
    scene.sh[:, 1, 0] = 7.0  # red, coefficient 1
    scene.sh[:, 1, 1] = 11.0  # green, coefficient 1
    scene.sh[:, 2, 0] = 13.0  # red, coefficient 2
    scene.sh[:, k - 1, 2] = 17.0  # blue, last coefficient
    write_ply(scene, tmp_path / "s.ply")
    vertex = plyfile.PlyData.read(str(tmp_path / "s.ply"))["vertex"]
    rest = np.stack([vertex[f"f_rest_{i}"] for i in range(3 * (k - 1))], axis=1)
    expected = np.zeros(3 * (k - 1), dtype=np.float32)
    expected[0] = 7.0  # f_rest_0 is red coefficient 1
    expected[k - 1] = 11.0  # f_rest_{K-1} is green coefficient 1
    expected[1] = 13.0  # f_rest_1 is red coefficient 2
    expected[3 * (k - 1) - 1] = 17.0  # the last f_rest is blue coefficient K-1
    np.testing.assert_array_equal(rest, np.stack([expected, expected]))


def test_f_rest_is_channel_major_on_read_degree1(tmp_path):
    """A degree-1 file whose f_rest_i holds 100 + i: each value's (coefficient, channel), spelled out."""
    p = fx.make_params(2, 1)
    overrides = {f"f_rest_{i}": np.full(2, 100.0 + i, dtype=np.float32) for i in range(9)}
    scene = read_ply(fx.gaussian_ply(tmp_path / "s.ply", p, overrides=overrides))
    expected_rest = [  # sh[:, j, c] for j = 1..3 (rows) and c = R, G, B (columns)
        [100.0, 103.0, 106.0],
        [101.0, 104.0, 107.0],
        [102.0, 105.0, 108.0],
    ]
    assert scene.sh[0, 1:].tolist() == expected_rest
    assert scene.sh[1, 1:].tolist() == expected_rest


@pytest.mark.parametrize("degree", [2, 3])
def test_f_rest_is_channel_major_on_read(tmp_path, degree):
    k = (degree + 1) ** 2
    p = fx.make_params(1, degree)
    overrides = {f"f_rest_{i}": np.full(1, 100.0 + i, dtype=np.float32) for i in range(3 * (k - 1))}
    scene = read_ply(fx.gaussian_ply(tmp_path / "s.ply", p, overrides=overrides))
    assert scene.sh[0, 1, 0] == 100.0  # f_rest_0: red coefficient 1
    assert scene.sh[0, 1, 1] == 100.0 + (k - 1)  # f_rest_{K-1}: green coefficient 1
    assert scene.sh[0, 1, 2] == 100.0 + 2 * (k - 1)  # f_rest_{2(K-1)}: blue coefficient 1
    assert scene.sh[0, k - 1, 2] == 100.0 + 3 * (k - 1) - 1  # the last f_rest: blue coefficient K-1
    assert scene.sh[0, 2, 0] == 101.0


# ---------------------------------------------------------------------------------------------
# files from real writers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_reads_inria_3dgs_file(tmp_path, degree):
    p = fx.make_params(13, degree, seed=degree)
    path = fx.inria_3dgs_ply(tmp_path / "point_cloud.ply", p)
    scene = read_ply(path)
    assert scene.sh_degree == degree
    assert_matches_params(scene, p)
    # Writing it back with normals reproduces the INRIA file byte for byte.
    write_ply(scene, tmp_path / "again.ply")
    assert (tmp_path / "again.ply").read_bytes() == path.read_bytes()


def test_inria_degree3_header_has_45_f_rest(tmp_path):
    path = fx.inria_3dgs_ply(tmp_path / "p.ply", fx.make_params(2, 3))
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert header.count("property float f_rest_") == 45 and "f_rest_44" in header
    assert read_ply(path).sh_degree == 3


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_reads_gsplat_export(tmp_path, degree):
    p = fx.make_params(11, degree, seed=10 + degree)
    path = fx.gsplat_ply(tmp_path / "gsplat.ply", p)
    assert b"property float nx" not in path.read_bytes()
    scene = read_ply(path)
    assert_matches_params(scene, p)
    write_ply(scene, tmp_path / "again.ply", normals=False)
    assert (tmp_path / "again.ply").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_reads_nerfstudio_export(tmp_path, degree):
    p = fx.make_params(8, degree, seed=20 + degree)
    path = fx.nerfstudio_ply(tmp_path / "splat.ply", p)
    assert b"comment Generated by Nerstudio 1.1.5\ncomment Vertical Axis: z\n" in path.read_bytes()
    assert_matches_params(read_ply(path), p)


def test_reads_nerfstudio_rgb_color_mode(tmp_path):
    """``ns-export gaussian-splat --ply-color-mode rgb`` writes uchar red/green/blue and no f_dc."""
    p = fx.make_params(10, 2, seed=3)
    p.sh[0, 0] = [10.0, -10.0, 0.0]  # clamps to 255, 0 and 127
    path = fx.nerfstudio_ply(tmp_path / "splat.ply", p, color_mode="rgb")
    assert b"property uchar red" in path.read_bytes() and b"f_dc_0" not in path.read_bytes()
    scene = read_ply(path)
    assert scene.sh_degree == 0
    colours = fx.nerfstudio_rgb_bytes(p)
    assert colours[0].tolist() == [255, 0, 127]
    torch.testing.assert_close(scene.rgb, torch.from_numpy(colours / 255.0).float())
    np.testing.assert_array_equal(scene.means.numpy(), p.means)
    np.testing.assert_array_equal(scene.opacity_logits.numpy(), p.opacity)
    np.testing.assert_array_equal(scene.log_scales.numpy(), p.log_scales)
    np.testing.assert_array_equal(scene.quats.numpy(), p.quats)


def test_rgb_colours_are_ignored_when_f_dc_present(tmp_path):
    p = fx.make_params(5, 1)
    extra = {c: ("uchar", np.full(5, 200, dtype=np.uint8)) for c in ("red", "green", "blue")}
    extra["filter_3D"] = ("float", np.full(5, 0.25, dtype=np.float32))  # Mip-Splatting's extra column
    assert_matches_params(read_ply(fx.gaussian_ply(tmp_path / "s.ply", p, extra=extra)), p)


def test_compressed_ply_is_handed_to_its_reader(tmp_path):
    """read_ply reads a compressed .ply through adlift.io.compressed_ply (tests/test_web_formats.py)."""
    scene = read_ply(fx.gsplat_compressed_ply(tmp_path / "compressed.ply"))
    assert scene.num_gaussians == 3 and scene.sh_degree == 1


# ---------------------------------------------------------------------------------------------
# layout variations
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
@pytest.mark.parametrize("degree", [0, 3])
def test_reads_every_format(tmp_path, fmt, degree):
    p = fx.make_params(6, degree, seed=7)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt=fmt)
    assert f"format {fmt} 1.0".encode() in path.read_bytes()
    assert_matches_params(read_ply(path), p)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "ascii"])
@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_reads_crlf_and_cr_headers(tmp_path, fmt, newline):
    p = fx.make_params(4, 1, seed=8)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt=fmt, newline=newline, data_newline="\n")
    assert f"end_header{newline}".encode() in path.read_bytes()
    assert_matches_params(read_ply(path), p)


def test_reads_ascii_with_crlf_rows_and_without_final_newline(tmp_path):
    p = fx.make_params(3, 1, seed=9)
    crlf = fx.gaussian_ply(tmp_path / "crlf.ply", p, fmt="ascii", newline="\r\n", data_newline="\r\n")
    assert_matches_params(read_ply(crlf), p)
    bare = fx.gaussian_ply(tmp_path / "bare.ply", p, fmt="ascii", trailing_newline=False)
    assert not bare.read_bytes().endswith(b"\n")
    assert_matches_params(read_ply(bare), p)


def test_reads_shuffled_property_order(tmp_path):
    p = fx.make_params(7, 2, seed=11)
    names = list(fx.gaussian_columns(p, normals=True))
    order = [names[i] for i in np.random.default_rng(0).permutation(len(names))]
    assert order != names
    assert_matches_params(read_ply(fx.gaussian_ply(tmp_path / "s.ply", p, order=order)), p)
    assert_matches_params(read_ply(fx.gaussian_ply(tmp_path / "a.ply", p, order=order, fmt="ascii")), p)


def test_reads_extra_properties_elements_comments(tmp_path):
    p = fx.make_params(6, 1, seed=12)
    extra = {
        "red": ("uchar", np.arange(6, dtype=np.uint8)),
        "green": ("uchar", np.arange(6, dtype=np.uint8)),
        "blue": ("uchar", np.arange(6, dtype=np.uint8)),
        "filter_3D": ("float", np.linspace(0, 1, 6, dtype=np.float32)),
        "semantic_id": ("int", np.arange(6, dtype=np.int32) - 3),
        "weight": ("double", np.linspace(0, 2, 6)),
    }
    before = [fx.Element("camera", [("fx", "float"), ("fy", "float")], [[500.0, 500.0]])]
    for fmt in ("binary_little_endian", "ascii"):
        path = fx.gaussian_ply(
            tmp_path / f"{fmt}.ply", p, fmt=fmt, extra=extra, before=before, after=[fx.face_element(3)],
            comments=["Vertical Axis: z", "generated by a test"],
        )
        scene = read_ply(path)
        assert_matches_params(scene, p)


def test_reads_file_without_normals(tmp_path):
    p = fx.make_params(5, 3, seed=13)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, normals=False)
    assert b" nx\n" not in path.read_bytes()
    assert_matches_params(read_ply(path), p)


def test_reads_double_properties(tmp_path):
    p = fx.make_params(5, 1, seed=14, dtype=np.float64)
    p.means[0, 0] = 1.0 + 2**-40  # not representable in float32
    types = {name: "double" for name in fx.gaussian_columns(p, normals=True)}
    for fmt in ("binary_little_endian", "ascii"):
        path = fx.gaussian_ply(tmp_path / f"{fmt}.ply", p, types=types, fmt=fmt)
        exact = read_ply(path, dtype=torch.float64)
        assert exact.dtype == torch.float64
        assert_matches_params(exact, p)  # full double precision kept
        single = read_ply(path)
        assert single.dtype == torch.float32
        np.testing.assert_array_equal(single.means.numpy(), p.means.astype(np.float32))
        np.testing.assert_array_equal(single.sh.numpy(), p.sh.astype(np.float32))
        assert float(single.means[0, 0]) == 1.0


def test_reads_mixed_numeric_types(tmp_path):
    p = fx.make_params(4, 0)
    p.means[:] = np.array([[1, -2, 3], [4, 5, -6], [0, 0, 0], [70, 80, 90]], dtype=np.float32)
    p.quats[:] = np.array([[1, 0, 0, 0]] * 4, dtype=np.float32)
    types = {"x": "int", "y": "short", "z": "char", "rot_0": "uchar", "rot_1": "ushort", "rot_2": "uint",
             "rot_3": "int8", "opacity": "double"}  # fmt: skip
    for fmt in ("binary_big_endian", "ascii"):
        scene = read_ply(fx.gaussian_ply(tmp_path / f"{fmt}.ply", p, types=types, fmt=fmt))
        assert_matches_params(scene, p)


def test_read_dtypes(tmp_path):
    p = fx.make_params(3, 1)
    path = fx.gaussian_ply(tmp_path / "s.ply", p)
    wide = read_ply(path, dtype=torch.float64)
    assert wide.dtype == torch.float64
    np.testing.assert_array_equal(wide.sh.numpy(), p.sh.astype(np.float64))
    half = read_ply(path, dtype=torch.float16)
    assert half.dtype == torch.float16
    np.testing.assert_array_equal(half.means.numpy(), p.means.astype(np.float16))
    with pytest.raises(SceneError, match="floating-point torch dtype"):
        read_ply(path, dtype=torch.int32)


def test_read_half_precision_overflow_is_an_error(tmp_path):
    p = fx.make_params(3, 0)
    p.means[1, 2] = 1e6  # beyond float16
    path = fx.gaussian_ply(tmp_path / "s.ply", p)
    assert read_ply(path).means[1, 2] == 1e6
    err = read_error(path, dtype=torch.float16)
    assert "means" in err.problem and "float16" in err.problem


def test_read_accepts_str_path(tmp_path):
    p = fx.make_params(2, 0)
    assert_matches_params(read_ply(str(fx.gaussian_ply(tmp_path / "s.ply", p))), p)


# ---------------------------------------------------------------------------------------------
# bad input: one-line FileFormatError naming the file and the problem
# ---------------------------------------------------------------------------------------------
def test_not_a_ply_random_bytes(tmp_path):
    path = fx.write_file(tmp_path / "random.ply", np.random.default_rng(0).bytes(4096))
    assert "not a PLY file" in read_error(path).problem


def test_not_a_ply_text_file(tmp_path):
    path = fx.write_file(tmp_path / "notes.ply", b"hello,\nthis is a text file\nend_header\n")
    assert "not a PLY file" in read_error(path).problem


def test_not_a_ply_other_3d_format(tmp_path):
    path = fx.write_file(tmp_path / "mesh.ply", b"solid cube\nfacet normal 0 0 1\nendsolid\n")  # STL
    assert "not a PLY file" in read_error(path).problem


def test_empty_file(tmp_path):
    path = fx.write_file(tmp_path / "empty.ply", b"")
    assert "empty file" in read_error(path).problem


def test_missing_file(tmp_path):
    assert read_error(tmp_path / "nope.ply").problem == "no such file"
    assert read_error(tmp_path / "nodir" / "nope.ply").problem == "no such file"


def test_path_below_a_regular_file(tmp_path):
    fx.write_file(tmp_path / "file", b"x")
    assert read_error(tmp_path / "file" / "scene.ply").problem == "no such file"


def test_directory(tmp_path):
    (tmp_path / "scene.ply").mkdir()
    assert "is a directory" in read_error(tmp_path / "scene.ply").problem


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_unreadable_file():
    # /proc/self/mem exists but reading it from offset 0 fails with EIO: an OSError while reading.
    assert "cannot read the file" in read_error("/proc/self/mem").problem


def _header(*lines: str) -> bytes:
    return ("\n".join(["ply", *lines, "end_header"]) + "\n").encode()


VALID_PROPS = [f"property float {name}" for name in fx.gaussian_columns(fx.make_params(1, 0), normals=False)]


def _vertex_header(*extra: str) -> bytes:
    """An ASCII header with zero vertices and every required property, plus ``extra`` lines."""
    return _header("format ascii 1.0", "element vertex 0", *VALID_PROPS, *extra)


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n", "no 'end_header'"),
        (b"ply", "not a PLY file"),
        (b"ply \nformat ascii 1.0\nend_header\n", "not a PLY file"),
        (b"PLY\nformat ascii 1.0\nend_header\n", "not a PLY file"),
        (_header("element vertex 1", *VALID_PROPS), "no 'format' line"),
        (_header("format binary_middle_endian 1.0", "element vertex 0", *VALID_PROPS), "unsupported PLY format"),
        (_header("format ascii 2.0", "element vertex 0", *VALID_PROPS), "unsupported PLY version '2.0'"),
        (_header("format ascii 1.0", "format ascii 1.0", "element vertex 0", *VALID_PROPS), "second 'format'"),
        (_header("format ascii 1.0", "element vertex -1", *VALID_PROPS), "malformed PLY element line 3"),
        (_header("format ascii 1.0", "element vertex 1.5", *VALID_PROPS), "non-negative integer COUNT"),
        (_header("format ascii 1.0", "element vertex many", *VALID_PROPS), "malformed PLY element line"),
        (_header("format ascii 1.0", "element vertex", *VALID_PROPS), "malformed PLY element line"),
        (_header("format ascii 1.0", "", "element vertex 0", *VALID_PROPS), "empty line 3"),
        (_header("format ascii 1.0", "element vertex 0", "texture foo", *VALID_PROPS), "unknown PLY header keyword"),
        (_header("format ascii 1.0", "property float x", "element vertex 0"), "property before any element"),
        (_header("format ascii 1.0", "element vertex 0", "property float", *VALID_PROPS), "malformed PLY property"),
        (_vertex_header("property float x"), "declares property 'x' twice"),
        (_vertex_header("element vertex 0"), "element 'vertex' twice"),
        ("ply\nformat ascii 1.0\ncomment caf\u00e9\nend_header\n".encode("utf-8"), "non-ASCII"),
        (_vertex_header("property list float int idx"), "integer length type"),
        (_vertex_header("property list uchar string idx"), "numeric item type"),
        (_vertex_header("property list uchar int"), "malformed PLY property line"),
        (b"ply\nformat ascii 1.0\nelement vertex 0\n" + b"comment " + b"x" * (1 << 20), "longer than"),
    ],
)
def test_malformed_headers(tmp_path, content, expected):
    path = fx.write_file(tmp_path / "bad.ply", content)
    assert expected in read_error(path).problem


def test_end_header_inside_a_comment_is_not_the_end(tmp_path):
    p = fx.make_params(2, 0)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, comments=["see end_header", "end_header is below"])
    assert_matches_params(read_ply(path), p)


def test_no_vertex_element(tmp_path):
    data = fx.ply_bytes([fx.face_element(2)])
    err = read_error(fx.write_file(tmp_path / "faces.ply", data))
    assert "no 'vertex' element (elements: face)" in err.problem
    err = read_error(fx.write_file(tmp_path / "nothing.ply", _header("format ascii 1.0")))
    assert "no 'vertex' element (elements: none)" in err.problem


@pytest.mark.parametrize("missing", fx.gaussian_columns(fx.make_params(1, 0), normals=False).keys())
def test_missing_required_property(tmp_path, missing):
    path = fx.gaussian_ply(tmp_path / "s.ply", fx.make_params(3, 1), drop=[missing])
    err = read_error(path)
    assert err.problem == f"not a 3D Gaussian Splatting .ply: vertex properties missing: {missing}"


def test_missing_several_properties_lists_all(tmp_path):
    path = fx.gaussian_ply(tmp_path / "s.ply", fx.make_params(3, 0), drop=["y", "opacity", "rot_3"])
    assert read_error(path).problem.endswith("vertex properties missing: y, opacity, rot_3")


def test_point_cloud_is_not_a_gaussian_splat(tmp_path):
    """A COLMAP-style coloured point cloud (x y z red green blue): clear message, not a crash."""
    el = fx.Element("vertex", [("x", "float"), ("y", "float"), ("z", "float"), ("red", "uchar"),
                               ("green", "uchar"), ("blue", "uchar")], [[0.0, 1.0, 2.0, 255, 0, 0]])  # fmt: skip
    err = read_error(fx.write_file(tmp_path / "points3D.ply", fx.ply_bytes([el])))
    assert "missing: opacity, scale_0, scale_1, scale_2, rot_0, rot_1, rot_2, rot_3" in err.problem


@pytest.mark.parametrize("count", [3, 6, 12, 30, 48])
def test_f_rest_count_that_is_no_sh_degree(tmp_path, count):
    p = fx.make_params(2, 0)
    extra = {f"f_rest_{i}": ("float", np.zeros(2, dtype=np.float32)) for i in range(count)}
    err = read_error(fx.gaussian_ply(tmp_path / "s.ply", p, extra=extra))
    assert f"{count} f_rest_* properties is no SH degree" in err.problem


def test_f_rest_numbering_gap(tmp_path):
    p = fx.make_params(2, 0)
    extra = {f"f_rest_{i}": ("float", np.zeros(2, dtype=np.float32)) for i in [*range(8), 9]}
    assert "not numbered 0..8 without gaps" in read_error(fx.gaussian_ply(tmp_path / "s.ply", p, extra=extra)).problem


def test_f_rest_with_leading_zero_is_not_a_coefficient(tmp_path):
    p = fx.make_params(2, 0)
    extra = {name: ("float", np.zeros(2, dtype=np.float32)) for name in
             ["f_rest_0", "f_rest_01", *(f"f_rest_{i}" for i in range(2, 9))]}  # fmt: skip
    assert "not numbered 0..7 without gaps" in read_error(fx.gaussian_ply(tmp_path / "s.ply", p, extra=extra)).problem


@pytest.mark.parametrize("prop", ["x", "opacity", "f_dc_2", "scale_1", "rot_0"])
def test_string_property_type(tmp_path, prop):
    path = fx.write_file(tmp_path / "s.ply", _header("format ascii 1.0", "element vertex 0",
                                                     *[p for p in VALID_PROPS if not p.endswith(" " + prop)],
                                                     f"property string {prop}"))  # fmt: skip
    err = read_error(path)
    assert f"property '{prop}' of element 'vertex' has type 'string'" in err.problem


@pytest.mark.parametrize("prop", ["x", "f_rest_4", "rot_3"])
def test_list_property_for_a_required_field(tmp_path, prop):
    props = [p for p in VALID_PROPS if not p.endswith(" " + prop)]
    props += [f"property float f_rest_{i}" for i in range(9) if f"f_rest_{i}" != prop]
    props.append(f"property list uchar float {prop}")
    path = fx.write_file(tmp_path / "s.ply", _header("format binary_little_endian 1.0", "element vertex 0", *props))
    assert f"vertex property '{prop}' is a list" in read_error(path).problem


def test_unused_list_property_in_vertex_is_fine(tmp_path):
    p = fx.make_params(3, 0)
    el = fx.vertex_element(fx.gaussian_columns(p, normals=True))
    el.properties.append(("neighbours", "list uchar int"))
    for i, row in enumerate(el.rows):
        row.append(list(range(i)))
    for fmt in ("binary_little_endian", "ascii"):
        path = fx.write_file(tmp_path / f"{fmt}.ply", fx.ply_bytes([el], fmt=fmt))
        assert_matches_params(read_ply(path), p)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
@pytest.mark.parametrize("prop", ["x", "z", "f_dc_1", "f_rest_5", "f_rest_44", "opacity", "scale_2", "rot_0", "rot_3"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values(tmp_path, fmt, prop, value):
    p = fx.make_params(6, 3)
    column = fx.gaussian_columns(p, normals=True)[prop].copy()
    column[[3, 5]] = value
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt=fmt, overrides={prop: column})
    err = read_error(path)
    assert err.problem == f"vertex 3 has a NaN/Inf value in property '{prop}' (2 vertices have one)"


def test_non_finite_in_unused_property_is_fine(tmp_path):
    p = fx.make_params(3, 0)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, overrides={"nx": np.full(3, np.nan, dtype=np.float32)})
    assert_matches_params(read_ply(path), p)


def test_double_beyond_float32_range(tmp_path):
    p = fx.make_params(3, 0, dtype=np.float64)
    p.log_scales[2, 1] = 1e300
    types = {name: "double" for name in fx.gaussian_columns(p, normals=True)}
    path = fx.gaussian_ply(tmp_path / "s.ply", p, types=types)
    assert "vertex 2 has a value in property 'scale_1' beyond the float32 range" in read_error(path).problem
    assert float(read_ply(path, dtype=torch.float64).log_scales[2, 1]) == 1e300


def test_ascii_value_beyond_float32_range(tmp_path):
    p = fx.make_params(2, 0)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt="ascii")
    text = path.read_bytes().replace(repr(float(p.means[1, 0])).encode(), b"1e39", 1)
    fx.write_file(path, text)
    assert "vertex 1 has a NaN/Inf value in property 'x'" in read_error(path).problem


@pytest.mark.parametrize("cut", [1, 5, 100])
def test_binary_truncated_mid_row(tmp_path, cut):
    p = fx.make_params(4, 1)
    path = fx.gaussian_ply(tmp_path / "s.ply", p)
    fx.write_file(path, path.read_bytes()[:-cut])
    err = read_error(path)
    assert "truncated data" in err.problem and "vertex count (4)" in err.problem


def test_binary_vertex_count_larger_than_data(tmp_path):
    p = fx.make_params(4, 1)
    err = read_error(fx.gaussian_ply(tmp_path / "s.ply", p, count=5))
    row = 4 * (3 + 3 + 3 + 9 + 1 + 3 + 4)
    assert f"vertex count (5) needs at least {5 * row:,} bytes but the file holds only {4 * row:,}" in err.problem


def test_ascii_with_fewer_rows(tmp_path):
    p = fx.make_params(20, 1)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt="ascii", count=21)
    assert path.read_bytes().count(b"\n") == 4 + len(fx.gaussian_columns(p, normals=True)) + 20
    err = read_error(path)
    assert err.problem == "truncated data: the file ends at vertex row 20 of the 21 the header declares"


def test_ascii_cut_mid_row(tmp_path):
    p = fx.make_params(5, 0)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt="ascii")
    data = path.read_bytes()
    fx.write_file(path, data[: data.rindex(b" ")])  # the last row loses its last value
    assert read_error(path).problem == "vertex row 4 ends before property 'rot_3' (too few values)"


@pytest.mark.parametrize(
    "row,edit,expected",
    [
        (1, lambda r: r.replace(b" ", b" abc ", 1), "vertex row 1: the value of property 'y' is not a valid float"),
        (2, lambda r: r + b" 1.0", "vertex row 2 has more values than the header declares"),
        (0, lambda r: r.split(b" ", 1)[1], "vertex row 0 ends before property 'rot_3' (too few values)"),
        (1, lambda r: b"", "vertex row 1 ends before property 'x' (too few values)"),
        (2, lambda r: r.replace(b" ", b",", 1), "vertex row 2: the value of property 'x' is not a valid float"),
        (0, lambda r: r.replace(b" ", b" 0x1f ", 1), "vertex row 0: the value of property 'y' is not a valid float"),
        (0, lambda r: r.replace(b" ", b" \xc3\xa9 ", 1), "vertex row 0: the value of property 'y' is not a valid float"),
    ],
)
def test_ascii_malformed_rows(tmp_path, row, edit, expected):
    p = fx.make_params(3, 0)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt="ascii")
    header, body = path.read_bytes().split(b"end_header\n")
    rows = body.split(b"\n")
    rows[row] = edit(rows[row])
    fx.write_file(path, header + b"end_header\n" + b"\n".join(rows))
    assert expected in read_error(path).problem


def test_ascii_integer_out_of_range(tmp_path):
    p = fx.make_params(2, 0)
    extra = {"red": ("uchar", np.array([1, 2], dtype=np.uint8))}
    order = ["red", *fx.gaussian_columns(p, normals=True)]
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt="ascii", extra=extra, order=order)
    header, body = path.read_bytes().split(b"end_header\n")
    assert body.startswith(b"1 ")
    fx.write_file(path, header + b"end_header\n300" + body[1:])
    if NUMPY_WRAPS_ASCII_INTEGERS:  # np.uint8("300") == 44 there, silently; 3DGS properties are floats
        assert read_ply(path).num_gaussians == 2
    else:
        problem = read_error(path).problem
        assert problem == "element 'vertex': a value is out of range of its type (Python integer 300 out of bounds for uint8)"
    fx.write_file(path, header + b"end_header\n1.5" + body[1:])
    assert read_error(path).problem == "vertex row 0: the value of property 'red' is not a valid uchar"


def _assert_fast_and_small(path, budget_s: float = 2.0, budget_bytes: int = 16 << 20) -> FileFormatError:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with deadline(30):
            err = read_error(path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < budget_s, f"took {elapsed:.2f} s"
    assert peak < budget_bytes, f"peak traced memory {peak / 2**20:.1f} MiB"
    return err


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_huge_vertex_count_does_not_allocate(tmp_path, fmt):
    p = fx.make_params(3, 3)
    path = fx.gaussian_ply(tmp_path / "s.ply", p, fmt=fmt, count=10**12)
    err = _assert_fast_and_small(path)
    assert "truncated data" in err.problem and "1,000,000,000,000" in err.problem


def test_huge_other_element_does_not_allocate(tmp_path):
    p = fx.make_params(3, 0)
    faces = fx.face_element(1)
    faces.count = 10**12
    err = _assert_fast_and_small(fx.gaussian_ply(tmp_path / "s.ply", p, after=[faces]))
    assert "'face' count (1,000,000,000,000)" in err.problem


def test_huge_element_without_properties_does_not_hang(tmp_path):
    p = fx.make_params(3, 0)
    junk = fx.Element("junk", [], [], count=10**12)
    err = _assert_fast_and_small(fx.gaussian_ply(tmp_path / "s.ply", p, before=[junk]))
    assert "element 'junk' has 1,000,000,000,000 rows but no properties" in err.problem


def test_huge_binary_list_length_before_vertices_fails_cleanly(tmp_path):
    p = fx.make_params(2, 0)
    faces = fx.face_element(1)
    faces.properties = [("vertex_indices", "list uint int")]
    path = fx.gaussian_ply(tmp_path / "s.ply", p, before=[faces])
    data = bytearray(path.read_bytes())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    assert data[start : start + 4] == (3).to_bytes(4, "little")  # the face's list length prefix
    data[start : start + 4] = (2**32 - 1).to_bytes(4, "little")
    fx.write_file(path, bytes(data))
    err = _assert_fast_and_small(path)
    assert err.problem == "truncated data: the file ends at 'face' row 0 of the 1 the header declares"


def test_garbage_after_the_vertices_is_never_parsed(tmp_path):
    """A list element after the vertices with a 2^32-1 length prefix: the Gaussians still load,
    fast and without allocating for the bogus list (plyfile would ask for 16 GiB here)."""
    p = fx.make_params(2, 0)
    faces = fx.face_element(1)
    faces.properties = [("vertex_indices", "list uint int")]
    path = fx.gaussian_ply(tmp_path / "s.ply", p, after=[faces])
    data = bytearray(path.read_bytes())
    assert data[-16:-12] == (3).to_bytes(4, "little")
    data[-16:-12] = (2**32 - 1).to_bytes(4, "little")
    fx.write_file(path, bytes(data))
    tracemalloc.start()
    try:
        scene = read_ply(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_matches_params(scene, p)
    assert peak < 16 << 20


def test_lists_before_and_inside_the_vertex_element(tmp_path):
    """The slow path (variable-length rows before or in the vertices) reads the same values."""
    p = fx.make_params(5, 1, seed=4)
    el = fx.vertex_element(fx.gaussian_columns(p, normals=True))
    el.properties.insert(3, ("neighbours", "list ushort double"))
    for i, row in enumerate(el.rows):
        row.insert(3, [float(j) for j in range(i)])
    for fmt in ("binary_little_endian", "binary_big_endian", "ascii"):
        path = fx.write_file(tmp_path / f"{fmt}.ply", fx.ply_bytes([fx.face_element(3), el], fmt=fmt))
        assert_matches_params(read_ply(path), p)
        if fmt == "ascii":  # the last row loses its last value
            cut = fx.write_file(tmp_path / "cut.ply", path.read_bytes().rstrip(b"\n").rsplit(b" ", 1)[0])
            assert read_error(cut).problem == "vertex row 4 ends before property 'rot_3' (too few values)"
        else:  # the last row loses its last bytes
            cut = fx.write_file(tmp_path / "cut.ply", path.read_bytes()[:-3])
            expected = "truncated data: the file ends at vertex row 4 of the 5 the header declares"
            assert read_error(cut).problem == expected


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fmt", ["binary_little_endian", "ascii"])
def test_fuzzed_files_load_or_raise_file_format_error(tmp_path, seed, fmt):
    """Random byte edits of a valid file: every outcome is a valid scene or a clean FileFormatError."""
    p = fx.make_params(4, 1, seed=seed)
    el = fx.vertex_element(fx.gaussian_columns(p, normals=True))
    if seed % 2:  # variable-length rows take the slow paths
        el.properties.insert(2, ("neighbours", "list uchar int"))
        for i, row in enumerate(el.rows):
            row.insert(2, list(range(i)))
    original = fx.ply_bytes([fx.face_element(2), el], fmt=fmt)
    data_start = original.index(b"end_header\n") + len(b"end_header\n")
    rng = np.random.default_rng(seed)
    alphabet = b"0123456789 -.e\nabcnfiply_" if fmt == "ascii" else bytes(range(256))
    path = tmp_path / "fuzz.ply"
    outcomes = set()
    for _ in range(60):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            action = rng.integers(0, 3)
            start = 0 if rng.random() < 0.2 else data_start  # mostly edit the data, sometimes the header
            i = int(rng.integers(start, len(data)))
            if action == 0:
                data[i] = alphabet[int(rng.integers(0, len(alphabet)))]
            elif action == 1:
                del data[i : i + int(rng.integers(1, 8))]
            else:
                data[i:i] = bytes(alphabet[int(j)] for j in rng.integers(0, len(alphabet), int(rng.integers(1, 4))))
        fx.write_file(path, bytes(data))
        try:
            with deadline(20):
                scene = read_ply(path)
        except FileFormatError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            outcomes.add("error")
        else:
            assert bool(all(torch.isfinite(t).all() for t in scene.tensors().values()))
            outcomes.add("loaded")
    assert outcomes == {"error", "loaded"}  # the edits reach both outcomes


# ---------------------------------------------------------------------------------------------
# writing: validation and atomicity
# ---------------------------------------------------------------------------------------------
class _Boom(RuntimeError):
    """Raised by the monkeypatched writer to simulate a crash mid-write."""


def _failing_write(exc: Exception):
    original = plyfile.PlyData.write

    def write(self, stream):
        stream.write(b"ply\nformat binary_little_endian 1.0\npartial")  # something reaches the disk
        stream.flush()
        raise exc

    return original, write


@pytest.mark.parametrize("existing", [False, True])
def test_write_is_atomic_on_error(tmp_path, monkeypatch, existing):
    target = tmp_path / "out" / "scene.ply"
    if existing:
        write_ply(params_to_scene(fx.make_params(3, 0)), target)
    before = target.read_bytes() if existing else None
    _, failing = _failing_write(_Boom("disk on fire"))
    monkeypatch.setattr(plyfile.PlyData, "write", failing)
    with pytest.raises(_Boom):
        write_ply(params_to_scene(fx.make_params(5, 2)), target)
    assert sorted(os.listdir(target.parent)) == (["scene.ply"] if existing else [])
    if existing:
        assert target.read_bytes() == before
        assert read_ply(target).num_gaussians == 3


def test_write_os_error_is_an_adlift_error_and_atomic(tmp_path, monkeypatch):
    target = tmp_path / "scene.ply"
    _, failing = _failing_write(OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(plyfile.PlyData, "write", failing)
    with pytest.raises(AdLiftError) as info:
        write_ply(params_to_scene(fx.make_params(5, 2)), target)
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert os.listdir(tmp_path) == []


def test_write_creates_parent_directories(tmp_path):
    target = tmp_path / "a" / "b" / "scene.ply"
    write_ply(params_to_scene(fx.make_params(2, 1)), target)
    assert read_ply(target).num_gaussians == 2


def test_write_to_a_directory_is_refused(tmp_path):
    (tmp_path / "scene.ply").mkdir()
    with pytest.raises(AdLiftError, match="is a directory"):
        write_ply(params_to_scene(fx.make_params(2, 1)), tmp_path / "scene.ply")
    assert os.listdir(tmp_path) == ["scene.ply"] and os.listdir(tmp_path / "scene.ply") == []


@pytest.mark.parametrize("name", FIELDS)
def test_write_refuses_non_finite_scene(tmp_path, name):
    scene = params_to_scene(fx.make_params(3, 1))
    getattr(scene, name).view(3, -1)[1, 0] = math.nan
    target = tmp_path / "scene.ply"
    with pytest.raises(SceneError) as info:
        write_ply(scene, target)
    assert str(info.value).startswith(f"cannot write {target}: GaussianScene.{name} has non-finite")
    assert os.listdir(tmp_path) == []


def test_write_refuses_values_beyond_float32(tmp_path):
    scene = params_to_scene(fx.make_params(3, 1), dtype=torch.float64)
    scene.log_scales[2, 2] = 1e300
    with pytest.raises(SceneError, match="beyond the float32 range"):
        write_ply(scene, tmp_path / "scene.ply")
    assert os.listdir(tmp_path) == []


def test_write_float64_scene_rounds_to_float32(tmp_path):
    p = fx.make_params(4, 2, seed=3, dtype=np.float64)
    write_ply(params_to_scene(p, dtype=torch.float64), tmp_path / "s.ply")
    back = read_ply(tmp_path / "s.ply")
    np.testing.assert_array_equal(back.sh.numpy(), p.sh.astype(np.float32))
    np.testing.assert_array_equal(back.quats.numpy(), p.quats.astype(np.float32))


def test_write_detaches_scenes_with_grad(tmp_path):
    scene = params_to_scene(fx.make_params(3, 1))
    for t in scene.tensors().values():
        t.requires_grad_()
    write_ply(scene, tmp_path / "s.ply")
    assert_bit_equal(read_ply(tmp_path / "s.ply"), scene.detach())


@pytest.mark.parametrize("comment", ["two\nlines", "carriage\rreturn", "caf\u00e9"])
def test_write_rejects_bad_comments(tmp_path, comment):
    with pytest.raises(AdLiftError, match="PLY comments must be one line of ASCII text"):
        write_ply(params_to_scene(fx.make_params(1, 0)), tmp_path / "s.ply", comments=[comment])
    assert os.listdir(tmp_path) == []


def test_write_single_string_comment(tmp_path):
    write_ply(params_to_scene(fx.make_params(1, 0)), tmp_path / "s.ply", comments="protected by adlift")
    assert plyfile.PlyData.read(str(tmp_path / "s.ply")).comments == ["protected by adlift"]


def test_read_ply_error_is_reported_by_path_type(tmp_path):
    """The error carries the path and the bare problem for callers that format their own message."""
    path = fx.write_file(tmp_path / "e.ply", b"")
    err = read_error(path)
    assert err.path == str(path) and err.problem == "empty file, expected a PLY file"
    assert str(err) == f"{path}: empty file, expected a PLY file"


#: numpy < 2 (the nerfstudio venv) parses an out-of-range ASCII integer by wrapping it, without an error.
NUMPY_WRAPS_ASCII_INTEGERS = int(np.__version__.split(".")[0]) < 2

BAD_LIST = "list property 'neighbours' has a length that is not a count or items that are not numbers"


@pytest.mark.parametrize(
    "token,expected",
    [
        (b"nan", f"vertex row 1: {BAD_LIST}"),
        (b"-1", "element 'vertex': a value is out of range of its type (Python integer -1 out of bounds for uint8)"),
        (b"1.5", f"vertex row 1: {BAD_LIST}"),
        (b"99", f"vertex row 1: {BAD_LIST}"),  # the row's floats are taken as its int items
        (b"0", "vertex row 1 has more values than the header declares"),
    ],
)
def test_ascii_bad_list_lengths(tmp_path, token, expected):
    if NUMPY_WRAPS_ASCII_INTEGERS and token in (b"-1", b"99"):
        # numpy < 2: -1 wraps to 255 and "99" parses; either way the row ends inside the list.
        expected = "vertex row 1 ends inside list property 'neighbours'"
    p = fx.make_params(3, 0)
    el = fx.vertex_element(fx.gaussian_columns(p, normals=False))
    el.properties.insert(0, ("neighbours", "list uchar int"))
    for row in el.rows:
        row.insert(0, [7])
    data = fx.ply_bytes([el], fmt="ascii")
    header, body = data.split(b"end_header\n")
    rows = body.split(b"\n")
    assert rows[1].startswith(b"1 7 ")
    rows[1] = token + rows[1][1:]
    path = fx.write_file(tmp_path / "s.ply", header + b"end_header\n" + b"\n".join(rows))
    assert read_error(path).problem == expected
