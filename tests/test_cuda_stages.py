"""Our CUDA rasteriser one stage at a time against the torch backend's stages (float64 reference),
as gsplat tests each op:

* projection: ``project`` vs :func:`projection.project_gaussians` + :func:`projection.screen_radii`
  + :func:`sh.sh_to_rgb` (means2d, conics, depths, opacities, colours, radii);
* binning + compositing forward: ``rasterize_forward`` vs :func:`rasterize.intersect_tiles` +
  :func:`rasterize.composite`, given identical projected rows (the torch rows rounded to float32);
* compositing backward: ``rasterize_backward`` vs torch autograd through ``composite``;
* projection backward: ``project_backward`` vs torch autograd through the torch projection stage.

The extension's bindings are called directly (see :mod:`adlift.render.cuda_backend`). Tolerances:
float32 against float64, and where float32 itself is ill-conditioned the torch stages in float32
give the baseline the kernels may miss by at most twice (``tests.helpers.assert_*_close``).
Skips without a CUDA GPU; on a GPU machine a failed build is a test failure.
"""

from __future__ import annotations

import pytest
import torch

from adlift.cameras import camera_centers, orbit_cameras
from adlift.render.projection import EPS2D, covariance_factor, project_gaussians, screen_radii
from adlift.render.rasterize import RasterSettings, composite, intersect_tiles
from adlift.render.sh import sh_to_rgb
from tests.helpers import SEEDS, assert_grads_close, assert_images_close, parity_scene

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA build of torch to build and run cuda/"
)

NEAR, FAR = 0.01, 1e10
#: (Gaussians, width, height, cameras, orbit radius): one camera (plain stores in the projection
#: backward) and several (atomics); the close orbit puts Gaussians beyond the frustum clamp.
CASES = [(500, 33, 17, 1, 3.0), (2000, 64, 48, 3, 3.0), (1500, 48, 40, 2, 1.6)]
FIELDS = ("means2d", "conics", "depths", "opacities", "colors")


@pytest.fixture(scope="module")
def ext():
    from adlift.render.cuda_build import probe

    module, reason = probe()
    if module is None:
        pytest.fail(f"the CUDA rasteriser did not build on a CUDA machine: {reason}")
    return module


def setup(seed: int, case, sh_degree: int = 3):
    n, width, height, n_cam, radius = case
    scene = parity_scene(seed, n=n, sh_degree=3)  # float64, CPU
    cams = orbit_cameras(n_cam, [0, 0, 0], radius, width=width, height=height)
    return scene, cams.to(dtype=torch.float64), sh_degree


# ----------------------------------------------------------------------------------- torch stages
def torch_project(tensors, cams, sh_degree: int, dtype=torch.float64):
    """The torch backend's projection stage for every (camera, Gaussian): dict of [C, N, ...] tensors
    (differentiable w.r.t. ``tensors`` = (means, quats, log_scales, opacity_logits, sh)) and radii
    [C, N, 2] int32. Values of culled entries are whatever the formulas give."""
    means, quats, log_scales, logits, sh = tensors
    viewmats, Ks = cams.viewmats.to(dtype), cams.Ks.to(dtype)
    centres = camera_centers(viewmats)
    factors = covariance_factor(quats, torch.exp(log_scales))
    opac = torch.sigmoid(logits)
    out = {name: [] for name in FIELDS + ("radii",)}
    for c in range(len(cams)):
        proj = project_gaussians(means, factors, viewmats[c], Ks[c], cams.width, cams.height, EPS2D)
        out["radii"].append(screen_radii(proj, opac.detach(), cams.width, cams.height, NEAR, FAR))
        out["means2d"].append(proj.means2d)
        out["conics"].append(proj.conics)
        out["depths"].append(proj.depths)
        out["opacities"].append(opac)
        out["colors"].append(sh_to_rgb(sh_degree, means - centres[c], sh))
    return {k: torch.stack(v) for k, v in out.items()}


def torch_composite(rows: dict, radii: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The torch rasteriser on projected rows [C, P, ...] (entries with radii (0, 0) are dropped):
    [C, 5, H, W] = rgb, depth sum, alpha (differentiable w.r.t. the row tensors)."""
    n_cam = radii.shape[0]
    keep = (radii > 0).any(-1)  # [C, P]
    cam_ids, ids = torch.nonzero(keep, as_tuple=True)
    pick = lambda t: t[cam_ids, ids]  # noqa: E731
    table = torch.cat([pick(rows["means2d"]), pick(rows["conics"]), torch.log(pick(rows["opacities"]))[:, None],
                       pick(rows["colors"]), pick(rows["depths"])[:, None]], dim=1)  # fmt: skip
    settings = RasterSettings()
    plan = intersect_tiles(table, pick(radii), table[:, 9], cam_ids, n_cam, width, height, settings.tile)
    return composite(table, plan, settings)


def cuda_project(ext, scene, cams, sh_degree: int):
    """``project`` into fresh NaN-poisoned [C, N] buffers; returns the buffers (CPU float64, radii int32)."""
    from adlift.render.cuda_backend import Projection, _scene_tensors

    device = torch.device("cuda")
    tensors = _scene_tensors(scene, device)
    viewmats = cams.viewmats.to(device, torch.float32).contiguous()
    Ks = cams.Ks.to(device, torch.float32).contiguous()
    proj = Projection.empty(len(cams), scene.num_gaussians, device, poison=True)
    ext.project(*tensors, viewmats, Ks, cams.width, cams.height, sh_degree, NEAR, FAR, EPS2D, *proj.tensors(), 0)
    out = {name: getattr(proj, name).double().cpu() for name in FIELDS}
    out["radii"] = proj.radii.cpu()
    return out, tensors, viewmats, Ks


def leaves(scene, dtype):
    return [t.detach().to(dtype).clone().requires_grad_() for t in scene.tensors().values()]


def projected_rows(scene, cams, sh_degree):
    """Torch-projected rows rounded to float32 (what both rasterisers get) and their radii."""
    with torch.no_grad():
        proj = torch_project(leaves(scene, torch.float64), cams, sh_degree)
    radii = proj.pop("radii")
    keep = (radii > 0).any(-1)
    rows = {k: torch.where(keep.reshape(keep.shape + (1,) * (v.dim() - 2)), v, torch.zeros_like(v)).float()
            for k, v in proj.items()}  # fmt: skip
    return rows, radii


def to_cuda(rows: dict, radii: torch.Tensor):
    return [rows[k].cuda().contiguous() for k in FIELDS] + [radii.cuda().contiguous()]


# -------------------------------------------------------------------------------------- projection
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_projection_matches_the_torch_stage(ext, seed, case, sh_degree):
    scene, cams, deg = setup(seed, case, sh_degree)
    got, *_ = cuda_project(ext, scene, cams, deg)
    with torch.no_grad():
        want = torch_project(leaves(scene, torch.float64), cams, deg)
    vis_got, vis_want = (got["radii"] != 0).any(-1), (want["radii"] != 0).any(-1)
    flips = int((vis_got != vis_want).sum())
    assert flips <= max(2, vis_want.numel() // 1000), f"{flips} (camera, Gaussian) pairs culled differently"
    both = vis_got & vis_want
    assert int(both.sum()) > 0.2 * both.numel()  # the case does draw most Gaussians
    radii_off = (got["radii"][both] - want["radii"][both]).abs()
    assert int(radii_off.max()) <= 1 and int((radii_off > 0).sum()) <= max(2, radii_off.numel() // 1000)
    for name in FIELDS:
        a, b = got[name][both], want[name][both]
        assert torch.isfinite(a).all(), f"{name}: unwritten or non-finite values on visible rows"
        scale = float(b.abs().max())
        tol = {"means2d": (1e-3, 1e-5), "conics": (1e-4 * scale, 1e-3), "depths": (1e-5, 1e-5),
               "opacities": (1e-6, 1e-5), "colors": (1e-5, 1e-4)}[name]  # fmt: skip
        torch.testing.assert_close(a, b, atol=tol[0], rtol=tol[1], msg=lambda m, name=name: f"{name}: {m}")


# ------------------------------------------------------------------------- binning + compositing
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_binning_and_compositing_forward_match_the_torch_rasteriser(ext, seed, case):
    scene, cams, deg = setup(seed, case)
    rows, radii = projected_rows(scene, cams, deg)
    feats, alpha, last, ranges, sorted_rows = ext.rasterize_forward(*to_cuda(rows, radii), cams.width, cams.height,
                                                                    True)  # fmt: skip
    with torch.no_grad():
        want = torch_composite({k: v.double() for k, v in rows.items()}, radii, cams.width, cams.height)
        base = torch_composite(rows, radii, cams.width, cams.height)  # the torch rasteriser in float32
    got = torch.cat([feats, alpha], dim=1).double().cpu()  # [C, 5, H, W]: rgb, depth sum, alpha
    assert torch.isfinite(got).all(), "unwritten pixels"
    assert float(want[:, 4].max()) > 0.5
    for sl in (slice(0, 3), slice(3, 4), slice(4, 5)):
        assert_images_close(got[:, sl], want[:, sl], baseline=base[:, sl])
    # Binning: every sorted entry is a row that was drawn; ranges tile the sorted list in order.
    rows_flat = sorted_rows.long().cpu()
    assert bool((radii.reshape(-1, 2)[rows_flat] > 0).any(-1).all())
    r = ranges.long().cpu()
    assert bool((r[:, 0] <= r[:, 1]).all()) and int(r[:, 1].max()) <= rows_flat.numel()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_compositing_backward_matches_torch_autograd(ext, seed, case):
    scene, cams, deg = setup(seed, case)
    rows, radii = projected_rows(scene, cams, deg)
    g = torch.Generator().manual_seed(seed)
    n_cam, h, w = len(cams), cams.height, cams.width
    v_feats = torch.rand(n_cam, 4, h, w, generator=g) * torch.tensor([1.0, 1.0, 1.0, 0.05])[None, :, None, None]
    v_alpha = torch.rand(n_cam, 1, h, w, generator=g)

    def torch_grads(dtype):
        leaf = {k: v.to(dtype).clone().requires_grad_() for k, v in rows.items()}
        img = torch_composite(leaf, radii, w, h)
        ((img[:, :4] * v_feats.to(dtype)).sum() + (img[:, 4:5] * v_alpha.to(dtype)).sum()).backward()
        return [leaf[k].grad.double() for k in FIELDS]

    want, base = torch_grads(torch.float64), torch_grads(torch.float32)
    args = to_cuda(rows, radii)
    feats, alpha, last, ranges, sorted_rows = ext.rasterize_forward(*args, w, h, True)
    m2, conics, depths, opacities, colors, _ = args
    v_m2, v_conics, v_opac, v_colors, v_depths = ext.rasterize_backward(
        m2, conics, opacities, colors, depths, ranges, sorted_rows, alpha, last,
        v_feats.cuda().contiguous(), v_alpha.cuda().contiguous(), 0, w, h,
    )  # fmt: skip
    got = {"means2d": v_m2, "conics": v_conics, "depths": v_depths, "opacities": v_opac, "colors": v_colors}
    keep = (radii > 0).any(-1)
    for name, b, f32 in zip(FIELDS, want, base):
        a = got[name].double().cpu()
        assert torch.isfinite(a).all(), f"d/d {name}: non-finite"
        assert not bool(a[~keep].abs().sum()), f"d/d {name}: gradient on rows that were not drawn"
        assert_grads_close([a[keep]], [b[keep]], baseline=[f32[keep]], names=(name,))


# ------------------------------------------------------------------------------ projection backward
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sh_degree", [0, 3])
def test_projection_backward_matches_torch_autograd(ext, seed, case, sh_degree):
    scene, cams, deg = setup(seed, case, sh_degree)
    got_proj, tensors, viewmats, Ks = cuda_project(ext, scene, cams, deg)
    radii = got_proj["radii"]
    drawn = (radii != 0).any(-1)  # [C, N]: the rows the kernels treat as projected
    g = torch.Generator().manual_seed(seed)
    shapes = {"means2d": (2,), "conics": (3,), "depths": (), "opacities": (), "colors": (3,)}
    scale = {"means2d": 1.0, "conics": 1.0, "depths": 0.1, "opacities": 1.0, "colors": 1.0}
    mask = lambda t: t * drawn.reshape(drawn.shape + (1,) * (t.dim() - 2))  # noqa: E731
    v = {k: mask(torch.randn(*drawn.shape, *s, generator=g) * scale[k]) for k, s in shapes.items()}

    def torch_grads(dtype):
        params = leaves(scene, dtype)
        out = torch_project(params, cams, deg, dtype)
        loss = sum((torch.where(mask(torch.ones_like(out[k])) > 0, out[k], 0) * v[k].to(dtype)).sum() for k in FIELDS)
        loss.backward()
        return [p.grad.double() for p in params]

    want, base = torch_grads(torch.float64), torch_grads(torch.float32)
    grads = ext.project_backward(
        *tensors, viewmats, Ks, cams.width, cams.height, deg, NEAR, FAR, EPS2D, radii.cuda().contiguous(), 0,
        *(v[k].float().cuda().contiguous() for k in ("means2d", "conics", "depths", "opacities", "colors")),
    )  # fmt: skip
    got = [t.double().cpu() for t in grads]
    for a in got:
        assert torch.isfinite(a).all()
    assert_grads_close(got, want, baseline=base)
