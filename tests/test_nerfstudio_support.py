"""The nerfstudio plugin's nerfstudio-free parts: splatfacto checkpoints, camera conversion, the
stepped protection/edit runs the trainer drives, the .ply layout ns-export writes, and
``ns-adlift-evaluate``'s error contract. These run in the main test environment (no nerfstudio);
the plugin itself is tested in tests/nerfstudio/ under nerfstudio 1.1.5 (``make test-nerfstudio``).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adlift.attacks import AdversarialLoss, EncoderLossConfig
from adlift.cameras import Cameras
from adlift.editors import SceneEditConfig, SceneEditRun, edit_scene
from adlift.errors import AdLiftError, FileFormatError
from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply, write_ply
from adlift.nerfstudio import (
    cameras_from_nerfstudio,
    find_checkpoint,
    is_splatfacto_state,
    read_splatfacto_checkpoint,
    scene_from_splatfacto_state,
)
from adlift.protect import ProtectConfig, ProtectionRun, protect
from tests.nerfstudio.scene_data import make_splatfacto_checkpoint
from tests.helpers import PickledCode, ns_export_properties, random_scene, tiny_editor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

REPO = Path(__file__).resolve().parents[1]
BUST = REPO / "scenes" / "bust"


def splatfacto_state(scene, prefix: str = "") -> dict:
    return {
        f"{prefix}_model.gauss_params.means": scene.means,
        f"{prefix}_model.gauss_params.scales": scene.log_scales,
        f"{prefix}_model.gauss_params.quats": scene.quats,
        f"{prefix}_model.gauss_params.features_dc": scene.sh[:, 0],
        f"{prefix}_model.gauss_params.features_rest": scene.sh[:, 1:],
        f"{prefix}_model.gauss_params.opacities": scene.opacity_logits[:, None],
    }


# ---------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("prefix", ["", "module."])
def test_splatfacto_state_maps_onto_the_scene_fields(prefix):
    scene = random_scene(n=20, sh_degree=3)
    state = splatfacto_state(scene, prefix)
    assert is_splatfacto_state(state)
    got = scene_from_splatfacto_state(state)
    for name, value in scene.tensors().items():
        torch.testing.assert_close(getattr(got, name), value, rtol=0, atol=0)


def test_sh_degree_0_checkpoints_store_the_colour_logit(tmp_path):
    ply = tmp_path / "s.ply"
    scene = random_scene(n=30, sh_degree=0)
    write_ply(scene, ply)
    path = make_splatfacto_checkpoint(ply, tmp_path / "nerfstudio_models")
    got = read_splatfacto_checkpoint(tmp_path / "nerfstudio_models")  # the directory finds the file
    assert got.sh_degree == 0
    torch.testing.assert_close(got.rgb.clamp(1e-4, 1 - 1e-4), scene.rgb.clamp(1e-4, 1 - 1e-4), rtol=0, atol=1e-5)
    assert find_checkpoint(tmp_path) == path  # a run directory works too


def test_not_a_splatfacto_checkpoint_is_a_user_error(tmp_path):
    assert not is_splatfacto_state({"_model.field.weight": torch.zeros(1)})
    with pytest.raises(FileFormatError, match="not a splatfacto checkpoint"):
        scene_from_splatfacto_state({"_model.gauss_params.means": torch.zeros(1, 3)}, "x.ckpt")
    (tmp_path / "step-000000010.ckpt").write_bytes(b"not torch")
    with pytest.raises(AdLiftError, match="cannot read"):
        read_splatfacto_checkpoint(tmp_path)
    with pytest.raises(AdLiftError, match="no checkpoint for step 3"):
        find_checkpoint(tmp_path, step=3)
    with pytest.raises(AdLiftError, match="no step-"):
        find_checkpoint(REPO / "scenes")


def test_a_splatfacto_checkpoint_carrying_pickled_code_is_refused_unrun(tmp_path):
    """weights_only loading: the payload (a directory created on unpickling) never runs."""
    marker = tmp_path / "marker"
    torch.save({"pipeline": {"_model.gauss_params.means": torch.zeros(1, 3)}, "evil": PickledCode(marker)},
               tmp_path / "step-000000001.ckpt")  # fmt: skip
    with pytest.raises(AdLiftError, match="Python objects") as e:
        read_splatfacto_checkpoint(tmp_path)
    assert "\n" not in str(e.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------- cameras
def test_nerfstudio_cameras_round_trip_and_leave_the_training_frame():
    cams = load_cameras(BUST / "transforms.json", split="novel", width=40)
    c2w = cams.to_camtoworlds_opengl()[:, :3, :4]
    k = cams.Ks
    same = cameras_from_nerfstudio(c2w, k[:, 0, 0:1], k[:, 1, 1:2], k[:, 0, 2:3], k[:, 1, 2:3],
                                   torch.full((len(cams), 1), 40), torch.full((len(cams), 1), 40), cams.names)  # fmt: skip
    torch.testing.assert_close(same.viewmats, cams.viewmats, atol=1e-5, rtol=0)
    torch.testing.assert_close(same.Ks, cams.Ks)
    assert same.names == cams.names and (same.width, same.height) == (40, 40)

    # nerfstudio's training frame: c2w' = s * (M @ c2w); converting back must give the input frame.
    angle = torch.tensor(0.7)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = torch.tensor([[torch.cos(angle), -torch.sin(angle), 0], [torch.sin(angle), torch.cos(angle), 0], [0, 0, 1]])
    m[:3, 3] = torch.tensor([0.3, -0.2, 0.5])
    scale = 0.4
    trained = m @ cams.to("cpu", torch.float64).to_camtoworlds_opengl()
    trained[:, :3, 3] *= scale
    back = cameras_from_nerfstudio(trained[:, :3, :4], k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], 40, 40,
                                   dataparser_transform=m[:3], dataparser_scale=scale)  # fmt: skip
    torch.testing.assert_close(back.viewmats, cams.viewmats, atol=1e-5, rtol=0)


def test_cameras_of_different_sizes_are_refused():
    c2w = torch.eye(4)[None, :3].expand(2, 3, 4)
    with pytest.raises(AdLiftError, match="different sizes"):
        cameras_from_nerfstudio(c2w, torch.ones(2), torch.ones(2), torch.ones(2), torch.ones(2),
                                torch.tensor([8, 16]), torch.tensor([8, 8]))  # fmt: skip


# ---------------------------------------------------------------------------------- export layout
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_written_ply_has_ns_export_gaussian_splat_properties(tmp_path, degree):
    import plyfile

    path = write_ply(random_scene(n=5, sh_degree=degree), tmp_path / "s.ply")
    ply = plyfile.PlyData.read(str(path))
    assert [p.name for p in ply["vertex"].properties] == ns_export_properties(degree)
    assert all(p.val_dtype in ("f4", "float32", "float") for p in ply["vertex"].properties)
    assert not ply.text and ply.byte_order == "<"


# ---------------------------------------------------------------------------------- stepped runs
def test_protection_run_stepped_equals_protect():
    raw = read_ply(BUST / "scene.ply").subset(slice(0, None, 8))
    train = load_cameras(BUST / "transforms.json", split="train", width=32)[[0, 9, 18]]
    novel = load_cameras(BUST / "transforms.json", split="novel", width=32)[[0]]
    cfg = ProtectConfig(rounds=1, pgd_steps=2, fit_steps=2, replay=1, progress=False)
    loss = AdversarialLoss(tiny_editor().surface, "turn her into a clown", EncoderLossConfig())
    straight = protect(raw, train, loss, cfg, novel_cameras=novel)
    run = ProtectionRun(raw, train, loss, cfg)
    assert run.total == 3 and not run.finished
    records = [run.step() for _ in range(run.total)]
    assert run.finished and [r["view"] for r in records] == train.names
    with pytest.raises(AdLiftError, match="no units left"):
        run.step()
    stepped = run.result(novel)
    for k, v in straight.protected.tensors().items():
        assert torch.equal(v, getattr(stepped.protected, k)), k
    assert stepped.summary == straight.summary
    # the checkpoint dict restores a run of the same settings only
    state = run.state.checkpoint_state()
    again = ProtectionRun(raw, train, loss, cfg)
    again.state.restore(state)
    assert again.finished
    other = ProtectionRun(raw, train, loss, dataclasses.replace(cfg, eta=4 / 255))
    with pytest.raises(AdLiftError, match="different run"):
        other.state.restore(state)


def test_scene_edit_run_stepped_equals_edit_scene():
    scene = read_ply(BUST / "scene.ply").subset(slice(0, None, 16))
    cams = load_cameras(BUST / "transforms.json", split="train", width=32)[[0, 10]]
    cfg = SceneEditConfig(rounds=2, gs_steps=2, steps=2, progress=False)
    straight = edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)
    run = SceneEditRun(scene, cams, tiny_editor(), "make it snow", cfg)
    infos = [run.step() for _ in range(run.total_steps)]
    assert run.finished and [i["dataset_update"] for i in infos] == [True, False, True, False]
    assert [i["round_record"] is not None for i in infos] == [False, True, False, True]
    for k, v in straight.scene.tensors().items():
        torch.testing.assert_close(getattr(run.scene(), k), v, rtol=0, atol=0)
    assert [h["loss_after_fit"] for h in run.history] == [h["loss_after_fit"] for h in straight.history]


# ---------------------------------------------------------------------------------- ns-adlift-evaluate
def test_ns_adlift_evaluate_errors_exit_2(tmp_path):
    from adlift.nerfstudio.evaluate import main

    assert main(["--load-config", str(tmp_path / "missing.yml")]) == 2
    (tmp_path / "config.yml").write_text("x: 1\n")
    assert main(["--load-config", str(tmp_path / "config.yml")]) == 2  # a run without results
    assert main([str(tmp_path), "--load-config", str(tmp_path / "config.yml")]) == 2


def test_import_adlift_does_not_import_nerfstudio():
    code = "import sys, adlift, adlift.nerfstudio, adlift.nerfstudio.evaluate; print('nerfstudio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_cameras_helper_returns_float32_adlift_cameras():
    c2w = torch.eye(4)[None, :3]
    cams = cameras_from_nerfstudio(c2w, 10.0, 10.0, 4.0, 4.0, 8, 8)
    assert isinstance(cams, Cameras) and cams.viewmats.dtype == torch.float32 and cams.names == ["frame_00000"]
