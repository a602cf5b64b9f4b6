"""The viewer's DGE scene edit ("Edit scenes (DGE)") without a browser: the button's method on a small
scene with the tiny editor, the variants and panel cells it produces, its cache, errors and cancel;
and the DGE options of ``adlift view`` / ``adlift evaluate``.

Small on purpose: every 16th Gaussian of the bust, 3 training views at 32 px, 2 diffusion steps and
4 fitting steps, so an edit of both scenes takes about a second on one CPU thread.
"""

from __future__ import annotations

import pytest
import torch

from adlift.cli import main
from adlift.editors.dge import NoCheckpointDGEConfig
from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply
from adlift.render import render
from adlift.viewer.app import EDIT_SOURCES, ViewerApp, ViewerConfig
from adlift.viewer.inputs import ViewerInputs
from adlift.viewer.panel import GRID_CELLS, GRID_COLUMNS, PLACEHOLDER, panel_cell_boxes, to_rgb8
from adlift.viewer.scene_edits import VARIANT_LABELS, scene_fraction
from tests.helpers import BUST, BUST_CAMS, INSTRUCTION, free_port, perturbed, tiny_editor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]

WIDTH = 32


def small_inputs() -> ViewerInputs:
    """Raw = every 16th Gaussian of the bust, protected = its colours moved by +-6/255; 3 training views."""
    bust = read_ply(BUST)
    raw = bust.subset(torch.arange(0, bust.num_gaussians, 16))
    return ViewerInputs(
        scenes={"raw": raw, "protected": perturbed(raw)}, paths={"raw": BUST, "protected": BUST},
        cameras={"train": load_cameras(BUST_CAMS, split="train")[[0, 9, 18]],
                 "novel": load_cameras(BUST_CAMS, split="novel")[[0]]},
        instruction=INSTRUCTION, editor="tiny",
    )  # fmt: skip


@pytest.fixture
def app():
    """A started viewer whose editor is the session's tiny editor; loads are counted in ``app.loads``."""
    loads = []
    config = ViewerConfig(port=free_port(), render_width=WIDTH, editor="tiny", steps=2, backend="torch",
                          dge=NoCheckpointDGEConfig(fit_steps=4), dge_width=WIDTH)  # fmt: skip
    viewer = ViewerApp(small_inputs(), config, editor_loader=lambda ref, dev: loads.append(ref) or tiny_editor())
    viewer.loads = loads
    viewer.start()
    yield viewer
    viewer.worker.cancel()
    viewer.worker.wait(60)
    viewer.stop()


def record_statuses(app: ViewerApp) -> list:
    """Every status the worker reports from now on (still passed on to the app)."""
    seen, forward = [], app.worker._on_status
    app.worker._on_status = lambda status: (seen.append(status), forward(status))
    return seen


def look_from_training_view(app: ViewerApp, index: int = 0) -> None:
    from adlift.viewer.camera import camera_pose

    app._pinned = ("train", index)
    app._camera = camera_pose(app.inputs.cameras["train"], index)


def cell(panel, name: str, size: tuple[int, int]):
    x0, y0, x1, y1 = panel_cell_boxes(len(GRID_CELLS), GRID_COLUMNS, size)[GRID_CELLS.index(name)]
    return panel[y0:y1, x0:x1]


def test_the_dge_button_edits_both_scenes_into_new_variants_shown_in_the_panel(app, monkeypatch):
    import adlift.editors.dge as dge

    runs = []
    real = dge.edit_scenes_dge
    monkeypatch.setattr(dge, "edit_scenes_dge", lambda *a, **k: runs.append(1) or real(*a, **k))
    seen = record_statuses(app)
    assert app.request_dge_edit()  # what the button calls; returns at once, the edit runs in the worker
    assert app.worker.wait(120)
    status = app.worker.status
    assert status.state == "done" and status.kind == "dge", status
    assert status.untrained and "pick 'raw, DGE-edited', 'protected, DGE-edited'" in status.message

    # progress: a fraction that only grows, through both scenes and both stages, to the end
    editing = [s for s in seen if s.state == "editing"]
    fractions = [s.fraction for s in editing]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    messages = " | ".join(s.message for s in editing)
    for needle in ("DGE raw: multi-view edit, UNet pass 1/", "DGE raw: fitting step 4/4",
                   "DGE protected: multi-view edit", "DGE protected: fitting step 4/4"):  # fmt: skip
        assert needle in messages, needle
    assert app._gui["progress"].value == pytest.approx(100.0) and not app._gui["dge_button"].disabled

    # two new variants, edited away from their originals and different from each other
    assert list(app.scenes) == ["raw", "protected", *VARIANT_LABELS.values()]
    assert list(app._gui["scene"].options) == list(app.scenes)
    edited = {name: app.scenes[label] for name, label in VARIANT_LABELS.items()}
    for name, scene in edited.items():
        original = app.inputs.scenes[name]
        assert scene.num_gaussians == original.num_gaussians
        assert float((scene.sh - original.sh).abs().max()) > 1e-3, name
    assert float((edited["raw"].sh - edited["protected"].sh).abs().max()) > 1e-3
    app._show_variant(VARIANT_LABELS["protected"])
    shown = {label for label, handle in app._variants.items() if handle.visible}
    assert shown == {VARIANT_LABELS["protected"]}

    # the panel switched to the edited scenes: their renders from the current view fill the edit cells
    assert app.edit_source == "dge" and app._gui["edit_source"].value == EDIT_SOURCES["dge"]
    look_from_training_view(app, 1)
    panel = app.refresh()
    camera = app.current.camera
    size = (camera.width, camera.height)
    for name, cell_name in (("raw", "edit_raw"), ("protected", "edit_protected")):
        want = to_rgb8(render(edited[name], camera, backend="torch").rgb[0].clamp(0, 1))
        assert (cell(panel, cell_name, size) == want).all(), name
    # back to 2D edits: nothing edited for this view yet, so placeholders
    app._set_edit_source(EDIT_SOURCES["2d"])
    placeholder = cell(app.refresh(), "edit_raw", size).reshape(-1, 3).astype(int)
    assert (abs(placeholder - PLACEHOLDER).sum(-1) == 0).mean() > 0.5

    # pressing again with the same settings: the cache, not another edit; the variants stay the same objects
    assert not app.request_dge_edit()
    assert app.worker.status.message == "already edited (cached)" and len(runs) == 1 and app.loads == ["tiny"]
    assert all(app.scenes[VARIANT_LABELS[n]] is s for n, s in edited.items())
    # other settings are another edit
    app._gui["seed"].value = 1
    assert app.dge_request().cache_key() != app.worker.status.job_key
    app._set_edit_source(EDIT_SOURCES["dge"])
    app.refresh()
    assert app.worker.results.get(app.dge_request().cache_key()) is None


def test_an_empty_instruction_is_a_one_line_error_in_the_status(app):
    app._gui["instruction"].value = "   "
    app.request_dge_edit()
    assert app.worker.wait(60)
    content = app._gui["status"].content
    assert app.worker.status.state == "error" and app.loads == []  # refused before loading the editor
    assert content == "**error:** the instruction is empty: type one in the Instruction box"
    assert "\n" not in content and "Traceback" not in content
    assert list(app.scenes) == ["raw", "protected"] and not app._gui["dge_button"].disabled


def test_a_cancelled_dge_edit_keeps_nothing_and_restores_the_editor(app):
    from adlift.editors.dge import _DGEAttnProcessor

    assert app.request_dge_edit()
    assert not app.request_dge_edit()  # one job at a time (the status says so until the job reports again)
    assert app.worker.cancel() and app.worker.wait(60)
    assert app.worker.status.state == "cancelled"
    assert app._gui["status"].content.startswith("**cancelled:**") and app._gui["cancel"].disabled
    assert app.worker.results.get(app.dge_request().cache_key()) is None and list(app.scenes) == ["raw", "protected"]
    processors = tiny_editor().surface.unet.attn_processors.values()
    assert not any(isinstance(p, _DGEAttnProcessor) for p in processors)  # the shared editor is usable again


def test_scene_fraction_splits_each_scene_between_edit_and_fit():
    assert scene_fraction("edit", 0, 10, fit_steps=4) == 0.0
    assert scene_fraction("edit", 10, 10, fit_steps=4) == scene_fraction("fit", 0, 4, fit_steps=4) == 0.5
    assert scene_fraction("fit", 4, 4, fit_steps=4) == 1.0
    assert scene_fraction("edit", 10, 10, fit_steps=0) == 1.0  # no fit: the edit is all of it


def test_view_help_nests_the_dge_settings_and_evaluate_hides_what_it_never_uses(capsys):
    with pytest.raises(SystemExit):
        main(["view", "--help"])
    view = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    evaluate = capsys.readouterr().out
    for out in (view, evaluate):
        assert "--dge.fit-steps" in out and "--dge.matching" in out and "--dge.checkpoint-every" not in out
    assert "--dge-width" in view and ViewerConfig().dge.fit_steps == 300  # interactive, not DGE's 1000
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    assert "--dge.checkpoint-every" in capsys.readouterr().out  # adlift edit does checkpoint
    assert main(["view", str(BUST), "--dge.fit-steps", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dge.fit-steps" in err[0], err
