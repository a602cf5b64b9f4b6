"""``adlift protect`` and ``adlift protect-image`` end to end with the tiny editor, and their error contract."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply
from adlift.protect import ProtectConfig
from tests.helpers import BUST, BUST_CAMS, run_cli, sha256

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

#: The cheapest real protection run: 32 px wide renders, 1 round, 2 PGD and 2 fitting steps per view.
QUICK = ("--editor", "tiny", "--width", "32", "--rounds", "1", "--pgd-steps", "2", "--fit-steps", "2",
         "--replay", "1")  # fmt: skip


def protect_bust(out: Path, *extra: str, hf_home: Path, cameras: str = str(BUST_CAMS)):
    return run_cli("protect", str(BUST), "--instruction", "turn her into a clown", "--out", str(out),
                   "--cameras", cameras, *QUICK, *extra, hf_home=hf_home)  # fmt: skip


def assert_clean_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1500:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("adlift: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_protect_writes_one_standard_ply_manifest_cameras_and_preview(tmp_path):
    out = tmp_path / "prot"
    before = sha256(BUST)
    proc = protect_bust(out, "--save-safeguard", hf_home=tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "untrained test model" in proc.stdout.splitlines()[0]
    assert "novel views keep" in proc.stdout and "protected.ply" in proc.stdout
    assert sha256(BUST) == before  # the input is never modified
    raw = read_ply(BUST)
    prot = read_ply(out / "protected.ply")
    assert prot.num_gaussians == raw.num_gaussians  # inplace (the default): the asset's own Gaussians, 1.0x
    assert read_ply(out / "safeguard.ply").num_gaussians == raw.num_gaussians
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "lifted-pgd" and manifest["editor"]["untrained_test_model"] is True
    assert manifest["config"]["rounds"] == 1 and manifest["config"]["pgd_steps"] == 2
    train = load_cameras(BUST_CAMS, split="train")
    novel = load_cameras(BUST_CAMS, split="novel")
    assert len(manifest["views"]) == len(train) + len(novel)
    assert manifest["summary"]["train"]["loss_protected"] < manifest["summary"]["train"]["loss_raw"]
    assert list(load_cameras(out / "transforms.json", split="train").names) == list(train.names)
    with Image.open(out / "preview.png") as im:
        assert im.width >= 3 * 32
    assert not (out / "checkpoint.pt").exists()  # removed after a finished run
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no partial files


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--rounds", "0"), "rounds"),
        (("--cameras", "nowhere.json"), "nowhere.json"),
        (("loss:encoder", "--loss.target", "image"), "target-image"),
    ],
)
def test_protect_bad_options_exit_2_with_one_line(tmp_path, extra, needle):
    out = tmp_path / "prot"
    assert_clean_error(protect_bust(out, *extra, hf_home=tmp_path / "hf"), needle)
    assert not (out / "protected.ply").exists()


@pytest.mark.parametrize("extra,needle", [(("--eta", "abc"), "cannot read budget 'abc'"), (("--eta", "0"), "must lie in (0, 1]")])
def test_protect_unreadable_budgets_are_one_line(tmp_path, extra, needle):
    """A budget tyro hands to our parser and we reject is one AdLiftError line (exit 2), nothing written."""
    out = tmp_path / "prot"
    assert_clean_error(protect_bust(out, *extra, hf_home=tmp_path / "hf"), needle)
    assert not out.exists()


def test_an_option_of_another_loss_kind_is_a_usage_error(tmp_path):
    """Options of one loss kind do not exist for another: tyro's usage error, exit 2, no traceback."""
    out = tmp_path / "prot"
    proc = protect_bust(out, "loss:unet", "--loss.target", "gray", hf_home=tmp_path / "hf")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert "target" in proc.stderr
    assert not out.exists()


def test_protect_options_are_the_library_config():
    """adlift protect nests ProtectConfig / RenderOptions (no restated fields): the CLI parses into them,
    with the library's defaults, and per-kind loss options arrive in that kind's config."""
    import tyro

    from adlift.attacks import EncoderLossConfig, UnetLossConfig
    from adlift.commands.protect import ProtectCommand
    from adlift.protect import ProtectConfig, SafeguardConfig
    from adlift.render import RenderOptions

    own = {f.name for f in dataclasses.fields(ProtectCommand)}
    library = {f.name for c in (ProtectConfig, SafeguardConfig, RenderOptions) for f in dataclasses.fields(c)}
    assert own & library == set(), own & library
    base = ["scene.ply", "--instruction", "x", "--out", "o"]
    cmd = tyro.cli(ProtectCommand, args=base)
    assert cmd.protect == ProtectConfig() and cmd.render == RenderOptions()
    assert isinstance(cmd.protect.loss, EncoderLossConfig)
    cmd = tyro.cli(ProtectCommand, args=[*base, "--eta", "4/255", "--init", "sample", "--lr-sh", "0.01", "--width", "48",
                                         "--eot.samples", "2", "loss:unet", "--loss.unet-mode", "sds"])  # fmt: skip
    cfg = cmd.config()
    assert cfg.eta == pytest.approx(4 / 255) and cfg.safeguard.init == "sample" and cfg.safeguard.lr_sh == 0.01
    assert cfg.eot.samples == 2 and cfg.loss == UnetLossConfig(unet_mode="sds") and cmd.render.width == 48
    assert cfg.checkpoint == Path("o") / "checkpoint.pt" and cfg.backend == "auto"


def test_protect_refuses_to_overwrite_its_input(tmp_path):
    out = tmp_path / "prot"
    out.mkdir()
    victim = out / "protected.ply"
    shutil.copy(BUST, victim)
    before = sha256(victim)
    proc = run_cli("protect", str(victim), "--instruction", "x", "--out", str(out), "--cameras", "orbit:4",
                   *QUICK, hf_home=tmp_path / "hf")  # fmt: skip
    assert_clean_error(proc, "overwrite")
    assert sha256(victim) == before


def test_protect_resume_rejects_a_checkpoint_of_another_run(tmp_path):
    """--resume with a checkpoint of different settings stops with a clear error instead of mixing runs;
    without --resume the stale checkpoint is discarded and the run goes through."""
    import dataclasses

    import torch

    from adlift.attacks import AdversarialLoss
    from adlift.commands.protect import ProtectCommand
    from adlift.protect import protect
    from tests.helpers import tiny_editor

    out = tmp_path / "prot"
    from adlift.protect import ProtectConfig
    from adlift.render import RenderOptions

    cmd = ProtectCommand(scene=BUST, instruction="turn her into a clown", out=out, cameras=str(BUST_CAMS),
                         protect=ProtectConfig(rounds=1, pgd_steps=2, fit_steps=2, replay=1),
                         render=RenderOptions(width=32), editor="tiny")  # fmt: skip
    cfg = dataclasses.replace(cmd.config(), eta=4 / 255, progress=False, checkpoint_every=1)
    out.mkdir()
    cams = load_cameras(BUST_CAMS, split="train", width=32)[[0, 1]]

    class Stop(Exception):
        """Raised by the hook to interrupt a run between two work units."""

    def stop(done, total):
        raise Stop

    loss = AdversarialLoss(tiny_editor().surface, cmd.instruction, cfg.loss, cfg.eot)
    with pytest.raises(Stop):
        protect(read_ply(BUST), cams, loss, cfg, on_unit=stop)
    assert cfg.checkpoint.exists() and isinstance(torch.load(cfg.checkpoint, weights_only=True), dict)
    proc = protect_bust(out, "--resume", hf_home=tmp_path / "hf", cameras="orbit:4")
    assert_clean_error(proc, "different run")
    assert not (out / "protected.ply").exists()
    proc = protect_bust(out, hf_home=tmp_path / "hf", cameras="orbit:4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "protected.ply").exists()


def test_protect_resume_refuses_a_checkpoint_carrying_pickled_code(tmp_path):
    """A checkpoint.pt whose pickle would run code (here: create a directory) is refused with exit 2 and
    one line, and the code never runs (weights_only loading)."""
    import torch

    from tests.helpers import PickledCode

    out = tmp_path / "prot"
    out.mkdir()
    marker = tmp_path / "marker"
    torch.save({"fingerprint": {}, "payload": PickledCode(marker)}, out / "checkpoint.pt")
    proc = protect_bust(out, "--resume", hf_home=tmp_path / "hf", cameras="orbit:2")
    assert_clean_error(proc, "checkpoint.pt", "Python objects")
    assert not marker.exists()
    assert not (out / "protected.ply").exists()


@dataclasses.dataclass
class _NsModel:
    """Stands in for AdLiftProtectModelConfig (which needs nerfstudio): ProtectConfig as ``protect``."""

    protect: ProtectConfig = dataclasses.field(default_factory=ProtectConfig)


@dataclasses.dataclass
class _NsPipeline:
    model: _NsModel = dataclasses.field(default_factory=_NsModel)


@dataclasses.dataclass
class _NsTrainer:
    pipeline: _NsPipeline = dataclasses.field(default_factory=_NsPipeline)


def test_the_plugin_nesting_parses_the_same_fields():
    """ns-train nests ProtectConfig as pipeline.model.protect (tyro, like nerfstudio's CLI): the same option
    names under that prefix, the loss kind as a subcommand, caller-set fields hidden, and config.yml (yaml)
    round-trips the per-kind loss config."""
    import tyro
    import yaml

    from adlift.attacks import UnetLossConfig

    p = "--pipeline.model.protect."
    got = tyro.cli(_NsTrainer, args=[p + "rounds", "1", p + "eta", "4/255", p + "init", "sample", p + "eot.samples", "2",
                                  "pipeline.model.protect.loss:unet", p + "loss.unet-mode", "sds"]).pipeline.model.protect  # fmt: skip
    assert got == ProtectConfig(rounds=1, eta=4 / 255, safeguard=dataclasses.replace(ProtectConfig().safeguard, init="sample"),
                                eot=dataclasses.replace(ProtectConfig().eot, samples=2), loss=UnetLossConfig(unet_mode="sds"))  # fmt: skip
    assert yaml.load(yaml.dump(got), Loader=yaml.Loader) == got
    for hidden in ("backend", "background", "checkpoint", "progress"):
        with pytest.raises(SystemExit):
            tyro.cli(_NsTrainer, args=[p + hidden, "1"])


# ---------------------------------------------------------------------------------- protect-image
def write_image(path: Path, seed: int, size=(40, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)], -1).astype(np.int16)
    img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def test_protect_image_stays_in_budget_and_lowers_the_loss(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    originals = {name: write_image(src / f"{name}.png", i) for i, name in enumerate(["a", "b"])}
    out = tmp_path / "out"
    proc = run_cli("protect-image", str(src), "--instruction", "make it snowy", "--editor", "tiny", "--steps", "8",
                   "--eta", "8/255", "--out", str(out), hf_home=tmp_path / "hf")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["output"] for r in manifest["images"]] == ["a.png", "b.png"]
    for name, orig in originals.items():
        prot = np.asarray(Image.open(out / f"{name}.png").convert("RGB")).astype(int)
        assert prot.shape == orig.shape
        assert np.abs(prot - orig.astype(int)).max() <= 8  # within eta = 8/255 after uint8 quantisation
        assert (prot != orig).any()
    for r in manifest["images"]:
        assert r["loss_after"] < r["loss_before"], r
    assert manifest["warning"].startswith("untrained test model")
    assert (out / "comparison.png").exists()
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "b.png"]  # inputs untouched


def test_protect_image_errors(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    write_image(tmp_path / "x" / "same.png", 0)
    write_image(tmp_path / "y" / "same.png", 1)
    hf = tmp_path / "hf"
    args = ("--instruction", "x", "--editor", "tiny", "--steps", "1", "--out", str(tmp_path / "o"))
    assert_clean_error(run_cli("protect-image", str(tmp_path / "x"), str(tmp_path / "y"), *args, hf_home=hf),
                       "share a file name")  # fmt: skip
    assert_clean_error(run_cli("protect-image", str(tmp_path / "nope.png"), *args, hf_home=hf), "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert_clean_error(run_cli("protect-image", str(tmp_path / "bad.png"), *args, hf_home=hf), "bad.png")
    assert not (tmp_path / "o" / "manifest.json").exists()
