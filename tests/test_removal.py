"""Removal attacks (issue 17): each attack does what it says on a constructed scene, the measurement
flags an attack that gives the raw asset back, `adlift evaluate --removal` writes its outputs, and the
default protection survives the whole suite on a small scene."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import pytest
import torch

from adlift.errors import AdLiftError
from adlift.evaluate.removal import (
    REMOVAL_ATTACKS,
    AttackSkipped,
    RemovalContext,
    near_duplicate_pairs,
    parse_removal_attacks,
    removal_report,
    roundtrip,
)
from adlift.evaluate.run import EvaluateConfig
from adlift.io.cameras import load_cameras
from adlift.render import render_images
from adlift.scene import GaussianScene
from tests.helpers import BUST, fake_protect_outdir, mini_editor, random_scene, run_cli, tiny_editor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

INSTRUCTION = "turn her into a clown"
CONTEXT = RemovalContext(width=32, height=32, views=4, refit_steps=0, backend="torch")


def attack(name: str, scene: GaussianScene, context: RemovalContext = CONTEXT) -> GaussianScene:
    return REMOVAL_ATTACKS.get(name)(scene, context=context)


def with_(scene: GaussianScene, **fields) -> GaussianScene:
    return GaussianScene(**{**scene.tensors(), **fields})


def undone(logits: torch.Tensor, layers: int = 2) -> torch.Tensor:
    """logit(1 - (1 - a')^layers), computed independently of the module under test."""
    a = torch.sigmoid(logits.double())
    return torch.logit(1 - (1 - a) ** layers).float()


def split_protected(seed: int = 0, n: int = 300, colour_noise: float = 0.3):
    """(raw, protected) the way AdLift's split init lays a file out: every raw Gaussian, then a copy
    of it, both with the split opacity a' (so two layers let through what one raw layer did); the
    copies' colours changed by the "protection". raw is defined from the file's a' (raw opacity =
    1 - (1 - a')^2 in float64, as an attacker computes it), so undoing the split is exact."""
    base = random_scene(n, sh_degree=1, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    split_logits = base.opacity_logits
    raw = with_(base, opacity_logits=undone(split_logits))
    sh = base.sh.clone()
    sh[:, 0] += colour_noise * (torch.rand(n, 3, generator=g) - 0.5)
    protected = GaussianScene.concat([base, with_(base, sh=sh)])
    return raw, protected


@functools.cache
def views(scene_seed: int = 0):
    return load_cameras("orbit:4,size=32x32", scene=random_scene(300, seed=scene_seed))


def renders(scene: GaussianScene) -> torch.Tensor:
    return render_images(scene, views(), backend="torch")


# ------------------------------------------------------------------------------------- the suite
def test_the_registry_holds_the_suite():
    names = REMOVAL_ATTACKS.names()
    for name in ("shuffle", "dedup-exact", "dedup-exact-keep", "dedup-near", "prefix-half", "prune-opacity-0.005",
                 "prune-opacity-0.05", "prune-size-1pct", "prune-big", "outliers-remove", "outliers-clamp",
                 "sh-degree0", "float16", "roundtrip-spz", "roundtrip-splat", "roundtrip-compressed-ply",
                 "roundtrip-sog", "refit", "smooth-colour-2", "smooth-colour-8"):  # fmt: skip
        assert name in names, name
    assert all(line.split(": ", 1)[1] for line in REMOVAL_ATTACKS.describe().splitlines())  # every one has a help line
    assert EvaluateConfig().removal_attacks == names and EvaluateConfig().removal is False
    assert parse_removal_attacks("all") == names and parse_removal_attacks(" shuffle, refit ") == ("shuffle", "refit")
    bad_specs = (("nope", "unknown removal attack 'nope'"), ("shuffle,shuffle", "listed twice"), (",", "no removal"))
    for bad, needle in bad_specs:
        with pytest.raises(AdLiftError, match=needle):
            parse_removal_attacks(bad)
    with pytest.raises(AdLiftError, match="unknown removal attack"):
        dataclasses.replace(EvaluateConfig(), removal_attacks=("nope",)).validate()


def test_shuffle_permutes_the_file_and_changes_no_render():
    scene = random_scene(300, seed=0)
    shuffled = attack("shuffle", scene)
    assert shuffled.num_gaussians == scene.num_gaussians
    assert not torch.equal(shuffled.means, scene.means)  # the order changed...
    key = lambda s: sorted(map(tuple, s.means.tolist()))  # noqa: E731
    assert key(shuffled) == key(scene)  # ...the Gaussians did not
    torch.testing.assert_close(renders(shuffled), renders(scene), atol=1e-6, rtol=0)


def test_exact_dedup_undoes_the_split():
    raw, protected = split_protected()
    kept = attack("dedup-exact-keep", protected)  # the first copy (the raw one), opacity 1 - (1 - a')^2
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(kept, name), getattr(raw, name)), name
    merged = attack("dedup-exact", protected)  # 1 - (1 - a')(1 - a'), colour the opacity-weighted mean
    assert merged.num_gaussians == raw.num_gaussians
    torch.testing.assert_close(merged.opacity_logits, raw.opacity_logits, atol=1e-5, rtol=1e-5)
    n = raw.num_gaussians
    torch.testing.assert_close(merged.sh, (protected.sh[:n] + protected.sh[n:]) / 2)  # equal opacities: the mean
    # groups of three, unequal opacities: 1 - prod(1 - a_k) and sum(a_k c_k) / sum(a_k)
    one = random_scene(1, seed=3)
    trio = GaussianScene.concat([with_(one, opacity_logits=torch.tensor([v]), sh=one.sh + v) for v in (-1.0, 0.0, 2.0)])
    a = torch.sigmoid(torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64))
    out = attack("dedup-exact", GaussianScene.concat([trio, random_scene(2, seed=4)]))
    assert out.num_gaussians == 3
    assert float(out.opacities[0]) == pytest.approx(float(1 - (1 - a).prod()), rel=1e-6)
    want = one.sh[0] + float((a * torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)).sum() / a.sum())
    torch.testing.assert_close(out.sh[0], want.float())
    assert torch.equal(out.subset(slice(1, None)).sh, random_scene(2, seed=4).sh)  # singletons are untouched


def test_near_duplicates_are_paired_and_merged():
    raw, _ = split_protected()
    n = raw.num_gaussians
    g = torch.Generator().manual_seed(1)
    big = raw.scales.amax(dim=1, keepdim=True)
    jitter = with_(raw, means=raw.means + 0.02 * big * torch.randn(n, 3, generator=g) / math.sqrt(3),
                   log_scales=raw.log_scales + 0.01)  # fmt: skip
    protected = GaussianScene.concat([raw, jitter])
    assert len(near_duplicate_pairs(raw)) == 0  # distinct Gaussians are not paired
    pairs = near_duplicate_pairs(protected)
    assert sorted(pairs[:, 0].tolist()) == list(range(n))
    assert torch.equal(pairs[:, 1] - pairs[:, 0], torch.full((n,), n))
    kept = attack("dedup-near-keep", protected)
    assert torch.equal(kept.means, raw.means)
    torch.testing.assert_close(kept.opacity_logits, undone(raw.opacity_logits))
    merged = attack("dedup-near", protected)
    assert merged.num_gaussians == n
    far = with_(raw, means=raw.means + 0.5 * big)  # half a scale away: not a near duplicate
    assert attack("dedup-near", GaussianScene.concat([raw, far])).num_gaussians == 2 * n


def test_prefix_half_keeps_the_first_half_with_the_split_undone():
    raw, protected = split_protected()
    out = attack("prefix-half", protected)
    assert out.num_gaussians == raw.num_gaussians and torch.equal(out.opacity_logits, raw.opacity_logits)
    assert attack("prefix-half", random_scene(5)).num_gaussians == 3


def test_pruning_thresholds():
    opacities = torch.tensor([0.001, 0.0049, 0.0051, 0.03, 0.0499, 0.051, 0.9])
    scene = with_(random_scene(7), opacity_logits=torch.logit(opacities))
    assert attack("prune-opacity-0.005", scene).num_gaussians == 5
    assert attack("prune-opacity-0.05", scene).num_gaussians == 2
    sized = random_scene(300, seed=2)
    order = sized.log_scales.amax(dim=1).argsort(descending=True)
    out = attack("prune-size-1pct", sized)
    assert out.num_gaussians == 297
    assert set(map(tuple, out.means.tolist())) == set(map(tuple, sized.means[order[3:]].tolist()))
    # 3DGS' big points: a Gaussian as large as the scene goes (world space), one of 3 sigma = 40 px at
    # 1000 px width goes (screen space), small ones (~3 px) stay
    small = with_(sized, log_scales=torch.full((300, 3), -6.0))
    huge = with_(random_scene(1, seed=5), log_scales=torch.zeros(1, 3))
    out = attack("prune-big", GaussianScene.concat([small, huge]))
    assert out.num_gaussians == 300 and torch.equal(out.means, small.means)
    cams = load_cameras("orbit:4,size=32x32", scene=small)  # the attacker's framing (elevations differ; same radius)
    distance = float((cams.centers - small.center_and_radius()[0]).norm(dim=1).mean())
    fx = float(cams.Ks[0, 0, 0]) * 1000 / 32
    wide = with_(random_scene(1, seed=5), means=small.center_and_radius()[0][None],
                 log_scales=torch.full((1, 3), math.log(40 / 3 * distance / fx)))  # fmt: skip
    assert attack("prune-big", GaussianScene.concat([small, wide])).num_gaussians == 300
    narrow = with_(wide, log_scales=wide.log_scales - math.log(4))  # 10 px
    assert attack("prune-big", GaussianScene.concat([small, narrow])).num_gaussians == 301


def test_outliers_are_removed_or_clamped_to_the_median():
    scene = random_scene(200, seed=6)
    sh = scene.sh.clone()
    sh[7, 0, 1] = 25.0  # one colour outlier
    logits = scene.opacity_logits.clone()
    logits[11] = -30.0  # one opacity outlier
    odd = with_(scene, sh=sh, opacity_logits=logits)
    removed = attack("outliers-remove", odd)
    assert 7 not in _rows_of(removed, odd) and 11 not in _rows_of(removed, odd) and removed.num_gaussians >= 190
    clamped = attack("outliers-clamp", odd)
    assert clamped.num_gaussians == 200
    assert float(clamped.sh[7, 0, 1]) == pytest.approx(float(odd.sh[:, 0, 1].median()))
    assert float(clamped.opacity_logits[11]) == pytest.approx(float(odd.opacity_logits.median()))
    assert torch.equal(clamped.sh[:, 1:], odd.sh[:, 1:]) and float(clamped.sh[0, 0, 0]) == float(odd.sh[0, 0, 0])


def test_smooth_colour_averages_the_colours_of_a_voxel():
    from adlift.evaluate.removal import voxel_ids

    scene = random_scene(400, seed=8)
    smoothed = attack("smooth-colour-8", scene)
    ids = voxel_ids(scene.means, 8)
    assert 20 < int(ids.max()) + 1 < 400  # cells hold several Gaussians, not all of them
    for cell in (int(ids[0]), int(ids[123])):
        rows = ids == cell
        expected = scene.sh[rows, 0].mean(dim=0)
        torch.testing.assert_close(smoothed.sh[rows, 0], expected.expand(int(rows.sum()), 3))
    assert torch.equal(smoothed.sh[:, 1:], scene.sh[:, 1:]) and torch.equal(smoothed.means, scene.means)
    assert torch.equal(smoothed.opacity_logits, scene.opacity_logits)


def _rows_of(subset: GaussianScene, scene: GaussianScene) -> set[int]:
    rows = {tuple(m): i for i, m in enumerate(scene.means.tolist())}
    return {rows[tuple(m)] for m in subset.means.tolist()}


def test_sh_truncation_and_float16():
    scene = random_scene(50, sh_degree=2, seed=7)
    out = attack("sh-degree0", scene)
    assert out.sh.shape == scene.sh.shape and float(out.sh[:, 1:].abs().max()) == 0.0
    assert torch.equal(out.sh[:, 0], scene.sh[:, 0]) and torch.equal(out.means, scene.means)
    q = attack("float16", scene)
    for name, value in scene.tensors().items():
        assert torch.equal(getattr(q, name), value.half().float()), name
    assert not torch.equal(q.means, scene.means)


def test_format_round_trips_run_or_say_why_not(monkeypatch):
    scene = random_scene(40, seed=8)
    back = roundtrip(scene, "ply")  # the machinery, through the one registered lossless format
    assert torch.equal(back.means, scene.means) and torch.equal(back.sh, scene.sh)
    from adlift.io import formats
    from adlift.registry import Registry

    only_ply = Registry("scene format")
    only_ply.add("ply", formats.SCENE_FORMATS.get("ply"))
    monkeypatch.setattr(formats, "SCENE_FORMATS", only_ply)
    for name in ("roundtrip-spz", "roundtrip-splat", "roundtrip-compressed-ply", "roundtrip-sog"):
        with pytest.raises(AttackSkipped, match="scene format is registered .registered: ply"):
            attack(name, scene)


def test_registered_web_formats_round_trip():
    """Whatever web formats are registered now: the attack gives back a scene of the same count
    (lossy values), or says in one line why it could not run."""
    scene = random_scene(40, seed=8)
    for name in ("roundtrip-spz", "roundtrip-splat", "roundtrip-compressed-ply", "roundtrip-sog"):
        try:
            out = attack(name, scene)
        except AttackSkipped as e:
            assert "\n" not in str(e) and str(e)
            continue
        assert out.num_gaussians == scene.num_gaussians
        if name == "roundtrip-sog":  # SOG stores the Gaussians spatially sorted: compare nearest ones
            out = out.subset(torch.cdist(scene.means, out.means).argmin(dim=1))
        torch.testing.assert_close(out.means, scene.means, atol=0.05, rtol=0.05)


def test_refit_fits_a_fresh_copy_to_the_renders():
    scene = random_scene(150, seed=9)
    fresh = attack("refit", scene, dataclasses.replace(CONTEXT, refit_steps=0))
    assert torch.equal(fresh.means, scene.means) and torch.equal(fresh.sh[:, 0], scene.sh[:, 0])
    assert float(fresh.sh[:, 1:].abs().max()) == 0.0 and torch.allclose(fresh.opacities, torch.tensor(0.1))
    fitted = attack("refit", scene, dataclasses.replace(CONTEXT, refit_steps=60))
    assert torch.equal(fitted.means, scene.means) and fitted.num_gaussians == scene.num_gaussians

    def error(s):
        return float((renders(s) - renders(scene)).abs().mean())

    assert error(fitted) < 0.7 * error(fresh)


# ---------------------------------------------------------------------------------- measurement
FAST = EvaluateConfig(steps=1, views_per_split=2, purifications=(), progress=False, backend="torch",
                      removal_refit_steps=0, removal_refit_views=4)  # fmt: skip


def test_the_report_flags_an_attack_that_gives_the_raw_scene_back():
    raw, protected = split_protected(colour_noise=0.5)
    splits = {"train": load_cameras("orbit:3,size=32x32", scene=raw),
              "novel": load_cameras("orbit:2,size=32x32,azim=40", scene=raw)}  # fmt: skip
    attacks = ("shuffle", "dedup-exact-keep", "prefix-half", "sh-degree0", "roundtrip-sog")
    record = removal_report(raw, protected, splits, tiny_editor(), INSTRUCTION, FAST, attacks=attacks)
    rows = {r["attack"]: r for r in record["attacks"]}
    assert record["views"] == 4 and record["raw"]["gaussians"] == 300 and record["protected"]["gaussians"] == 600
    base = record["protected"]["psnr_to_raw"]
    assert 10 < base < 60
    for name in ("dedup-exact-keep", "prefix-half"):  # exactly the raw Gaussians: identical renders
        assert rows[name]["psnr_to_raw"] == math.inf and rows[name]["recovers"] and rows[name]["verdict"] == "recovers"
        assert rows[name]["gaussians"] == 300 and rows[name]["psnr_to_protected"] == pytest.approx(base, abs=1e-6)
    assert record["recovered"] == ["dedup-exact-keep", "prefix-half"]
    assert not rows["sh-degree0"]["recovers"]
    assert not rows["shuffle"]["recovers"] and abs(rows["shuffle"]["closer_db"]) < 1.0
    if rows["roundtrip-sog"]["skipped"]:  # not registered (or cannot run here): listed with the reason
        assert rows["roundtrip-sog"]["verdict"] == "skipped" and record["skipped"]["roundtrip-sog"]
    # the tiny editor knows no exact answer: protection is measured by the adversarial loss, if any
    assert record["measure"] in ("adversarial loss", None) and record["loss"].startswith("encoder")
    for name in ("dedup-exact-keep", "prefix-half"):  # raw renders: no protection left
        if record["measure"] is not None:
            assert rows[name]["protection_remaining"] == pytest.approx(0.0, abs=1e-6)
    json.dumps(record, default=str)


def test_edit_success_measures_the_protection_left_with_the_mini_editor():
    """With an editor that knows the instruction's exact answer, every attack's renders are edited
    too: a scene that renders like the raw one edits like it (no fall left)."""
    raw, protected = split_protected(colour_noise=0.5)
    splits = {"train": load_cameras("orbit:2,size=32x32", scene=raw)}
    record = removal_report(raw, protected, splits, mini_editor(), "make it gold", FAST,
                            attacks=("dedup-exact-keep", "sh-degree0"))  # fmt: skip
    rows = {r["attack"]: r for r in record["attacks"]}
    assert math.isfinite(record["raw"]["edit_success"]) and math.isfinite(record["protected"]["edit_success"])
    kept = rows["dedup-exact-keep"]
    assert kept["edit_success"] == pytest.approx(record["raw"]["edit_success"]) and kept["success_fall"] == 0.0
    if record["measure"] == "edit success fall":  # the protected file lowers edit success: none of it is left
        assert kept["protection_remaining"] == 0.0 and kept["fall_remaining"] == 0.0
    else:
        assert record["measure_note"]


def test_evaluate_removal_writes_json_table_and_figure(tmp_path):
    out = fake_protect_outdir(tmp_path / "p", report=False)
    attacks = "shuffle,dedup-exact,sh-degree0,roundtrip-spz"
    proc = run_cli("evaluate", str(out), "--removal", "--removal-attacks", attacks,
                   "--clip", "none", "--no-lpips", "--steps", "1", "--views-per-split", "1", "--purify", "none",
                   "--width", "32", "--backend", "torch", hf_home=tmp_path / "hf")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev = out / "evaluation"
    removal = json.loads((ev / "removal.json").read_text())
    report = json.loads((ev / "report.json").read_text())
    assert [r["attack"] for r in removal["attacks"]] == ["shuffle", "dedup-exact", "sh-degree0", "roundtrip-spz"]
    assert removal["instruction"] == INSTRUCTION and removal["sources"]["protected"].endswith("protected.ply")
    assert report["removal"]["attacks"] == removal["attacks"] and report["settings"]["removal"] is True
    assert removal["protected"]["gaussians"] == 26300 and removal["recovered"] == []
    md = (ev / "report.md").read_text()
    assert "## Removal attacks on the protected file alone" in md and "| dedup-exact |" in md and "PSNR to raw dB" in md
    assert "removal attacks" in proc.stdout and "shuffle" in proc.stdout
    assert "recovered the raw asset: none" in proc.stdout
    from PIL import Image

    with Image.open(ev / "removal.png") as im:
        assert im.format == "PNG" and im.width > 400
    for args, needle in ((("--removal-attacks", "nope"), "unknown removal attack 'nope'"),
                         (("--removal-attacks", "shuffle,shuffle"), "listed twice"),
                         (("--removal", "--removal-refit-views", "0"), "removal_refit_views")):  # fmt: skip
        proc = run_cli("evaluate", str(out), *args, "--clip", "none", hf_home=tmp_path / "hf")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr[-1500:]
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ------------------------------------------------------------------------------- the default protection
def _default_init() -> str:
    from adlift.protect import ProtectConfig

    return ProtectConfig().safeguard.init


def _protect_and_attack(**safeguard):
    """A bust subset (about 2k Gaussians) protected through the public API with default settings but
    a few steps (and the given safeguard settings), then the whole suite: the removal record.
    (That the suite catches a file that gives the raw Gaussians back is
    test_the_report_flags_an_attack_that_gives_the_raw_scene_back.)"""
    from adlift.attacks import AdversarialLoss
    from adlift.io import read_scene
    from adlift.protect import ProtectConfig, protect

    raw = read_scene(BUST)
    raw = raw.subset(torch.arange(0, raw.num_gaussians, 13))
    train = load_cameras("orbit:6,size=32x32", scene=raw)
    novel = load_cameras("orbit:2,size=32x32,azim=30", scene=raw)
    config = ProtectConfig()
    config = dataclasses.replace(config, rounds=1, pgd_steps=3, fit_steps=3, replay=1, progress=False, backend="torch",
                                 safeguard=dataclasses.replace(config.safeguard, **safeguard))  # fmt: skip
    loss = AdversarialLoss(tiny_editor().surface, INSTRUCTION)
    protected = protect(raw, train, loss, config).protected
    eval_config = dataclasses.replace(FAST, removal_refit_steps=20)
    record = removal_report(raw, protected, {"train": train, "novel": novel}, tiny_editor(), INSTRUCTION, eval_config,
                            loss=loss)  # fmt: skip
    measured = [r for r in record["attacks"] if not r["skipped"]]
    assert len(measured) >= len(REMOVAL_ATTACKS) - 4  # only format round trips may be skipped
    return record


def _summary(record: dict) -> str:
    rows = ", ".join(f"{r['attack']} {r['closer_db']:+.2f}" for r in record["attacks"] if not r["skipped"])
    return f"protected file at {record['protected']['psnr_to_raw']:.2f} dB to raw; dB closer per attack: {rows}"


@pytest.mark.xfail(_default_init() == "split", strict=True,
                   reason="the default split safeguard stores the raw Gaussians with split opacities: prefix-half and "
                          "dedup-exact-keep give them back (issue 17, item 1)")  # fmt: skip
def test_no_attack_recovers_the_raw_asset_from_the_default_protection():
    """The public API with default settings (a few steps): no attack of the suite may come closer to
    the raw renders than the protected file does (+1 dB)."""
    record = _protect_and_attack()
    assert record["recovered"] == [], _summary(record)

