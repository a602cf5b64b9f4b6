"""The nerfstudio plugin under nerfstudio 1.1.5: ``ns-train adlift-protect|adlift-edit`` and
``ns-adlift-evaluate`` on a tiny nerfstudio-layout dataset, on CPU, with the tiny editor.

These tests need nerfstudio and skip without it; ``make test-nerfstudio`` builds the separate
virtualenv (.venv-nerfstudio) they run in. About 2.5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    importlib.import_module("nerfstudio")
except Exception as e:  # noqa: BLE001 - any failure to import means: not this environment
    pytest.skip(f"nerfstudio is not importable here ({e.__class__.__name__}); `make test-nerfstudio` runs these "
                "tests in .venv-nerfstudio", allow_module_level=True)  # fmt: skip

from adlift.io.cameras import load_cameras  # noqa: E402
from adlift.io.ply import read_ply  # noqa: E402
from tests.nerfstudio.scene_data import make_dataset, make_splatfacto_checkpoint  # noqa: E402
from tests.helpers import TINY_CACHE, ns_export_properties  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BIN = Path(sys.executable).parent
INSTRUCTION = "turn her into a clown"
#: ns-train options every run shares: CPU, no viewer server, stop when done, the tiny editor.
COMMON = ["--machine.device-type", "cpu", "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
          "--pipeline.model.editor", "tiny", "--pipeline.model.instruction", INSTRUCTION,
          "--experiment-name", "bust"]  # fmt: skip
PROTECT = ["--pipeline.model.protect.rounds", "1", "--pipeline.model.protect.pgd-steps", "2",
           "--pipeline.model.protect.fit-steps", "2", "--pipeline.model.protect.replay", "1"]  # fmt: skip


def run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ADLIFT_CACHE_DIR=str(TINY_CACHE), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=400, env=env, cwd=cwd)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ns")
    make_dataset(work / "data")
    return work


@pytest.fixture(scope="module")
def protect_run(workdir) -> Path:
    """Two iterations (= two views) of adlift-protect from the dataset's .ply (in the data's own frame)."""
    run("ns-train", "adlift-protect", "--data", "data", "--output-dir", "out", "--timestamp", "ply", *COMMON,
        "--max-num-iterations", "2", "--pipeline.model.scene", "data/scene.ply",
        "--pipeline.model.scene-frame", "original", *PROTECT, "nerfstudio-data", cwd=workdir)  # fmt: skip
    return workdir / "out" / "bust" / "adlift-protect" / "ply"


def test_ns_train_help_lists_the_adlift_methods(workdir):
    out = run("ns-train", "--help", cwd=workdir).stdout
    assert "adlift-protect" in out and "adlift-edit" in out


def test_adlift_protect_options_are_those_of_adlift_protect(workdir, monkeypatch):
    """--pipeline.model.protect.* is ProtectConfig: the same option names as `adlift protect` (safeguard options
    without a prefix, loss kinds as subcommands), the fields nerfstudio fills hidden."""
    monkeypatch.setenv("COLUMNS", "250")
    out = run("ns-train", "adlift-protect", "--help", cwd=workdir).stdout
    for option in ("--pipeline.model.protect.eta", "--pipeline.model.protect.pgd-steps", "--pipeline.model.protect.init",
                   "--pipeline.model.protect.lr-sh", "--pipeline.model.protect.eot.samples",
                   "pipeline.model.protect.loss:unet", "--pipeline.model.backend"):  # fmt: skip
        assert option in out, option
    for hidden in ("--pipeline.model.protect.backend", "--pipeline.model.protect.checkpoint ",
                   "--pipeline.model.protect.progress", "--pipeline.model.protect.loss.unet-mode"):  # fmt: skip
        assert hidden not in out, hidden


def test_protect_writes_the_protected_scene_manifest_and_cameras(protect_run, workdir):
    raw = read_ply(workdir / "data" / "scene.ply")
    for name in ("protected.ply", "manifest.json", "transforms.json", "preview.png", "config.yml"):
        assert (protect_run / name).is_file(), name
    protected = read_ply(protect_run / "protected.ply")
    assert protected.num_gaussians == raw.num_gaussians  # inplace (the default): the asset's own Gaussians
    # geometry is not trained by default; the file holds it in the published (Morton) order, not the input's
    from adlift.protect.publish import morton_codes

    by_position = lambda m: m[np.lexsort(m.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(by_position(protected.means.numpy()), by_position(raw.means.numpy()))
    assert not torch.equal(protected.means, raw.means)
    codes = morton_codes(protected.means.numpy())
    assert np.all(codes[1:] >= codes[:-1])

    manifest = json.loads((protect_run / "manifest.json").read_text())
    assert manifest["safeguard"] == {**manifest["safeguard"], "first": None, "frozen": 0, "count": raw.num_gaussians}
    assert manifest["protected_scene"]["order"] == "morton"
    assert manifest["instruction"] == INSTRUCTION and manifest["editor"]["untrained_test_model"]
    assert len(manifest["history"]) == 2 and manifest["nerfstudio"]["complete"] is False
    assert manifest["nerfstudio"]["scene_frame"] == "original" and manifest["nerfstudio"]["iterations"] == 2
    assert manifest["cameras"]["train"] == [f"bust_{i:04d}" for i in (0, 4, 8, 12, 16, 20)]
    assert manifest["cameras"]["novel"] == ["bust_0028", "bust_0030"]
    assert manifest["summary"]["train"]["psnr"] > 30

    # the cameras, taken out of nerfstudio's training frame, are the dataset's own
    for split in ("train", "novel"):
        ours = load_cameras(protect_run / "transforms.json", split=split)
        data = load_cameras(workdir / "data" / "transforms.json", split=split)
        torch.testing.assert_close(ours.viewmats, data.viewmats, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.Ks, data.Ks, atol=1e-4, rtol=0)

    # the .ply has the layout of `ns-export gaussian-splat`
    import plyfile

    ply = plyfile.PlyData.read(str(protect_run / "protected.ply"))
    assert [p.name for p in ply["vertex"].properties] == ns_export_properties(protected.sh_degree)

    # nerfstudio's checkpoint carries the run
    (ckpt,) = (protect_run / "nerfstudio_models").glob("step-*.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # what ns-train --load-dir does
    extra = state["pipeline"]["_model._extra_state"]
    assert extra["iterations_done"] == 2 and extra["run"]["units_done"] == 2


def test_ns_adlift_evaluate_writes_the_report(protect_run, workdir):
    out = run("ns-adlift-evaluate", "--load-config", str(protect_run / "config.yml"), "--clip", "tiny", "--steps", "2",
              "--views-per-split", "1", "--purify", "jpeg75", "--no-lpips", cwd=workdir).stdout  # fmt: skip
    report = json.loads((protect_run / "evaluation" / "report.json").read_text())
    assert set(report["summary"]) == {"train", "novel"}
    assert report["summary"]["train"]["psnr"] > 30
    assert (protect_run / "evaluation" / "report.md").is_file() and "wrote" in out


def test_protect_resumes_from_its_nerfstudio_checkpoint(protect_run, workdir):
    run("ns-train", "adlift-protect", "--data", "data", "--output-dir", "out", "--timestamp", "resumed", *COMMON,
        "--load-dir", str(protect_run / "nerfstudio_models"), "--max-num-iterations", "1",
        "--pipeline.model.scene", "data/scene.ply", "--pipeline.model.scene-frame", "original", *PROTECT,
        "nerfstudio-data", cwd=workdir)  # fmt: skip
    manifest = json.loads((workdir / "out" / "bust" / "adlift-protect" / "resumed" / "manifest.json").read_text())
    first = json.loads((protect_run / "manifest.json").read_text())
    assert [h["view"] for h in manifest["history"]] == ["bust_0000", "bust_0004", "bust_0008"]
    assert [h["loss"] for h in manifest["history"][:2]] == [h["loss"] for h in first["history"]]


def test_protect_from_a_splatfacto_checkpoint(workdir):
    ckpt_dir = workdir / "splatfacto" / "nerfstudio_models"
    make_splatfacto_checkpoint(workdir / "data" / "scene.ply", ckpt_dir)
    # identity dataparser transform: the training frame is the data's frame, where the Gaussians are
    run("ns-train", "adlift-protect", "--data", "data", "--output-dir", "out", "--timestamp", "ckpt", *COMMON,
        "--load-dir", str(ckpt_dir), "--max-num-iterations", "1", *PROTECT,
        "nerfstudio-data", "--orientation-method", "none", "--center-method", "none", "--auto-scale-poses", "False",
        cwd=workdir)  # fmt: skip
    out = workdir / "out" / "bust" / "adlift-protect" / "ckpt"
    raw = read_ply(workdir / "data" / "scene.ply")
    taken = read_ply(out / "raw.ply")  # the checkpoint's Gaussians, exported
    torch.testing.assert_close(taken.means, raw.means, rtol=0, atol=0)
    torch.testing.assert_close(taken.rgb, raw.rgb.clamp(1e-4, 1 - 1e-4), rtol=0, atol=1e-4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["raw_scene"]["path"].endswith("raw.ply")
    assert manifest["nerfstudio"]["scene_source_kind"] == "splatfacto-checkpoint"
    assert manifest["summary"]["train"]["psnr"] > 30
    config = (out / "config.yml").read_text()  # re-saved: the checkpoint is the scene, nothing is resumed
    assert "- step-000029999.ckpt" in config and "\nload_dir: null" in config
    ours = load_cameras(out / "transforms.json", split="train")
    data = load_cameras(workdir / "data" / "transforms.json", split="train")
    torch.testing.assert_close(ours.viewmats, data.viewmats, atol=1e-4, rtol=0)


def test_edit_attacks_the_protected_scene(protect_run, workdir):
    run("ns-train", "adlift-edit", "--data", "data", "--output-dir", "out", "--timestamp", "edit", *COMMON,
        "--pipeline.model.scene", str(protect_run / "protected.ply"), "--pipeline.model.scene-frame", "original",
        "--pipeline.model.edit.rounds", "1", "--pipeline.model.edit.gs-steps", "3",
        "--pipeline.model.edit.steps", "2", "nerfstudio-data", cwd=workdir)  # fmt: skip
    out = workdir / "out" / "bust" / "adlift-edit" / "edit"
    edited = read_ply(out / "edited.ply")
    assert edited.num_gaussians == read_ply(protect_run / "protected.ply").num_gaussians
    meta = json.loads((out / "edit.json").read_text())
    assert meta["complete"] is True and len(meta["history"]) == 1 and meta["untrained_test_model"]
    assert meta["nerfstudio"]["iterations"] == 3
    assert (out / "before_after.png").is_file() and len(list((out / "edited").glob("*.png"))) == 6


def test_ns_viewer_and_ns_eval_load_the_protected_scene(protect_run, workdir, monkeypatch):
    """eval_setup (ns-viewer: inference, ns-eval: test) restores the scene from the checkpoint and renders it."""
    from nerfstudio.utils.eval_utils import eval_setup

    monkeypatch.chdir(workdir)
    protected = read_ply(protect_run / "protected.ply")
    for mode in ("inference", "test"):
        _, pipeline, _, step = eval_setup(protect_run.relative_to(workdir) / "config.yml", test_mode=mode)
        model = pipeline.model
        assert step == 1 and model.run is None
        torch.testing.assert_close(model.scene.sh, protected.sh, rtol=0, atol=1e-6)
        out = model.get_outputs_for_camera(pipeline.datamanager.train_dataset.cameras[0:1])
        image = pipeline.datamanager.train_dataset[0]["image"][..., :3]
        assert out["rgb"].shape == image.shape == (48, 48, 3)
        assert float((out["rgb"] - image.float()).abs().mean()) < 0.02  # the data's own view, frame undone


def test_protect_writes_the_chosen_web_format_with_its_quantiser_in_the_fit(workdir):
    run("ns-train", "adlift-protect", "--data", "data", "--output-dir", "out", "--timestamp", "spz", *COMMON,
        "--max-num-iterations", "1", "--pipeline.model.scene", "data/scene.ply", "--pipeline.model.format", "spz",
        "--pipeline.model.scene-frame", "original", *PROTECT, "nerfstudio-data", cwd=workdir)  # fmt: skip
    out = workdir / "out" / "bust" / "adlift-protect" / "spz"
    assert (out / "protected.spz").is_file() and not (out / "protected.ply").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protected_scene"]["format"] == "spz" and manifest["config"]["quantise_as"] == "spz"
    assert manifest["export"]["format"] == "spz" and manifest["export"]["splits"]["train"]["within_eta_2"] >= 0.99
