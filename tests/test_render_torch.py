"""The pure-PyTorch renderer: exact semantics, gradients, edge cases and memory bounds.

Most value checks compare against ``reference_render`` below, an independent, deliberately naive
implementation written from the 3DGS equations (scipy rotations, explicit J W Sigma W^T J^T, its
own real SH basis from the associated Legendre functions, a loop over Gaussians in depth order
vectorised over all pixels, no tiles).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from adlift.registry import Entry
from adlift import AdLiftError, Cameras, GaussianScene
from adlift.cameras import intrinsics_matrix, orbit_cameras
from adlift.render import api, available_backends, contact_sheet, render, save_images, torch_backend
from adlift.render import rasterize as rz
from adlift.render.sh import sh_basis

F64 = torch.float64
#: The degree-0 real SH constant, 1 / (2 sqrt(pi)) (this file's own; the renderer's lives in adlift.scene).
SH_C0 = 0.5 / math.sqrt(math.pi)


# ------------------------------------------------------------------------------------ helpers
def make_scene(n=40, sh_degree=1, seed=0, dtype=F64, spread=0.5, scale=(0.03, 0.2), opacity=(0.05, 0.98)):
    """Random Gaussians around the origin with visible sizes and a range of opacities."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    lo, hi = math.log(scale[0]), math.log(scale[1])
    op = opacity[0] + (opacity[1] - opacity[0]) * torch.rand(n, generator=g, dtype=F64)
    sh = torch.randn(n, k, 3, generator=g, dtype=F64) * 0.25
    sh[:, 0] = (torch.rand(n, 3, generator=g, dtype=F64) - 0.5) / SH_C0
    scene = GaussianScene(
        means=torch.randn(n, 3, generator=g, dtype=F64) * spread,
        quats=torch.randn(n, 4, generator=g, dtype=F64),
        log_scales=lo + (hi - lo) * torch.rand(n, 3, generator=g, dtype=F64),
        opacity_logits=torch.logit(op),
        sh=sh,
    )
    return scene.to(dtype=dtype)


def front_camera(width=32, height=24, f=30.0, cx=None, cy=None, dtype=F64) -> Cameras:
    """One camera at the origin looking down +z (identity world-to-camera)."""
    K = intrinsics_matrix(f, f, width / 2 if cx is None else cx, height / 2 if cy is None else cy, dtype=dtype)
    return Cameras(torch.eye(4, dtype=dtype)[None], K[None], width, height)


def single(mean, scales, quat=(1.0, 0.0, 0.0, 0.0), opacity=0.8, rgb=(0.9, 0.5, 0.1), dtype=F64) -> GaussianScene:
    """A one-Gaussian scene from activated values."""
    t = lambda x: torch.tensor([x], dtype=dtype)  # noqa: E731
    return GaussianScene.from_activated(t(mean), t(rgb), t(scales), t(opacity), quats=t(quat))


def reference_render(scene: GaussianScene, cameras: Cameras, background=None, sh_degree=None, near=0.01):
    """Naive per-pixel compositing with gsplat's rules (float64). Returns rgb, alpha, depth [C, ., H, W]."""
    deg = scene.sh_degree if sh_degree is None else sh_degree
    means = scene.means.detach().double().numpy()
    q = scene.quats.detach().double().numpy()
    scales = np.exp(scene.log_scales.detach().double().numpy())
    opac = torch.sigmoid(scene.opacity_logits.detach().double()).numpy()
    sh = scene.sh.detach().double().numpy()
    rot = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy: scalar-last
    sigma3 = rot @ (scales[:, :, None] ** 2 * np.transpose(rot, (0, 2, 1)))  # [N, 3, 3]
    W, H = cameras.width, cameras.height
    py, px = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    out_rgb, out_a, out_d = [], [], []
    for c in range(len(cameras)):
        V = cameras.viewmats[c].double().numpy()
        K = cameras.Ks[c].double().numpy()
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        centre = -V[:3, :3].T @ V[:3, 3]
        basis = reference_sh_basis(deg, _unit(means - centre))  # [N, (deg+1)^2]
        colours = np.maximum((basis[:, :, None] * sh[:, : (deg + 1) ** 2]).sum(1) + 0.5, 0)
        T = np.ones((H, W))
        done = np.zeros((H, W), bool)
        rgb, dep = np.zeros((3, H, W)), np.zeros((H, W))
        mc = means @ V[:3, :3].T + V[:3, 3]
        for i in np.argsort(mc[:, 2], kind="stable"):
            x, y, z = mc[i]
            if z < near:
                continue
            limx = (W - cx) / fx + 0.3 * 0.5 * W / fx, cx / fx + 0.3 * 0.5 * W / fx
            limy = (H - cy) / fy + 0.3 * 0.5 * H / fy, cy / fy + 0.3 * 0.5 * H / fy
            tx = z * min(max(x / z, -limx[1]), limx[0])
            ty = z * min(max(y / z, -limy[1]), limy[0])
            J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
            cov = J @ V[:3, :3] @ sigma3[i] @ V[:3, :3].T @ J.T + 0.3 * np.eye(2)
            if np.linalg.det(cov) <= 0:
                continue
            conic = np.linalg.inv(cov)
            dx, dy = fx * x / z + cx - px, fy * y / z + cy - py
            s = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
            a = np.minimum(0.999, opac[i] * np.exp(-s))
            use = (a >= 1 / 255) & ~done
            nt = T * (1 - a)
            stop = use & (nt <= 1e-4)
            done |= stop
            use &= ~stop
            w = np.where(use, a * T, 0.0)
            rgb += w * colours[i][:, None, None]
            dep += w * z
            T = np.where(use, nt, T)
        alpha = 1 - T
        if background is not None:
            rgb += T * np.asarray(background, dtype=float)[:, None, None]
        out_rgb.append(rgb)
        out_a.append(alpha[None])
        out_d.append((dep / np.maximum(alpha, 1e-10))[None])
    return tuple(torch.from_numpy(np.stack(x)) for x in (out_rgb, out_a, out_d))


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def reference_sh_basis(degree: int, dirs: np.ndarray) -> np.ndarray:
    """Real spherical harmonics Y_l^m, l <= degree, m = -l..l, at unit directions [N, 3] -> [N, (degree+1)^2].

    Written from the textbook definition, independently of :mod:`adlift.render.sh`:
    ``Y_l^0 = K_l^0 P_l^0(z)``, ``Y_l^m = sqrt(2) K_l^m P_l^m(z) cos(m phi)`` and
    ``Y_l^-m = sqrt(2) K_l^m P_l^m(z) sin(m phi)`` (m > 0), ``K_l^m = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!)``,
    with the Condon-Shortley phase in the associated Legendre functions ``P_l^m`` (this gives the
    3DGS signs: ``-C1 y, C1 z, -C1 x`` for degree 1). ``P_l^m(z) = Q_l^m(z) sin^m(theta)`` with
    ``Q_m^m = (-1)^m (2m-1)!!``, ``Q_{m+1}^m = (2m+1) z Q_m^m`` and
    ``(l-m) Q_l^m = (2l-1) z Q_{l-1}^m - (l+m-1) Q_{l-2}^m``; ``sin^m(theta) e^{i m phi} = (x + i y)^m``.
    """
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    q = {}  # (l, m) -> Q_l^m(z)
    for m in range(degree + 1):
        q[m, m] = (-1) ** m * math.prod(range(1, 2 * m, 2)) * np.ones_like(z)
        if m + 1 <= degree:
            q[m + 1, m] = (2 * m + 1) * z * q[m, m]
        for l in range(m + 2, degree + 1):
            q[l, m] = ((2 * l - 1) * z * q[l - 1, m] - (l + m - 1) * q[l - 2, m]) / (l - m)
    out = []
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            a = abs(m)
            k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - a) / math.factorial(l + a))
            if m == 0:
                out.append(k * q[l, 0])
                continue
            phase = (x + 1j * y) ** a  # sin^|m|(theta) e^{i |m| phi}
            trig = phase.real if m > 0 else phase.imag
            out.append(math.sqrt(2) * k * q[l, a] * trig)
    return np.stack(out, axis=-1)


@pytest.fixture
def tile(request, monkeypatch):
    """Run a test with a given rasteriser tile size (results must not depend on it)."""
    monkeypatch.setattr(torch_backend.SETTINGS, "tile", request.param)
    return request.param


def grad_params(scene: GaussianScene) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in scene.tensors().values()]


# ------------------------------------------------------------------------------------ API
def test_output_shapes_types_and_backend_name():
    scene = make_scene(dtype=torch.float32)
    cams = orbit_cameras(3, [0, 0, 0], 2.5, width=20, height=14)
    out = render(scene, cams)
    assert out.backend == "torch" and "torch" in available_backends()
    assert out.rgb.shape == (3, 3, 14, 20) and out.alpha.shape == (3, 1, 14, 20) and out.depth.shape == (3, 1, 14, 20)
    assert out.visible.shape == (3, 40) and out.visible.dtype == torch.bool
    assert out.rgb.dtype == torch.float32
    assert float(out.alpha.min()) >= 0 and float(out.alpha.max()) <= 1


def test_errors_are_adlift_errors():
    scene = make_scene(n=3)
    cams = front_camera()
    with pytest.raises(AdLiftError, match="unknown render backend 'nope'"):
        render(scene, cams, backend="nope")
    if not torch.cuda.is_available():
        with pytest.raises(AdLiftError, match="'cuda' is unavailable"):
            render(scene, cams, backend="cuda")
        with pytest.raises(AdLiftError, match="'gsplat' is unavailable: needs a CUDA GPU"):
            render(scene, cams, backend="gsplat")
    with pytest.raises(AdLiftError, match="background must be"):
        render(scene, cams, background=(1.0, 0.0))
    with pytest.raises(AdLiftError, match="sh_degree=2 is outside 0..1"):
        render(scene, cams, sh_degree=2)
    with pytest.raises(AdLiftError, match="near_plane"):
        render(scene, cams, near_plane=2.0, far_plane=1.0)


def test_registry_auto_prefers_highest_priority(monkeypatch):
    calls = []

    def fake(scene, request):
        calls.append(request.sh_degree)
        return torch_backend.render_torch(scene, request)

    monkeypatch.setitem(api.BACKENDS._entries, "cuda", Entry("cuda", api.Backend("cuda", fake, lambda: True, priority=20), ""))
    out = render(make_scene(n=5), front_camera())
    assert out.backend == "cuda" and calls == [1]
    monkeypatch.setitem(api.BACKENDS._entries, "cuda", Entry("cuda", api.Backend("cuda", fake, lambda: False, priority=20), ""))
    assert render(make_scene(n=5), front_camera()).backend in ("gsplat", "torch")


# ------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("tile", [4, 8, 16], indirect=True)
@pytest.mark.parametrize("size", [(37, 23), (16, 16), (5, 9)])
def test_matches_reference_float64(tile, size):
    scene = make_scene(n=40, sh_degree=2, seed=1)
    cams = orbit_cameras(2, [0, 0, 0], 2.2, width=size[0], height=size[1]).to(dtype=F64)
    out = render(scene, cams, background=(0.1, 0.2, 0.3))
    ref = reference_render(scene, cams, background=(0.1, 0.2, 0.3))
    for got, want in zip((out.rgb, out.alpha, out.depth), ref):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)
    assert float(out.alpha.max()) > 0.9  # the scene does cover pixels


def test_off_centre_principal_point_and_frustum_clamp_match_reference():
    """fx != fy, off-centre principal point, and Gaussians beyond 1.3x the half field of view."""
    scene = make_scene(n=60, sh_degree=1, seed=14, spread=1.2, scale=(0.1, 0.5))
    view = torch.eye(4, dtype=F64)
    view[2, 3] = 2.0  # camera 2 units in front of the origin
    K = intrinsics_matrix(25.0, 32.0, 10.3, 14.9, dtype=F64)
    cams = Cameras(view[None], K[None], 37, 23)
    with torch.no_grad():
        mc = scene.means @ view[:3, :3].T + view[:3, 3]
        x_over_z = mc[:, 0] / mc[:, 2]
    assert bool(((x_over_z > (37 - 10.3) / 25 + 0.3 * 37 / 50) & (mc[:, 2] > 0.5)).any())  # clamp is active
    out = render(scene, cams, background=(0.5, 0.5, 0.5))
    ref = reference_render(scene, cams, background=(0.5, 0.5, 0.5))
    for got, want in zip((out.rgb, out.alpha, out.depth), ref):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)
    _gradcheck(make_scene(n=5, sh_degree=1, seed=15, spread=1.0, scale=(0.2, 0.4)), Cameras(view[None], K[None], 12, 9))


def test_float32_matches_reference():
    scene = make_scene(n=60, sh_degree=3, seed=2)
    cams = orbit_cameras(2, [0, 0, 0], 2.0, width=48, height=32)
    out = render(scene.to(dtype=torch.float32), cams)
    ref = reference_render(scene, cams)
    for got, want in zip((out.rgb, out.alpha, out.depth), ref):
        torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)


def test_single_gaussian_closed_form():
    """One anisotropic, rotated Gaussian: the image is the projected 2D Gaussian, from first principles."""
    W, H, f = 40, 30, 35.0
    mean, scales = np.array([0.1, -0.05, 2.0]), np.array([0.12, 0.05, 0.08])
    op, rgb, bg = 0.7, (0.9, 0.5, 0.1), (0.0, 0.3, 1.0)
    angle = 0.6  # rotation about the axis (1, 1, 1)/sqrt(3)
    axis = np.ones(3) / math.sqrt(3)
    quat = (math.cos(angle / 2), *(math.sin(angle / 2) * axis))
    out = render(single(mean.tolist(), scales.tolist(), quat, op, rgb), front_camera(W, H, f), background=bg)

    R = Rotation.from_rotvec(angle * axis).as_matrix()
    sigma = R @ np.diag(scales**2) @ R.T
    x, y, z = mean
    J = np.array([[f / z, 0, -f * x / z**2], [0, f / z, -f * y / z**2]])
    cov2d = J @ sigma @ J.T + 0.3 * np.eye(2)  # viewmat is the identity
    mu = np.array([f * x / z + W / 2, f * y / z + H / 2])
    py, px = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    d = np.stack([px - mu[0], py - mu[1]], -1)  # [H, W, 2]
    maha = np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov2d), d)
    alpha = np.minimum(0.999, op * np.exp(-0.5 * maha))
    alpha = np.where(alpha >= 1 / 255, alpha, 0.0)
    want_rgb = alpha * np.array(rgb)[:, None, None] + (1 - alpha) * np.array(bg)[:, None, None]
    torch.testing.assert_close(out.rgb[0], torch.from_numpy(want_rgb), atol=1e-10, rtol=0)
    torch.testing.assert_close(out.alpha[0, 0], torch.from_numpy(alpha), atol=1e-10, rtol=0)
    want_depth = np.where(alpha > 0, z, 0.0)
    torch.testing.assert_close(out.depth[0, 0], torch.from_numpy(want_depth), atol=1e-9, rtol=0)
    assert (alpha > 0).sum() > 50 and (alpha == 0).sum() > 50  # the footprint is inside the image


def test_permuting_gaussians_leaves_image_unchanged():
    scene = make_scene(n=200, sh_degree=1, seed=3, dtype=torch.float32)
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=40, height=28)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    a = render(scene, cams)
    b = render(scene.subset(perm), cams)
    for x, y in zip((a.rgb, a.alpha, a.depth), (b.rgb, b.alpha, b.depth)):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)
    assert torch.equal(a.visible[:, perm], b.visible)


def test_gaussian_behind_camera_or_before_near_plane_contributes_nothing():
    cams = front_camera()
    base = single([0.0, 0.0, 3.0], [0.3, 0.3, 0.3], opacity=0.5)
    for z in (-1.0, 0.005):  # behind the camera; in front but closer than near=0.01
        extra = single([0.0, 0.0, z], [2.0, 2.0, 2.0], opacity=0.99, rgb=(1.0, 0.0, 1.0))
        both = GaussianScene.concat([base, extra])
        a, b = render(base, cams), render(both, cams)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.alpha, b.alpha)
        assert b.visible.tolist() == [[True, False]]
    only_behind = render(single([0.0, 0.0, -1.0], [2.0, 2.0, 2.0], opacity=0.99), cams)
    assert float(only_behind.alpha.abs().max()) == 0.0


def test_near_and_far_planes_cull_by_depth():
    cams = front_camera()
    g = single([0.0, 0.0, 3.0], [0.3, 0.3, 0.3], opacity=0.9)
    assert float(render(g, cams, far_plane=2.9).alpha.max()) == 0.0
    assert float(render(g, cams, near_plane=3.1).alpha.max()) == 0.0
    assert float(render(g, cams, near_plane=2.9, far_plane=3.1).alpha.max()) > 0.5


def test_sh_degree_zero_equals_higher_degree_with_zero_coefficients():
    scene0 = make_scene(n=50, sh_degree=0, seed=4)
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=24, height=24).to(dtype=F64)
    a = render(scene0, cams)
    for degree in (1, 2, 3):
        b = render(scene0.with_sh_degree(degree), cams)
        torch.testing.assert_close(a.rgb, b.rgb, atol=1e-12, rtol=0)


def test_sh_degree_argument_truncates():
    scene = make_scene(n=50, sh_degree=3, seed=5)
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=24, height=24).to(dtype=F64)
    for degree in (0, 1, 2):
        a = render(scene, cams, sh_degree=degree)
        b = render(scene.with_sh_degree(degree), cams)
        torch.testing.assert_close(a.rgb, b.rgb, atol=1e-12, rtol=0)
    assert not torch.allclose(render(scene, cams).rgb, render(scene, cams, sh_degree=0).rgb)


def test_sh_basis_is_orthonormal_and_follows_the_3dgs_convention():
    # Product quadrature (Gauss-Legendre in cos(theta) x uniform phi) is exact for these degrees.
    ct, wt = np.polynomial.legendre.leggauss(10)
    phi = np.arange(20) * 2 * np.pi / 20
    c, p = np.meshgrid(ct, phi, indexing="ij")
    s = np.sqrt(1 - c**2)
    dirs = torch.from_numpy(np.stack([s * np.cos(p), s * np.sin(p), c], -1).reshape(-1, 3))
    w = torch.from_numpy(np.repeat(wt, 20) * (2 * np.pi / 20))
    Y = sh_basis(3, dirs)  # [Q, 16]
    gram = (Y * w[:, None]).T @ Y
    torch.testing.assert_close(gram, torch.eye(16, dtype=F64), atol=1e-10, rtol=0)
    # Signs/order of the INRIA code (Sloan's formulas as written in gsplat's reference): spot checks.
    d = torch.tensor([[0.36, -0.48, 0.8]], dtype=F64)
    x, y, z = 0.36, -0.48, 0.8
    want = [
        0.28209479177387814, -0.4886025119029199 * y, 0.4886025119029199 * z, -0.4886025119029199 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.9461746957575601 * z * z - 0.3153915652525201,
        -1.0925484305920792 * x * z, 0.5462742152960396 * (x * x - y * y),
        -0.5900435899266435 * y * (3 * x * x - y * y), 2.890611442640554 * x * y * z,
        y * (-2.285228997322329 * z * z + 0.4570457994644658), z * (1.865881662950577 * z * z - 1.119528997770346),
        x * (-2.285228997322329 * z * z + 0.4570457994644658), 1.445305721320277 * z * (x * x - y * y),
        -0.5900435899266435 * x * (x * x - 3 * y * y),
    ]  # fmt: skip
    torch.testing.assert_close(sh_basis(3, d)[0], torch.tensor(want, dtype=F64), atol=1e-12, rtol=0)
    # ... and the reference renderer's own basis, written from the definition, agrees everywhere.
    np.testing.assert_allclose(reference_sh_basis(3, dirs.numpy()), Y.numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(reference_sh_basis(3, d.numpy())[0], want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("tile", [8, 16], indirect=True)
def test_gaussian_straddling_a_tile_border_renders_like_one_that_does_not(tile):
    """Shifting the principal point by whole pixels shifts the image exactly, across tile borders."""
    W, H, f, z = 48, 40, 40.0, 2.0
    # In camera A the mean projects onto the pixel corner (16, 16): a border of 8 and 16 px tiles.
    mean = [(16.0 - W / 2) * z / f, (16.0 - H / 2) * z / f, z]
    g = single(mean, [0.08, 0.05, 0.05], quat=(0.9, 0.1, 0.3, 0.2), opacity=0.95)
    a = render(g, front_camera(W, H, f))
    b = render(g, front_camera(W, H, f, cx=W / 2 + 3, cy=H / 2 + 5))  # now at (19, 21): inside a tile
    torch.testing.assert_close(b.rgb[..., 5:, 3:], a.rgb[..., : H - 5, : W - 3], atol=1e-12, rtol=0)
    torch.testing.assert_close(b.alpha[..., 5:, 3:], a.alpha[..., : H - 5, : W - 3], atol=1e-12, rtol=0)
    assert float(a.alpha[..., 15:17, 15:17].min()) > 0.5 and float(a.alpha[..., H - 5 :, :].max()) == 0.0


def test_tile_size_and_chunking_do_not_change_the_image(monkeypatch):
    scene = make_scene(n=120, sh_degree=1, seed=6, dtype=torch.float32, scale=(0.02, 0.3))
    cams = orbit_cameras(2, [0, 0, 0], 2.0, width=45, height=33)
    ref = render(scene, cams)
    # The last: one tile per chunk, 3 Gaussians per slab, on 1 thread (many tiny ops).
    for tile, slab, chunk, threads in [(4, 8, 1 << 10, None), (16, 64, 1 << 20, None), (8, 3, 1, 1)]:
        settings = rz.RasterSettings(tile=tile, slab=slab, chunk_elems=chunk, threads=threads)
        monkeypatch.setattr(torch_backend, "SETTINGS", settings)
        out = render(scene, cams)
        for x, y in zip((ref.rgb, ref.alpha, ref.depth), (out.rgb, out.alpha, out.depth)):
            torch.testing.assert_close(x, y, atol=2e-6, rtol=1e-5)


PURE = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _three_planes(opacities, colours=PURE, dtype=F64):
    """Three wide, flat Gaussians facing the camera at depths 1, 2, 3 (red, green, blue)."""
    scenes = [
        single([0.0, 0.0, z], [100.0, 100.0, 1e-3], opacity=o, rgb=c, dtype=dtype)
        for z, o, c in zip((1.0, 2.0, 3.0), opacities, colours)
    ]
    return GaussianScene.concat(scenes)


def test_termination_is_exclusive_and_alpha_is_clamped():
    cams = front_camera(16, 16, 10.0)
    bg = torch.tensor([0.2, 0.2, 0.2], dtype=F64)
    centre = (slice(None), slice(6, 10), slice(6, 10))  # pixels where every plane has sigma ~ 0

    # No termination: T = 0.1, 0.01, 0.005 -> every plane is composited.
    out = render(_three_planes((0.9, 0.9, 0.5)), cams, background=bg)
    want = torch.tensor([0.9, 0.09, 0.005], dtype=F64) + 0.005 * bg
    torch.testing.assert_close(out.rgb[0][centre].mean((1, 2)), want, atol=1e-4, rtol=0)

    # The second plane would take T from 0.01 to 5e-5 <= 1e-4: it and everything behind are skipped.
    out = render(_three_planes((0.99, 0.995, 0.9)), cams, background=bg)
    rgb = out.rgb[0][centre]
    torch.testing.assert_close(rgb[0], torch.full_like(rgb[0], 0.99 + 0.01 * 0.2), atol=1e-4, rtol=0)
    assert float(rgb[1:].max()) == pytest.approx(0.01 * 0.2, abs=1e-6)  # only the background's share
    torch.testing.assert_close(out.alpha[0, 0][centre[1:]], torch.full((4, 4), 0.99, dtype=F64), atol=1e-4, rtol=0)

    # Opacity above 0.999 is clamped to alpha 0.999; then T = 1e-3 and the next plane (to 5e-5) stops the pixel.
    out = render(_three_planes((0.99995, 0.95, 0.5)), cams, background=bg)
    torch.testing.assert_close(
        out.alpha[0, 0][centre[1:]], torch.full((4, 4), 0.999, dtype=F64), atol=1e-12, rtol=0
    )
    assert float(out.rgb[0, 1][centre[1:]].max()) == pytest.approx(0.001 * 0.2, abs=1e-9)


def test_alpha_threshold_skips_faint_contributions():
    cams = front_camera(32, 32, 30.0)
    faint = render(single([0.0, 0.0, 2.0], [0.2, 0.2, 0.2], opacity=0.003), cams)  # opacity < 1/255
    assert float(faint.alpha.max()) == 0.0 and float(faint.rgb.abs().max()) == 0.0
    weak = render(single([0.0, 0.0, 2.0], [0.2, 0.2, 0.2], opacity=0.01), cams)
    a = weak.alpha[weak.alpha > 0]
    assert a.numel() > 10 and float(a.min()) >= 1 / 255 and float(weak.alpha.max()) <= 0.01


def test_background_colour():
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=20, height=16).to(dtype=F64)
    empty = GaussianScene.empty(sh_degree=1, dtype=F64)
    out = render(empty, cams, background=(0.2, 0.4, 0.6))
    want = torch.tensor([0.2, 0.4, 0.6], dtype=F64)[None, :, None, None].expand(2, 3, 16, 20)
    torch.testing.assert_close(out.rgb, want)
    assert float(out.alpha.abs().max()) == 0.0 and float(out.depth.abs().max()) == 0.0
    scene = make_scene(n=30, seed=7)
    per_cam = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    a, b = render(scene, cams), render(scene, cams, background=per_cam)
    torch.testing.assert_close(b.rgb - a.rgb, (1 - a.alpha) * per_cam[:, :, None, None], atol=1e-12, rtol=0)
    torch.testing.assert_close(a.depth, b.depth)


def test_depth_of_an_opaque_plane_and_of_two_translucent_layers():
    cams = front_camera(32, 24, 30.0)
    # A fronto-parallel plane at z = 2.5 tiled by small flat Gaussians.
    xs = torch.linspace(-1.6, 1.6, 33, dtype=F64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    n = gx.numel()
    means = torch.stack([gx.reshape(-1), gy.reshape(-1), torch.full((n,), 2.5, dtype=F64)], -1)
    plane = GaussianScene.from_activated(
        means, torch.rand(n, 3, dtype=F64), torch.tensor([[0.07, 0.07, 1e-4]], dtype=F64).expand(n, 3),
        torch.full((n,), 0.8, dtype=F64),
    )  # fmt: skip
    out = render(plane, cams)
    assert float(out.alpha.min()) > 0.99
    torch.testing.assert_close(out.depth, torch.full_like(out.depth, 2.5), atol=1e-9, rtol=0)
    assert float(out.rgb.detach().max()) <= 1.0
    # Two layers of opacity 0.5 at z = 1 and 2 (the third is below 1/255): depth (0.5 * 1 + 0.25 * 2) / 0.75.
    out = render(_three_planes((0.5, 0.5, 1e-3)), front_camera(16, 16, 10.0))
    want = torch.full((4, 4), 1.0 / 0.75, dtype=F64)
    torch.testing.assert_close(out.depth[0, 0, 6:10, 6:10], want, atol=1e-4, rtol=0)


def test_empty_scene_and_nothing_visible_are_differentiable():
    cams = front_camera(12, 10)
    for scene in (GaussianScene.empty(sh_degree=2, dtype=F64), single([0.0, 0.0, -2.0], [0.1, 0.1, 0.1])):
        params = grad_params(scene)
        out = render(GaussianScene(*params), cams, background=(0.5, 0.5, 0.5))
        assert float((out.rgb.detach() - 0.5).abs().max()) == 0.0
        (out.rgb.sum() + out.alpha.sum() + out.depth.sum()).backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) == 0.0 for p in params)


def test_camera_batch_equals_single_views_and_dtypes_mix():
    scene = make_scene(n=80, sh_degree=2, seed=8)
    cams = orbit_cameras(3, [0, 0, 0], 2.5, width=22, height=18)  # float32 cameras, float64 scene
    batch = render(scene, cams)
    assert batch.rgb.dtype == F64
    for i in range(3):
        one = render(scene, cams[i])
        torch.testing.assert_close(batch.rgb[i : i + 1], one.rgb, atol=1e-12, rtol=0)
        torch.testing.assert_close(batch.depth[i : i + 1], one.depth, atol=1e-12, rtol=0)
        assert torch.equal(batch.visible[i : i + 1], one.visible)


def test_rgb_is_in_unit_range_for_unit_colours():
    scene = make_scene(n=100, sh_degree=0, seed=9, dtype=torch.float32)
    out = render(scene, orbit_cameras(2, [0, 0, 0], 2.0, width=24, height=24), background=(1.0, 1.0, 1.0))
    assert float(out.rgb.min()) >= 0.0 and float(out.rgb.max()) <= 1.0 + 1e-6


# ------------------------------------------------------------------------------------ gradients
def _gradcheck(scene, cams, background=(0.1, 0.5, 0.9), full=False):
    params = grad_params(scene)

    def f(*p):
        out = render(GaussianScene(*p, check_finite=False), cams, background=background)
        return out.rgb, out.alpha, out.depth

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    if full:  # every input column, against three random projections of the outputs
        g = torch.Generator().manual_seed(0)
        ws = [torch.rand(o.shape, generator=g, dtype=F64) for o in f(*params)]
        assert torch.autograd.gradcheck(
            lambda *p: tuple((o * w).sum() for o, w in zip(f(*p), ws)), params, eps=1e-6, atol=1e-5, rtol=1e-4
        )


def test_gradcheck_all_parameters_float64():
    scene = make_scene(n=6, sh_degree=1, seed=10, scale=(0.1, 0.3), opacity=(0.1, 0.9), spread=0.3)
    cams = orbit_cameras(2, [0, 0, 0], 2.0, width=12, height=10).to(dtype=F64)
    _gradcheck(scene, cams, full=True)


def test_gradcheck_with_termination_and_alpha_clamp():
    # Opaque planes (one above the 0.999 clamp) stop pixels early; small Gaussians in front and
    # behind exercise the transmittance carry and the exclusive stop in the backward pass.
    planes = _three_planes((0.9995, 0.98, 0.97), colours=((0.9, 0.2, 0.1), (0.2, 0.8, 0.3), (0.3, 0.1, 0.7)))
    planes.quats = planes.quats + torch.tensor([0.0, 0.05, -0.03, 0.02], dtype=F64)
    planes.log_scales = planes.log_scales + torch.log(torch.tensor([0.002, 0.002, 1.0], dtype=F64))  # 0.2 wide
    extra = make_scene(n=4, sh_degree=0, seed=11, scale=(0.05, 0.1), spread=0.1)
    extra.means = extra.means + torch.tensor([0.0, 0.0, 1.5], dtype=F64)
    scene = GaussianScene.concat([planes, extra])
    cams = front_camera(12, 10, 12.0)
    with torch.no_grad():
        out = render(scene, cams)
    # At the centre the first plane's alpha is clamped to 0.999 and the second (0.98) ends the pixel.
    assert float(out.alpha.max()) > 0.9989 and float(out.alpha.max()) < 0.9999
    _gradcheck(scene, cams)


def test_gradients_of_invisible_gaussians_are_zero():
    scene = GaussianScene.concat([single([0.0, 0.0, 2.0], [0.2, 0.2, 0.2]), single([50.0, 0.0, 2.0], [0.2, 0.2, 0.2])])
    params = grad_params(scene)
    out = render(GaussianScene(*params), front_camera())
    out.rgb.sum().backward()
    assert float(params[0].grad[0].abs().sum()) > 0 and float(params[0].grad[1].abs().sum()) == 0


def test_float32_gradients_match_float64():
    scene = make_scene(n=150, sh_degree=2, seed=12)
    cams = orbit_cameras(2, [0, 0, 0], 2.2, width=40, height=30)
    grads = []
    for dtype in (F64, torch.float32):
        params = grad_params(scene.to(dtype=dtype))
        out = render(GaussianScene(*params), cams, background=(0.3, 0.3, 0.3))
        w = torch.linspace(0, 1, out.rgb.numel(), dtype=dtype).reshape(out.rgb.shape)
        ((out.rgb * w).sum() + out.alpha.sum() + 0.1 * out.depth.sum()).backward()
        grads.append([p.grad.double() for p in params])
    for g64, g32 in zip(*grads):
        torch.testing.assert_close(g32, g64, atol=2e-3 * float(g64.abs().max()), rtol=1e-3)


# ------------------------------------------------------------------------------------ memory
def test_chunks_bound_the_working_set(monkeypatch):
    seen = []
    original = rz._Kernel.alpha

    def spy(self, lcoef, clampable):
        alpha, below = original(self, lcoef, clampable)
        seen.append(alpha.numel())
        return alpha, below

    monkeypatch.setattr(rz._Kernel, "alpha", spy)
    monkeypatch.setattr(torch_backend, "SETTINGS", rz.RasterSettings(tile=8, slab=16, chunk_elems=1 << 14))
    scene = make_scene(n=3000, sh_degree=0, seed=13, dtype=torch.float32, scale=(0.01, 0.05))
    params = grad_params(scene)
    out = render(GaussianScene(*params), orbit_cameras(2, [0, 0, 0], 2.0, width=64, height=48))
    out.rgb.sum().backward()
    assert len(seen) > 20 and max(seen) <= 1 << 14


def test_peak_memory_100k_gaussians_256px_forward_backward():
    """Peak RSS of a fresh process rendering and backpropagating 100k Gaussians at 256^2."""
    code = textwrap.dedent(
        """
        import json, math, resource, torch
        from adlift import GaussianScene
        from adlift.cameras import orbit_cameras
        from adlift.render import render
        torch.set_num_threads(1)  # robust timing on shared machines; memory does not depend on it
        n = 100_000
        g = torch.Generator().manual_seed(0)
        v = torch.randn(n, 3, generator=g)
        means = v / v.norm(dim=1, keepdim=True)
        s = math.sqrt(4 * math.pi / n)
        scene = GaussianScene(means, torch.randn(n, 4, generator=g), torch.full((n, 3), math.log(s)),
                              torch.randn(n, generator=g), torch.randn(n, 16, 3, generator=g) * 0.2)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        params = [t.requires_grad_() for t in scene.tensors().values()]
        out = render(GaussianScene(*params), orbit_cameras(1, [0, 0, 0], 3.0, width=256, height=256))
        (out.rgb.sum() + out.depth.mean()).backward()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"before_mb": before / 1024, "peak_mb": after / 1024}))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    mem = json.loads(res.stdout.strip().splitlines()[-1])
    assert mem["peak_mb"] - mem["before_mb"] < 1500, mem  # measured ~300 MB; 8 GB is the budget at 512^2


# ------------------------------------------------------------------------------------ images
def test_save_images_and_contact_sheet(tmp_path):
    from PIL import Image

    rgb = torch.rand(3, 3, 10, 14)
    rgb[0, :, 0, 0] = torch.tensor([1.5, -0.2, 0.5])  # out of range: clamped
    paths = save_images(rgb, ["a", "b/c", "d e"], tmp_path / "out")
    assert [p.name for p in paths] == ["a.png", "b_c.png", "d_e.png"]
    img = np.asarray(Image.open(paths[0]))
    assert img.shape == (10, 14, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [255, 0, 128]
    np.testing.assert_array_equal(img[1:, 1:], (rgb[0, :, 1:, 1:].permute(1, 2, 0) * 255).round().byte().numpy())
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temporaries
    sheet = contact_sheet(rgb, ["a", "b", "c"])
    assert sheet.size[0] >= 2 * 14 and sheet.size[1] >= 2 * 10
    with pytest.raises(AdLiftError):
        save_images(rgb, ["a", "b"], tmp_path)
    with pytest.raises(AdLiftError):
        save_images(rgb, ["x", "x", "y"], tmp_path)


def test_frozen_set_renders_like_the_concatenation_and_gets_no_gradient():
    frozen, trainable = make_scene(n=30, seed=1), make_scene(n=12, seed=2)
    cams = front_camera()
    params = [t.detach().clone().requires_grad_() for t in trainable.tensors().values()]
    for t in frozen.tensors().values():
        t.requires_grad_(True)
    out = render(GaussianScene(*params, check_finite=False), cams, backend="torch", frozen=frozen, background=(0.1, 0.2, 0.3))
    ref = render(GaussianScene.concat([frozen.detach(), trainable]), cams, backend="torch", background=(0.1, 0.2, 0.3))
    assert torch.equal(out.rgb.detach(), ref.rgb) and torch.equal(out.visible, ref.visible)
    assert out.visible.shape == (1, 42)
    out.rgb.sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params[:1])
    assert all(t.grad is None for t in frozen.tensors().values())
    with pytest.raises(AdLiftError, match="frozen=...\\) needs a GaussianScene"):
        render(trainable, cams, frozen="raw.ply")
    with pytest.raises(AdLiftError, match="frozen set has SH degree 0"):
        render(trainable, cams, frozen=frozen.with_sh_degree(0))
