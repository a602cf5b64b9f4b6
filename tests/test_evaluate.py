"""Evaluation: evaluate() on known inputs, the report schema, grids and plots, and `adlift evaluate`.

Tiny untrained editor and tiny CLIP, 32 px renders of the bundled bust: these tests check the
plumbing and the metric definitions, not protection quality.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import pytest
import torch
from PIL import Image

from adlift.evaluate import load_clip, parse_purifications
from adlift.evaluate.figures import save_grid, save_plots
from adlift.evaluate.report import ReportContext, build_report, markdown_report, write_report
from adlift.evaluate.run import EDIT_SUCCESS_KEYS, EvaluateConfig, evaluate, mean_of, pick_views
from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply
from adlift.render.options import RenderOptions
from tests.helpers import BUST, BUST_CAMS, mini_editor, run_cli, tiny_editor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

INSTRUCTION = "turn her into a clown"
FAST = EvaluateConfig(steps=2, views_per_split=2, purifications=tuple(parse_purifications("jpeg50,noise4")),
                      progress=False)  # fmt: skip


@functools.cache
def scenes():
    raw = read_ply(BUST)
    sh = raw.sh.clone()
    sh[:, 0] += 0.02  # a uniform DC shift: a small, visible-to-metrics change
    return raw, dataclasses.replace(raw, sh=sh)


@functools.cache
def splits():
    return {s: load_cameras(BUST_CAMS, split=s, width=32) for s in ("train", "novel")}


@functools.cache
def clip():
    return load_clip("tiny")


@functools.cache
def perturbed_run():
    raw, prot = scenes()
    return evaluate(raw, prot, splits(), INSTRUCTION, tiny_editor(), FAST, clip=clip())


def test_identical_scenes_are_invisible_and_edit_identically():
    raw, _ = scenes()
    cfg = dataclasses.replace(FAST, purifications=())
    res = evaluate(raw, raw, splits(), INSTRUCTION, tiny_editor(), cfg, clip=clip())
    assert len(res.views) == 4 and {v["split"] for v in res.views} == {"train", "novel"}
    for v in res.views:
        assert v["psnr"] == math.inf and v["ssim"] == pytest.approx(1.0, abs=1e-4) and v["linf_255"] == 0.0
        assert v["within_budget"] == 1.0 and v["lpips"] is None  # lpips unavailable here: None, not a guess
        assert v["edit_deviation_psnr"] == math.inf  # same seed, same input -> same edit
        assert v["clip_direction_raw"] == pytest.approx(v["clip_direction_protected"], abs=1e-6)
    assert res.robustness == []
    assert res.summary["train"]["psnr"] == math.inf


def test_a_known_perturbation_is_measured():
    res = perturbed_run()
    raw, prot = scenes()
    for v in res.views:
        assert 20.0 < v["psnr"] < math.inf and 0.0 < v["linf_255"] <= 0.02 * 0.2821 * 255 + 0.5
        assert v["edit_deviation_psnr"] < math.inf
        assert -1.0 <= v["clip_text_raw"] <= 1.0 and -1.0 <= v["clip_direction_protected"] <= 1.0
    assert [r["purification"] for r in res.robustness] == ["jpeg50", "noise4"] * 2
    for r in res.robustness:
        assert r["purified_psnr"] < res.summary[r["split"]]["psnr"]  # purification moves the image further
    assert res.images["novel"].edit_protected.shape == (2, 3, 32, 32)


class CoarseInverter:
    """A stand-in editor: "invert the colors" done in 1/8 steps, so how well it succeeds depends on the
    image; it knows the exact answer (1 - x) and, like the mini editor, has its own default guidance."""

    name = "coarse-inverter"

    def __init__(self):
        self.guidance: list[float] = []

    def edit(self, images, instruction, *, steps, guidance_scale, image_guidance_scale, seed, batch_size):
        self.guidance.append(guidance_scale)
        return 1.0 - torch.round(images * 8) / 8

    def default_guidance(self, mode: str) -> float:
        return 3.0

    def reference_edit_for(self, instruction: str):
        return (lambda images: 1.0 - images) if instruction == "invert the colors" else None


def _psnr(a, b) -> list[float]:
    """PSNR per image from the mean squared error, written out (no adlift code)."""
    return [-10 * math.log10(float(((x - y) ** 2).mean())) for x, y in zip(a, b)]


def test_edit_success_is_measured_against_the_editors_reference():
    raw, prot = scenes()
    editor = CoarseInverter()
    res = evaluate(raw, prot, splits(), "invert the colors", editor, FAST)
    assert editor.guidance and set(editor.guidance) == {3.0}  # guidance_scale None: the editor's default
    assert res.edit_success == {"available": True, "reason": None}
    for split, im in res.images.items():
        want_raw, want_prot = _psnr(im.edit_raw, 1 - im.raw), _psnr(im.edit_protected, 1 - im.protected)
        rows = [v for v in res.views if v["split"] == split]
        for v, wr, wp in zip(rows, want_raw, want_prot, strict=True):
            assert v["edit_success_raw_psnr"] == pytest.approx(wr, rel=1e-5)
            assert v["edit_success_protected_psnr"] == pytest.approx(wp, rel=1e-5)
            assert v["edit_success_fall_psnr"] == pytest.approx(wr - wp, abs=1e-4)
            assert 0.0 < v["edit_success_raw_ssim"] < 1.0
        s = res.summary[split]
        assert s["edit_success_raw_psnr"] == pytest.approx(sum(want_raw) / len(want_raw), rel=1e-5)
        fall = s["edit_success_raw_psnr"] - s["edit_success_protected_psnr"]
        assert s["edit_success_fall_psnr"] == pytest.approx(fall, abs=1e-4)
        for r in (r for r in res.robustness if r["split"] == split):
            # purified: edit(purified) vs reference(purified), the fall from the unpurified raw edit's success
            assert r["edit_success_raw_psnr"] == pytest.approx(s["edit_success_raw_psnr"], rel=1e-9)
            assert r["edit_success_fall_psnr"] == pytest.approx(
                r["edit_success_raw_psnr"] - r["edit_success_protected_psnr"], abs=1e-4)  # fmt: skip
            assert r["edit_success_protected_psnr"] != pytest.approx(s["edit_success_protected_psnr"], abs=1e-3)
    editor.guidance.clear()
    res = evaluate(raw, prot, splits(), "invert the colors", editor, dataclasses.replace(FAST, guidance_scale=5.0))
    assert set(editor.guidance) == {5.0}  # an explicit guidance wins
    res = evaluate(raw, prot, splits(), "make it gold", editor, dataclasses.replace(FAST, purifications=()))
    assert all(v[k] is None for v in res.views for k in EDIT_SUCCESS_KEYS)  # no known answer: n/a, no failure
    assert res.edit_success["available"] is False and "make it gold" in res.edit_success["reason"]


def test_pick_views_and_means():
    cams = load_cameras(BUST_CAMS, split="train")
    picked = pick_views(cams, 3)  # evenly spaced, first and last included
    assert list(picked.names) == [cams.names[i] for i in (0, round((len(cams) - 1) / 2), len(cams) - 1)]
    assert len(pick_views(cams, 0)) == len(cams) and len(pick_views(cams, 100)) == len(cams)
    m = mean_of([{"name": "a", "x": 1.0, "y": None, "z": math.inf}, {"name": "b", "x": 3.0, "y": None, "z": 1.0}])
    assert m == {"x": 2.0, "y": None, "z": math.inf}


def test_report_schema_figures_and_markdown(tmp_path):
    res = perturbed_run()
    info = {"available": False, "reason": "test"}
    context = ReportContext(instruction=INSTRUCTION, editor=tiny_editor().metadata(),
                            clip={"available": True, "model": "tiny", "untrained": True, "reason": None}, lpips=info,
                            sources={"raw": "r.ply", "protected": "p.ply", "cameras": "c", "manifest": None},
                            render=RenderOptions(width=32))  # fmt: skip
    report = build_report(res, FAST, context, files={"metrics.png": "plots"})
    text = json.dumps(report, allow_nan=False)  # strict JSON: no Infinity / NaN anywhere
    for key in ("report_version", "adlift_version", "mode", "instruction", "captions", "eta", "editor", "clip",
                "lpips", "settings", "summary", "views", "robustness", "files", "warning"):  # fmt: skip
        assert key in report, key
    assert report["editor"]["untrained_test_model"] is True and "untrained" in report["warning"]
    assert report["settings"]["purifications"] == ["jpeg50", "noise4"] and report["render"]["width"] == 32
    assert report["settings"]["eta"] == FAST.eta and report["settings"]["background"] == [0.0, 0.0, 0.0]
    assert report["views"][0]["lpips"] is None and "Infinity" not in text
    write_report(tmp_path, report)
    md = (tmp_path / "report.md").read_text()
    assert md == markdown_report(report) and "| train (2 views) |" in md and "n/a" in md and "jpeg50" in md
    # the tiny editor knows no exact answer: edit success is null in report.json and n/a in report.md
    assert report["edit_success"]["available"] is False and "'tiny'" in report["edit_success"]["reason"]
    assert "mini editor only" in report["edit_success"]["note"] and "edit success: n/a (" in md
    assert all(v[k] is None for v in report["views"] + report["robustness"] for k in EDIT_SUCCESS_KEYS)
    assert all(report["summary"][s]["edit_success_fall_psnr"] is None for s in ("train", "novel"))
    header = next(line for line in md.splitlines() if "success fall dB" in line and "split: purification" in line)
    row = next(line for line in md.splitlines() if line.startswith("| train: jpeg50 |"))
    assert row.split("|")[header.split("|").index(" success fall dB ")].strip() == "n/a"
    assert json.loads((tmp_path / "report.json").read_text()) == report

    save_grid(tmp_path / "grid.png", res.images["train"], FAST.eta, "train", banner="UNTRAINED")
    with Image.open(tmp_path / "grid.png") as im:
        assert im.width >= 5 * 32 and im.height >= 2 * 32
    save_plots(tmp_path / "metrics.png", res.views, res.robustness, "t")
    with Image.open(tmp_path / "metrics.png") as im:
        assert im.format == "PNG" and im.width > 500
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_reported_metric_is_declared_once():
    """Every field evaluate() records has one METRICS entry (headers, format, meaning, tables)."""
    from adlift.evaluate.columns import METRICS, TABLES, columns

    res = perturbed_run()
    keys = {k for r in res.views + res.robustness for k in r} - {"name", "split", "purification"}
    assert keys <= set(METRICS.names()), sorted(keys - set(METRICS.names()))
    assert all(columns(table) for table in TABLES)
    assert METRICS.get("psnr").cell(math.inf) == "inf" and METRICS.get("lpips").cell(None) == "n/a"
    assert METRICS.get("within_budget").cell(0.5) == "50.00%" and "psnr:" in METRICS.describe()


def test_summary_table_lists_each_split(tmp_path):
    from rich.console import Console

    from adlift.evaluate.report import summary_table

    res = perturbed_run()
    context = ReportContext(instruction=INSTRUCTION, editor=tiny_editor().metadata(), clip={"untrained": True},
                            lpips={}, sources={})  # fmt: skip
    report = build_report(res, FAST, context, files={})
    console = Console(width=200, record=True, file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    console.print(summary_table(report))
    text = console.export_text()
    assert "PSNR dB" in text and "│ train │" in text and "│ novel │" in text and "untrained" in text
    assert "success fall dB" in text and "n/a" in text and "mini editor only" not in text  # no reference here


def test_inputs_resolve_from_a_manifest(tmp_path):
    from adlift.errors import AdLiftError
    from adlift.evaluate.inputs import EvaluateInputs
    from tests.helpers import fake_protect_outdir

    out = fake_protect_outdir(tmp_path / "p", report=False)
    r = EvaluateInputs(outdir=out).resolve()
    assert r.raw == BUST and r.protected == out / "protected.ply" and r.cameras == str(out / "transforms.json")
    assert r.editor == "tiny" and r.eta == pytest.approx(8 / 255) and r.instruction == INSTRUCTION
    assert r.out == out / "evaluation" and r.background == (0.0, 0.0, 0.0) and r.manifest.instruction == INSTRUCTION
    r = EvaluateInputs(outdir=out, eta=4 / 255, editor="ip2p", instruction="make it gold").resolve(
        RenderOptions(background=(1.0, 1.0, 1.0)))  # fmt: skip
    assert (r.eta, r.editor, r.instruction, r.background) == (4 / 255, "ip2p", "make it gold", (1.0, 1.0, 1.0))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["raw_scene"]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AdLiftError, match="sha256 differs"):
        EvaluateInputs(outdir=out).resolve()
    assert EvaluateInputs(outdir=out, raw=BUST).resolve().raw == BUST  # --raw wins


def test_bad_settings_are_rejected():
    from adlift.errors import AdLiftError

    raw, prot = scenes()
    with pytest.raises(AdLiftError):
        dataclasses.replace(FAST, eta=0.0).validate()
    with pytest.raises(AdLiftError):
        evaluate(raw, prot, splits(), "  ", tiny_editor(), FAST)
    with pytest.raises(AdLiftError, match="train"):
        evaluate(raw, prot, {"novel": splits()["novel"]}, INSTRUCTION, tiny_editor(), dataclasses.replace(FAST, mode="3d"))


def test_evaluate_3d_edits_both_scenes():
    raw, prot = scenes()
    cfg = dataclasses.replace(FAST, mode="3d", gs_steps_3d=2, purifications=(), views_per_split=1)
    small = {s: c[[0, 1]] for s, c in splits().items()}
    res = evaluate(raw, prot, small, INSTRUCTION, tiny_editor(), cfg)
    assert len(res.views) == 2 and all(v["clip_text_raw"] is None for v in res.views)  # no CLIP given
    assert all(math.isfinite(v["edit_change_raw_psnr"]) for v in res.views)  # the 3D edit changed the scene
    assert all(v[k] is None for v in res.views for k in EDIT_SUCCESS_KEYS)  # the tiny editor has no reference


def test_evaluate_with_the_mini_editor_measures_edit_success():
    """The trained mini editor knows the exact answer of its instructions: edit success in both modes,
    the reference applied to the raw / protected renders (3d: the edits are renders of edited scenes)."""
    from adlift.editors.mini import reference_edit

    raw, prot = scenes()
    small = {s: c[[0, 1]] for s, c in splits().items()}
    for mode in ("2d", "3d"):
        cfg = dataclasses.replace(FAST, mode=mode, gs_steps_3d=2, purifications=(), views_per_split=1)
        res = evaluate(raw, prot, small, "make it gold", mini_editor(), cfg)
        assert res.edit_success["available"] is True
        for v in res.views:
            im = res.images[v["split"]]
            want = _psnr(im.edit_raw, reference_edit(im.raw, "make it gold"))[0]
            assert v["edit_success_raw_psnr"] == pytest.approx(want, rel=1e-5)
            assert math.isfinite(v["edit_success_fall_psnr"]) and 0.0 < v["edit_success_protected_ssim"] <= 1.0


# ---------------------------------------------------------------------------------- CLI
def test_evaluate_cli_on_a_protect_directory(tmp_path):
    hf = tmp_path / "hf"
    prot_dir = tmp_path / "prot"
    proc = run_cli("protect", str(BUST), "--instruction", INSTRUCTION, "--out", str(prot_dir), "--editor", "tiny",
                   "--cameras", "orbit:8,size=32x32", "--rounds", "1", "--pgd-steps", "1", "--fit-steps", "1",
                   "--replay", "0", hf_home=hf)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("evaluate", str(prot_dir), "--clip", "nobody/no-such-clip", "--steps", "2", "--views-per-split",
                   "2", "--purify", "jpeg75", hf_home=hf)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CLIP metrics unavailable" in proc.stdout and "nobody/no-such-clip" in proc.stdout
    assert "train" in proc.stdout and "PSNR dB" in proc.stdout and "wrote" in proc.stdout  # the rich summary
    out = prot_dir / "evaluation"
    report = json.loads((out / "report.json").read_text())
    assert report["clip"]["available"] is False and "nobody/no-such-clip" in report["clip"]["reason"]
    assert report["instruction"] == INSTRUCTION and report["editor"]["untrained_test_model"] is True
    assert all(v["clip_direction_raw"] is None for v in report["views"])
    assert {v["split"] for v in report["views"]} == {"train", "novel"}
    assert [r["purification"] for r in report["robustness"]] == ["jpeg75", "jpeg75"]
    for name in ("report.md", "grid_train.png", "grid_novel.png", "metrics.png"):
        assert (out / name).is_file(), name
    assert "unavailable" in (out / "report.md").read_text()
    assert report["settings"]["guidance_scale"] == 7.5  # the editor's default, recorded as used
    assert report["edit_success"]["available"] is False
    assert "success" in proc.stdout and "fall dB" in proc.stdout  # the summary's column (its header wraps)


def test_evaluate_cli_errors(tmp_path):
    hf = tmp_path / "hf"
    (tmp_path / "empty").mkdir()
    for args, needle in [((str(tmp_path / "empty"),), "manifest.json"),
                         ((str(tmp_path / "nowhere"),), "not a directory"),
                         (("--raw", str(BUST)), "without a protect OUTDIR")]:  # fmt: skip
        proc = run_cli("evaluate", *args, hf_home=hf)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for args, needle in [(("--purify", "bogus7"), "bad purification"), (("--eta", "2"), "budget must lie")]:
        proc = run_cli("evaluate", str(tmp_path / "empty"), *args, hf_home=hf)  # rejected while parsing, before anything runs
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr[-1500:]
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_cli("evaluate", "--help", hf_home=hf)
    assert proc.returncode == 0 and all(name in proc.stdout for name in ("jpeg", "blur", "resize", "noise", "tiny"))
