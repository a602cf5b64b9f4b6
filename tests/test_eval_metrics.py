"""Image metrics and purifications of adlift.evaluate on inputs with known answers."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from adlift.errors import AdLiftError
from adlift.evaluate import (
    DEFAULT_PURIFICATIONS,
    LpipsMetric,
    Purification,
    apply_purification,
    image_pair_metrics,
    linf_per_image,
    lpips_unavailable_reason,
    parse_purifications,
    psnr_per_image,
    ssim_per_image,
    within_budget_per_image,
)

torch.set_num_threads(1)


def _images(b: int = 2, h: int = 32, w: int = 40, seed: int = 0, lo: float = 0.0, hi: float = 1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(b, 3, h, w, generator=g)).to(dtype)


def _smooth(b: int = 2, size: int = 48, seed: int = 0) -> torch.Tensor:
    """Natural-ish images: bicubic upsampled coarse noise, values well inside [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (0.1 + 0.8 * x).clamp(0, 1)


# ------------------------------------------------------------------------------------ metrics


def test_identical_images():
    x = _images()
    psnr = psnr_per_image(x, x)
    assert psnr.shape == (2,)
    assert torch.isinf(psnr).all() and (psnr > 0).all() and not torch.isnan(psnr).any()
    assert ssim_per_image(x, x) == pytest.approx([1.0, 1.0], abs=1e-6)
    assert linf_per_image(x, x).tolist() == [0.0, 0.0]
    assert within_budget_per_image(x, x, eta=0.0).tolist() == [1.0, 1.0]
    rows = image_pair_metrics(x, x, eta=8 / 255)
    assert len(rows) == 2
    assert rows[0]["psnr"] == float("inf") and rows[0]["linf_255"] == 0.0 and rows[0]["within_budget"] == 1.0
    assert set(rows[0]) == {"psnr", "ssim", "linf_255", "within_budget", "lpips"}


def test_constant_offset():
    a = _images(lo=0.1, hi=0.8, dtype=torch.float64)
    b = a + 4 / 255
    rows = image_pair_metrics(a, b, eta=8 / 255)
    expected_psnr = 20 * math.log10(255 / 4)
    for row in rows:
        assert row["linf_255"] == pytest.approx(4.0, abs=1e-9)
        assert row["psnr"] == pytest.approx(expected_psnr, rel=1e-6)
        assert row["within_budget"] == 1.0
        assert 0.9 < row["ssim"] < 1.0  # a shift of the mean lowers SSIM's luminance term slightly
        assert row["lpips"] is None
    assert within_budget_per_image(a, b, eta=2 / 255).tolist() == [0.0, 0.0]
    assert "within_budget" not in image_pair_metrics(a, b)[0]


def test_within_budget_counts_pixels_by_their_worst_channel():
    a = torch.full((1, 3, 4, 5), 0.5)
    b = a.clone()
    b[0, 2, 0, :] += 10 / 255  # one row of 5 pixels out of 20 exceeds the budget, in one channel only
    share = within_budget_per_image(a, b, eta=8 / 255)
    assert share.tolist() == pytest.approx([15 / 20])


def test_psnr_of_known_gaussian_noise():
    sigma = 0.05
    g = torch.Generator().manual_seed(123)
    a = torch.full((2, 3, 128, 128), 0.5, dtype=torch.float64)
    b = a + sigma * torch.randn(a.shape, generator=g, dtype=torch.float64)  # 10 sigma from clipping
    expected = -20 * math.log10(sigma)  # 26.02 dB
    psnr = psnr_per_image(a, b)
    assert psnr.tolist() == pytest.approx([expected, expected], abs=0.2)
    assert (psnr_per_image(a, a + 2 * (b - a)) < psnr - 5.9).all()  # doubling the noise costs 6 dB


def test_images_smaller_than_the_ssim_window():
    for h, w in ((4, 5), (1, 1), (11, 30)):
        a = _images(1, h, w)
        b = (a + 0.02).clamp(0, 1)
        s = ssim_per_image(a, b)
        assert torch.isfinite(s).all() and float(s[0]) <= 1.0 + 1e-9
        assert ssim_per_image(a, a).tolist() == pytest.approx([1.0], abs=1e-6)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "needle"),
    [
        ((2, 3, 8, 8), (2, 3, 8, 9), "differ in shape"),
        ((3, 8, 8), (3, 8, 8), "4-D"),
        ((2, 1, 8, 8), (2, 1, 8, 8), "3 channels"),
        ((2, 4, 8, 8), (2, 4, 8, 8), "3 channels"),
    ],
)
def test_shape_errors(a_shape, b_shape, needle):
    for fn in (psnr_per_image, ssim_per_image, linf_per_image, image_pair_metrics):
        with pytest.raises(AdLiftError, match=needle) as info:
            fn(torch.rand(a_shape), torch.rand(b_shape))
        assert "\n" not in str(info.value)


def test_range_errors():
    x = _images()
    with pytest.raises(AdLiftError, match=r"\[0, 1\]"):
        psnr_per_image(x * 255, x)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(AdLiftError, match="NaN"):
        linf_per_image(x, bad)
    with pytest.raises(AdLiftError, match="float"):
        linf_per_image((x * 255).to(torch.uint8), x)


def test_lpips_unavailable_gives_none_and_a_reason():
    if importlib.util.find_spec("lpips") is not None and lpips_unavailable_reason() is None:
        pytest.skip("lpips is installed and usable here, so it is not unavailable")
    assert LpipsMetric.load() is None
    reason = lpips_unavailable_reason()
    assert isinstance(reason, str) and "lpips" in reason.lower() and "\n" not in reason
    assert lpips_unavailable_reason("resnet") is not None
    x = _images()
    assert all(row["lpips"] is None for row in image_pair_metrics(x, x, lpips=LpipsMetric.load()))


# ------------------------------------------------------------------------------ edit success


def _constant(values, size: int = 16) -> torch.Tensor:
    """One constant float64 image [1, 3, size, size] per value."""
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()


def _ssim_of_constants(a: float, b: float) -> float:
    """SSIM of two constant images: only the luminance term is left, (2ab + C1) / (a^2 + b^2 + C1)."""
    c1 = 0.01**2
    return (2 * a * b + c1) / (a * a + b * b + c1)


def test_edit_success_is_the_psnr_of_the_edit_to_the_reference():
    from adlift.evaluate.run import mean_of, protection_records

    calls = []

    def invert(images):  # a stub reference: "invert the colours"
        calls.append(images.clone())
        return 1.0 - images

    raw, prot = _constant([0.5, 0.2]), _constant([0.25, 0.3])
    edit_raw = _constant([0.6, 0.8])  # 0.1 off reference(raw) = 0.5; exactly reference(raw) = 0.8
    edit_prot = _constant([0.45, 0.75])  # 0.3 off reference(prot) = 0.75; 0.05 off 0.7
    rows = protection_records(raw, prot, edit_raw, edit_prot, None, None, ("a", "b"), invert)
    assert len(calls) == 2 and torch.equal(calls[0], raw) and torch.equal(calls[1], prot)  # sources, not edits
    # MSE of constant images is the squared offset: PSNR = -10 log10(offset^2)
    want_raw, want_prot = [-10 * math.log10(0.1**2), math.inf], [-10 * math.log10(0.3**2), -10 * math.log10(0.05**2)]
    for i, row in enumerate(rows):
        assert row["edit_success_raw_psnr"] == pytest.approx(want_raw[i], rel=1e-9)
        assert row["edit_success_protected_psnr"] == pytest.approx(want_prot[i], rel=1e-9)
    assert rows[0]["edit_success_raw_psnr"] == pytest.approx(20.0) and rows[1]["edit_success_raw_psnr"] == math.inf
    assert rows[0]["edit_success_fall_psnr"] == pytest.approx(20.0 + 10 * math.log10(0.09), rel=1e-9)  # ~9.54 dB
    r0 = rows[0]
    assert r0["edit_success_fall_psnr"] == r0["edit_success_raw_psnr"] - r0["edit_success_protected_psnr"]
    assert rows[1]["edit_success_fall_psnr"] == math.inf  # a perfect raw edit, an imperfect protected one
    assert rows[0]["edit_success_raw_ssim"] == pytest.approx(_ssim_of_constants(0.6, 0.5), rel=1e-6)
    assert rows[0]["edit_success_protected_ssim"] == pytest.approx(_ssim_of_constants(0.45, 0.75), rel=1e-6)
    assert rows[1]["edit_success_raw_ssim"] == pytest.approx(1.0, rel=1e-9)
    # the per-split summary is the mean of the views (an infinite fall makes the mean infinite)
    means = mean_of(rows)
    assert means["edit_success_protected_psnr"] == pytest.approx(sum(want_prot) / 2, rel=1e-9)
    assert means["edit_success_fall_psnr"] == math.inf


def test_edit_success_fall_edge_cases():
    from adlift.evaluate.run import mean_of, psnr_fall

    assert psnr_fall(math.inf, math.inf) == 0.0 and psnr_fall(30.0, 20.0) == 10.0
    assert psnr_fall(20.0, math.inf) == -math.inf
    assert mean_of([{"x": -math.inf}, {"x": 1.0}]) == {"x": -math.inf}
    assert mean_of([{"x": -math.inf}, {"x": math.inf}]) == {"x": None}  # no mean: n/a, not a made-up sign


def test_without_a_reference_edit_success_is_none_and_shows_as_na():
    from adlift.evaluate.columns import METRICS, columns
    from adlift.evaluate.run import EDIT_SUCCESS_KEYS, protection_records

    raw, prot = _constant([0.5, 0.2]), _constant([0.25, 0.3])
    rows = protection_records(raw, prot, 1 - raw, 1 - prot, None, None, ("a", "b"))
    assert len(rows) == 2 and len(EDIT_SUCCESS_KEYS) == 5
    for row in rows:
        assert all(k in row and row[k] is None for k in EDIT_SUCCESS_KEYS)
        assert row["edit_deviation_psnr"] < math.inf  # the other protection metrics are still measured
    assert [METRICS.get(k).cell(None) for k in EDIT_SUCCESS_KEYS] == ["n/a"] * 5
    # the fall is a headline: report.md's protection and robustness tables, the console summary, the viewer
    for table in ("protection", "robustness", "views", "summary", "viewer"):
        assert "edit_success_fall_psnr" in [m.key for m in columns(table)], table
    assert METRICS.get("edit_success_fall_psnr").header == "success fall dB"


# ------------------------------------------------------------------------------ purifications


def test_default_purifications_keep_shape_and_range():
    names = [p.name for p in DEFAULT_PURIFICATIONS]
    assert names == ["jpeg95", "jpeg75", "jpeg50", "blur1.0", "resize0.5", "noise4"]
    x = _smooth(size=40)
    for p in DEFAULT_PURIFICATIONS:
        y = apply_purification(x, p, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == x.dtype, p.name
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0, p.name
        assert not torch.equal(y, x), p.name  # each one actually changes the image


def test_jpeg50_changes_more_than_jpeg95():
    x = _smooth()
    x = x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # texture for JPEG to drop
    x = x.clamp(0, 1)
    p95, p50 = parse_purifications("jpeg95,jpeg50")
    d95 = (apply_purification(x, p95) - x).abs().mean()
    d50 = (apply_purification(x, p50) - x).abs().mean()
    assert d50 > 1.2 * d95


def test_noise_is_seeded_and_has_its_level():
    x = torch.full((2, 3, 64, 64), 0.5)
    (p,) = parse_purifications("noise4")
    assert p.strength == pytest.approx(4 / 255)
    y1 = apply_purification(x, p, torch.Generator().manual_seed(7))
    y2 = apply_purification(x, p, torch.Generator().manual_seed(7))
    y3 = apply_purification(x, p, torch.Generator().manual_seed(8))
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert float((y1 - x).std()) == pytest.approx(4 / 255, rel=0.05)


def test_resize_and_none_leave_a_constant_image_alone():
    x = torch.full((1, 3, 30, 44), 0.3)
    for spec in ("resize0.5", "resize0.25", "none"):
        (p,) = parse_purifications(spec)
        assert torch.allclose(apply_purification(x, p), x, atol=1e-6), spec


def test_blur_sigma_increases_smoothing():
    x = _images(b=1)
    d = [float((apply_purification(x, p) - x).abs().mean()) for p in parse_purifications("blur0.5,blur2")]
    assert d[0] < d[1]


def test_parse_purifications():
    ps = parse_purifications(" JPEG75, blur1 ,resize.5,noise2.5,none ")
    assert [p.name for p in ps] == ["jpeg75", "blur1.0", "resize0.5", "noise2.5", "none"]
    assert ps[0] == Purification("jpeg75", "jpeg", 75.0)
    assert ps[3].strength == pytest.approx(2.5 / 255)
    assert parse_purifications("jpeg95,jpeg75,jpeg50,blur1.0,resize0.5,noise4") == list(DEFAULT_PURIFICATIONS)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("jpeg", "bad purification"),
        ("gamma2", "bad purification"),
        ("jpeg-5", "bad purification"),
        ("jpeg0", "out of range"),
        ("jpeg101", "out of range"),
        ("resize1.5", "out of range"),
        ("resize0", "out of range"),
        ("blur0", "out of range"),
        ("jpeg95,jpeg95", "twice"),
        ("", "no purifications"),
        (" , ", "no purifications"),
    ],
)
def test_parse_errors(spec, needle):
    with pytest.raises(AdLiftError, match=needle) as info:
        parse_purifications(spec)
    assert "\n" not in str(info.value)


def test_purification_validates_its_fields():
    with pytest.raises(AdLiftError, match="unknown purification .sharpen.; choose one of: jpeg"):
        Purification("x", "sharpen", 1.0)  # type: ignore[arg-type]
    with pytest.raises(AdLiftError, match="out of range"):
        Purification("noise", "noise", -0.1)
    with pytest.raises(AdLiftError, match="3 channels"):
        apply_purification(torch.rand(1, 4, 8, 8), DEFAULT_PURIFICATIONS[0])
