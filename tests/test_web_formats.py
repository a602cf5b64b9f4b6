"""The web 3DGS formats (.compressed.ply, .spz, .splat, SOG): round trips within each format's
quantisation, files of an independent writer (PlayCanvas splat-transform, when installed),
detection by extension and content, and one-line errors for bad files.

splat-transform runs with node from ``tools/splat-transform`` (``make splat-transform``); without
node or that install, the tests that need it skip and say so (under CI they fail instead).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from adlift import AdLiftError, FileFormatError, GaussianScene
from adlift.io import detect_scene_format, read_scene, write_scene
from adlift.io import compressed_ply, sog, spz, web_codec
from adlift.io.formats import SCENE_FORMATS, scene_options
from adlift.scene import SH_C0
from tests import ply_fixtures as fx
from tests.helpers import REPO, run_cli, web_scene

pytestmark = pytest.mark.usefixtures("single_thread")

SPLAT_TRANSFORM = REPO / "tools" / "splat-transform" / "node_modules" / "@playcanvas" / "splat-transform" / "bin" / "cli.mjs"
WEB = ["compressed-ply", "spz", "splat", "sog"]
NAMES = {"compressed-ply": "s.compressed.ply", "spz": "s.spz", "splat": "s.splat", "sog": "s.sog"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def nearest(decoded: GaussianScene, reference: GaussianScene) -> GaussianScene:
    """``decoded`` in ``reference``'s order (SOG reorders): the Gaussian nearest to each mean."""
    d = torch.cdist(reference.means.double(), decoded.means.double())
    return decoded.subset(d.argmin(dim=1))


def errors(got: GaussianScene, want: GaussianScene) -> dict[str, float]:
    """Max abs error per attribute; rotation as the angle between unit quaternions, in degrees."""
    dot = (got.normalized_quats.double() * want.normalized_quats.double()).sum(1).abs().clamp(max=1)
    k = min(got.sh.shape[1], want.sh.shape[1])
    return {
        "means": float((got.means - want.means).abs().max()),
        "log_scales": float((got.log_scales - want.log_scales).abs().max()),
        "rotation_deg": float(torch.rad2deg(2 * torch.acos(dot)).max()),
        "opacity": float((got.opacities - want.opacities).abs().max()),
        "colour": float((SH_C0 * (got.sh[:, 0] - want.sh[:, 0])).abs().max()),
        "sh_rest": float((got.sh[:, 1:k] - want.sh[:, 1:k]).abs().max()) if k > 1 else 0.0,
    }


def assert_within(got: dict[str, float], limits: dict[str, float]) -> None:
    over = {k: (round(got[k], 6), v) for k, v in limits.items() if not got[k] <= v}
    assert not over, f"errors over their limits (error, limit): {over}"


def one_line_error(path, call=read_scene, **kw) -> str:
    """``call(path)`` raises a one-line FileFormatError naming ``path``; returns its problem."""
    with pytest.raises(FileFormatError) as info:
        call(path, **kw)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return info.value.problem


def splat_transform_available() -> bool:
    return shutil.which("node") is not None and SPLAT_TRANSFORM.is_file()


needs_splat_transform = pytest.mark.skipif(
    not splat_transform_available() and not os.environ.get("CI"),
    reason="PlayCanvas splat-transform is not installed: `make splat-transform` (needs node >= 18 and npm)",
)


def splat_transform(src: Path, dst: Path, *options: str) -> Path:
    """Convert ``src`` to ``dst`` with splat-transform (format from the names); returns ``dst``."""
    assert splat_transform_available(), "splat-transform must be installed under CI: make splat-transform"
    dst.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["node", str(SPLAT_TRANSFORM), "-q", "-w", *options, str(src), str(dst)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr or done.stdout
    return dst


#: Per-attribute limits of one write + read, for web_scene() (docs/FORMATS.md explains each).
LIMITS = {
    # positions 11/10/11 bits and log-scales 11/10/11 bits inside each 256-Gaussian chunk's range
    # (web_scene spans < 8 units: 8 / 1023 / 2), rotation smallest-three 2+10+10+10 bits, colour
    # and opacity 8 bits, SH rest 8 bits over [-4, 4) (half a step: 4/256).
    "compressed-ply": {"means": 0.004, "log_scales": 0.004, "rotation_deg": 0.3, "opacity": 0.5 / 255 + 1e-6,
                       "colour": 0.5 / 255 + 1e-6, "sh_rest": 4 / 256 + 1e-6},
    # 24-bit fixed point with 12 fractional bits, log-scale in 1/16 steps, smallest-three 32-bit
    # rotations, colour dc * 0.15 * 255 in 8 bits, SH rest 5 bits (degree 1) / 4 bits (2, 3) over [-1, 1).
    "spz": {"means": 2 ** -13 + 1e-6, "log_scales": 1 / 32 + 1e-6, "rotation_deg": 0.3, "opacity": 0.5 / 255 + 1e-6,
            "colour": 0.5 * SH_C0 / (0.15 * 255) + 1e-6, "sh_rest": 0.07},
    # float32 position and scale (log/exp: 1e-5), 8-bit rotation, colour and opacity (gaussforge
    # truncates: up to one step); SH above degree 0 is not stored.
    "splat": {"means": 0.0, "log_scales": 1e-5, "rotation_deg": 1.5, "opacity": 1 / 255 + 1e-6,
              "colour": 1 / 255 + 1e-6, "sh_rest": 0.0},
    # 16-bit log-transformed positions, 256-entry codebooks (scales, colour, SH), 8-bit quaternion
    # components and opacity; SH through a palette (exact here: fewer Gaussians than palette entries).
    "sog": {"means": 0.001, "log_scales": 0.03, "rotation_deg": 1.5, "opacity": 0.5 / 255 + 1e-6,
            "colour": 0.01, "sh_rest": 0.02},
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", [0, 1, 3])
@pytest.mark.parametrize("name", WEB)
def test_round_trip_within_the_formats_quantisation(tmp_path, name, degree):
    scene = web_scene(400 if name != "sog" else 200, degree, seed=degree)
    path = write_scene(scene, tmp_path / NAMES[name])
    assert detect_scene_format(path) == name
    back = read_scene(path)
    assert back.num_gaussians == scene.num_gaussians and back.dtype == torch.float32
    assert back.sh_degree == (0 if name == "splat" else degree)
    if name == "sog":
        back = nearest(back, scene)
    assert_within(errors(back, scene), LIMITS[name])
    assert read_scene(path, dtype=torch.float64).dtype == torch.float64


def test_sog_folder_layout_round_trip(tmp_path):
    scene = web_scene(150, 2)
    meta = write_scene(scene, tmp_path / "scene" / "meta.json")
    names = json.loads(meta.read_text())
    assert sorted(p.name for p in (tmp_path / "scene").iterdir()) == sorted(["meta.json"] + [
        f for key in ("means", "scales", "quats", "sh0", "shN") for f in names[key]["files"]])  # fmt: skip
    assert detect_scene_format(meta) == "sog"
    assert_within(errors(nearest(read_scene(meta), scene), scene), LIMITS["sog"])
    # the same data as one .sog bundle reads the same
    bundle = tmp_path / "same.sog"
    with zipfile.ZipFile(bundle, "w") as z:
        for f in (tmp_path / "scene").iterdir():
            z.write(f, f.name)
    torch.testing.assert_close(read_scene(bundle).means, read_scene(meta).means)


def test_spz_axes_convention(tmp_path, monkeypatch):
    """Default "rub": the file holds (x, -y, -z) like Niantic's spec; "raw" keeps the axes."""
    scene = web_scene(50, 3)
    rub = write_scene(scene, tmp_path / "rub.spz")
    raw = write_scene(scene, tmp_path / "raw.spz", spz_axes="raw")
    assert_within(errors(read_scene(rub), scene), LIMITS["spz"])
    assert_within(errors(read_scene(raw, spz_axes="raw"), scene), LIMITS["spz"])
    flipped = read_scene(rub, spz_axes="raw")  # what a raw-axes reader sees in a spec file
    torch.testing.assert_close(flipped.means, scene.means * torch.tensor([1.0, -1, -1]), atol=2e-4, rtol=0)
    assert_within(errors(web_codec.flip_yz(flipped), scene), LIMITS["spz"])
    monkeypatch.setenv(spz.AXES_ENV, "raw")
    torch.testing.assert_close(read_scene(raw).means, read_scene(raw, spz_axes="raw").means)
    monkeypatch.setenv(spz.AXES_ENV, "up")
    with pytest.raises(AdLiftError, match="ADLIFT_SPZ_AXES"):
        read_scene(raw)
    with pytest.raises(AdLiftError, match="must be one of rub, raw"):
        read_scene(raw, spz_axes="sideways")
    with pytest.raises(AdLiftError, match="unknown scene file option"):
        read_scene(raw, spz_axis="raw")
    assert scene_options() == ["spz_axes"]
    read_scene(write_scene(scene, tmp_path / "a.ply"), spz_axes="raw")  # other formats ignore it


def test_flip_yz_is_a_rotation_of_the_whole_scene():
    """Flipping y and z is a 180 degree turn about x: the SH colour seen along a direction equals the
    flipped scene's colour along the flipped direction, quaternions compose, flip twice = identity."""
    from adlift.render.sh import eval_sh
    from adlift.rotations import quat_to_rotmat

    scene = web_scene(30, 3)
    flipped = web_codec.flip_yz(scene)
    dirs = torch.nn.functional.normalize(torch.randn(30, 3, dtype=torch.float64), dim=-1)
    f = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    torch.testing.assert_close(eval_sh(3, dirs, scene.sh.double()), eval_sh(3, dirs * f, flipped.sh.double()))
    F = torch.diag(f)
    R, Rf = quat_to_rotmat(scene.normalized_quats.double()), quat_to_rotmat(flipped.normalized_quats.double())
    torch.testing.assert_close(Rf, F @ R @ F)
    torch.testing.assert_close(web_codec.flip_yz(flipped).sh, scene.sh)


def test_extreme_values_decode_finite(tmp_path):
    """8-bit alpha 0/255 and a .splat scale of 0 become finite limits, not -inf/inf."""
    scene = web_scene(4, 0)
    scene.opacity_logits[:] = torch.tensor([-40.0, 40.0, 0.0, 0.0])
    scene.log_scales[2] = -200.0  # exp underflows to a linear scale of 0 in .splat
    for name in WEB:
        back = read_scene(write_scene(scene, tmp_path / NAMES[name]))
        assert torch.isfinite(back.opacity_logits).all() and torch.isfinite(back.log_scales).all(), name
        assert back.opacities.min() <= 1 / 255 + 1e-6 and back.opacities.max() > 0.99, name


def test_empty_scene_round_trips(tmp_path):
    for name in WEB:
        try:
            back = read_scene(write_scene(GaussianScene.empty(1), tmp_path / NAMES[name]))
        except (AdLiftError, FileFormatError) as err:  # an encoder may refuse 0 Gaussians: one line then
            assert "\n" not in str(err)
            continue
        assert back.num_gaussians == 0


def test_compressed_ply_named_ply_is_read(tmp_path):
    scene = web_scene(300, 1)
    path = write_scene(scene, tmp_path / "x.ply", format="compressed-ply")
    assert detect_scene_format(path) == "compressed-ply"
    assert_within(errors(read_scene(path), scene), LIMITS["compressed-ply"])
    from adlift.io import read_ply

    assert_within(errors(read_ply(path), scene), LIMITS["compressed-ply"])  # read_ply hands it over


def test_gsplat_compressed_header_layout_reads(tmp_path):
    """gsplat's ply_compressed header (fixture payload of zeros) reads as 3 Gaussians of degree 1."""
    back = read_scene(fx.gsplat_compressed_ply(tmp_path / "g.ply"))
    assert back.num_gaussians == 3 and back.sh_degree == 1


def test_native_code_prints_nothing_on_stdout(tmp_path):
    path = write_scene(web_scene(20, 2), tmp_path / "s.spz")
    done = run_cli("info", str(path), "--json")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["format"] == "spz" and stats["num_gaussians"] == 20 and stats["sh_degree"] == 2


# ---------------------------------------------------------------------------------------------
# an independent writer and reader: PlayCanvas splat-transform
# ---------------------------------------------------------------------------------------------
ST_WRITES = {"s.compressed.ply": [], "s3.spz": ["--spz-version", "3"], "s4.spz": ["--spz-version", "4"],
             "s.sog": ["-g", "cpu", "-i", "2"], "st/meta.json": ["-g", "cpu", "-i", "2"]}  # fmt: skip


@needs_splat_transform
@pytest.mark.parametrize("name", list(ST_WRITES))
def test_files_written_by_splat_transform_read_back_the_same(tmp_path, name):
    """Our decode of splat-transform's file equals splat-transform's own decode of it (to .ply)."""
    scene = web_scene(300, 3)
    source = write_scene(scene, tmp_path / "source.ply")
    written = splat_transform(source, tmp_path / name, *ST_WRITES[name])
    reference = read_scene(splat_transform(written, tmp_path / "decoded.ply"))
    ours = read_scene(written)
    assert ours.num_gaussians == reference.num_gaussians == 300 and ours.sh_degree == 3
    if name.endswith((".sog", "meta.json")):
        ours = nearest(ours, reference)
    # the same bytes decoded twice: equal up to float rounding (opacity: decoders map 8-bit alpha
    # to logits slightly differently, within half a step)
    assert_within(errors(ours, reference), {"means": 1e-5, "log_scales": 1e-5, "rotation_deg": 0.1,
                                           "opacity": 0.5 / 255 + 1e-6, "colour": 1e-5, "sh_rest": 1e-5})  # fmt: skip
    # and both are the source within the format's quantisation (splat-transform's own encoder)
    if name.endswith(".spz"):
        assert_within(errors(ours, scene), LIMITS["spz"])


@needs_splat_transform
@pytest.mark.parametrize("name", ["s.compressed.ply", "s.spz", "s.splat", "s.sog", "ours/meta.json"])
def test_splat_transform_reads_our_files_as_we_do(tmp_path, name):
    scene = web_scene(300, 3)
    written = write_scene(scene, tmp_path / name)
    theirs = read_scene(splat_transform(written, tmp_path / "decoded.ply"))
    ours = read_scene(written)
    if name.endswith((".sog", "meta.json")):
        theirs = nearest(theirs, ours)
    # .splat: the two decoders map a rotation byte to a component differently (within a step)
    assert_within(errors(theirs, ours), {"means": 1e-5, "log_scales": 1e-5, "rotation_deg": 1.0 if "splat" in name else 0.1,
                                         "opacity": 0.5 / 255 + 1e-6, "colour": 1e-5, "sh_rest": 1e-5})  # fmt: skip


@needs_splat_transform
def test_spz_raw_axes_disagree_with_splat_transform(tmp_path):
    """Why the option exists: a raw-axes file (gaussforge/gsply's convention) comes out of
    splat-transform with y and z negated."""
    scene = web_scene(40, 1)
    raw = write_scene(scene, tmp_path / "raw.spz", spz_axes="raw")
    theirs = read_scene(splat_transform(raw, tmp_path / "decoded.ply"))
    torch.testing.assert_close(theirs.means, scene.means * torch.tensor([1.0, -1, -1]), atol=2e-4, rtol=0)


@needs_splat_transform
def test_spz_version_2_and_3_read(tmp_path):
    """Version 3 from splat-transform above; version 2 (only gaussforge writes it) here: its
    3 x 8-bit rotations are coarse where w is small (see docs/FORMATS.md)."""
    scene = web_scene(200, 1)
    unit = GaussianScene(scene.means, scene.normalized_quats, scene.log_scales, scene.opacity_logits, scene.sh)
    ir = web_codec.scene_to_ir(web_codec.flip_yz(unit))  # the spec's RUB axes, as AdLift writes them
    for version in (2, 3):
        with web_codec.quiet_native():
            data = web_codec._codec().write(ir, "spz", spz_version=version)["data"]
        path = fx.write_file(tmp_path / f"v{version}.spz", data)
        assert zlib_header(path)[1] == version
        limits = dict(LIMITS["spz"], rotation_deg=20.0 if version == 2 else 0.3)
        assert_within(errors(read_scene(path), scene), limits)
        if version == 2:  # splat-transform decodes the same file the same way
            theirs = read_scene(splat_transform(path, tmp_path / "v2.ply"))
            assert_within(errors(read_scene(path), theirs), {"means": 1e-5, "log_scales": 1e-5, "rotation_deg": 0.1,
                                                             "opacity": 1e-6, "colour": 1e-5, "sh_rest": 1e-5})  # fmt: skip


def zlib_header(path: Path) -> tuple:
    return struct.unpack_from("<IIIBBBB", gzip.decompress(path.read_bytes()), 0)


# ---------------------------------------------------------------------------------------------
# detection by extension and content
# ---------------------------------------------------------------------------------------------
def test_detection_by_extension_and_content(tmp_path):
    scene = web_scene(20, 1)
    files = {name: write_scene(scene, tmp_path / NAMES[name]) for name in WEB}
    for name, path in files.items():
        assert detect_scene_format(path) == name
    head = lambda p: p.read_bytes()[:65536]  # noqa: E731
    assert spz.sniff(head(files["spz"])) and not spz.sniff(b"\x1f\x8b" + b"\0" * 20) and not spz.sniff(b"")
    assert compressed_ply.sniff(head(files["compressed-ply"])) and not compressed_ply.sniff(fx.ply_bytes([]))
    assert sog.sniff(head(files["sog"])) and not sog.sniff(b"PK\x03\x04 other.zip")
    for name, path in files.items():  # content of a known format under an unknown extension
        moved = path.rename(tmp_path / f"moved-{name}.bin")
        problem = one_line_error(moved)
        if name == "splat":  # no magic bytes: the extension is all there is
            assert problem.startswith("unknown scene file type (.bin); supported scene formats:")
        else:
            assert f"its content looks like {name}: rename it to end with {SCENE_FORMATS.get(name).extensions[0]}" in problem


def test_content_of_another_format_under_a_web_extension(tmp_path):
    ply_as_spz = fx.gaussian_ply(tmp_path / "scene.spz", fx.make_params(2, 0))
    assert one_line_error(ply_as_spz) == "named like a spz file but its content is ply; rename it to end with .ply"
    spz_as_ply = write_scene(web_scene(5, 0), tmp_path / "x.spz").rename(tmp_path / "x.ply")
    assert "content is spz; rename it to end with .spz" in one_line_error(spz_as_ply)
    ply_as_splat = fx.gaussian_ply(tmp_path / "scene.splat", fx.make_params(2, 0))
    assert "content is ply" in one_line_error(ply_as_splat)


def test_every_web_format_is_registered_with_its_help():
    assert list(SCENE_FORMATS.names()) == ["ply"] + WEB
    for name in WEB:
        entry = SCENE_FORMATS.entry(name)
        assert entry.help and entry.value.write is not None


# ---------------------------------------------------------------------------------------------
# bad files: one line naming the file, before anything large is allocated
# ---------------------------------------------------------------------------------------------
def _spz_gzip(header: bytes, payload: bytes = b"") -> bytes:
    return gzip.compress(header + payload)


def test_bad_spz_files(tmp_path):
    w = lambda name, data: fx.write_file(tmp_path / name, data)  # noqa: E731
    good = write_scene(web_scene(30, 1), tmp_path / "good.spz").read_bytes()
    assert one_line_error(w("empty.spz", b"")) == "empty file, expected an .spz file"
    assert "neither gzip-compressed nor an NGSP header" in one_line_error(w("junk.spz", b"hello world" * 5))
    assert "truncated SPZ file" in one_line_error(w("cut.spz", good[: len(good) // 2]))
    assert "truncated SPZ header" in one_line_error(w("cut-header.spz", good[:20]))
    with web_codec.quiet_native():  # version 3: one gzip stream with a CRC
        v3 = bytearray(web_codec._codec().write(web_codec.scene_to_ir(web_scene(30, 1)), "spz", spz_version=3)["data"])
    v3[100:140] = bytes(40)
    assert one_line_error(w("corrupt.spz", bytes(v3)))  # the decoder's own error, in one line
    header = lambda version=3, n=10, degree=0, bits=12, flags=0: struct.pack("<IIIBBBB", spz.MAGIC, version, n, degree, bits, flags, 0)  # noqa: E731,E501
    for version in (0, 1, 5, 99):
        assert f"unsupported SPZ version {version}" in one_line_error(w(f"v{version}.spz", _spz_gzip(header(version))))
    assert "SH degree 7" in one_line_error(w("deg.spz", _spz_gzip(header(degree=7))))
    assert "fractional bits" in one_line_error(w("bits.spz", _spz_gzip(header(bits=0))))
    absurd = w("absurd.spz", _spz_gzip(header(n=2**31 - 1)))
    assert "more than" in one_line_error(absurd) and "compressed bytes can hold" in one_line_error(absurd)
    short = w("short.spz", _spz_gzip(header(n=10), bytes(10)))  # 10 Gaussians need 16 + 200 bytes
    assert one_line_error(short) == "truncated or corrupt SPZ file: 10 Gaussians need 216 bytes, the gzip stream holds 26 bytes"
    assert "no NGSP header" in one_line_error(w("gz.spz", gzip.compress(b"just text" * 3)))
    # version 4: an uncompressed header and a table of contents
    v4 = struct.pack("<IIIBBBBI", spz.MAGIC, 4, 10, 0, 12, 0, 5, 32) + bytes(12)
    assert "table of contents ends past" in one_line_error(w("toc.spz", v4))
    toc = b"".join(struct.pack("<QQ", 5, size) for size in (90, 10, 30, 30, 40))
    assert "streams need" in one_line_error(w("streams.spz", v4 + toc + bytes(5)))
    wrong = b"".join(struct.pack("<QQ", 5, size) for size in (91, 10, 30, 30, 40))
    assert "holds 91 bytes, 90 expected" in one_line_error(w("wrong.spz", v4 + wrong + bytes(25)))
    bomb = struct.pack("<IIIBBBBI", spz.MAGIC, 4, 2**32 - 1, 3, 12, 0, 6, 32) + bytes(12)
    bomb += b"".join(struct.pack("<QQ", 1, s) for s in spz._section_bytes(2**32 - 1, 4, 3))
    assert "compressed bytes can hold" in one_line_error(w("bomb.spz", bomb + bytes(6)))
    assert "streams" in one_line_error(w("count.spz", struct.pack("<IIIBBBBI", spz.MAGIC, 4, 10, 0, 12, 0, 2, 32) + bytes(60)))


def test_bad_compressed_ply_files(tmp_path):
    good = write_scene(web_scene(300, 1), tmp_path / "good.compressed.ply").read_bytes()
    w = lambda name, data: fx.write_file(tmp_path / name, data)  # noqa: E731
    assert "truncated data" in one_line_error(w("cut.compressed.ply", good[:-100]))
    end = good.index(b"end_header\n") + len(b"end_header\n")
    header, body = good[:end], good[end:]
    assert "truncated data" in one_line_error(w("huge.compressed.ply", header.replace(b"element vertex 300", b"element vertex 999999999999").replace(b"element chunk 2", b"element chunk 3906250000").replace(b"element sh 300", b"element sh 999999999999") + body))  # noqa: E501
    assert "2 chunks for 600 Gaussians" in one_line_error(
        w("chunks.compressed.ply", header.replace(b"element vertex 300", b"element vertex 600").replace(b"element sh 300", b"element sh 600") + body))  # noqa: E501
    assert "lacks properties: packed_color" in one_line_error(
        w("missing.compressed.ply", header.replace(b"packed_color", b"packed_colour") + body))
    assert "must be a uint" in one_line_error(w("type.compressed.ply", header.replace(b"uint packed_scale", b"int packed_scale") + body))
    assert "element 'sh' has 299 rows" in one_line_error(w("sh.compressed.ply", header.replace(b"element sh 300", b"element sh 299") + body))
    ascii_ = header.replace(b"binary_little_endian", b"ascii")
    assert "must be binary little-endian" in one_line_error(w("ascii.compressed.ply", ascii_ + body))
    assert "no 'end_header'" in one_line_error(w("noend.compressed.ply", header[:-12]))
    assert "needs elements 'chunk', 'vertex'" in one_line_error(w("vertex.compressed.ply", header.replace(b"element chunk", b"element block") + body))  # noqa: E501


def test_bad_splat_files(tmp_path):
    w = lambda name, data: fx.write_file(tmp_path / name, data)  # noqa: E731
    good = write_scene(web_scene(10, 0), tmp_path / "good.splat").read_bytes()
    assert one_line_error(w("empty.splat", b"")).startswith("empty file, expected a .splat file")
    assert "this one has 319 bytes (31 left over" in one_line_error(w("cut.splat", good[:-1]))
    nan = bytearray(good)
    nan[32:36] = struct.pack("<f", float("nan"))
    assert "Gaussian 1 decodes to a NaN/Inf value in means" in one_line_error(w("nan.splat", bytes(nan)))


def _bundle(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_bad_sog_files(tmp_path):
    w = lambda name, data: fx.write_file(tmp_path / name, data)  # noqa: E731
    good = write_scene(web_scene(100, 1), tmp_path / "good.sog")
    with zipfile.ZipFile(good) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    meta = json.loads(entries["meta.json"])

    def with_meta(name, **changes):
        return w(name, _bundle({**entries, "meta.json": json.dumps({**meta, **changes}).encode()}))

    assert "corrupt or truncated SOG bundle" in one_line_error(w("cut.sog", good.read_bytes()[:-300]))
    assert "corrupt or truncated SOG bundle" in one_line_error(w("junk.sog", b"PK\x03\x04" + bytes(50)))
    assert "has no meta.json" in one_line_error(w("nometa.sog", _bundle({k: v for k, v in entries.items() if k != "meta.json"})))
    assert "not valid JSON" in one_line_error(w("json.sog", _bundle({**entries, "meta.json": b"{nope"})))
    assert "unsupported SOG version 3" in one_line_error(with_meta("v3.sog", version=3))
    assert "unsupported SOG version None" in one_line_error(with_meta("v1.sog", version=None))
    assert "'count' must be a non-negative integer" in one_line_error(with_meta("neg.sog", count=-1))
    assert "too small for 1,000,000,000,000 entries" in one_line_error(with_meta("absurd.sog", count=10**12))
    assert "lacks the files meta.json names: means_l.webp" in one_line_error(
        w("missing.sog", _bundle({k: v for k, v in entries.items() if k != "means_l.webp"})))
    assert "is not a readable image" in one_line_error(w("notimage.sog", _bundle({**entries, "quats.webp": b"RIFF...."})))
    assert "expected a plain file name" in one_line_error(
        with_meta("escape.sog", quats={**meta["quats"], "files": ["../quats.webp"]}))
    assert "section 'sh0' must be an object" in one_line_error(with_meta("section.sog", sh0=[]))
    assert "shN.bands must be 1, 2 or 3" in one_line_error(with_meta("bands.sog", shN={**meta["shN"], "bands": 9}))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "meta.json").write_bytes(entries["meta.json"])
    assert "means_l.webp, named in meta.json, is missing beside it" in one_line_error(folder / "meta.json")


def test_bad_files_exit_2_with_one_line_from_the_cli(tmp_path):
    bad = fx.write_file(tmp_path / "bad.spz", _spz_gzip(struct.pack("<IIIBBBB", spz.MAGIC, 7, 1, 0, 12, 0, 0)))
    done = run_cli("info", str(bad))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == f"adlift: error: {bad}: unsupported SPZ version 7 (AdLift reads versions 2, 3 and 4)"
    assert "Traceback" not in done.stderr


def test_missing_library_is_one_line(monkeypatch, tmp_path):
    import builtins

    path = write_scene(web_scene(5, 0), tmp_path / "s.splat")
    real = builtins.__import__

    def no_gaussforge(name, *args, **kwargs):
        if name == "gaussforge":
            raise ImportError("no gaussforge here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gaussforge)
    monkeypatch.setattr(web_codec, "_instance", None)
    with pytest.raises(AdLiftError, match=r"need gaussforge: pip install"):
        read_scene(path)



# ---------------------------------------------------------------------------------------------
# the commands take every format (they all read through read_scene)
# ---------------------------------------------------------------------------------------------
def test_render_and_info_take_web_formats(tmp_path):
    path = write_scene(web_scene(60, 1), tmp_path / "s.splat")
    done = run_cli("render", str(path), "--cameras", "orbit:1,size=16x16", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "contact_sheet.png").is_file()
    spz_file = write_scene(web_scene(60, 1), tmp_path / "s.spz", spz_axes="raw")
    rub = json.loads(run_cli("info", str(spz_file), "--json").stdout)
    raw = json.loads(run_cli("info", str(spz_file), "--json", "--spz-axes", "raw").stdout)
    assert raw["bounds_min"][1] == pytest.approx(-rub["bounds_max"][1], abs=1e-4)


def test_viewer_and_plugin_inputs_take_web_formats(tmp_path):
    from adlift.io.formats import formats_for_name
    from adlift.viewer.inputs import load_inputs

    raw = write_scene(web_scene(40, 1), tmp_path / "raw.spz")
    protected = write_scene(web_scene(40, 1, seed=1), tmp_path / "p" / "meta.json")
    inputs = load_inputs([raw, protected], cameras="orbit:2,size=16x16")
    assert inputs.scenes["raw"].num_gaussians == 40 and inputs.scenes["protected"].num_gaussians == 40
    # the nerfstudio plugin reads --pipeline.model.scene through read_scene when a format claims the name
    for name in ("a.compressed.ply", "a.spz", "a.splat", "a.sog", "meta.json"):
        assert formats_for_name(tmp_path / name), name


# ---------------------------------------------------------------------------------------------
# adlift protect writes the asset in the input's format, or in --format's
# ---------------------------------------------------------------------------------------------
QUICK_PROTECT = ("--instruction", "turn it into a clown", "--editor", "tiny", "--cameras", "orbit:2,size=32x32",
                 "--rounds", "1", "--pgd-steps", "1", "--fit-steps", "1", "--replay", "1")  # fmt: skip


@pytest.mark.parametrize("extra, name, fmt", [((), "protected.spz", "spz"),
                                              (("--format", "compressed-ply"), "protected.compressed.ply", "compressed-ply")])  # fmt: skip
def test_protect_writes_the_inputs_format_or_format(tmp_path, extra, name, fmt):
    from adlift.protect.manifest import Manifest
    from adlift.viewer.inputs import load_inputs

    source = write_scene(web_scene(120, 1), tmp_path / "asset.spz")
    out = tmp_path / "out"
    done = run_cli("protect", str(source), "--out", str(out), *QUICK_PROTECT, *extra, hf_home=tmp_path / "hf")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "protected.ply").exists() and f"wrote {out / name}" in done.stdout
    assert detect_scene_format(out / name) == fmt
    manifest = Manifest.read(out / "manifest.json")
    assert (manifest.protected_scene.path, manifest.protected_scene.format) == (name, fmt)
    assert manifest.files["protected"] == name
    # Lossy: fitted with the format's quantiser in the loop, then measured on a decode of the written file.
    assert f"fitting with the {fmt} quantiser in the loop" in done.stdout and "after export" in done.stdout
    assert manifest.export.quantised_in_fit == fmt and manifest.export.path == name
    assert "train" in manifest.export.splits and 0.0 < manifest.export.splits["train"]["within_eta_2"] <= 1.0
    protected = read_scene(out / name)
    assert protected.num_gaussians == manifest.protected_scene.num_gaussians
    inputs = load_inputs([out], device="cpu")  # adlift view / evaluate find it through the manifest
    assert inputs.scenes["protected"].num_gaussians == protected.num_gaussians


def test_protect_to_a_format_with_fewer_sh_bands_protects_what_the_file_holds(tmp_path):
    from adlift.protect.manifest import Manifest

    source = write_scene(web_scene(120, 1), tmp_path / "asset.ply")  # SH degree 1
    assert read_scene(source).sh_degree == 1 and SCENE_FORMATS.get("splat").max_sh_degree == 0
    out = tmp_path / "out"
    done = run_cli("protect", str(source), "--out", str(out), *QUICK_PROTECT, "--format", "splat",
                   hf_home=tmp_path / "hf")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "splat holds SH degree 0 only" in done.stdout
    manifest = Manifest.read(out / "manifest.json")
    assert manifest.protected_scene.format == "splat"
    # The protection was fitted at degree 0, so the written file renders what the run measured:
    # its recorded invisibility is of the degree-0 scene that the .splat file holds.
    assert read_scene(out / "protected.splat").sh_degree == 0


def test_protect_format_choices_and_errors(tmp_path):
    done = run_cli("protect", "--help")
    assert done.returncode == 0 and all(f in done.stdout for f in ("--format", "compressed-ply", "splat", "sog", "--spz-axes",
                                                                   "--no-quantise-in-fit", "--quantise-every"))
    done = run_cli("protect", str(tmp_path / "x.spz"), "--out", str(tmp_path / "o"), *QUICK_PROTECT, "--format", "obj")
    assert done.returncode == 2 and "Traceback" not in done.stderr
