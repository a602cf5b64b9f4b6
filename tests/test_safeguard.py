"""The inplace safeguard (the default) and the published order of protected files (issue 17).

CPU, tiny untrained IP2P, the bundled bust at 48x48 and a few views; every run is short (one
round, a few steps): the tests check what is trained, what is written and in which order, not
how well the scene is protected (tests/test_protect.py and benchmarks/protect.py do that).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from adlift.attacks import AdversarialLoss, EncoderLossConfig
from adlift.io.cameras import load_cameras
from adlift.io.formats import write_scene
from adlift.io.ply import read_ply
from adlift.protect import ProtectConfig, ProtectionRun, SafeguardConfig, init_safeguard, protect, split_opacity_logits
from adlift.protect.engine import ProtectionState
from adlift.protect.publish import morton_codes, publish_order, published_scene
from adlift.render import render
from adlift.scene import GaussianScene
from tests.helpers import random_scene, sha256, tiny_editor

REPO = Path(__file__).resolve().parents[1]
BUST = REPO / "scenes" / "bust"
INSTRUCTION = "turn her into a clown"

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

#: One short round: enough for every trainable group of every visible Gaussian to move.
SHORT = ProtectConfig(rounds=1, pgd_steps=2, fit_steps=2, replay=1, progress=False)


@functools.cache
def bust() -> GaussianScene:
    return read_ply(BUST / "scene.ply")


@functools.cache
def train_views():
    return load_cameras(BUST / "transforms.json", split="train", width=48)[[0, 9, 18]]


def encoder_loss() -> AdversarialLoss:
    return AdversarialLoss(tiny_editor().surface, INSTRUCTION, EncoderLossConfig())


def with_safeguard(config: ProtectConfig = SHORT, **fields) -> ProtectConfig:
    return dataclasses.replace(config, safeguard=dataclasses.replace(config.safeguard, **fields))


@functools.cache
def default_run():
    """The default config (inplace, sh + opacity) on the bust: (result, raw tensors before)."""
    raw = bust()
    before = {k: v.clone() for k, v in raw.tensors().items()}
    return protect(raw, train_views(), encoder_loss(), SHORT), before


def sorted_rows(scene: GaussianScene) -> np.ndarray:
    """Every Gaussian's values as float32 rows, in lexicographic order (content without order)."""
    rows = torch.cat([scene.means, scene.quats, scene.log_scales, scene.opacity_logits[:, None],
                      scene.sh.flatten(1)], dim=1).to(torch.float32).numpy()  # fmt: skip
    return rows[np.lexsort(rows.T[::-1])]


# ---------------------------------------------------------------------------------- inplace
def test_inplace_is_the_default_and_keeps_the_count():
    assert SafeguardConfig().init == "inplace" and ProtectConfig().safeguard.init == "inplace"
    raw = bust()
    init = init_safeguard(raw, train_views(), SafeguardConfig())
    assert init.frozen.num_gaussians == 0
    assert init.safeguard.num_gaussians == raw.num_gaussians
    assert torch.equal(init.source_index, torch.arange(raw.num_gaussians))
    for k, v in raw.tensors().items():
        assert torch.equal(getattr(init.safeguard, k), v), k  # opacities unchanged: no split
        assert getattr(init.safeguard, k).data_ptr() != v.data_ptr(), k  # a copy: training never touches raw


def test_inplace_starts_with_renders_equal_to_the_raw_ones_and_no_frozen_set(monkeypatch):
    state = ProtectionState(bust(), train_views(), encoder_loss(), SHORT)
    assert not state.has_frozen and state.protected_scene().num_gaussians == bust().num_gaussians
    seen = []
    real = state._render
    monkeypatch.setattr(state, "_render", lambda *a, **kw: seen.append(kw.get("frozen")) or real(*a, **kw))
    with torch.no_grad():
        first = torch.cat([state.render_safeguarded([v]).clamp(0, 1) for v in range(3)])  # as raw_renders are made
    assert seen == [None] * 3  # inplace renders the scene alone: no frozen= with 0 Gaussians
    assert torch.equal(first, state.raw_renders)


def test_an_empty_frozen_set_draws_nothing():
    scene = random_scene(40, sh_degree=1, seed=3)
    cams = train_views()
    empty = scene.subset(torch.zeros(0, dtype=torch.long))
    with torch.no_grad():
        alone = render(scene, cams, backend="torch").rgb
        with_empty = render(scene, cams, backend="torch", frozen=empty).rgb
    assert torch.equal(alone, with_empty)


def test_inplace_trains_only_the_chosen_groups():
    result, before = default_run()
    raw = bust()
    for k, v in raw.tensors().items():
        assert torch.equal(v, before[k]), k  # the input scene object is untouched
    prot = result.protected
    assert result.num_frozen == 0 and prot.num_gaussians == raw.num_gaussians
    assert torch.equal(result.safeguard.means, prot.means)  # the safeguard is the whole scene
    assert torch.equal(result.source_index.sort().values, torch.arange(raw.num_gaussians))  # each Gaussian once
    start = raw.subset(result.source_index)  # where each protected Gaussian started
    for k in ("means", "log_scales", "quats"):  # geometry is not trained by default
        assert torch.equal(getattr(prot, k), getattr(start, k)), k
    assert not torch.equal(prot.sh, start.sh) and not torch.equal(prot.opacity_logits, start.opacity_logits)
    moved = (prot.sh != start.sh).flatten(1).any(dim=1)
    assert float(moved.float().mean()) > 0.2  # many Gaussians carry the perturbation, not a few

    cfg = with_safeguard(SHORT, trainable=("sh", "scale"))
    run = ProtectionRun(raw, train_views()[[0]], encoder_loss(), cfg)
    run.step()
    got, raw = run.protected_scene(), run.state.raw  # the engine's working order
    assert torch.equal(got.opacity_logits, raw.opacity_logits) and torch.equal(got.means, raw.means)
    assert torch.equal(got.quats, raw.quats)
    assert not torch.equal(got.log_scales, raw.log_scales) and not torch.equal(got.sh, raw.sh)


def test_inplace_resumes_from_a_checkpoint_bit_identically(tmp_path):
    class Stop(Exception):
        """Raised by the hook to interrupt a run between two work units."""

    def stop_at_2(done, total):
        if done == 2:
            raise Stop

    raw = bust()
    cfg = dataclasses.replace(SHORT, rounds=2, checkpoint=tmp_path / "ckpt.pt", checkpoint_every=1)
    straight = protect(raw, train_views(), encoder_loss(), dataclasses.replace(cfg, checkpoint=None))
    with pytest.raises(Stop):
        protect(raw, train_views(), encoder_loss(), cfg, on_unit=stop_at_2)
    resumed = protect(raw, train_views(), encoder_loss(), cfg)
    assert resumed.num_frozen == straight.num_frozen == 0
    for k, v in straight.protected.tensors().items():
        assert torch.equal(v, getattr(resumed.protected, k)), k
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_split_still_freezes_raw_copies_and_trains_the_rest():
    raw = bust()
    run = ProtectionRun(raw, train_views()[[0]], encoder_loss(), with_safeguard(init="split"))
    assert run.state.has_frozen
    run.step()
    prot, raw = run.protected_scene(), run.state.raw  # the engine's working order
    n = raw.num_gaussians
    assert prot.num_gaussians == 2 * n
    frozen = prot.subset(slice(0, n))
    torch.testing.assert_close(frozen.opacity_logits, split_opacity_logits(raw.opacity_logits))
    assert torch.equal(frozen.sh, raw.sh) and not torch.equal(prot.subset(slice(n, None)).sh, raw.sh)


# ---------------------------------------------------------------------------------- published order
def test_the_published_order_depends_only_on_the_values(tmp_path):
    scene = random_scene(3000, sh_degree=2, seed=1)
    perm = torch.randperm(scene.num_gaussians, generator=torch.Generator().manual_seed(5))
    a, b = published_scene(scene), published_scene(scene.subset(perm))
    for k, v in a.tensors().items():
        assert torch.equal(v, getattr(b, k)), k
    write_scene(a, tmp_path / "a.ply")
    write_scene(b, tmp_path / "b.ply")
    assert sha256(tmp_path / "a.ply") == sha256(tmp_path / "b.ply")
    # Spatial: consecutive Gaussians are near each other far more often than in the input order.
    step = lambda s: float((s.means[1:] - s.means[:-1]).norm(dim=1).median())  # noqa: E731
    assert step(a) < 0.5 * step(scene)
    codes = morton_codes(a.means.numpy())
    assert np.all(codes[1:] >= codes[:-1])


def test_publish_order_breaks_ties_by_value_and_keeps_exact_duplicates():
    base = random_scene(6, sh_degree=0, seed=2)
    t = {k: v.clone() for k, v in base.tensors().items()}
    t["means"][:] = t["means"][0]  # one grid cell: the order comes from the other values alone
    t["sh"][3] = t["sh"][1]
    t["opacity_logits"][3] = t["opacity_logits"][1]
    t["quats"][3], t["log_scales"][3] = t["quats"][1], t["log_scales"][1]  # rows 1 and 3: identical
    scene = GaussianScene(**t)
    orders = {tuple(map(tuple, sorted_rows(scene.subset(publish_order(scene)))))}
    for seed in range(4):
        perm = torch.randperm(6, generator=torch.Generator().manual_seed(seed))
        shuffled = scene.subset(perm)
        got = shuffled.subset(publish_order(shuffled))
        assert torch.equal(got.sh, published_scene(scene).sh) and torch.equal(got.quats, published_scene(scene).quats)
        orders.add(tuple(map(tuple, sorted_rows(got))))
    assert len(orders) == 1
    assert publish_order(scene.subset(torch.zeros(0, dtype=torch.long))).numel() == 0


def test_protecting_a_permuted_scene_publishes_the_same_file(tmp_path):
    raw = bust()
    perm = torch.randperm(raw.num_gaussians, generator=torch.Generator().manual_seed(0))
    result, _ = default_run()
    shuffled = protect(raw.subset(perm), train_views(), encoder_loss(), SHORT)
    a, b = published_scene(result.protected), published_scene(shuffled.protected)
    write_scene(a, tmp_path / "a.ply")
    write_scene(b, tmp_path / "b.ply")
    # The engine works in the published order, so the input's order changes nothing: the same bytes.
    assert sha256(tmp_path / "a.ply") == sha256(tmp_path / "b.ply")
    assert torch.equal(raw.subset(perm).subset(shuffled.source_index).means, raw.subset(result.source_index).means)
    assert not torch.equal(a.means, raw.means) and not torch.equal(b.means, raw.subset(perm).means)


def test_the_default_file_has_no_duplicate_geometry_and_no_raw_prefix(tmp_path):
    from adlift.protect.output import write_protection

    result, _ = default_run()
    raw = bust()
    write_protection(tmp_path, result, raw=raw, raw_path=BUST / "scene.ply", train_cameras=train_views(),
                     novel_cameras=None, instruction=INSTRUCTION, editor_metadata=tiny_editor().metadata(),
                     config=SHORT, cameras_source=str(BUST / "transforms.json"))  # fmt: skip
    prot = read_ply(tmp_path / "protected.ply")
    assert prot.num_gaussians == raw.num_gaussians  # 1.0x
    geometry = torch.cat([prot.means, prot.log_scales, prot.quats], dim=1)
    assert torch.unique(geometry, dim=0).shape[0] == prot.num_gaussians  # the dedup attack has nothing to merge
    # No prefix of the file is the raw scene: neither its first Gaussian nor any longer run of raw rows.
    raw_rows = torch.cat([raw.means, raw.quats, raw.log_scales, raw.opacity_logits[:, None], raw.sh.flatten(1)], 1)
    rows = torch.cat([prot.means, prot.quats, prot.log_scales, prot.opacity_logits[:, None], prot.sh.flatten(1)], 1)
    assert not torch.equal(rows[0], raw_rows[0])
    same_as_raw_here = (rows == raw_rows).all(dim=1)
    assert float(same_as_raw_here.float().mean()) < 0.01
    from adlift.protect.manifest import Manifest

    m = Manifest.read(tmp_path)
    assert m.protected_scene.order == "morton" and m.protected_scene.num_gaussians == raw.num_gaussians
    assert m.safeguard.first is None and m.safeguard.frozen == 0 and m.safeguard.count == raw.num_gaussians
    assert m.safeguard.init == "inplace" and m.raw_scene.num_gaussians == raw.num_gaussians


def test_split_outputs_are_interleaved_but_their_pairs_remain():
    """split no longer has a "first half = raw" prefix, but its duplicate pairs are still in the file:
    the leak docs/THREAT_MODEL.md states (position is not trained, so each pair shares its geometry)."""
    raw = bust()
    run = ProtectionRun(raw, train_views()[[0]], encoder_loss(), with_safeguard(init="split"))
    run.step()
    result = run.result()
    n = raw.num_gaussians
    published = result.protected  # the result is already in the published order
    for k, v in published_scene(published).tensors().items():
        assert torch.equal(v, getattr(published, k)), k  # publishing is idempotent
    assert published.num_gaussians == 2 * n and result.num_frozen == n
    assert 0.3 < float((~result.safeguard_mask[:n]).float().mean()) < 0.7  # the first half is not the raw set
    start = raw.subset(result.source_index)  # each safeguard Gaussian's starting point, aligned with it
    assert torch.equal(result.safeguard.means, start.means) and torch.equal(result.safeguard.quats, start.quats)
    frozen = published.subset(~result.safeguard_mask)
    assert np.array_equal(sorted_rows(frozen)[:, :10], sorted_rows(raw)[:, :10])  # raw geometry, exactly
    geometry = torch.cat([published.means, published.log_scales, published.quats], dim=1)
    assert torch.unique(geometry, dim=0).shape[0] == n  # every Gaussian has its twin: recoverable pairs
