"""DGE-style 3D editing (adlift.editors.dge, adlift.editors.epipolar) on the tiny and mini editors.

Small scenes, 32-64 px views and a few diffusion steps: these check the geometry, that the
multi-view attention really couples the views, that the fit moves the scene to the edits, resume,
and the `adlift edit --mode dge` / `adlift evaluate --mode dge` commands.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from adlift.cameras import Cameras, look_at_viewmats, orbit_cameras
from adlift.editors.dge import (
    DGEConfig,
    _attention,
    edit_scene_dge,
    multiview_edit,
    select_key_views,
)
from adlift.editors.epipolar import depth_correspondence, epipolar_candidates, fundamental_matrix, grid_intrinsics
from adlift.editors.scene_edit import SceneEditConfig
from adlift.errors import AdLiftError
from adlift.io.ply import read_ply, write_ply
from adlift.render import render
from adlift.scene import GaussianScene
from tests.helpers import (
    BUST,
    BUST_CAMS,
    assert_fitted_to_targets,
    mini_editor,
    perturbed,
    run_cli,
    sha256,
    tiny_editor,
)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

FAST = SceneEditConfig(steps=3, progress=False, backend="torch")


def tiny_scene(n: int = 300, seed: int = 0) -> GaussianScene:
    """A few hundred opaque, coloured Gaussians around the origin, SH degree 1."""
    g = torch.Generator().manual_seed(seed)
    return GaussianScene.from_activated(means=torch.randn(n, 3, generator=g) * 0.4, rgb=torch.rand(n, 3, generator=g),
                                        scales=torch.full((n, 3), 0.08), opacities=torch.full((n,), 0.8),
                                        sh_degree=1)  # fmt: skip


def views(n: int = 6, size: int = 32) -> Cameras:
    return orbit_cameras(n, [0.0, 0.0, 0.0], 3.0, width=size, height=size)


def originals(scene: GaussianScene, cams: Cameras) -> torch.Tensor:
    with torch.no_grad():
        return render(scene, cams, backend="torch").rgb.clamp(0, 1)


# ---------------------------------------------------------------------------------------------- geometry
def _project(points: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [N, 2] and camera z [N] of world points [N, 3] (written out here, independently)."""
    cam = points.double() @ viewmat[:3, :3].double().T + viewmat[:3, 3].double()
    pix = cam @ K.double().T
    return pix[:, :2] / pix[:, 2:], cam[:, 2]


def _rig() -> Cameras:
    """Two cameras looking at the origin from clearly different, non-coplanar-with-axes positions."""
    eyes = torch.tensor([[2.5, 0.4, 1.2], [-0.8, -0.6, 2.9]], dtype=torch.float64)
    viewmats = look_at_viewmats(eyes, torch.zeros(2, 3, dtype=torch.float64))
    K = torch.tensor([[70.0, 0, 30.0], [0, 66.0, 34.0], [0, 0, 1]], dtype=torch.float64)  # off-centre, non-square
    return Cameras(viewmats, K.expand(2, 3, 3).clone(), 64, 64)


def test_fundamental_matrix_maps_a_point_to_its_epipolar_line():
    cams = _rig()
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(50, 3, generator=g, dtype=torch.float64) * 0.5
    xa, _ = _project(pts, cams.viewmats[0], cams.Ks[0])
    xb, _ = _project(pts, cams.viewmats[1], cams.Ks[1])
    fm = fundamental_matrix(cams.viewmats[0], cams.Ks[0], cams.viewmats[1], cams.Ks[1])
    ha = torch.cat([xa, torch.ones(50, 1, dtype=torch.float64)], 1)
    hb = torch.cat([xb, torch.ones(50, 1, dtype=torch.float64)], 1)
    lines = ha @ fm.T
    dist = (lines * hb).sum(1).abs() / lines[:, :2].norm(dim=1)
    assert float(dist.max()) < 1e-6  # the true match lies on the line (in pixels)
    wrong = (lines * hb.roll(1, 0)).sum(1).abs() / lines[:, :2].norm(dim=1)
    assert float(wrong.median()) > 1.0  # another point's image does not
    with pytest.raises(AdLiftError, match="camera centre"):
        fundamental_matrix(cams.viewmats[0], cams.Ks[0], cams.viewmats[0], cams.Ks[1])


@pytest.mark.parametrize("stride", [4.0, 8.0])
def test_epipolar_candidates_contain_the_true_token_and_exclude_most_others(stride):
    cams = _rig()
    h = w = int(64 // stride)
    cand = epipolar_candidates(cams, 0, 1, h, w, (stride, stride), threshold=1.0)
    assert cand.shape == (h * w, h * w)
    g = torch.Generator().manual_seed(1)
    pts = torch.randn(200, 3, generator=g, dtype=torch.float64) * 0.4
    xa, _ = _project(pts, cams.viewmats[0], cams.Ks[0])
    xb, _ = _project(pts, cams.viewmats[1], cams.Ks[1])
    inside = ((xa >= 0) & (xa < 64)).all(1) & ((xb >= 0) & (xb < 64)).all(1)
    ta = (xa[inside] // stride).long()
    tb = (xb[inside] // stride).long()
    assert inside.sum() > 50
    ia, ib = ta[:, 1] * w + ta[:, 0], tb[:, 1] * w + tb[:, 0]
    # A point anywhere inside token a projects within 1 token of the line of a's centre, so the
    # token of its image in b is a candidate (threshold 1 token + the half-diagonal slack of a token).
    loose = epipolar_candidates(cams, 0, 1, h, w, (stride, stride), threshold=1.0 + 2**0.5)
    assert bool(loose[ia, ib].all())
    assert bool(cand[ia, ib].float().mean() > 0.7)
    assert float(cand.float().mean()) < 0.35  # a band, not the whole image


def test_grid_intrinsics_scale_pixels_to_tokens():
    K = torch.tensor([[80.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]])
    G = grid_intrinsics(K, (8.0, 4.0))
    torch.testing.assert_close(G, torch.tensor([[10.0, 0, 4.0], [0, 15.0, 6.0], [0, 0, 1]]))


def test_depth_reprojection_finds_the_token_a_point_lands_in():
    cams = _rig()
    stride, h = 8.0, 8
    g = torch.Generator().manual_seed(2)
    pts = torch.randn(400, 3, generator=g, dtype=torch.float64) * 0.4
    xa, za = _project(pts, cams.viewmats[0], cams.Ks[0])
    xb, _ = _project(pts, cams.viewmats[1], cams.Ks[1])
    # One point per token of a, placed at the token centre's ray at the point's depth.
    depth = torch.zeros(h, h, dtype=torch.float64)
    valid = torch.zeros(h, h, dtype=torch.bool)
    want = {}
    K = cams.Ks[0].double()
    c2w = torch.linalg.inv(cams.viewmats[0].double())
    for i in range(400):
        u, v = int(xa[i, 0] // stride), int(xa[i, 1] // stride)
        if not (0 <= u < h and 0 <= v < h) or valid[v, u]:
            continue
        centre = torch.tensor([(u + 0.5) * stride, (v + 0.5) * stride, 1.0], dtype=torch.float64)
        world = (torch.linalg.inv(K) @ centre * za[i]) @ c2w[:3, :3].T + c2w[:3, 3]
        pb, _ = _project(world[None], cams.viewmats[1], cams.Ks[1])
        tb = (pb[0] // stride).long()
        if 0 <= tb[0] < h and 0 <= tb[1] < h:
            want[v * h + u] = int(tb[1] * h + tb[0])
        depth[v, u], valid[v, u] = za[i], True
    index, ok = depth_correspondence(cams, 0, 1, depth, valid, (stride, stride))
    assert len(want) > 20
    for token, expected in want.items():
        assert bool(ok[token]) and int(index[token]) == expected
    assert not bool(ok[~valid.reshape(-1)].any())  # no surface, no correspondence


def test_key_views_are_spread_over_the_cameras():
    cams = views(8)
    assert select_key_views(cams, 2) == [0, 4]  # the opposite camera of an orbit
    assert select_key_views(cams, 4) == [0, 2, 4, 6]
    assert DGEConfig().num_key_views(28) == 6 and DGEConfig().num_key_views(3) == 1  # one per 5 (DGE)
    assert DGEConfig(key_views=10).num_key_views(4) == 4
    # A rig whose cameras share one centre (turning on the spot): distinct views all the same.
    still = Cameras(cams.viewmats.clone(), cams.Ks, cams.width, cams.height)
    still.viewmats[:, :3, 3] = 0.0
    still.viewmats[:, :3, :3] = cams.viewmats[:, :3, :3]
    assert select_key_views(still, 3) == [0, 1, 2]


@pytest.mark.parametrize("change", [{"key_views": -1}, {"views_per_key": 0}, {"matching": "sift"},
                                    {"epipolar_threshold": 0.0}, {"t_start": 0.0}, {"fit_steps": -1}])  # fmt: skip
def test_invalid_dge_settings_are_one_line_errors(change):
    with pytest.raises(AdLiftError):
        dataclasses.replace(DGEConfig(), **change).validate()


# ---------------------------------------------------------------------------------------------- attention
def test_the_joint_attention_of_one_view_is_diffusers_self_attention():
    unet = tiny_editor().surface.unet
    name, attn = next((n, m) for n, m in unet.named_modules() if n.endswith("attn1"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 16, attn.to_q.in_features, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(_attention(attn, x), attn(x), atol=1e-5, rtol=1e-5)
        # Two views attending jointly differ from each alone (they see each other's tokens).
        assert float((_attention(attn, x, views=2) - attn(x)).abs().max()) > 1e-4
        # Joint attention of a view with itself twice equals its own attention (same tokens, same softmax).
        twice = torch.cat([x[:1], x[:1]])
        torch.testing.assert_close(_attention(attn, twice, views=2)[0], attn(x[:1])[0], atol=1e-5, rtol=1e-5)


def test_cross_view_attention_mixes_views_and_the_unet_is_restored():
    editor, scene, cams = tiny_editor(), tiny_scene(), views(6)
    before = {k: type(v) for k, v in editor.surface.unet.attn_processors.items()}
    x = originals(scene, cams)
    cfg = DGEConfig(key_views=2)
    base = multiview_edit(editor, x, cams, "make it snow", cfg, steps=4)
    assert base.key_views == [0, 3]
    changed = x.clone()
    changed[0] = torch.rand(changed[0].shape, generator=torch.Generator().manual_seed(5))
    edit = multiview_edit(editor, changed, cams, "make it snow", cfg, steps=4)
    delta = (edit.images - base.images).abs().flatten(1).amax(1)
    assert float(delta[3]) > 1e-4  # the other key view sees key view 0 through the joint attention
    assert all(float(delta[i]) > 1e-4 for i in (1, 2, 4, 5))  # the other views get key-view features injected
    # With ordinary attention throughout, the views are edited independently: only view 0 changes.
    plain = dataclasses.replace(cfg, plain_attention_below=10_000)
    a = multiview_edit(editor, x, cams, "make it snow", plain, steps=4).images
    b = multiview_edit(editor, changed, cams, "make it snow", plain, steps=4).images
    assert float((a - b)[1:].abs().max()) == 0.0 and float((a - b)[0].abs().max()) > 1e-3
    assert {k: type(v) for k, v in editor.surface.unet.attn_processors.items()} == before


def test_depth_matching_uses_the_rendered_depth():
    editor, scene, cams = tiny_editor(), tiny_scene(), views(6)
    with torch.no_grad():
        out = render(scene, cams, backend="torch")
    x = out.rgb.clamp(0, 1)
    epi = multiview_edit(editor, x, cams, "make it snow", DGEConfig(key_views=2), steps=3)
    dep = multiview_edit(editor, x, cams, "make it snow", DGEConfig(key_views=2, matching="depth"), steps=3,
                         depth=out.depth, alpha=out.alpha)  # fmt: skip
    torch.testing.assert_close(dep.images[[0, 3]], epi.images[[0, 3]])  # key views: no matching involved
    assert float((dep.images - epi.images).abs().max()) > 1e-4  # other views: another correspondence
    with pytest.raises(AdLiftError, match="depth"):
        multiview_edit(editor, x, cams, "make it snow", DGEConfig(matching="depth"), steps=2)


# ---------------------------------------------------------------------------------------------- the run
def test_dge_fit_moves_the_scene_to_the_edited_views():
    scene, cams = tiny_scene(), views(4)
    result = edit_scene_dge(scene, cams, tiny_editor(), "make it snow", DGEConfig(fit_steps=40), FAST)
    entry = assert_fitted_to_targets(scene, cams, result, margin=0.01)
    assert entry["fit_steps"] == 40 and result.key_views == [0]
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):  # every parameter was fitted
        assert (getattr(result.scene, name) - getattr(scene, name)).abs().max() > 1e-6, name


def test_dge_resumes_from_its_checkpoint_like_an_uninterrupted_run(tmp_path):
    scene, cams, editor = tiny_scene(n=150, seed=2), views(3), tiny_editor()
    cfg = DGEConfig(fit_steps=8, checkpoint_every=3)
    straight = edit_scene_dge(scene, cams, editor, "make it snow", cfg, FAST)
    ckpt = tmp_path / "dge.pt"
    edit = dataclasses.replace(FAST, checkpoint=ckpt)
    first = edit_scene_dge(scene, cams, editor, "make it snow", dataclasses.replace(cfg, fit_steps=5), edit)
    assert ckpt.is_file() and first.history[0]["fit_steps"] == 5
    resumed = edit_scene_dge(scene, cams, editor, "make it snow", cfg, edit)
    assert resumed.history[0]["fit_steps"] == 8
    torch.testing.assert_close(resumed.targets, straight.targets)
    for name in ("means", "sh", "opacity_logits", "log_scales"):
        torch.testing.assert_close(getattr(resumed.scene, name), getattr(straight.scene, name), atol=1e-6, rtol=1e-5)
    with pytest.raises(AdLiftError, match="another edit"):
        edit_scene_dge(scene, cams, editor, "make it gold", cfg, edit)


def test_dge_with_the_mini_editor_carries_out_the_instruction():
    """The trained mini editor (a model organism): DGE's joint edits move the views towards the exact answer."""
    from adlift.editors.mini import edit_success

    scene = read_ply(BUST)
    cams = orbit_cameras(4, scene.means.mean(0).tolist(), 2.2, width=64, height=64)
    x = originals(scene, cams)
    out = multiview_edit(mini_editor(), x, cams, "turn it blue", DGEConfig(key_views=2), steps=10,
                         guidance_scale=3.0).images  # fmt: skip
    ok = edit_success(out, x, "turn it blue")["psnr"]
    untouched = edit_success(x, x, "turn it blue")["psnr"]
    assert float(ok.mean()) > float(untouched.mean()) + 2.0  # measured: +3.2 dB on the bust's training views


# ---------------------------------------------------------------------------------------------- commands
def test_edit_dge_cli_writes_an_edited_scene_and_resumes(tmp_path):
    out = tmp_path / "dge"
    before = sha256(BUST)
    args = ("edit", str(BUST), "--instruction", "make it snow", "--editor", "tiny", "--mode", "dge", "--cameras",
            "orbit:3,size=32x32", "--steps", "2", "--dge.fit-steps", "4", "--dge.key-views", "2", "--out", str(out))
    proc = run_cli(*args, hf_home=tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "untrained test model" in proc.stdout.splitlines()[0] and "key views" in proc.stdout
    assert sha256(BUST) == before
    edited = read_ply(out / "edited.ply")
    assert edited.num_gaussians == read_ply(BUST).num_gaussians
    for sub in ("original", "targets", "edited"):
        assert len(list((out / sub).glob("*.png"))) == 3
    assert not (out / "checkpoint.pt").exists()  # removed after a finished run
    meta = json.loads((out / "edit.json").read_text())
    assert meta["mode"] == "dge" and meta["guidance_scale"] == 7.5 and meta["dge"]["fit_steps"] == 4
    assert meta["key_views"][0] == "orbit_0000" and len(set(meta["key_views"])) == 2  # farthest-point sampling from 0
    assert set(meta["key_views"]) <= set(meta["views"])
    (entry,) = meta["history"]
    assert entry["fit_steps"] == 4 and entry["loss_after_fit"] <= entry["loss_before_fit"] + 1e-3
    # A checkpoint of another run is refused with --resume: one line, exit 2.
    from adlift.io.checkpoint import save_checkpoint

    save_checkpoint(out / "checkpoint.pt", {"fingerprint": {"not": "this run"}})
    proc = run_cli(*args, "--resume", hf_home=tmp_path / "hf")
    assert proc.returncode == 2 and "another edit" in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_edit_help_lists_dge():
    proc = run_cli("edit", "--help")
    assert proc.returncode == 0
    for option in ("dge", "--dge.key-views", "--dge.matching", "--dge.fit-steps", "--dge.t-start"):
        assert option in proc.stdout, option


def test_evaluate_dge_edits_raw_and_protected_scenes(tmp_path):
    raw = read_ply(BUST)
    write_ply(perturbed(raw), tmp_path / "prot.ply")
    out = tmp_path / "eval"
    proc = run_cli("evaluate", "--raw", str(BUST), "--protected", str(tmp_path / "prot.ply"), "--cameras",
                   str(BUST_CAMS), "--instruction", "make it gold", "--editor", "mini", "--mode", "dge",
                   "--width", "32", "--steps", "2", "--views-per-split", "2", "--purify", "jpeg75", "--dge.fit-steps",
                   "3", "--clip", "tiny", "--out", str(out), hf_home=tmp_path / "hf")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "dge" and report["edit_success"]["available"] is True
    assert {v["split"] for v in report["views"]} == {"train", "novel"}
    for v in report["views"]:
        assert math.isfinite(v["edit_success_raw_psnr"]) and math.isfinite(v["edit_success_fall_psnr"])
        assert math.isfinite(v["edit_change_raw_psnr"])  # the DGE edit changed the scene
    assert (out / "grid_novel.png").is_file()


def test_a_mini_protection_is_evaluated_with_the_mini_editor_itself():
    """A manifest made with the mini editor reloads it by name (not as a generic InstructPix2Pix from its
    weights directory), so evaluate --mode dge|3d|2d of that protection reports edit success."""
    from adlift.evaluate.inputs import editor_reference

    assert editor_reference(mini_editor().metadata()) == "mini"
    assert editor_reference(tiny_editor().metadata()) == "tiny"
    assert editor_reference({"editor": "ip2p", "model": "some/hub-model"}) == "some/hub-model"
