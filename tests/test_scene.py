"""GaussianScene: validation, accessors, constructors and transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adlift import AdLiftError, GaussianScene, SceneError
from adlift.scene import SH_C0, rgb_to_sh_dc, sh_coeffs_for_degree

FIELDS = ["means", "quats", "log_scales", "opacity_logits", "sh"]


def make_tensors(n: int = 6, degree: int = 1, dtype=torch.float32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return {
        "means": torch.randn(n, 3, generator=g, dtype=dtype),
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "log_scales": torch.randn(n, 3, generator=g, dtype=dtype) - 3,
        "opacity_logits": torch.randn(n, generator=g, dtype=dtype),
        "sh": torch.randn(n, k, 3, generator=g, dtype=dtype),
    }


def make_scene(n: int = 6, degree: int = 1, **kw) -> GaussianScene:
    return GaussianScene(**make_tensors(n, degree, **kw))


def assert_scene_equal(a: GaussianScene, b: GaussianScene) -> None:
    for name in FIELDS:
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


# ------------------------------------------------------------------------------------ validation
def test_valid_scene_basic_properties():
    t = make_tensors(n=7, degree=2)
    s = GaussianScene(**t)
    assert len(s) == 7 and s.num_gaussians == 7
    assert s.sh_degree == 2
    assert s.dtype == torch.float32 and s.device == torch.device("cpu")
    assert list(s.tensors()) == FIELDS
    for name in FIELDS:
        assert s.tensors()[name] is t[name]


@pytest.mark.parametrize("degree,k", [(0, 1), (1, 4), (2, 9), (3, 16)])
def test_sh_degree_from_k(degree, k):
    s = GaussianScene(**{**make_tensors(3), "sh": torch.zeros(3, k, 3)})
    assert s.sh_degree == degree
    assert sh_coeffs_for_degree(degree) == k


@pytest.mark.parametrize("bad", [4, -1, 1.0, 1.5, True, "1", None])
def test_sh_coeffs_for_degree_rejects(bad):
    with pytest.raises(SceneError, match="SH degree must be 0, 1, 2 or 3"):
        sh_coeffs_for_degree(bad)


def test_sh_coeffs_for_degree_accepts_numpy_int():
    assert sh_coeffs_for_degree(np.int64(2)) == 9


#: One field changed at a time -> the start of the one-line error. The meta device exists on every
#: machine, so a CPU-only box can still test device mismatches.
BAD_FIELD = {
    "not_a_tensor": (lambda x: x.numpy(), r"GaussianScene\.{name} must be a torch\.Tensor, got ndarray"),
    "other_dtype": (lambda x: x.double(), r"must share one dtype, got \['torch.float32', 'torch.float64'\]"),
    "other_device": (lambda x: x.to("meta"), r"must be on one device, got \['cpu', 'meta'\]"),
}


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("problem", list(BAD_FIELD))
def test_rejects_a_field_that_is_not_a_tensor_or_differs_in_dtype_or_device(name, problem):
    change, match = BAD_FIELD[problem]
    t = make_tensors()
    t[name] = change(t[name])
    with pytest.raises(SceneError, match=match.format(name=name)):
        GaussianScene(**t)


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_rejects_non_float_dtype(name, dtype):
    t = make_tensors()
    t[name] = t[name].to(dtype) if dtype != torch.complex64 else torch.complex(t[name], t[name])
    with pytest.raises(SceneError, match=rf"GaussianScene\.{name} must be a floating-point tensor, got {dtype}"):
        GaussianScene(**t)


@pytest.mark.parametrize(
    "name,shape,match",
    [
        ("means", (6,), r"means must have shape \[N, 3\], got \[6\]"),
        ("means", (6, 2), r"means must have shape \[N, 3\], got \[6, 2\]"),
        ("means", (6, 3, 1), r"means must have shape \[N, 3\], got \[6, 3, 1\]"),
        ("quats", (6, 3), r"quats must have shape \[N, 4\] with N=6, got \[6, 3\]"),
        ("quats", (5, 4), r"quats must have shape \[N, 4\] with N=6, got \[5, 4\]"),
        ("log_scales", (7, 3), r"log_scales must have shape \[N, 3\] with N=6, got \[7, 3\]"),
        ("log_scales", (6,), r"log_scales must have shape \[N, 3\] with N=6, got \[6\]"),
        ("opacity_logits", (6, 1), r"opacity_logits must have shape \[N\] with N=6, got \[6, 1\]"),
        ("opacity_logits", (5,), r"opacity_logits must have shape \[N\] with N=6, got \[5\]"),
        ("sh", (6, 3), r"sh must have shape \[N=6, K, 3\], got \[6, 3\]"),
        ("sh", (6, 4, 4), r"sh must have shape \[N=6, K, 3\], got \[6, 4, 4\]"),
        ("sh", (5, 4, 3), r"sh must have shape \[N=6, K, 3\], got \[5, 4, 3\]"),
        ("sh", (6, 5, 3), r"sh has K=5 coefficients per channel; K must be \(d\+1\)\^2"),
        ("sh", (6, 25, 3), r"sh has K=25 coefficients"),
        ("sh", (6, 0, 3), r"sh has K=0 coefficients"),
    ],
)
def test_rejects_bad_shape(name, shape, match):
    t = make_tensors(n=6)
    t[name] = torch.zeros(shape)
    with pytest.raises(SceneError, match=r"GaussianScene\." + match):
        GaussianScene(**t)


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite(name, value):
    t = make_tensors(n=6)
    t[name].view(6, -1)[4, -1] = value
    t[name].view(6, -1)[2, 0] = value
    match = rf"GaussianScene\.{name} has non-finite values \(NaN/Inf\) in 2 Gaussian\(s\), first at index 2"
    with pytest.raises(SceneError, match=match):
        GaussianScene(**t)


def test_check_finite_false_skips_value_check_but_check_values_still_works():
    t = make_tensors()
    t["means"][1, 1] = math.nan
    s = GaussianScene(**t, check_finite=False)  # no error
    with pytest.raises(SceneError, match="means has non-finite"):
        s.check_values()


def test_scene_errors_are_adlift_errors_and_one_line():
    t = make_tensors()
    t["quats"] = torch.zeros(6, 5)
    with pytest.raises(AdLiftError) as info:
        GaussianScene(**t)
    assert "\n" not in str(info.value)


def test_equality_is_identity_and_never_raises():
    # A dataclass __eq__ would compare tensors elementwise and raise "ambiguous truth value".
    a = make_scene()
    b = a.clone()
    assert a == a
    assert not (a == b)
    assert a != b
    assert len({a, b}) == 2  # hashable


# ------------------------------------------------------------------------------------ accessors
def test_activated_accessors():
    t = make_tensors(n=5)
    s = GaussianScene(**t)
    torch.testing.assert_close(s.scales, torch.exp(t["log_scales"]))
    torch.testing.assert_close(s.opacities, 1 / (1 + torch.exp(-t["opacity_logits"])))
    q = s.normalized_quats
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(q * t["quats"].norm(dim=-1, keepdim=True), t["quats"])  # same direction and sign


def test_normalized_quats_known_values_and_zero_quaternion():
    t = make_tensors(n=3)
    t["quats"] = torch.tensor([[2.0, 0, 0, 0], [0, 0, 0, 0], [0, -3.0, 4.0, 0]])
    q = GaussianScene(**t).normalized_quats
    expected = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, -0.6, 0.8, 0]])
    torch.testing.assert_close(q, expected)


def test_rgb_of_dc_known_values():
    t = make_tensors(n=4, degree=2)
    t["sh"][:, 0] = torch.tensor(
        [[0.0, 0.0, 0.0], [0.5 / SH_C0, -0.5 / SH_C0, 0.25 / SH_C0], [100.0, -100.0, 0.0], [1.0, 2.0, -1.0]]
    )
    rgb = GaussianScene(**t).rgb
    expected = torch.tensor(
        [[0.5, 0.5, 0.5], [1.0, 0.0, 0.75], [1.0, 0.0, 0.5],
         [0.5 + SH_C0, min(1.0, 0.5 + 2 * SH_C0), 0.5 - SH_C0]]  # fmt: skip
    )
    torch.testing.assert_close(rgb, expected)
    torch.testing.assert_close(rgb_to_sh_dc(expected[:2]), t["sh"][:2, 0])


def test_bounds_min_max():
    t = make_tensors(n=3)
    t["means"] = torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5], [0.0, 0.0, 9.0]])
    lo, hi = GaussianScene(**t).bounds()
    assert lo.tolist() == [-4.0, -2.0, 0.5]
    assert hi.tolist() == [1.0, 5.0, 9.0]


def test_bounds_quantile_ignores_outliers():
    n = 101
    t = make_tensors(n=n)
    base = torch.arange(n, dtype=torch.float32)  # 0..100 on each axis
    t["means"] = torch.stack([base, 2 * base, -base], dim=1)
    t["means"][50] = torch.tensor([1e6, -1e6, 1e6])  # a floater replacing the median point
    s = GaussianScene(**t)
    lo, hi = s.bounds(0.1)
    ref = t["means"].double().numpy()
    np.testing.assert_allclose(lo.numpy(), np.quantile(ref, 0.1, axis=0), rtol=1e-6)
    np.testing.assert_allclose(hi.numpy(), np.quantile(ref, 0.9, axis=0), rtol=1e-6)
    assert float(hi[0]) < 100 and float(lo[1]) > -1 and float(hi[2]) <= 0
    full_lo, full_hi = s.bounds()
    assert float(full_hi[0]) == 1e6 and float(full_lo[1]) == -1e6


@pytest.mark.parametrize("q", [0.0, 0.5, -0.1, 0.7])
def test_bounds_rejects_bad_quantile(q):
    with pytest.raises(SceneError, match=r"quantile must be in \(0, 0.5\)"):
        make_scene().bounds(q)


def test_bounds_of_empty_scene_raises():
    with pytest.raises(SceneError, match="empty"):
        GaussianScene.empty().bounds()


def test_center_and_radius():
    t = make_tensors(n=2)
    t["means"] = torch.tensor([[0.0, 0.0, 0.0], [2.0, 4.0, 4.0]])
    center, radius = GaussianScene(**t).center_and_radius(quantile=None)
    assert center.tolist() == [1.0, 2.0, 2.0]
    assert radius == pytest.approx(3.0)


# ------------------------------------------------------------------------------------ constructors
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_empty(degree):
    s = GaussianScene.empty(degree, dtype=torch.float64)
    assert s.num_gaussians == 0 and s.sh_degree == degree and s.dtype == torch.float64
    assert tuple(s.sh.shape) == (0, (degree + 1) ** 2, 3)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_from_activated_round_trip(degree):
    g = torch.Generator().manual_seed(1)
    n = 20
    means = torch.randn(n, 3, generator=g)
    rgb = torch.rand(n, 3, generator=g) * 0.98 + 0.01
    scales = torch.rand(n, 3, generator=g) * 0.1 + 1e-3
    opacities = torch.rand(n, generator=g) * 0.98 + 0.01
    quats = torch.randn(n, 4, generator=g)
    s = GaussianScene.from_activated(means, rgb, scales, opacities, quats=quats, sh_degree=degree)
    assert s.sh_degree == degree
    assert torch.equal(s.means, means) and torch.equal(s.quats, quats)
    torch.testing.assert_close(s.rgb, rgb)
    torch.testing.assert_close(s.scales, scales)
    torch.testing.assert_close(s.opacities, opacities)
    assert torch.count_nonzero(s.sh[:, 1:]) == 0


def test_from_activated_defaults_and_extreme_opacities():
    n = 3
    s = GaussianScene.from_activated(
        torch.zeros(n, 3), torch.tensor([[0.0, 0.5, 1.0]] * n), torch.ones(n, 3), torch.tensor([0.0, 0.5, 1.0])
    )
    assert s.quats.tolist() == [[1.0, 0.0, 0.0, 0.0]] * n
    assert bool(torch.isfinite(s.opacity_logits).all())  # opacity 0 and 1 clamped, not +-inf
    assert s.opacity_logits[1] == 0.0 and s.opacity_logits[0] < -10 and s.opacity_logits[2] > 10
    torch.testing.assert_close(s.rgb, torch.tensor([[0.0, 0.5, 1.0]] * n))
    assert s.log_scales.abs().max() == 0.0


def test_from_activated_float64():
    s = GaussianScene.from_activated(
        torch.zeros(2, 3, dtype=torch.float64), torch.full((2, 3), 0.3), torch.full((2, 3), 0.2), torch.full((2,), 0.4)
    )
    assert s.dtype == torch.float64
    torch.testing.assert_close(s.opacities, torch.full((2,), 0.4, dtype=torch.float64))


@pytest.mark.parametrize(
    "arg,value,match",
    [
        ("means", torch.zeros(4, 2), r"means must be a tensor of shape \[N, 3\], got \[4, 2\]"),
        ("rgb", torch.zeros(4, 4), r"rgb must have shape \[N, 3\] with N=4, got \[4, 4\]"),
        ("rgb", torch.zeros(3, 3), r"rgb must have shape \[N, 3\] with N=4, got \[3, 3\]"),
        ("scales", torch.ones(4), r"scales must have shape \[N, 3\] with N=4, got \[4\]"),
        ("opacities", torch.ones(4, 1), r"opacities must have shape \[N\] with N=4, got \[4, 1\]"),
        ("quats", torch.ones(4, 3), r"quats must have shape \[N, 4\] with N=4, got \[4, 3\]"),
        ("scales", torch.zeros(4, 3), r"scales must be positive"),
        ("scales", -torch.ones(4, 3), r"scales must be positive"),
        ("rgb", [[0.5] * 3] * 4, r"rgb must have shape \[N, 3\] with N=4, got list"),
    ],
)
def test_from_activated_rejects(arg, value, match):
    kwargs = {"means": torch.zeros(4, 3), "rgb": torch.zeros(4, 3), "scales": torch.ones(4, 3),
              "opacities": torch.full((4,), 0.5)}  # fmt: skip
    kwargs[arg] = value
    with pytest.raises(SceneError, match="from_activated: " + match):
        GaussianScene.from_activated(**kwargs)


def test_from_activated_rejects_nan():
    rgb = torch.zeros(2, 3)
    rgb[1, 2] = math.nan
    with pytest.raises(SceneError, match="sh has non-finite"):
        GaussianScene.from_activated(torch.zeros(2, 3), rgb, torch.ones(2, 3), torch.full((2,), 0.5))


# ------------------------------------------------------------------------------------ transforms
def test_to_dtype_and_device():
    s = make_scene(degree=2)
    d = s.to(dtype=torch.float64)
    assert d.dtype == torch.float64 and all(t.dtype == torch.float64 for t in d.tensors().values())
    assert_scene_equal(d.to(dtype=torch.float32), s)
    m = s.to("meta")
    assert m.device.type == "meta" and all(t.device.type == "meta" for t in m.tensors().values())
    assert m.num_gaussians == s.num_gaussians and m.sh_degree == 2
    c = s.to("cpu")
    assert_scene_equal(c, s)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_and_back():
    s = make_scene()
    g = s.to("cuda")
    assert g.device.type == "cuda"
    assert_scene_equal(g.to("cpu"), s)


def test_detach_and_clone():
    t = {k: v.requires_grad_() for k, v in make_tensors().items()}
    s = GaussianScene(**t)
    d = s.detach()
    assert not any(v.requires_grad for v in d.tensors().values())
    assert d.means.data_ptr() == s.means.data_ptr()  # a view, no copy
    c = s.clone()
    assert all(v.requires_grad for v in c.tensors().values())
    assert c.means.data_ptr() != s.means.data_ptr()
    c.means.sum().backward()
    torch.testing.assert_close(t["means"].grad, torch.ones_like(t["means"]))


def test_subset_by_bool_mask_tensor_list_and_numpy():
    s = make_scene(n=5)
    mask = [True, False, True, False, True]
    for index in (torch.tensor(mask), mask, np.array(mask)):
        sub = s.subset(index)
        assert sub.num_gaussians == 3
        assert torch.equal(sub.means, s.means[[0, 2, 4]])
        assert torch.equal(sub.sh, s.sh[[0, 2, 4]])
        assert torch.equal(sub.opacity_logits, s.opacity_logits[[0, 2, 4]])


def test_subset_by_indices():
    s = make_scene(n=5, degree=3)
    for index in ([4, 0, 0, -1], torch.tensor([4, 0, 0, -1]), np.array([4, 0, 0, -1]),
                  torch.tensor([4, 0, 0, 4], dtype=torch.uint8)):  # fmt: skip
        sub = s.subset(index)
        assert sub.num_gaussians == 4
        for name in FIELDS:
            full = getattr(s, name)
            assert torch.equal(getattr(sub, name), torch.stack([full[4], full[0], full[0], full[4]]))


def test_subset_empty_indices():
    s = make_scene(n=5, degree=2)
    for index in ([], torch.tensor([], dtype=torch.long), np.array([], dtype=np.int64)):
        sub = s.subset(index)
        assert sub.num_gaussians == 0 and sub.sh_degree == 2


def test_subset_by_slice():
    s = make_scene(n=6)
    assert torch.equal(s.subset(slice(1, 4)).quats, s.quats[1:4])
    assert torch.equal(s.subset(slice(None, None, 2)).log_scales, s.log_scales[0::2])
    assert torch.equal(s.subset(slice(None, None, -1)).means, s.means[[5, 4, 3, 2, 1, 0]])
    assert torch.equal(s.subset(slice(4, 0, -2)).sh, s.sh[[4, 2]])
    assert s.subset(slice(10, 20)).num_gaussians == 0


@pytest.mark.parametrize(
    "index,match",
    [
        (torch.tensor([True, False]), r"subset mask must have shape \[N=5\], got \[2\]"),
        ([True] * 6, r"subset mask must have shape \[N=5\], got \[6\]"),
        ([0, 5], r"subset index out of range for a scene of 5 Gaussians \(got indices from 0 to 5\)"),
        (torch.tensor([-6]), r"subset index out of range"),
        (torch.tensor([0.0, 1.0]), r"subset indices must be integers or booleans, got torch.float32"),
        ([0.5], r"subset indices must be integers or booleans"),
        (torch.tensor([[0, 1]]), r"subset indices must be one-dimensional, got shape \[1, 2\]"),
        (3, r"subset indices must be one-dimensional, got shape \[\]"),
        (["a", "b"], r"subset needs a boolean mask, integer indices or a slice, got list"),
        (slice(0, 3, 0), r"subset slice step cannot be zero"),
    ],
)
def test_subset_rejects(index, match):
    with pytest.raises(SceneError, match=match):
        make_scene(n=5).subset(index)


def test_subset_keeps_autograd():
    t = {k: v.requires_grad_() for k, v in make_tensors(n=4).items()}
    s = GaussianScene(**t)
    s.subset([1, 1, 3]).means.sum().backward()
    assert t["means"].grad[:, 0].tolist() == [0.0, 2.0, 0.0, 1.0]


def test_with_sh_degree_up_down_same():
    s = make_scene(n=4, degree=1)
    up = s.with_sh_degree(3)
    assert up.sh_degree == 3 and tuple(up.sh.shape) == (4, 16, 3)
    assert torch.equal(up.sh[:, :4], s.sh) and torch.count_nonzero(up.sh[:, 4:]) == 0
    assert torch.equal(up.means, s.means) and torch.equal(up.opacity_logits, s.opacity_logits)
    down = up.with_sh_degree(0)
    assert down.sh_degree == 0 and torch.equal(down.sh, s.sh[:, :1])
    assert s.with_sh_degree(1) is s
    with pytest.raises(SceneError, match="SH degree must be 0, 1, 2 or 3, got 4"):
        s.with_sh_degree(4)


def test_concat_mixed_sh_degrees():
    a, b, c = make_scene(n=2, degree=0, seed=1), make_scene(n=3, degree=2, seed=2), make_scene(n=1, degree=1, seed=3)
    s = GaussianScene.concat([a, b, c])
    assert s.num_gaussians == 6 and s.sh_degree == 2
    assert torch.equal(s.means, torch.cat([a.means, b.means, c.means]))
    assert torch.equal(s.quats[2:5], b.quats) and torch.equal(s.opacity_logits[5:], c.opacity_logits)
    assert torch.equal(s.sh[:2, :1], a.sh) and torch.count_nonzero(s.sh[:2, 1:]) == 0
    assert torch.equal(s.sh[2:5], b.sh)
    assert torch.equal(s.sh[5:, :4], c.sh) and torch.count_nonzero(s.sh[5:, 4:]) == 0


def test_concat_with_empty_and_single():
    a = make_scene(n=3, degree=1)
    s = GaussianScene.concat([GaussianScene.empty(3), a])
    assert s.sh_degree == 3 and torch.equal(s.means, a.means)
    assert_scene_equal(GaussianScene.concat(iter([a])), a)


def test_concat_keeps_autograd():
    t = {k: v.requires_grad_() for k, v in make_tensors(n=2, degree=0).items()}
    s = GaussianScene.concat([GaussianScene(**t), make_scene(n=1, degree=1)])
    s.sh.sum().backward()
    assert t["sh"].grad.tolist() == [[[1.0, 1.0, 1.0]]] * 2


def test_concat_rejects():
    with pytest.raises(SceneError, match="needs at least one scene"):
        GaussianScene.concat([])
    with pytest.raises(SceneError, match=r"one dtype and device, got dtypes \['torch.float32', 'torch.float64'\]"):
        GaussianScene.concat([make_scene(), make_scene(dtype=torch.float64)])
    with pytest.raises(SceneError, match=r"devices \['cpu', 'meta'\]"):
        GaussianScene.concat([make_scene(), make_scene().to("meta")])


# ------------------------------------------------------------------------------------ summary
def test_summary_known_values():
    t = make_tensors(n=5, degree=1)
    t["means"] = torch.tensor([[0.0, 0, 0], [1, 2, 3], [-1, 0, 1], [0, 0, 0], [0.5, 0.5, 0.5]])
    t["opacity_logits"] = torch.tensor([0.0, 0.0, -10.0, 10.0, 0.0])  # sigmoid(-10) < 1/255
    t["log_scales"] = torch.log(torch.tensor([[1.0, 2, 4], [1, 1, 1], [2, 2, 2], [1, 1, 3], [1, 5, 1]]))
    t["quats"][1] = 0.0
    st = GaussianScene(**t).summary()
    assert st["num_gaussians"] == 5 and st["sh_degree"] == 1 and st["dtype"] == "torch.float32"
    assert st["bounds_min"] == [-1.0, 0.0, 0.0] and st["bounds_max"] == [1.0, 2.0, 3.0]
    assert st["extent"] == [2.0, 2.0, 3.0]
    assert st["nearly_transparent_fraction"] == pytest.approx(0.2)
    assert st["degenerate_quat_count"] == 1
    assert st["max_scale"]["max"] == pytest.approx(5.0) and st["max_scale"]["min"] == pytest.approx(1.0)
    assert st["max_scale"]["median"] == pytest.approx(3.0)  # 4, 1, 2, 3, 5
    assert st["isotropy_ratio_median"] == pytest.approx(3.0)  # ratios 4, 1, 1, 3, 5
    assert st["opacity"]["median"] == pytest.approx(0.5)
    assert st["opacity"]["max"] == pytest.approx(1 / (1 + math.exp(-10)))


def test_summary_of_empty_scene():
    assert GaussianScene.empty(2).summary() == {"num_gaussians": 0, "sh_degree": 2, "dtype": "torch.float32"}
