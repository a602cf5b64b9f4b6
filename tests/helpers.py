"""Plain helpers and constants shared by the test modules (fixtures live in ``tests/conftest.py``).

Test modules import from here (``from tests.helpers import BUST, run_cli``), never from another
test module. Sections: paths, scenes, backend parity, the tiny editor, the CLI, the viewer,
nerfstudio.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from adlift.scene import SH_C0, GaussianScene

# ------------------------------------------------------------------------------------------------ paths
REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"
BUST = SCENES / "bust" / "scene.ply"
BUST_CAMS = SCENES / "bust" / "transforms.json"
INSTRUCTION = "turn her into a clown"


# ----------------------------------------------------------------------------------------------- scenes
def random_scene(n: int = 50, sh_degree: int = 1, seed: int = 0, dtype=torch.float32) -> GaussianScene:
    """A random scene of ``n`` Gaussians around the origin (deterministic for ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return GaussianScene(
        means=torch.randn(n, 3, generator=g, dtype=dtype) * 0.5,
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=g, dtype=dtype) * 0.3 - 3.0,
        opacity_logits=torch.randn(n, generator=g, dtype=dtype),
        sh=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.3,
    )


def web_scene(n: int = 400, degree: int = 3, seed: int = 0) -> GaussianScene:
    """A random scene inside every format's range: colours in [0, 1], |SH rest| < 0.5."""
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    sh = (torch.rand(n, k, 3, generator=g) - 0.5) * 0.8
    sh[:, 0] = (torch.rand(n, 3, generator=g) * 0.96 + 0.02 - 0.5) / SH_C0
    return GaussianScene(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g),
                         torch.randn(n, 3, generator=g) * 0.5 - 3, torch.randn(n, generator=g) * 1.5, sh)  # fmt: skip


def rand_images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """``b`` random images [b, 3, h, w] in [0, 1] (deterministic for ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------- backend parity
#: Two fixed scenes and a fresh one per session (the seed shows in the test id).
SEEDS = [0, 1, int(torch.randint(2, 10_000, ()).item())]


def parity_scene(seed: int, n: int = 2000, sh_degree: int = 3, opacity_max: float = 0.99) -> GaussianScene:
    """Gaussians in a unit ball, realistic sizes, SH degree 3 (float64 on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    means = torch.randn(n, 3, generator=g, dtype=d)
    means = means / means.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=g, dtype=d) ** (1 / 3)
    spacing = (4 / 3 * math.pi / n) ** (1 / 3)
    log_scales = math.log(spacing) + 0.5 * torch.randn(n, 3, generator=g, dtype=d)
    opac = 0.02 + (opacity_max - 0.02) * torch.rand(n, generator=g, dtype=d)
    sh = 0.2 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=d)
    sh[:, 0] = 1.2 * torch.randn(n, 3, generator=g, dtype=d)
    return GaussianScene(means, torch.randn(n, 4, generator=g, dtype=d), log_scales, torch.logit(opac), sh)


def render_with_grads(scene: GaussianScene, cams, backend: str, weights, **kw):
    """Outputs (rgb, alpha, depth) and gradients of a fixed weighted sum w.r.t. the five tensors."""
    from adlift.render import render

    params = [t.detach().clone().requires_grad_() for t in scene.tensors().values()]
    out = render(GaussianScene(*params, check_finite=False), cams, backend=backend, **kw)
    outs = (out.rgb, out.alpha, out.depth)
    loss = sum((o * w.to(o)).sum() for o, w in zip(outs, weights))
    loss.backward()
    return [o.detach().double().cpu() for o in outs], [p.grad.double().cpu() for p in params]


def loss_weights(cams, seed):
    """Random weights for (rgb, alpha, depth) of ``cams``' images: the loss ``render_with_grads`` uses."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = len(cams), cams.height, cams.width
    return [torch.rand(c, k, h, w, generator=g, dtype=torch.float64) * s for k, s in ((3, 1.0), (1, 1.0), (1, 0.05))]


def assert_images_close(got, want, atol=1e-4, rtol=1e-4, flip_fraction=1e-4, flip_atol=5e-3, baseline=None):
    """Equal to rounding, except at a few pixels where float32 and the reference disagree about a
    discrete threshold (a Gaussian's alpha at 1/255, a pixel's transmittance at 1e-4): at most
    ``max(3, flip_fraction * numel)`` elements may differ by more, and none by more than ``flip_atol``
    (one faint Gaussian: ~1/255).

    ``baseline``: the torch backend's float32 image of the same scene. Some random scenes are
    ill-conditioned in float32 itself (seen: 208 of 307,200 values off by up to 1e-3 on the CPU);
    ``got`` may then be as far from ``want`` as twice the baseline is, element count and maximum."""
    diff = (got - want).abs()
    bad = int((diff > atol + rtol * want.abs()).sum())
    allowed = max(3, int(flip_fraction * want.numel()))
    worst = flip_atol
    if baseline is not None:
        base = (baseline.to(want) - want).abs()
        allowed = max(allowed, 2 * int((base > atol + rtol * want.abs()).sum()))
        worst = max(worst, 2 * float(base.max()))
    assert bad <= allowed, f"{bad} of {want.numel()} elements differ by more than {atol} (max {float(diff.max()):.2e})"
    assert float(diff.max()) <= worst, f"max difference {float(diff.max()):.2e} exceeds {worst:.2e}"


#: The scene's five parameter tensors, in ``GaussianScene.tensors()`` order.
SCENE_TENSORS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def assert_grads_close(got, want, rel=2e-3, baseline=None, names=SCENE_TENSORS):
    """Gradients within ``rel`` of each tensor's largest gradient (plus 1 % of each value).

    ``baseline``: the torch backend's float32 gradients. Where float32 itself is ill-conditioned
    (seen: 29 of 60,000 mean gradients off by up to 230 against a largest gradient of 1,900, on the
    CPU, torch backend), ``got`` may miss at most twice as many elements, by at most twice as much.
    ``names``: of the tensors, for messages (default: the scene's five)."""
    for i, (name, a, b) in enumerate(zip(names, got, want)):
        scale = float(b.abs().max()) or 1.0
        if baseline is None:
            torch.testing.assert_close(a, b, atol=rel * scale, rtol=1e-2, msg=lambda m, name=name: f"d/d {name}: {m}")
            continue
        tol = rel * scale + 1e-2 * b.abs()
        diff, base = (a - b).abs(), (baseline[i].to(b) - b).abs()
        bad, base_bad = int((diff > tol).sum()), int((base > tol).sum())
        assert bad <= 2 * base_bad, f"d/d {name}: {bad} of {b.numel()} off (float32 torch: {base_bad})"
        if bad:
            assert float(diff.max()) <= 2 * float(base.max()), f"d/d {name}: max error {float(diff.max()):.3g}"


# ------------------------------------------------------------------------------------------ tiny editor
#: AdLift cache shared by every test of the session (and the CLI subprocesses started by ``run_cli``).
TINY_CACHE = Path(tempfile.mkdtemp(prefix="adlift-tiny-cache-"))
atexit.register(shutil.rmtree, TINY_CACHE, ignore_errors=True)


@functools.cache
def tiny_editor():
    """The tiny editor (an ``IP2PEditor``), built and loaded once per test session."""
    from adlift.editors import load_editor

    return load_editor("tiny", device="cpu", cache_dir=TINY_CACHE)


def assert_fitted_to_targets(scene, cameras, result, margin: float) -> dict:
    """A 3D edit's ``result`` (SceneEditResult / DGEResult) started from renders of ``scene`` and its
    fitted scene moved towards its edited targets by more than ``margin`` of the photometric loss,
    measured here independently of the run; its one history entry records the same losses. Returns it."""
    import pytest

    from adlift.editors.photometric import l1_dssim_loss
    from adlift.render import render

    with torch.no_grad():
        raw = render(scene, cameras, backend="torch").rgb.clamp(0, 1)
        after = float(l1_dssim_loss(render(result.scene, cameras, backend="torch").rgb.clamp(0, 1), result.targets))
    torch.testing.assert_close(result.originals, raw)  # conditioned on the input scene's views
    assert (result.targets - result.originals).abs().mean() > 0.01  # the editor changed the targets
    before = float(l1_dssim_loss(raw, result.targets))
    assert after < before - margin
    (entry,) = result.history
    assert entry["loss_before_fit"] == pytest.approx(before, abs=1e-4)
    assert entry["loss_after_fit"] == pytest.approx(after, abs=1e-4)
    assert result.scene.num_gaussians == scene.num_gaussians  # no densification
    return entry


@functools.cache
def mini_editor():
    """The shipped mini editor (a ``MiniEditor``) on the CPU, loaded once per test session."""
    from adlift.editors import load_editor

    return load_editor("mini", device="cpu")


def offline_hub(monkeypatch, cache: Path) -> Path:
    """Point huggingface_hub at the hub cache ``cache``, offline. Its settings are read from the
    environment once, at import, so tests set them on ``huggingface_hub.constants`` itself."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def fake_hub_snapshot(cache: Path, repo_id: str, source: Path | None) -> Path:
    """The layout huggingface_hub's cache gives a downloaded repo: refs/main -> snapshots/<commit>/
    (a copy of ``source``, or empty)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    if source is not None:
        shutil.copytree(source, snapshot)
    else:
        snapshot.mkdir(parents=True)
    return snapshot


# -------------------------------------------------------------------------------------------------- CLI
def run_cli(*args: str, hf_home: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m adlift ARGS`` from the repository root, offline, on one thread, with the session's
    tiny-model cache; with ``hf_home``, also with that (empty) hub cache instead of the user's.

    The first run that needs the tiny model builds it there (atomically); later runs reuse it.
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", ADLIFT_CACHE_DIR=str(TINY_CACHE), OMP_NUM_THREADS="1")
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
        env.pop("HF_HUB_CACHE", None)
    return subprocess.run(
        [sys.executable, "-m", "adlift", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


# ----------------------------------------------------------------------------------------------- viewer
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def perturbed(scene: GaussianScene, amount: float = 6 / 255, seed: int = 0) -> GaussianScene:
    """``scene`` with each DC colour channel moved by +-``amount`` (random signs)."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (scene.num_gaussians, 3), generator=g).to(scene.dtype) * 2 - 1
    sh = scene.sh.clone()
    sh[:, 0] += sign * amount / SH_C0
    return GaussianScene(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, sh)


def fake_protect_outdir(out: Path, *, report: bool = True) -> Path:
    """A protect-like output directory for the viewer tests, made in a second (no protection run).

    The bundled bust is the raw scene; the "protected" scene is the bust with every Gaussian's DC
    colour shifted by +-6/255 (a visible-in-the-heatmap, invisible-to-the-eye difference within
    eta = 8/255). OUTDIR gets protected.ply, manifest.json (naming the bust as raw), transforms.json
    and, with ``report``, evaluation/report.json with per-view metrics."""
    from adlift.io.ply import read_ply, write_ply

    out.mkdir(parents=True, exist_ok=True)
    write_ply(perturbed(read_ply(BUST)), out / "protected.ply")
    shutil.copy(BUST_CAMS, out / "transforms.json")
    views = [{"name": f"bust_{i:04d}", "split": "novel" if i % 8 == 0 else "train", "linf_255": 6.0,
              "psnr": 44.0 + i / 10, "loss_raw": 1.0, "loss_protected": 0.5} for i in range(32)]  # fmt: skip
    manifest = {
        "manifest_version": 1,
        "raw_scene": {"path": str(BUST), "sha256": sha256(BUST)},
        "protected_scene": {"path": "protected.ply"},
        "instruction": INSTRUCTION,
        "editor": {"editor": "tiny", "model": "tiny(seed=0)", "untrained_test_model": True},
        "eta": 8 / 255,
        "config": {"background": [0.0, 0.0, 0.0]},
        "cameras": {"file": "transforms.json"},
        "views": views,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    if report:
        (out / "evaluation").mkdir(exist_ok=True)
        rep_views = [{**v, "ssim": 0.99, "clip_direction_raw": 0.2, "clip_direction_protected": 0.05,
                      "edit_deviation_psnr": 12.0} for v in views]  # fmt: skip
        rep = {"report_version": 1, "instruction": INSTRUCTION, "eta": 8 / 255, "editor": manifest["editor"],
               "sources": {"raw": str(BUST), "protected": str(out / "protected.ply"),
                           "cameras": str(out / "transforms.json"), "manifest": str(out / "manifest.json")},
               "views": rep_views}  # fmt: skip
        (out / "evaluation" / "report.json").write_text(json.dumps(rep))
    return out


# ------------------------------------------------------------------------------------------- nerfstudio
#: The vertex properties `ns-export gaussian-splat` (nerfstudio 1.1.5, ply_color_mode sh_coeffs)
#: writes for SH degree d, in order: nerfstudio/scripts/exporter.py, ExportGaussianSplat.main.
def ns_export_properties(degree: int) -> list[str]:
    rest = 3 * ((degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])  # fmt: skip


# ------------------------------------------------------------------------------------------ safe loading
class PickledCode:
    """An object whose unpickling creates ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


# ------------------------------------------------------------------------------------------ distributed
def small_protection(job: dict, rank: int = 0):
    """A small Lifted PGD run (every 8th Gaussian of the bust, 4 training views at 32 px, the tiny
    editor's encoder loss) described by ``job``: ``view_batch``, ``checkpoint``, ``stop_after`` (raise
    KeyboardInterrupt after that many units), ``fail_rank``/``fail_after`` (that rank's loss raises
    AdLiftError on its n-th gradient), ``cache`` (the tiny editor's cache dir)."""
    from adlift.attacks import AdversarialLoss
    from adlift.attacks.losses import EncoderLossConfig
    from adlift.editors import load_editor
    from adlift.errors import AdLiftError
    from adlift.io import load_cameras, read_ply
    from adlift.protect import ProtectConfig, protect

    scene = read_ply(BUST)
    scene = scene.subset(torch.arange(0, scene.num_gaussians, 8))
    train = load_cameras(BUST_CAMS, split="train", width=32)[[0, 7, 14, 21]]
    editor = load_editor("tiny", device="cpu", cache_dir=job.get("cache", TINY_CACHE))
    loss = AdversarialLoss(editor.surface, INSTRUCTION, EncoderLossConfig())
    if job.get("fail_rank") == rank:
        calls = {"n": 0}
        gradient = loss.gradient

        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] >= job["fail_after"]:
                raise AdLiftError("injected failure")
            return gradient(*args, **kwargs)

        loss.gradient = failing
    config = ProtectConfig(rounds=2, pgd_steps=2, fit_steps=2, replay=1, view_batch=job.get("view_batch", 2),
                           progress=False, checkpoint=job.get("checkpoint"), checkpoint_every=1)  # fmt: skip

    def on_unit(done: int, total: int) -> None:
        if done == job.get("stop_after"):
            raise KeyboardInterrupt

    return protect(scene, train, loss, config, on_unit=on_unit)


def distributed_worker(rank: int, world: int, port: int, job: dict, out: str) -> None:
    """One rank of a gloo run of :func:`small_protection` (for ``torch.multiprocessing.spawn``): writes
    ``out/rank<R>.pt`` (the protected scene's tensors and the history) or ``out/rank<R>.err``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    from adlift import distributed

    try:
        distributed.init_from_env(torch.device("cpu"), timeout_s=job.get("timeout", 120))
        result = small_protection(job, rank)
        torch.save({"tensors": result.protected.tensors(), "losses": [h["loss"] for h in result.history]},
                   Path(out) / f"rank{rank}.pt")  # fmt: skip
    except BaseException as e:  # noqa: BLE001 - reported to the test through the file
        (Path(out) / f"rank{rank}.err").write_text(f"{type(e).__name__}: {e}")
    finally:
        distributed.shutdown()


def run_ranks(world: int, job: dict, out: Path, timeout: float = 300) -> list[dict | str]:
    """:func:`distributed_worker` on ``world`` gloo processes; per rank its saved result or its error text."""
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("rank*"):
        f.unlink()
    context = mp.start_processes(distributed_worker, args=(world, free_port(), job, str(out)), nprocs=world,
                                 join=False, start_method="spawn")  # fmt: skip
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.1, deadline - time.monotonic())) and time.monotonic() < deadline:
        pass  # join returns when one more process has ended
    alive = [p for p in context.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} rank(s) still running after {timeout} s (a hang)"
    results: list[dict | str] = []
    for rank in range(world):
        err = out / f"rank{rank}.err"
        results.append(err.read_text() if err.exists() else torch.load(out / f"rank{rank}.pt", weights_only=True))
    return results
