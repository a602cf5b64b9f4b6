"""AdLift's SPZ v4 encoder (adlift/io/spz_encode.py) against gaussforge's writer and reader.

The encoder must put the same bytes in every stream as gaussforge's (Niantic's layout and rounding),
so a file means the same whoever wrote it; splat-transform reading our files is covered by
tests/test_web_formats.py::test_splat_transform_reads_our_files_as_we_do.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from adlift import GaussianScene
from adlift.errors import AdLiftError, SceneError
from adlift.io import read_scene, spz, spz_encode, web_codec, write_scene

zstandard = pytest.importorskip("zstandard")


def random_scene(n: int, degree: int = 3, seed: int = 0, spread: float = 2.0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    k = (degree + 1) ** 2
    sh = torch.cat([r(n, 1, 3) * 0.8, r(n, k - 1, 3) * 0.3], dim=1)
    return GaussianScene(r(n, 3) * spread, r(n, 4), r(n, 3) * 0.5 - 3, r(n) * 2, sh)


def streams(data: bytes) -> tuple[tuple, list[np.ndarray]]:
    """(header fields, decompressed streams) of a version-4 .spz."""
    magic, version, n, degree, bits, flags, count, toc = struct.unpack_from("<IIIBBBBI", data, 0)
    offset, out = toc + 16 * count, []
    for i in range(count):
        packed, unpacked = struct.unpack_from("<QQ", data, toc + 16 * i)
        raw = zstandard.ZstdDecompressor().decompress(data[offset : offset + packed], max_output_size=unpacked)
        out.append(np.frombuffer(raw, np.uint8))
        offset += packed
    assert offset == len(data)
    return (magic, version, n, degree, bits, flags, count), out


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_streams_equal_gaussforges_byte_for_byte(degree):
    scene = random_scene(20_000, degree)
    # values on exact halves of the fixed-point, scale and SH steps: where C's round and numpy's rint differ
    scene.sh[:50, 0] = (torch.arange(50).float()[:, None] * 5.5 - 130) / 38.25  # across the 8-bit range
    scene.log_scales[:50] = torch.arange(-40, 10).float()[:, None] / 16 + 0.5 / 16 - 10 + 2
    scene.means[:50] = (torch.arange(-25, 25).float()[:, None] + 0.5) / 4096
    if degree:
        scene.sh[:50, 1:] = (torch.arange(-25, 25).float()[:, None, None] + 0.5) / 128
    theirs = web_codec.encode(scene, "spz", "x.spz", spz_version=4)
    head_theirs, s_theirs = streams(theirs)
    head_ours, s_ours = streams(spz_encode.encode(scene))
    assert head_ours == head_theirs
    assert [len(s) for s in s_ours] == [len(s) for s in s_theirs]
    names = ["positions", "alphas", "colours", "scales", "rotations", "sh"]
    for name, a, b in zip(names, s_ours, s_theirs):
        differ = np.flatnonzero(a != b)
        if name == "rotations":
            # float rounding of the normalisation: a few 9-bit fields land one step apart
            assert len(differ) <= len(a) * 1e-4, (name, len(differ))
        else:
            assert len(differ) == 0, (name, differ[:5], a[differ[:5]], b[differ[:5]])


def test_gaussforge_reads_our_file_as_its_own(tmp_path):
    scene = random_scene(5000, 3)
    ours, theirs = tmp_path / "ours.spz", tmp_path / "theirs.spz"
    spz.write(scene, ours)
    web_codec.write_bytes_atomic(theirs, web_codec.encode(web_codec.flip_yz(scene), "spz", theirs, spz_version=4))
    a, b = read_scene(ours), read_scene(theirs)
    for name in ("means", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    angle = (a.normalized_quats * b.normalized_quats).sum(-1).abs().clamp(max=1).acos().rad2deg()
    assert float(angle.max()) < 0.3


def test_round_trip_error_is_the_quantisation_step(tmp_path):
    scene = random_scene(5000, 3)
    path = write_scene(scene, tmp_path / "x.spz")
    back = read_scene(path)
    assert float((back.means - scene.means).abs().max()) <= 0.5 / 4096 + 1e-6
    assert float((back.log_scales - scene.log_scales).abs().max()) <= 0.5 / 16 + 1e-5
    inside = scene.sh[:, 0].abs() < 127 / 38.25  # the 8-bit colour holds DC in about [-3.3, 3.3]
    assert float((back.sh[:, 0] - scene.sh[:, 0])[inside].abs().max()) <= 0.5 / 38.25 + 1e-5


def test_large_coordinates_use_fewer_fraction_bits(tmp_path):
    scene = random_scene(1000, 1, spread=1500.0)  # |x| up to ~6000: 12 fraction bits would wrap
    top = float(scene.means.abs().max())
    bits = spz_encode.fractional_bits(scene.means.numpy())
    assert bits < 12 and top * 2**bits < 2**23 <= top * 2 ** (bits + 1) + 1
    back = read_scene(write_scene(scene, tmp_path / "far.spz"))
    assert float((back.means - scene.means).abs().max()) <= 0.5 / 2**bits + 1e-3


def test_out_of_range_coordinate_is_one_line(tmp_path):
    scene = random_scene(10, 0)
    scene.means[3, 1] = 2.0**24
    with pytest.raises(AdLiftError, match="SPZ cannot store a coordinate"):
        write_scene(scene, tmp_path / "x.spz")
    assert not (tmp_path / "x.spz").exists()


def test_non_finite_values_are_refused_and_nothing_is_written(tmp_path):
    scene = random_scene(10, 1)
    scene.sh[4, 2, 1] = float("nan")
    with pytest.raises(SceneError, match="cannot write .*non-finite"):
        write_scene(scene, tmp_path / "x.spz")
    assert list(tmp_path.iterdir()) == []


def test_zero_quaternion_is_the_identity_and_same_scene_same_bytes(tmp_path):
    scene = random_scene(100, 2)
    scene.quats[7] = 0
    first, second = spz_encode.encode(scene), spz_encode.encode(scene)
    assert first == second
    back = read_scene(write_scene(scene, tmp_path / "x.spz", spz_axes="raw"))
    assert torch.allclose(back.normalized_quats[7], torch.tensor([1.0, 0, 0, 0]), atol=1e-6)


def test_the_input_scene_is_not_modified():
    scene = random_scene(3000, 3)
    before = {k: v.clone() for k, v in scene.tensors().items()}
    spz_encode.encode(scene)
    assert all(torch.equal(before[k], v) for k, v in scene.tensors().items())


def test_flipping_axes_in_the_encoder_equals_flipping_the_scene():
    scene = random_scene(3000, 3)
    assert spz_encode.encode(scene, flip_yz=True) == spz_encode.encode(web_codec.flip_yz(scene))
    assert spz_encode.encode(scene, flip_yz=True) != spz_encode.encode(scene)
