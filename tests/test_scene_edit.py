"""Instruct-GS2GS-style 3D editing (adlift.editors.scene_edit) and the photometric loss, on the tiny editor."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from adlift.cameras import orbit_cameras
from adlift.editors import SceneEditConfig, dssim, edit_scene, l1_dssim_loss
from adlift.cameras import scene_extent
from adlift.editors.scene_edit import _split_params, make_optimizer
from adlift.errors import AdLiftError
from adlift.render import render
from adlift.scene import GaussianScene
from tests.helpers import assert_fitted_to_targets, tiny_editor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]


def tiny_scene(n: int = 300, seed: int = 0) -> GaussianScene:
    """A few hundred opaque, coloured Gaussians around the origin, SH degree 1."""
    g = torch.Generator().manual_seed(seed)
    return GaussianScene.from_activated(
        means=torch.randn(n, 3, generator=g) * 0.4,
        rgb=torch.rand(n, 3, generator=g),
        scales=torch.full((n, 3), 0.08),
        opacities=torch.full((n,), 0.8),
        sh_degree=1,
    )


def tiny_cameras(n: int = 3):
    return orbit_cameras(n, [0.0, 0.0, 0.0], 3.0, width=32, height=32)


FAST = SceneEditConfig(rounds=1, gs_steps=30, steps=4, progress=False, backend="torch")


# ---------------------------------------------------------------------- photometric loss
def test_l1_dssim_is_zero_for_identical_images_and_grows_with_difference():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g)
    assert float(l1_dssim_loss(a, a)) == pytest.approx(0.0, abs=1e-5)
    small = l1_dssim_loss(a, (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1))
    large = l1_dssim_loss(a, torch.rand(a.shape, generator=g))
    assert 0 < float(small) < float(large)
    b = torch.rand(2, 3, 32, 32, generator=g)
    l1 = (a - b).abs().mean()
    torch.testing.assert_close(l1_dssim_loss(a, b, 0.2), 0.8 * l1 + 0.2 * dssim(a, b))
    torch.testing.assert_close(l1_dssim_loss(a, b, 0.0), l1)
    # 3DGS' D-SSIM is 1 - SSIM (kornia's ssim_loss would be half of it).
    import kornia

    torch.testing.assert_close(dssim(a, b), 2 * kornia.losses.ssim_loss(a, b, 11))


def test_dssim_matches_scikit_image_ssim():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 48, 48, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ref = structural_similarity(
        a[0].permute(1, 2, 0).numpy(), b[0].permute(1, 2, 0).numpy(), channel_axis=2, data_range=1.0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, win_size=11,
    )  # fmt: skip
    # scikit-image averages the interior only; kornia pads (reflect): close, not equal.
    assert float(1 - dssim(a, b)) == pytest.approx(ref, abs=0.03)


def test_photometric_loss_rejects_mismatched_shapes():
    with pytest.raises(AdLiftError):
        l1_dssim_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


# ---------------------------------------------------------------------- optimiser and config
def test_per_parameter_learning_rates_follow_3dgs():
    scene, cams = tiny_scene(), tiny_cameras()
    extent = scene_extent(cams, scene)
    # Three cameras at radius 3 around the origin: their centroid is near the axis.
    centers = cams.centers.double()
    assert extent == pytest.approx(1.1 * float((centers - centers.mean(0)).norm(dim=-1).max()))
    opt = make_optimizer(_split_params(scene), SceneEditConfig(), extent)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["means"] == pytest.approx(1.6e-4 * extent)
    assert lrs["sh_dc"] == pytest.approx(2.5e-3) and lrs["sh_rest"] == pytest.approx(2.5e-3 / 20)
    assert lrs["opacity_logits"] == pytest.approx(0.05)
    assert lrs["log_scales"] == pytest.approx(5e-3) and lrs["quats"] == pytest.approx(1e-3)
    assert all(g["eps"] == 1e-15 for g in opt.param_groups)
    # SH degree 0 has no rest coefficients: no empty group.
    opt0 = make_optimizer(_split_params(tiny_scene().with_sh_degree(0)), SceneEditConfig(), extent)
    assert "sh_rest" not in {g["name"] for g in opt0.param_groups}


def test_defaults_follow_instruct_gs2gs():
    c = SceneEditConfig()
    assert c.gs_steps * c.rounds == 7500 and c.gs_steps == 2500
    assert (c.text_guidance, c.image_guidance_scale, c.steps) == (12.5, 1.5, 20)
    assert c.guidance_scale is None and SceneEditConfig(guidance_scale=9.0).text_guidance == 9.0
    assert (c.t_lower, c.t_upper, c.ssim_lambda) == (0.70, 0.98, 0.2)


@pytest.mark.parametrize(
    "change", [{"rounds": 0}, {"gs_steps": -1}, {"t_lower": 0.9, "t_upper": 0.5}, {"ssim_lambda": 1.5}]
)
def test_invalid_config_is_rejected(change):
    with pytest.raises(AdLiftError):
        edit_scene(tiny_scene(), tiny_cameras(), tiny_editor(), "x", dataclasses.replace(FAST, **change))


# ---------------------------------------------------------------------- the 3D edit
def test_3d_edit_fits_its_edited_targets_and_changes_the_scene():
    scene, cams = tiny_scene(), tiny_cameras()
    result = edit_scene(scene, cams, tiny_editor(), "turn him into a clown", FAST)
    assert result.targets.shape == (3, 3, 32, 32) and result.originals.shape == (3, 3, 32, 32)
    assert_fitted_to_targets(scene, cams, result, margin=0.005)
    # Every Gaussian parameter was optimised.
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert (getattr(result.scene, name) - getattr(scene, name)).abs().max() > 1e-5, name
    assert not any(t.requires_grad for t in result.scene.tensors().values())


def test_3d_edit_is_deterministic_and_resumes_from_a_checkpoint(tmp_path):
    scene, cams = tiny_scene(n=150, seed=2), tiny_cameras()
    cfg = dataclasses.replace(FAST, rounds=2, gs_steps=6, steps=3)
    straight = edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)
    assert [h["round"] for h in straight.history] == [1, 2]
    ckpt = tmp_path / "edit.pt"
    first = edit_scene(scene, cams, tiny_editor(), "make it snow", dataclasses.replace(cfg, rounds=1, checkpoint=ckpt))
    assert ckpt.is_file() and len(first.history) == 1
    resumed = edit_scene(scene, cams, tiny_editor(), "make it snow", dataclasses.replace(cfg, checkpoint=ckpt))
    assert [h["round"] for h in resumed.history] == [1, 2]
    for name in ("means", "sh", "opacity_logits"):
        torch.testing.assert_close(getattr(resumed.scene, name), getattr(straight.scene, name), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(resumed.targets, straight.targets, atol=1e-5, rtol=0)
    # A checkpoint of another edit is refused: instruction, settings, scene, cameras all count.
    with pytest.raises(AdLiftError, match="another edit"):
        edit_scene(scene, cams, tiny_editor(), "turn him into bronze", dataclasses.replace(cfg, checkpoint=ckpt))
    for change in ({"seed": 1}, {"guidance_scale": 7.5}, {"lr_opacity": 0.01}, {"t_lower": 0.5}):
        with pytest.raises(AdLiftError, match="another edit"):
            edit_scene(scene, cams, tiny_editor(), "make it snow", dataclasses.replace(cfg, checkpoint=ckpt, **change))
    with pytest.raises(AdLiftError, match="another edit"):
        edit_scene(tiny_scene(n=150, seed=4), cams, tiny_editor(), "make it snow", dataclasses.replace(cfg, checkpoint=ckpt))
    with pytest.raises(AdLiftError, match="another edit"):
        edit_scene(scene, tiny_cameras(4)[:3], tiny_editor(), "make it snow", dataclasses.replace(cfg, checkpoint=ckpt))
    # What does not change the result does not count.
    again = edit_scene(scene, cams, tiny_editor(), "make it snow",
                       dataclasses.replace(cfg, checkpoint=ckpt, batch_size=1, progress=False))  # fmt: skip
    torch.testing.assert_close(again.scene.means, resumed.scene.means)


def test_3d_edit_checkpoint_holds_only_plain_data_and_pickled_objects_never_run(tmp_path):
    import os

    from adlift.io.checkpoint import load_checkpoint

    scene, cams = tiny_scene(n=80, seed=5), tiny_cameras(2)
    ckpt = tmp_path / "edit.pt"
    cfg = dataclasses.replace(FAST, gs_steps=2, steps=2, checkpoint=ckpt)
    edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)
    state = torch.load(ckpt, weights_only=True)  # the restricted unpickler accepts it
    assert state["fingerprint"]["instruction"] == "make it snow" and state["round"] == 1
    marker = tmp_path / "pwned"
    torch.save({"fingerprint": _RunsCode(str(marker))}, ckpt)
    with pytest.raises(AdLiftError, match="refused") as info:
        edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)
    assert "\n" not in str(info.value) and str(ckpt) in str(info.value)
    assert not marker.exists() and not os.path.exists(marker)
    with pytest.raises(AdLiftError, match="refused"):
        load_checkpoint(ckpt)
    assert not marker.exists()
    # Plain data of this run but damaged: one line, not a traceback.
    damaged = dict(state)
    del damaged["optimizer"]
    torch.save(damaged, ckpt)
    with pytest.raises(AdLiftError, match="damaged"):
        edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)


class _RunsCode:
    """Pickles as a call that creates a marker file: what a malicious checkpoint would carry."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_3d_edit_uses_given_original_views():
    scene, cams = tiny_scene(n=100, seed=3), tiny_cameras()
    photos = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    cfg = dataclasses.replace(FAST, gs_steps=0)
    result = edit_scene(scene, cams, tiny_editor(), "make it snow", cfg, originals=photos)
    torch.testing.assert_close(result.originals, photos)
    default = edit_scene(scene, cams, tiny_editor(), "make it snow", cfg)
    assert (result.targets - default.targets).abs().max() > 1e-3  # conditioning on the photos changed the edits
    assert math.isfinite(result.history[0]["loss_after_fit"])
    with pytest.raises(AdLiftError, match="originals"):
        edit_scene(scene, cams, tiny_editor(), "x", cfg, originals=photos[:2])


def test_3d_edit_takes_the_editors_default_guidance(monkeypatch):
    from adlift.editors.scene_edit import SceneEditRun

    editor = tiny_editor()  # shared by the session: patched for this test only
    assert editor.default_guidance("3d") == 12.5  # InstructPix2Pix editors: Instruct-GS2GS' guidance
    monkeypatch.setattr(editor, "default_guidance", lambda mode: {"2d": 2.0, "3d": 3.5}[mode])
    scene, cams = tiny_scene(), tiny_cameras()
    assert SceneEditRun(scene, cams, editor, "x", FAST).config.guidance_scale == 3.5
    assert FAST.guidance_scale is None  # the caller's config is not changed
    given = SceneEditRun(scene, cams, editor, "x", dataclasses.replace(FAST, guidance_scale=6.0))
    assert given.config.guidance_scale == 6.0
