"""Safeguard Gaussians, Lifted PGD, the baselines and the protection output, on the bundled bust.

CPU, tiny untrained IP2P, 64x64 renders and a few views so the whole module runs in about a
minute. The numbers say the optimisation works; they are not protection quality of real IP2P.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import pytest
import torch

from adlift.attacks import AdversarialLoss, EncoderLossConfig
from adlift.errors import AdLiftError
from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply
from adlift.protect import ProtectConfig, SafeguardConfig, init_safeguard, protect, split_opacity_logits
from adlift.protect.manifest import Manifest
from adlift.render import render
from adlift.scene import GaussianScene
from tests.helpers import tiny_editor

REPO = Path(__file__).resolve().parents[1]
BUST = REPO / "scenes" / "bust"
INSTRUCTION = "turn her into a clown"
ETA = 8 / 255

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

#: Small but real: every 4th training view and two novel views of the bust at 64x64.
FAST = ProtectConfig(rounds=2, pgd_steps=5, fit_steps=6, replay=1, progress=False)  # default safeguard: inplace


@functools.cache
def bust() -> GaussianScene:
    return read_ply(BUST / "scene.ply")


@functools.cache
def views():
    train = load_cameras(BUST / "transforms.json", split="train", width=64)[list(range(0, 28, 4))]
    novel = load_cameras(BUST / "transforms.json", split="novel", width=64)[[0, 1]]
    return train, novel


def encoder_loss() -> AdversarialLoss:
    return AdversarialLoss(tiny_editor().surface, INSTRUCTION, EncoderLossConfig())


@functools.cache
def lifted_run():
    raw = bust()
    snapshot = {k: v.clone() for k, v in raw.tensors().items()}
    train, novel = views()
    result = protect(raw, train, encoder_loss(), FAST, novel_cameras=novel)
    return result, snapshot


# ---------------------------------------------------------------------------------- safeguard init
def test_split_opacity_composites_to_the_original_opacity():
    logits = torch.tensor([-12.0, -3.0, 0.0, 2.0, 9.0, 20.0], dtype=torch.float64)
    a = torch.sigmoid(logits)
    half = torch.sigmoid(split_opacity_logits(logits))
    torch.testing.assert_close(1 - (1 - half) ** 2, a, rtol=1e-9, atol=1e-12)
    assert torch.isfinite(split_opacity_logits(torch.tensor([60.0, -60.0]))).all()


def test_split_init_duplicates_every_gaussian_and_keeps_the_raw_render_close():
    raw = bust()
    train, _ = views()
    init = init_safeguard(raw, train, SafeguardConfig(init="split"))
    assert init.safeguard.num_gaussians == raw.num_gaussians
    torch.testing.assert_close(init.safeguard.means, raw.means)
    torch.testing.assert_close(init.frozen.opacity_logits, init.safeguard.opacity_logits)
    with torch.no_grad():
        a = render(raw, train[[0, 3]]).rgb.clamp(0, 1)
        b = render(GaussianScene.concat([init.frozen, init.safeguard]), train[[0, 3]]).rgb.clamp(0, 1)
    diff = (a - b).abs().amax(dim=1)  # [C, H, W] worst channel
    # Exact at Gaussian centres; elsewhere two layers of a' differ from one of a, by little on most pixels.
    assert float((diff <= ETA).float().mean()) > 0.9
    assert float(diff.mean()) < 2 / 255


def test_sample_init_takes_the_most_contributing_fraction():
    raw = bust()
    train, _ = views()
    init = init_safeguard(raw, train, SafeguardConfig(init="sample", fraction=0.25))
    n = raw.num_gaussians
    assert init.safeguard.num_gaussians == round(0.25 * n)
    idx = init.source_index
    assert torch.equal(idx, idx.sort().values) and idx.unique().numel() == idx.numel()
    untouched = torch.ones(n, dtype=torch.bool)
    untouched[idx] = False
    torch.testing.assert_close(init.frozen.opacity_logits[untouched], raw.opacity_logits[untouched])
    from adlift.protect.safeguard import contribution_scores

    scores = contribution_scores(raw, train)
    assert float(scores[idx].min()) >= float(scores[untouched].max())


@pytest.mark.parametrize("change", [{"init": "grow"}, {"fraction": 0.0}, {"trainable": ()}, {"trainable": ("colour",)},
                                    {"lr_sh": -1.0}])  # fmt: skip
def test_bad_safeguard_settings_are_rejected(change):
    with pytest.raises(AdLiftError):
        dataclasses.replace(SafeguardConfig(), **change).validate()


@pytest.mark.parametrize("change", [{"method": "magic"}, {"eta": 0.0}, {"rounds": 0}, {"pgd_steps": 0},
                                    {"fit_steps": -1}, {"background": (2.0, 0.0, 0.0)}])  # fmt: skip
def test_bad_protect_settings_are_rejected(change):
    with pytest.raises(AdLiftError):
        dataclasses.replace(ProtectConfig(), **change).validate()


# ---------------------------------------------------------------------------------- Lifted PGD
def test_lifted_pgd_lowers_the_training_loss_within_the_budget():
    result, _ = lifted_run()
    train = result.summary["train"]
    assert train["loss_protected"] < 0.8 * train["loss_raw"], train
    assert train["within_budget_min"] >= 0.99, train  # L-inf <= eta + 1/255 on >= 99% of pixels, every view
    assert train["psnr"] > 35.0
    for v in result.views:
        assert v["split"] in ("train", "novel")
        assert 0.0 <= v["within_budget"] <= 1.0


def test_lifted_pgd_novel_views_keep_a_share_of_the_reduction():
    """Novel views are never optimised on, so neither the budget nor the loss is enforced there.

    With the untrained tiny editor transfer is weak (measured share +0.035 for this setting; see
    benchmarks/protect.py), so the claim is only: novel views stay invisible-ish (>= 95% of pixels within
    eta + 1/255, PSNR > 35 dB) and are not made markedly *easier* to edit (share > -0.25)."""
    result, _ = lifted_run()
    s = result.summary
    assert "novel_share" in s and s["novel"]["views"] == 2
    assert s["novel"]["within_budget_min"] >= 0.95, s
    assert s["novel"]["psnr"] > 35.0, s
    assert s["novel_share"] > -0.25, s


def test_raw_gaussians_are_unchanged():
    result, snapshot = lifted_run()
    raw = bust()
    for k, v in raw.tensors().items():
        assert torch.equal(v, snapshot[k]), k  # the input scene object is untouched
    # inplace (the default): no frozen copies; only the trainable groups (sh, opacity) moved.
    assert result.num_frozen == 0 and result.protected.num_gaussians == raw.num_gaussians
    sg, start = result.safeguard, raw.subset(result.source_index)
    for k in ("means", "quats", "log_scales"):
        assert torch.equal(getattr(sg, k), getattr(start, k)), k
    assert not torch.equal(sg.sh, start.sh)


def test_summary_table_names_every_split():
    from adlift.protect import format_summary

    result, _ = lifted_run()
    text = format_summary(result.summary)
    assert "train" in text and "novel" in text and "\x1b" not in text
    assert f"{result.summary['train']['psnr']:.1f}" in text
    if "novel_share" in result.summary:
        assert "novel views keep" in text


def test_history_has_one_record_per_view_and_round():
    result, _ = lifted_run()
    train, _ = views()
    assert len(result.history) == FAST.rounds * len(train)
    assert {h["round"] for h in result.history} == {1, 2}
    assert all(h["loss"] <= h["loss_start"] + 1e-6 for h in result.history)


@pytest.mark.parametrize("method", ["lifted-pgd", "fit2d", "direct"])
def test_the_recorded_loss_is_the_loss_of_the_target(method):
    """A unit's record says the loss of the target the safeguard is fitted to (direct: of the protected
    render), measured like the final metrics (evaluate: fixed noise), not that of an earlier iterate."""
    from adlift.protect import ProtectionRun

    train = views()[0][[0, 1]]
    loss = encoder_loss()
    run = ProtectionRun(bust(), train, loss, dataclasses.replace(FAST, method=method, rounds=1, pgd_steps=3))
    record = run.step()
    target = run.state.targets[0]
    assert record["loss"] == float(loss.evaluate(target)[0])
    assert record["loss"] < record["loss_start"]
    if method != "direct":  # the target is the last PGD iterate: its loss is not the one before the last step
        assert float((target - run.state.raw_renders[0:1]).abs().max()) <= FAST.eta + 1e-6


def test_resume_equals_an_uninterrupted_run(tmp_path):
    class Stop(Exception):
        """Raised by the hook to interrupt a run between two work units."""

    def stop_after(k):
        def hook(done, total):
            if done == k:
                raise Stop
        return hook

    raw = bust()
    train, _ = views()
    train = train[[0, 1, 2]]
    cfg = dataclasses.replace(FAST, fit_steps=3, checkpoint=tmp_path / "ckpt.pt", checkpoint_every=1)
    straight = protect(raw, train, encoder_loss(), dataclasses.replace(cfg, checkpoint=None))
    with pytest.raises(Stop):
        protect(raw, train, encoder_loss(), cfg, on_unit=stop_after(4))  # stops inside round 2
    assert (tmp_path / "ckpt.pt").exists()
    resumed = protect(raw, train, encoder_loss(), cfg)
    for k, v in straight.protected.tensors().items():
        assert torch.equal(v, getattr(resumed.protected, k)), k
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    with pytest.raises(AdLiftError, match="different run"):
        protect(raw, train, encoder_loss(), dataclasses.replace(cfg, eta=4 / 255))


@pytest.mark.parametrize("method", ["fit2d", "direct"])
def test_baselines_lower_the_loss_near_the_budget(method):
    raw = bust()
    train, _ = views()
    train = train[[0, 2, 4]]
    cfg = dataclasses.replace(FAST, method=method, rounds=1)
    result = protect(raw, train, encoder_loss(), cfg)
    s = result.summary["train"]
    assert s["loss_protected"] < s["loss_raw"], s
    # fit2d projects its targets; direct only penalises the excess, so its budget is soft (measured 0.84).
    assert s["within_budget_mean"] >= (0.95 if method == "fit2d" else 0.75), s
    assert len(result.history) == (2 * len(train) if method == "fit2d" else len(train))


# ---------------------------------------------------------------------------------- output files
def test_protection_output_reloads_and_describes_itself(tmp_path):
    from adlift.protect.output import write_protection

    result, _ = lifted_run()
    train, novel = views()
    meta = tiny_editor().metadata()
    manifest = write_protection(tmp_path, result, raw=bust(), raw_path=BUST / "scene.ply", train_cameras=train,
                                novel_cameras=novel, instruction=INSTRUCTION, editor_metadata=meta, config=FAST,
                                cameras_source=str(BUST / "transforms.json"), save_safeguard=True)  # fmt: skip
    prot = read_ply(tmp_path / "protected.ply")
    assert prot.num_gaussians == result.protected.num_gaussians == bust().num_gaussians  # inplace: 1.0x
    from adlift.protect.publish import published_scene

    torch.testing.assert_close(prot.sh, published_scene(result.protected).sh)  # written in the published order
    sg = read_ply(tmp_path / "safeguard.ply")
    assert sg.num_gaussians == manifest.safeguard.count == bust().num_gaussians
    assert Manifest.read(tmp_path) == Manifest.read(tmp_path / "manifest.json") == Manifest.from_json(manifest.to_json())
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["safeguard"]["first"] is None and on_disk["safeguard"]["frozen"] == 0
    assert on_disk["protected_scene"]["order"] == "morton" and on_disk["manifest_version"] == 2
    assert on_disk["editor"]["untrained_test_model"] is True and "warning" in on_disk
    assert on_disk["instruction"] == INSTRUCTION and on_disk["method"] == "lifted-pgd"
    assert len(on_disk["views"]) == len(train) + len(novel)
    assert on_disk["eta"] == pytest.approx(ETA)
    cams = load_cameras(tmp_path / "transforms.json", split="novel")
    assert list(cams.names) == list(novel.names)
    from PIL import Image

    with Image.open(tmp_path / "preview.png") as im:
        assert im.width >= 3 * 64 and im.height >= 4 * 64


def test_manifest_round_trip_and_one_line_errors(tmp_path):
    from adlift.errors import AdLiftError
    from adlift.protect.manifest import Manifest, NerfstudioInfo, RawSceneInfo

    m = Manifest(raw_scene=RawSceneInfo("raw.ply", "ab" * 32, 10), instruction=INSTRUCTION, eta=4 / 255,
                 views=[{"name": "v", "split": "train", "psnr": float("inf")}], nerfstudio=NerfstudioInfo(iterations=3))
    m.write(tmp_path / "manifest.json")
    back = Manifest.read(tmp_path)
    assert back.views[0]["psnr"] is None  # inf -> null
    assert back.nerfstudio == m.nerfstudio and back.raw_scene == m.raw_scene and back.eta_255 == pytest.approx(4)
    assert "warning" not in json.loads((tmp_path / "manifest.json").read_text())
    doc = json.loads((tmp_path / "manifest.json").read_text())
    cases = {"missing": None, "garbage": "{not json", "list": "[1]", "no_instruction": {"raw_scene": {"path": "x"}},
             "bad_eta": {**doc, "eta": "big"}, "bad_raw": {**doc, "raw_scene": {"sha256": "x"}},
             "bad_views": {**doc, "views": 3}}  # fmt: skip
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        if content is not None:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(AdLiftError) as e:
            Manifest.read(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value), (name, str(e.value))
