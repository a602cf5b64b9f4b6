"""Our CUDA rasteriser (cuda/) against the torch backend in float64 and against gsplat.

Values and gradients on fresh random scenes of several sizes, every SH degree, several cameras;
the frozen/trainable split against plain rendering of the concatenation; outputs poisoned with
NaN before the kernels run; compute-sanitizer memcheck on one run. Skips without a CUDA GPU; on a
GPU machine a failed build is a test failure, not a skip.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adlift import GaussianScene
from adlift.cameras import orbit_cameras
from adlift.render import render
from adlift.render.gsplat_backend import gsplat_available
from tests.helpers import (
    SEEDS,
    assert_grads_close,
    assert_images_close,
    loss_weights,
    parity_scene,
    render_with_grads,
)

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA build of torch to build and run cuda/"
)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def extension():
    from adlift.render.cuda_build import probe

    module, reason = probe()
    if module is None:
        pytest.fail(f"the CUDA rasteriser did not build on a CUDA machine: {reason}")
    return module


@pytest.fixture
def poisoned():
    from adlift.render import cuda_backend

    cuda_backend.SETTINGS.poison = True
    cuda_backend.FROZEN_CACHE.clear()
    yield
    cuda_backend.SETTINGS.poison = False
    cuda_backend.FROZEN_CACHE.clear()


def as_cuda(scene: GaussianScene, dtype=torch.float32) -> GaussianScene:
    return scene.to("cuda", dtype)


# (Gaussians, width, height, cameras): odd sizes exercise partial tiles; the largest fills tiles deeply.
SIZES = [(300, 33, 17, 1), (3000, 128, 96, 3), (20000, 256, 200, 2)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"n{s[0]}-{s[1]}x{s[2]}-c{s[3]}")
def test_values_and_gradients_match_torch_float64(seed, size, poisoned):
    n, width, height, n_cam = size
    scene = parity_scene(seed, n=n)
    cams = orbit_cameras(n_cam, [0, 0, 0], 3.0, width=width, height=height)
    w = loss_weights(cams, seed)
    kw = {"background": (0.2, 0.3, 0.4)}
    ref_out, ref_grad = render_with_grads(as_cuda(scene, torch.float64), cams.to("cuda"), "torch", w, **kw)
    f32_out, f32_grad = render_with_grads(as_cuda(scene), cams.to("cuda"), "torch", w, **kw)  # float32's own error
    out, grad = render_with_grads(as_cuda(scene), cams.to("cuda"), "cuda", w, **kw)
    for a, b, base in zip(out, ref_out, f32_out):
        assert torch.isfinite(a).all(), "an output pixel was never written (poisoned NaN survived)"
        assert_images_close(a, b, baseline=base)
    assert_grads_close(grad, ref_grad, baseline=f32_grad)


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_every_sh_degree(sh_degree, poisoned):
    seed = int(torch.randint(0, 10_000, ()).item())
    scene = parity_scene(seed, n=1500)
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=80, height=64)
    w = loss_weights(cams, seed)
    kw = {"sh_degree": sh_degree}
    ref_out, ref_grad = render_with_grads(as_cuda(scene, torch.float64), cams.to("cuda"), "torch", w, **kw)
    out, grad = render_with_grads(as_cuda(scene), cams.to("cuda"), "cuda", w, **kw)
    for a, b in zip(out, ref_out):
        assert_images_close(a, b)
    assert_grads_close(grad, ref_grad)
    if sh_degree < 3:  # coefficients above the rendered degree get exactly zero gradient
        assert float(grad[4][:, (sh_degree + 1) ** 2 :].abs().max()) == 0.0


def test_visibility_matches_torch():
    scene = as_cuda(parity_scene(5, n=4000))
    cams = orbit_cameras(3, [0, 0, 0], 2.0, width=96, height=80).to("cuda")
    a, b = render(scene, cams, backend="cuda"), render(scene, cams, backend="torch")
    assert a.backend == "cuda" and a.visible.shape == b.visible.shape == (3, 4000)
    assert (a.visible == b.visible).float().mean() > 0.999


def test_empty_and_culled_scenes_show_the_background():
    cams = orbit_cameras(2, [0, 0, 0], 3.0, width=40, height=30).to("cuda")
    empty = GaussianScene.empty(sh_degree=1, device="cuda")
    out = render(empty, cams, backend="cuda", background=(0.5, 0.25, 1.0))
    torch.testing.assert_close(out.rgb, torch.tensor([0.5, 0.25, 1.0], device="cuda")[None, :, None, None].expand_as(out.rgb))
    assert float(out.alpha.abs().max()) == 0.0
    behind = as_cuda(parity_scene(3, n=200))
    behind.means.data += 50.0  # far outside every view
    params = [t.detach().clone().requires_grad_() for t in behind.tensors().values()]
    out = render(GaussianScene(*params, check_finite=False), cams, backend="cuda")
    (out.rgb.sum() + out.alpha.sum()).backward()
    assert not out.visible.any() and float(out.alpha.max()) == 0.0
    assert all(float(p.grad.abs().max()) == 0.0 for p in params)


def split_scenes(seed: int, n_frozen: int = 6000, n_train: int = 1500):
    frozen = parity_scene(seed, n=n_frozen)
    trainable = parity_scene(seed + 1000, n=n_train)
    trainable.means.data *= 0.9
    return frozen, trainable


def test_split_matches_concatenation_and_leaves_frozen_untouched(poisoned):
    from adlift.render import cuda_backend

    seed = int(torch.randint(0, 10_000, ()).item())
    frozen, trainable = split_scenes(seed)
    cams = orbit_cameras(2, [0, 0, 0], 2.5, width=120, height=90)
    w = loss_weights(cams, seed)
    # Reference: torch float64 on the concatenation; keep the trainable part's gradients.
    both = GaussianScene.concat([frozen, trainable])
    ref_out, ref_grad = render_with_grads(as_cuda(both, torch.float64), cams.to("cuda"), "torch", w)
    ref_grad = [g[frozen.num_gaussians :] for g in ref_grad]

    frozen_gpu = as_cuda(frozen)
    for t in frozen_gpu.tensors().values():
        t.requires_grad_(True)  # even if it could take gradients, the split must not give it any
    params = [t.detach().clone().requires_grad_() for t in as_cuda(trainable).tensors().values()]
    for attempt in range(2):  # the second call must hit the frozen-projection cache
        for p in params:
            p.grad = None
        misses = cuda_backend.FROZEN_CACHE.misses
        out = render(GaussianScene(*params, check_finite=False), cams.to("cuda"), backend="cuda", frozen=frozen_gpu)
        loss = sum((o * wi.to(o)).sum() for o, wi in zip((out.rgb, out.alpha, out.depth), w))
        loss.backward()
        assert cuda_backend.FROZEN_CACHE.misses == misses + (2 if attempt == 0 else 0)
        for a, b in zip((out.rgb, out.alpha, out.depth), ref_out):
            assert_images_close(a.detach().double().cpu(), b)
        assert_grads_close([p.grad.double().cpu() for p in params], ref_grad)
        assert out.visible.shape == (2, frozen.num_gaussians + trainable.num_gaussians)
    assert all(t.grad is None for t in frozen_gpu.tensors().values())

    # An in-place change of the frozen set invalidates its cached projection.
    with torch.no_grad():
        frozen_gpu.means.add_(0.05)
    misses = cuda_backend.FROZEN_CACHE.misses
    moved = render(GaussianScene(*params, check_finite=False), cams.to("cuda"), backend="cuda", frozen=frozen_gpu)
    assert cuda_backend.FROZEN_CACHE.misses == misses + 2
    ref_moved = render(GaussianScene.concat([frozen_gpu.detach(), as_cuda(trainable)]), cams.to("cuda"), backend="torch")
    assert_images_close(moved.rgb.detach(), ref_moved.rgb)
    # Freeing the frozen set drops its projections (new tensors may reuse its memory).
    assert len(cuda_backend.FROZEN_CACHE.entries) > 0
    del frozen_gpu
    gc.collect()
    assert len(cuda_backend.FROZEN_CACHE.entries) == 0


def test_split_through_other_backends_concatenates():
    frozen, trainable = split_scenes(11, n_frozen=300, n_train=100)
    cams = orbit_cameras(1, [0, 0, 0], 2.5, width=48, height=40).to("cuda")
    a = render(as_cuda(trainable), cams, backend="torch", frozen=as_cuda(frozen))
    b = render(as_cuda(trainable), cams, backend="cuda", frozen=as_cuda(frozen))
    assert_images_close(a.rgb, b.rgb)
    assert torch.equal(a.visible, b.visible) or (a.visible == b.visible).float().mean() > 0.999


def test_projection_rows_are_written_for_visible_gaussians(extension, poisoned):
    from adlift.render.cuda_backend import EPS2D, Projection, _scene_tensors

    scene = as_cuda(parity_scene(int(torch.randint(0, 10_000, ()).item()), n=5000))
    cams = orbit_cameras(2, [0, 0, 0], 2.0, width=100, height=70).to("cuda")
    proj = Projection.empty(2, 5000 + 7, torch.device("cuda"), poison=True)
    extension.project(*_scene_tensors(scene, torch.device("cuda")), cams.viewmats.float().contiguous(),
                      cams.Ks.float().contiguous(), 100, 70, 3, 0.01, 1e10, EPS2D, *proj.tensors(), 7)  # fmt: skip
    assert bool((proj.radii[:, :7] == -1).all()), "rows before the offset were overwritten"
    visible = (proj.radii[:, 7:] > 0).all(-1)
    assert bool(((proj.radii[:, 7:] >= 0)).all()) and 0 < int(visible.sum()) < 10000
    for t in (proj.means2d, proj.conics, proj.depths, proj.opacities, proj.colors):
        assert torch.isfinite(t[:, 7:][visible]).all()


@pytest.mark.skipif(not gsplat_available(), reason="needs CUDA and an importable gsplat")
@pytest.mark.parametrize("seed", SEEDS)
def test_matches_gsplat(seed):
    import gsplat

    if tuple(int(v) for v in gsplat.__version__.split(".")[:2]) < (1, 5):
        pytest.skip("gsplat < 1.5 uses a different (3 sigma) screen box")
    scene = as_cuda(parity_scene(seed, n=5000))
    cams = orbit_cameras(3, [0, 0, 0], 3.0, width=160, height=120).to("cuda")
    w = loss_weights(cams, seed)
    ref_out, ref_grad = render_with_grads(scene, cams, "gsplat", w, background=(0.1, 0.2, 0.3))
    out, grad = render_with_grads(scene, cams, "cuda", w, background=(0.1, 0.2, 0.3))
    for a, b in zip(out, ref_out):
        assert_images_close(a, b)
    assert_grads_close(grad, ref_grad)


def test_auto_prefers_the_cuda_backend():
    scene = as_cuda(parity_scene(2, n=100))
    cams = orbit_cameras(1, [0, 0, 0], 3.0, width=32, height=32).to("cuda")
    assert render(scene, cams).backend == "cuda"


@pytest.mark.skipif(shutil.which("compute-sanitizer") is None, reason="compute-sanitizer is not on PATH")
def test_memcheck_clean():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = ["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "3", sys.executable,
           str(ROOT / "cuda" / "tools" / "memcheck_run.py")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "ERROR SUMMARY: 0 errors" in proc.stdout + proc.stderr, tail
