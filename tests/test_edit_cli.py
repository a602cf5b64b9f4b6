"""``adlift edit``: 2D and 3D edits of a bundled scene with the tiny editor, and its error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from adlift.cli import main
from adlift.io.ply import read_ply
from tests.helpers import BUST, BUST_CAMS, run_cli, sha256

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

def test_edit_2d_with_tiny_editor_writes_views_sheet_and_metadata(tmp_path):
    out = tmp_path / "out2d"
    proc = run_cli(
        "edit", str(BUST), "--instruction", "turn him into a clown", "--editor", "tiny", "--mode", "2d",
        "--cameras", str(BUST_CAMS), "--split", "novel", "--width", "32", "--steps", "3", "--out", str(out),
        hf_home=tmp_path / "hf",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "untrained test model" in proc.stdout.splitlines()[0]  # the warning comes first
    names = ["bust_0000", "bust_0008", "bust_0016", "bust_0024"]  # the novel views
    for sub in ("original", "edited"):
        assert sorted(p.stem for p in (out / sub).glob("*.png")) == names
        assert Image.open(out / sub / "bust_0000.png").size == (32, 32)
    sheet = Image.open(out / "before_after.png").convert("RGB")
    assert sheet.size[0] > 8 * 32 and sheet.size[1] > 32  # 4 pairs side by side in one row
    assert sheet.getpixel((1, 1)) == (200, 0, 0)  # the red "untrained test model" banner
    meta = json.loads((out / "edit.json").read_text())
    assert meta["editor"] == "tiny" and meta["untrained_test_model"] is True
    assert meta["instruction"] == "turn him into a clown" and meta["mode"] == "2d" and meta["views"] == names
    assert meta["guidance_scale"] == 7.5 and meta["steps"] == 3
    # The edited PNGs are not the originals.
    a = torch.tensor(list(Image.open(out / "original" / "bust_0000.png").getdata()), dtype=torch.float32)
    b = torch.tensor(list(Image.open(out / "edited" / "bust_0000.png").getdata()), dtype=torch.float32)
    assert (a - b).abs().mean() > 2.0


def test_edit_3d_with_tiny_editor_writes_an_edited_ply_and_renders(tmp_path):
    out = tmp_path / "out3d"
    before = sha256(BUST)
    proc = run_cli(
        "edit", str(BUST), "--instruction", "make it snow", "--editor", "tiny", "--mode", "3d",
        "--cameras", "orbit:2,size=32x32", "--steps", "2", "--gs-steps", "2", "--rounds", "1", "--out", str(out),
        hf_home=tmp_path / "hf",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "untrained test model" in proc.stdout
    assert sha256(BUST) == before  # the input asset is untouched
    edited = read_ply(out / "edited.ply")
    raw = read_ply(BUST)
    assert edited.num_gaussians == raw.num_gaussians
    assert (edited.sh - raw.sh).abs().max() > 1e-5 and (edited.means - raw.means).abs().max() > 0
    for sub in ("original", "targets", "edited"):
        assert len(list((out / sub).glob("*.png"))) == 2
    assert (out / "before_after.png").is_file()
    assert not (out / "checkpoint.pt").exists()  # removed after a finished run
    meta = json.loads((out / "edit.json").read_text())
    assert meta["mode"] == "3d" and meta["untrained_test_model"] is True and meta["guidance_scale"] == 12.5
    assert meta["config"]["gs_steps"] == 2 and len(meta["history"]) == 1
    assert meta["history"][0]["loss_after_fit"] <= meta["history"][0]["loss_before_fit"] + 1e-3


def test_missing_weights_exit_2_with_one_line_and_no_traceback(tmp_path):
    proc = run_cli(
        "edit", str(BUST), "--instruction", "x", "--editor", "ip2p", "--out", str(tmp_path / "o"),
        hf_home=tmp_path / "empty-hf",
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("adlift: error: ") and "timbrooks/instruct-pix2pix" in lines[0]
    assert str(tmp_path / "empty-hf" / "hub") in lines[0] and "HF_HOME" in lines[0]
    assert not (tmp_path / "o" / "edit.json").exists()


def test_missing_local_model_directory_exits_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "ip2p-model"
    code = main(["edit", str(BUST), "--instruction", "x", "--editor", str(missing), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(missing) in err and "does not exist" in err


def test_3d_edit_refuses_to_overwrite_its_input(tmp_path, capsys):
    scene = tmp_path / "edited.ply"
    scene.write_bytes(BUST.read_bytes())
    before = sha256(scene)
    code = main(["edit", str(scene), "--instruction", "x", "--editor", "tiny", "--mode", "3d", "--out", str(tmp_path)])
    assert code == 2 and "overwrite" in capsys.readouterr().err
    assert sha256(scene) == before


def test_edit_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["edit", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--instruction", "--mode", "--editor", "--cameras", "--gs-steps", "--rounds", "--seed", "tiny"):
        assert option in text


# ---------------------------------------------------------------------- resume and safe checkpoints
RESUME_3D = ("--instruction", "make it snow", "--editor", "tiny", "--mode", "3d", "--cameras", "orbit:2,size=32x32",
             "--steps", "2", "--gs-steps", "2", "--rounds", "1")  # fmt: skip


class RunsCode:
    """Pickles as a call that creates a marker file: what a malicious checkpoint.pt would carry."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_3d_resume_refuses_a_checkpoint_that_would_run_code(tmp_path):
    out, marker = tmp_path / "out", tmp_path / "pwned"
    out.mkdir()
    torch.save({"fingerprint": RunsCode(str(marker)), "round": 0}, out / "checkpoint.pt")
    proc = run_cli("edit", str(BUST), *RESUME_3D, "--out", str(out), "--resume", hf_home=tmp_path / "hf")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("adlift: error: ") and "checkpoint.pt" in lines[0] and "refused" in lines[0]
    assert not marker.exists()  # nothing in the pickle ran
    assert (out / "checkpoint.pt").exists() and not (out / "edit.json").exists()  # left for the user to inspect


def test_3d_resume_refuses_a_checkpoint_of_another_run_and_a_fresh_run_discards_it(tmp_path):
    from adlift.io.checkpoint import save_checkpoint

    out = tmp_path / "out"
    out.mkdir()
    save_checkpoint(out / "checkpoint.pt", {"fingerprint": {"instruction": "something else"}, "round": 0})
    proc = run_cli("edit", str(BUST), *RESUME_3D, "--out", str(out), "--resume", hf_home=tmp_path / "hf")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "another edit" in lines[0], proc.stderr
    proc = run_cli("edit", str(BUST), *RESUME_3D, "--out", str(out), hf_home=tmp_path / "hf")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "discarding" in proc.stdout and (out / "edit.json").is_file()
    assert not (out / "checkpoint.pt").exists()


def test_edit_options_are_the_library_configs(capsys):
    """`adlift edit` nests SceneEditConfig and RenderOptions (same fields and defaults); the --editor help
    lists every registered editor with its help text."""
    from adlift.commands.edit import EditCommand
    from adlift.editors import EDITORS, SceneEditConfig
    from adlift.render import RenderOptions

    cmd = EditCommand(scene=BUST, instruction="x", out=Path("o"))
    assert cmd.edit == SceneEditConfig() and cmd.render == RenderOptions() and cmd.config().checkpoint is None
    assert EditCommand(scene=BUST, instruction="x", out=Path("o"), mode="3d").config().checkpoint == Path("o/checkpoint.pt")
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert {"ip2p", "tiny"} <= set(EDITORS.names())
    for name in EDITORS.names():
        assert f"{name}: {' '.join(EDITORS.entry(name).help.split())}" in text
    for option in ("--steps", "--batch-size", "--width", "--backend", "--background", "--t-lower", "--lr-means"):
        assert option in text


def test_edit_outputs_library_writes_the_files_and_schema(tmp_path):
    """adlift.editors.outputs: what `adlift edit` and `ns-train adlift-edit` write, in-process."""
    from adlift.editors import write_edit_outputs
    from adlift.editors.outputs import ply_comment
    from adlift.scene import GaussianScene

    g = torch.Generator().manual_seed(0)
    originals, edited = torch.rand(2, 3, 16, 24, generator=g), torch.rand(2, 3, 16, 24, generator=g)
    meta = {"editor": "tiny", "model": "tiny(seed=0)", "untrained_test_model": True}
    scene = GaussianScene.from_activated(means=torch.randn(5, 3, generator=g), rgb=torch.rand(5, 3, generator=g),
                                         scales=torch.full((5, 3), 0.1), opacities=torch.full((5,), 0.5))  # fmt: skip
    doc = write_edit_outputs(tmp_path, instruction="turn him into a clown ü", mode="3d", editor_metadata=meta,
                             names=["a", "b"], originals=originals, edited=edited, scene=scene, targets=edited,
                             record={"seed": 3, "path": tmp_path})  # fmt: skip
    on_disk = json.loads((tmp_path / "edit.json").read_text())
    assert on_disk == json.loads(json.dumps(doc, default=str))
    assert on_disk["width"] == 24 and on_disk["height"] == 16 and on_disk["views"] == ["a", "b"]
    assert on_disk["seed"] == 3 and on_disk["path"] == str(tmp_path) and on_disk["num_gaussians"] == 5
    assert on_disk["warning"].startswith("untrained test model") and on_disk["editor"] == "tiny"
    assert set(on_disk["files"]) == {"scene", "original", "targets", "edited", "before_after"}
    for sub in ("original", "targets", "edited"):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == ["a.png", "b.png"]
    assert Image.open(tmp_path / "before_after.png").convert("RGB").getpixel((1, 1)) == (200, 0, 0)
    assert read_ply(tmp_path / "edited.ply").num_gaussians == 5
    comment = ply_comment("adlift edit", "make it \U0001f921\nnow", meta)
    assert comment.isascii() and "\n" not in comment and "untrained test model" in comment
    # A trained editor: no warning, no banner.
    out = tmp_path / "trained"
    doc = write_edit_outputs(out, instruction="x", mode="2d", editor_metadata={"editor": "ip2p", "model": "m"},
                             names=["a", "b"], originals=originals, edited=edited)  # fmt: skip
    assert "warning" not in doc and set(doc["files"]) == {"original", "edited", "before_after"}
    assert Image.open(out / "before_after.png").convert("RGB").getpixel((1, 1)) != (200, 0, 0)
