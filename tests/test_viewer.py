"""The browser viewer without a browser: camera conversion, panel, caches, edits, inputs, CLI.

The end-to-end test in a real (headless) Chromium is tests/test_viewer_browser.py.
"""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from adlift.cli import main
from adlift.errors import AdLiftError
from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply
from adlift.render import render
from adlift.viewer.camera import BrowserCamera, camera_pose, matrix_to_quat, quat_to_matrix, world_up
from adlift.viewer.compare import LRUCache, ViewRenderer
from adlift.viewer.edits import EditRequest, EditSettings, EditWorker
from adlift.viewer.inputs import load_inputs
from adlift.viewer.metrics import metrics_table, view_summary
from adlift.viewer.panel import (GRID_CELLS, GRID_COLUMNS, PLACEHOLDER, ROW_CELLS, colour_scale, comparison_panel,
                                 difference_map, heatmap, panel_cell_boxes)  # fmt: skip
from tests.helpers import BUST, BUST_CAMS, INSTRUCTION, TINY_CACHE, fake_protect_outdir, free_port, run_cli

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return fake_protect_outdir(tmp_path_factory.mktemp("viewer") / "prot")


@pytest.fixture(scope="module")
def bust():
    return read_ply(BUST)


# ---------------------------------------------------------------------------------------------- cameras
def test_quaternion_round_trip_and_orthonormal():
    g = torch.Generator().manual_seed(0)
    for q in torch.randn(20, 4, generator=g, dtype=torch.float64).numpy():
        m = quat_to_matrix(q)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)
        back = matrix_to_quat(m)
        q = q / np.linalg.norm(q)
        np.testing.assert_allclose(back, q if q[0] >= 0 else -q, atol=1e-9)


def test_browser_camera_is_opencv_camera_to_world():
    """Identity rotation at the origin: looking down +z, x right, y down; centred square pixels."""
    cam = BrowserCamera((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0), fov=math.radians(60), aspect=2.0)
    cams = cam.to_cameras(200)
    assert (cams.width, cams.height) == (200, 100)
    torch.testing.assert_close(cams.viewmats[0], torch.eye(4))
    f = 50 / math.tan(math.radians(30))
    torch.testing.assert_close(cams.Ks[0], torch.tensor([[f, 0, 100], [0, f, 50], [0, 0, 1.0]]))
    # a camera translated to (1, 2, 3): world point (1, 2, 4) is 1 unit straight ahead
    moved = BrowserCamera((1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0), fov=1.0, aspect=1.0).to_cameras(8)
    p = moved.viewmats[0] @ torch.tensor([1.0, 2.0, 4.0, 1.0])
    torch.testing.assert_close(p, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_browser_camera_from_a_training_view_renders_that_view(bust):
    """camera_pose (what a frustum click sends to the browser) -> to_cameras (what comes back)
    reproduces the training camera, and rendering it gives the same image as render()."""
    cams = load_cameras(BUST_CAMS, split="train")
    for i in (0, 5, 17):
        pose = camera_pose(cams, i)
        back = pose.to_cameras(48)
        ref = cams[i].resized(width=48)
        torch.testing.assert_close(back.viewmats, ref.viewmats, atol=1e-5, rtol=0)
        torch.testing.assert_close(back.Ks, ref.Ks, atol=1e-4, rtol=0)
        torch.testing.assert_close(render(bust, back).rgb, render(bust, ref).rgb, atol=1e-4, rtol=0)


def test_pose_key_tolerates_jitter_not_moves():
    cam = BrowserCamera((0.5, 0.5, 0.5, 0.5), (1.0, 2.0, 3.0), 0.7, 1.5)
    jitter = BrowserCamera((0.50001, 0.5, 0.5, 0.5), (1.0, 2.0, 3.00001), 0.7, 1.5)
    flipped = BrowserCamera((-0.5, -0.5, -0.5, -0.5), (1.0, 2.0, 3.0), 0.7, 1.5)  # same rotation
    moved = BrowserCamera((0.5, 0.5, 0.5, 0.5), (1.0, 2.1, 3.0), 0.7, 1.5)
    assert cam.key() == jitter.key() == flipped.key()
    assert cam.key() != moved.key()
    with pytest.raises(AdLiftError):
        BrowserCamera((1.0, 0, 0, 0), (0, 0, 0), float("nan"), 1.0).to_cameras(8)


def test_world_up_of_bundled_rig_is_plus_z():
    np.testing.assert_allclose(world_up([load_cameras(BUST_CAMS)]), [0.0, 0.0, 1.0])


# ---------------------------------------------------------------------------------------------- panel
def test_heatmap_scale_and_difference_map():
    from matplotlib import colormaps

    raw = torch.zeros(3, 4, 5)
    prot = raw.clone()
    prot[1, 2, 3] = 0.1  # one channel of one pixel
    d = difference_map(raw, prot)
    assert d.shape == (4, 5) and float(d[2, 3]) == pytest.approx(0.1) and float(d.sum()) == pytest.approx(0.1)
    h = heatmap(d, gain=10.0)  # 0.1 x 10 = full scale
    lo = (np.asarray(colormaps["inferno"](0.0)[:3]) * 255).round()
    hi = (np.asarray(colormaps["inferno"](1.0)[:3]) * 255).round()
    np.testing.assert_array_equal(h[0, 0], lo)
    np.testing.assert_array_equal(h[2, 3], hi)
    assert colour_scale(100, 60, 32.0).shape == (60, 100, 3)


@pytest.mark.parametrize("layout,columns,cells", [("grid", GRID_COLUMNS, GRID_CELLS), ("row", 5, ROW_CELLS)])
def test_comparison_panel_layout_holds_the_images(layout, columns, cells):
    g = torch.Generator().manual_seed(0)
    images = dict(zip(("raw", "protected", "edit_raw", "edit_protected"), (torch.rand(3, 20, 30, generator=g)
                                                                          for _ in range(4))))  # fmt: skip
    panel = comparison_panel(images["raw"], images["protected"], images["edit_raw"], images["edit_protected"],
                             gain=32.0, layout=layout)  # fmt: skip
    boxes = panel_cell_boxes(len(cells), columns, (30, 20))
    assert panel.dtype == np.uint8 and panel.shape == (boxes[-1][3] + 4, boxes[-1][2] + 4, 3)
    for box, name in zip(boxes, cells):
        if name not in images:
            continue
        img = images[name]
        x0, y0, x1, y1 = box
        expected = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(panel[y0:y1, x0:x1], expected)


def test_panel_without_edits_shows_placeholders():
    raw = torch.rand(3, 40, 60)
    panel = comparison_panel(raw, raw.clone(), None, None, gain=32.0, edit_note="press the button")
    boxes = panel_cell_boxes(len(GRID_CELLS), GRID_COLUMNS, (60, 40))
    x0, y0, x1, y1 = boxes[GRID_CELLS.index("edit_raw")]
    cell = panel[y0:y1, x0:x1].reshape(-1, 3)
    assert (np.abs(cell.astype(int) - PLACEHOLDER).sum(-1) == 0).mean() > 0.8  # grey, with a little text
    assert (np.abs(cell.astype(int) - PLACEHOLDER).sum(-1) > 60).any()  # the note is written
    # no protected scene: its cells are placeholders too
    solo = comparison_panel(raw, None, None, None, gain=1.0)
    x0, y0, x1, y1 = boxes[GRID_CELLS.index("protected")]
    assert (np.abs(solo[y0:y1, x0:x1].astype(int) - PLACEHOLDER).sum(-1) == 0).mean() > 0.6


# ---------------------------------------------------------------------------------------------- caches
def test_lru_cache_evicts_least_recently_used():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and len(c) == 2


def test_view_renderer_caches_per_view(bust, monkeypatch):
    calls = []
    import adlift.render as render_module

    real = render_module.render
    monkeypatch.setattr(render_module, "render", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = ViewRenderer({"raw": bust, "protected": bust}, capacity=4)
    cam = load_cameras(BUST_CAMS, split="novel")[0].resized(width=24)
    first = r.render(("v", 0), cam)
    assert set(first) == {"raw", "protected"} and first["raw"].shape == (3, 24, 24) and len(calls) == 2
    again = r.render(("v", 0), cam)
    assert len(calls) == 2 and again["raw"] is first["raw"]
    r.render(("v", 1), cam, names=("raw",))
    assert len(calls) == 3


# ---------------------------------------------------------------------------------------------- edits
class FakeEditor:
    untrained = True

    def __init__(self):
        self.calls = 0
        self.guidance = []

    def default_guidance(self, mode):
        return {"2d": 4.25, "3d": 9.0}[mode]

    def edit(self, images, instruction, *, steps, guidance_scale, image_guidance_scale, seed, batch_size, on_step):
        self.calls += 1
        self.guidance.append(guidance_scale)
        for k in range(steps):
            on_step(k + 1, steps)
        return 1.0 - images


def test_edit_worker_progress_cache_and_errors():
    statuses = []
    editor = FakeEditor()
    loads = []
    worker = EditWorker(lambda s: statuses.append((s.state, s.fraction)),
                        loader=lambda ref, dev: loads.append(ref) or editor)  # fmt: skip
    images = {"raw": torch.zeros(3, 8, 8), "protected": torch.full((3, 8, 8), 0.25)}
    settings = EditSettings("fake", "make it blue", steps=4)
    assert worker.submit(EditRequest("view-1", images, settings))
    assert worker.wait(10)
    out = worker.result("view-1", settings)
    torch.testing.assert_close(out["protected"], torch.full((3, 8, 8), 0.75))
    states = [s for s, _ in statuses]
    assert states[0] == "loading" and states[-1] == "done" and states.count("editing") == 5
    assert [f for s, f in statuses if s == "editing"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # cached: not edited again; another view reuses the loaded editor
    assert not worker.submit(EditRequest("view-1", images, settings)) and editor.calls == 1
    assert worker.submit(EditRequest("view-2", images, settings)) and worker.wait(10)
    assert editor.calls == 2 and loads == ["fake"]
    assert editor.guidance == [4.25, 4.25]  # no guidance given: the editor's own 2D default
    assert worker.submit(EditRequest("view-4", images, dataclass_replace(settings, guidance_scale=2.0)))
    assert worker.wait(10) and editor.guidance[-1] == 2.0
    assert worker.result("view-2", dataclass_replace(settings, seed=1)) is None  # settings are in the key
    # an empty instruction or a failing editor is reported, not raised
    assert worker.submit(EditRequest("view-3", images, EditSettings("fake", "  "))) and worker.wait(10)
    assert worker.status.state == "error" and "instruction is empty" in worker.status.message
    broken = EditWorker(loader=lambda ref, dev: (_ for _ in ()).throw(AdLiftError("no weights for x")))
    assert broken.submit(EditRequest("v", images, settings)) and broken.wait(10)
    assert broken.status.state == "error" and broken.status.message == "no weights for x"


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_edit_worker_with_the_tiny_editor_reports_every_step():
    from adlift.editors import load_editor

    fractions = []
    worker = EditWorker(lambda s: fractions.append(s.fraction) if s.state == "editing" else None,
                        loader=lambda ref, dev: load_editor(ref, device=dev, cache_dir=TINY_CACHE))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    images = {"raw": torch.rand(3, 32, 40, generator=g), "protected": torch.rand(3, 32, 40, generator=g)}
    settings = EditSettings("tiny", INSTRUCTION, steps=3)
    assert worker.submit(EditRequest("k", images, settings)) and worker.wait(120)
    assert worker.status.state == "done" and worker.status.untrained, worker.status
    out = worker.result("k", settings)
    assert out["raw"].shape == (3, 32, 40) and float(out["raw"].min()) >= 0 and float(out["raw"].max()) <= 1
    assert fractions == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


# ---------------------------------------------------------------------------------------------- inputs
def test_inputs_from_protect_outdir_with_report(outdir):
    inp = load_inputs([outdir])
    assert list(inp.scenes) == ["raw", "protected"] and inp.paths["raw"] == BUST
    assert inp.raw.num_gaussians == inp.protected.num_gaussians
    assert {s: len(c) for s, c in inp.cameras.items()} == {"train": 28, "novel": 4}
    assert inp.instruction == INSTRUCTION and inp.editor == "tiny" and inp.untrained
    assert inp.eta == pytest.approx(8 / 255)
    assert inp.metrics_source.endswith("report.json") and inp.view_metrics("bust_0001")["ssim"] == 0.99
    # the evaluation directory itself works too, and options override
    ev = load_inputs([outdir / "evaluation"], instruction="make it gold", edited=(BUST,))
    assert ev.instruction == "make it gold" and list(ev.scenes)[:2] == ["raw", "protected"] and len(ev.scenes) == 3


def test_inputs_from_plys(tmp_path):
    alone = load_inputs([BUST])  # transforms.json beside the .ply
    assert list(alone.scenes) == ["raw"] and set(alone.cameras) == {"train", "novel"} and alone.eta is None
    elsewhere = tmp_path / "copy.ply"
    elsewhere.write_bytes(BUST.read_bytes())
    pair = load_inputs([elsewhere, BUST])  # no cameras beside it: an orbit
    assert list(pair.scenes) == ["raw", "protected"] and list(pair.cameras) == ["orbit"]
    assert len(pair.cameras["orbit"]) == 16


@pytest.mark.parametrize(
    "case,needle",
    [
        ("missing", "no such file"),
        ("three", "give OUTDIR"),
        ("dir_and_ply", "is a directory"),
        ("empty_dir", "neither a protect output"),
        ("garbage_manifest", "cannot read it as JSON"),
        ("not_manifest", "not an adlift protection manifest"),
        ("changed_raw", "sha256 differs"),
        ("garbage_ply", "garbage.ply"),
        ("raw_with_plys", "--raw only applies"),
        ("missing_edited", "no such file"),
    ],
)
def test_input_errors_are_one_line_adlift_errors(tmp_path, outdir, case, needle):
    d = tmp_path / "d"
    d.mkdir()
    args, kwargs = [d], {}
    if case == "missing":
        args = [tmp_path / "nope"]
    elif case == "three":
        args = [BUST, BUST, BUST]
    elif case == "dir_and_ply":
        args = [outdir, BUST]
    elif case == "garbage_manifest":
        (d / "manifest.json").write_text("{not json")
    elif case == "not_manifest":
        (d / "manifest.json").write_text(json.dumps({"hello": 1}))
    elif case == "changed_raw":
        manifest = json.loads((outdir / "manifest.json").read_text())
        manifest["raw_scene"]["sha256"] = "0" * 64
        (d / "manifest.json").write_text(json.dumps(manifest))
    elif case == "garbage_ply":
        (d / "garbage.ply").write_bytes(b"ply\nformat nonsense\n")
        args = [d / "garbage.ply"]
    elif case == "raw_with_plys":
        args, kwargs = [BUST], {"raw": BUST}
    elif case == "missing_edited":
        args, kwargs = [BUST], {"edited": (tmp_path / "nope.ply",)}
    with pytest.raises(AdLiftError) as err:
        load_inputs(args, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_metrics_markdown():
    views = [{"name": "a", "split": "train", "psnr": 40.123, "ssim": None, "loss_raw": 0.5},
             {"name": "b", "split": "novel", "psnr": float("inf")}]  # fmt: skip
    table = metrics_table(views, "r.json")
    assert table.splitlines()[0] == "| view | split | PSNR dB | loss raw |"
    assert "| a | train | 40.12 | 0.5 |" in table and "| b | novel | inf | n/a |" in table and "`r.json`" in table
    assert view_summary("train view a", views[0]) == "**train view a**: PSNR dB 40.12, loss raw 0.5"
    assert "adlift evaluate" in metrics_table([])


def test_the_viewer_shows_the_edit_success_fall():
    """A report with edit success: the panel line lists the fall, and the narrow table keeps it when it
    must drop columns; without edit success (null) neither mentions it."""
    full = {"name": "a", "split": "train", "psnr": 40.0, "ssim": 0.99, "linf_255": 6.0, "within_budget": 1.0,
            "clip_direction_raw": 0.2, "clip_direction_protected": 0.1, "edit_deviation_psnr": 12.0,
            "edit_success_raw_psnr": 20.0, "edit_success_protected_psnr": 12.5,
            "edit_success_fall_psnr": 7.5}  # fmt: skip
    assert "success fall dB 7.50" in view_summary("train view a", full)
    head = metrics_table([full]).splitlines()[0]
    assert head.count("|") == 2 + 5 + 1 and head.endswith("| success fall dB |")  # 5 columns, the fall kept
    assert head.startswith("| view | split | PSNR dB | SSIM | L∞/255 | ≤ η |")
    none = {**full, "edit_success_raw_psnr": None, "edit_success_protected_psnr": None, "edit_success_fall_psnr": None}
    assert "success" not in view_summary("train view a", none) and "success" not in metrics_table([none])


# ---------------------------------------------------------------------------------------------- app + CLI
def test_app_serves_page_and_panel_without_browser(outdir):
    """Start the server, feed it a camera as a browser would, get a panel; the page is served."""
    from adlift.viewer.app import ViewerApp, ViewerConfig

    app = ViewerApp(load_inputs([outdir]), ViewerConfig(port=free_port(), render_width=40, editor="tiny"))
    url = app.start()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        assert app.splat_mode == "splats" and len(app._frustums) == 32
        assert list(app._variants) == ["protected"]  # drawn first; the others when picked
        app._show_variant("raw")
        assert [h.visible for h in app._variants.values()] == [False, True]
        from adlift.viewer.viser_compat import add_scene

        assert add_scene(app.server, "/points", app.inputs.raw, points=True)[1] == "points"
        pose = camera_pose(app.inputs.cameras["novel"], 1)
        app._pinned = ("novel", 1)
        app._camera, app._camera_time = pose, 0.0
        app._wake.set()
        assert app.wait_for_panel(1, timeout=30)
        assert app.current.label == "novel view bust_0008" and app.current.record["split"] == "novel"
        assert app.panel.shape[1] == GRID_COLUMNS * 40 + (GRID_COLUMNS + 1) * 4
        moved = BrowserCamera(pose.wxyz, tuple(np.asarray(pose.position) * 1.2), pose.fov, 1.5)
        app._camera_moved(type("Handle", (), {"wxyz": moved.wxyz, "position": moved.position, "fov": moved.fov,
                                              "aspect": moved.aspect})())  # fmt: skip
        assert app.wait_for_panel(2, timeout=30)
        assert app.current.label == "browser camera" and app.current.camera.height == round(40 / 1.5)
    finally:
        app.stop()
    assert not app._thread.is_alive()


def test_view_help_and_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["view", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--port" in out and "--max-seconds" in out and "viser" in out
    for args, needle in [((str(tmp_path / "missing"),), "no such file or directory"),
                         ((str(BUST), "--port", "0"), "--port"), ((str(BUST), "--width", "2"), "--width"),
                         ((str(tmp_path),), "neither a protect output")]:  # fmt: skip
        assert main(["view", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("adlift: error:") and needle in err[0], err


def test_view_command_prints_url_and_stops(outdir):
    """The real console script: prints the URL, serves, stops by itself with --max-seconds."""
    port = free_port()
    proc = run_cli("view", str(outdir), "--port", str(port), "--max-seconds", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("adlift view:"))
    assert f"http://127.0.0.1:{port}" in line and "raw, protected" in line and "32 cameras" in line


def test_view_command_nests_viewer_config_and_render_options():
    """adlift view's options are ViewerConfig's and RenderOptions' fields: --width is the panel width."""
    from adlift.commands.view import DEFAULT_WIDTH, ViewCommand
    from adlift.render.options import RenderOptions
    from adlift.viewer.app import ViewerConfig

    cfg = ViewCommand(inputs=(BUST,), render=RenderOptions(width=64, backend="torch", device="cpu")).config()
    assert (cfg.render_width, cfg.backend, cfg.device) == (64, "torch", "cpu")
    assert ViewCommand(inputs=(BUST,), viewer=ViewerConfig(steps=3)).config().render_width == DEFAULT_WIDTH
    with pytest.raises(AdLiftError, match="--height"):
        ViewCommand(inputs=(BUST,), render=RenderOptions(height=64)).config()
    with pytest.raises(AdLiftError, match="--steps"):
        ViewCommand(inputs=(BUST,), viewer=ViewerConfig(steps=0)).config()
