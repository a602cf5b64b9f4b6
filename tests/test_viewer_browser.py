"""End to end in a real browser: the viewer on a bundled scene, opened by headless Chromium.

Asserts on the screenshot's pixels that (1) the 3D view shows the scene, seen from the camera the
browser reports (its silhouette matches our own render from that camera: this also checks the
browser-camera convention), (2) the comparison panel was drawn (the panel's pixels in the
screenshot match the image the server composed), and (3) clicking "Edit raw and protected" in the
page runs the (tiny, offline) editor and the edits appear in the panel.

Skips only when no Chromium is installed (CI installs Debian's: see .ci/run).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from adlift.render import render
from adlift.viewer.app import ViewerApp, ViewerConfig
from adlift.viewer.inputs import load_inputs
from adlift.viewer.panel import GRID_CELLS, GRID_COLUMNS, PLACEHOLDER, panel_cell_boxes
from tests.helpers import TINY_CACHE, fake_protect_outdir, free_port
from viewers.headless import HeadlessChromium, find_chromium

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

WINDOW = (960, 640)
RENDER_WIDTH = 160
DISMISS_NOTIFICATIONS = """(() => { const b = [...document.querySelectorAll('button')]
    .filter(b => b.closest('[class*="Notification"]')); b.forEach(x => x.click()); return b.length; })()"""
CLICK_EDIT = """(() => { const b = [...document.querySelectorAll('button')]
    .find(b => b.textContent.includes('Edit raw and protected')); if (b) b.click(); return !!b; })()"""


def screenshot_array(browser) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"))


def panel_rect(browser, panel: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) on screen of the <img> showing ``panel`` (matched by its natural size)."""
    h, w = panel.shape[:2]
    rect = browser.evaluate(f"""JSON.stringify([...document.images]
        .filter(i => i.complete && i.naturalWidth === {w} && i.naturalHeight === {h})
        .map(i => {{ const r = i.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }})[0] || null)""")
    rect = json.loads(rect)
    return None if rect is None else tuple(int(round(v)) for v in rect)


def panel_error(shot: np.ndarray, rect, panel: np.ndarray) -> float:
    """Mean |screenshot - server panel| (0..255) over the part of the panel's box inside the window."""
    x0, y0, x1, y1 = rect
    ref = np.asarray(Image.fromarray(panel).resize((x1 - x0, y1 - y0), Image.BILINEAR), np.float32)
    vx0, vy0, vx1, vy1 = max(x0, 0), max(y0, 0), min(x1, shot.shape[1]), min(y1, shot.shape[0])
    if vx1 - vx0 < 50 or vy1 - vy0 < 50:
        return float("inf")
    crop = shot[vy0:vy1, vx0:vx1].astype(np.float32)
    return float(np.abs(crop - ref[vy0 - y0:vy1 - y0, vx0 - x0:vx1 - x0]).mean())


def scene_iou(shot: np.ndarray, app: ViewerApp, browser) -> tuple[float, float]:
    """IoU of the scene's silhouette in the browser's 3D view and in our render from the browser's
    camera (both at a quarter of the view's size); also the silhouette's share of the view."""
    cam = app._camera
    top, left, height = json.loads(browser.evaluate(
        "JSON.stringify((r => [r.top, r.left, r.height])(document.querySelector('canvas').getBoundingClientRect()))"))
    top, left, height = int(top), int(left), int(height)
    width = int(round(cam.aspect * height))  # the 3D view (viser 0.2 draws it left of the panel)
    view = shot[top:top + height, left:left + width].astype(np.int32)
    drawn = ((765 - view.sum(-1)) > 60).astype(np.uint8) * 255  # not the white background
    cams = cam.to_cameras(max(8, width // 4))
    with torch.no_grad():
        ours = render(app.inputs.scenes["protected"], cams, background=(1.0, 1.0, 1.0)).alpha[0, 0].numpy() > 0.5
    small = np.asarray(Image.fromarray(drawn).resize((cams.width, cams.height), Image.BILINEAR)) > 127
    union = (ours | small).sum()
    return float((ours & small).sum() / max(union, 1)), float(small.mean())


def placeholder_share(shot: np.ndarray, rect, panel_shape, cell: str) -> float:
    """Share of a panel cell's on-screen pixels that have the placeholder's grey."""
    x0, y0, x1, y1 = rect
    sx, sy = (x1 - x0) / panel_shape[1], (y1 - y0) / panel_shape[0]
    boxes = panel_cell_boxes(len(GRID_CELLS), GRID_COLUMNS, (RENDER_WIDTH, RENDER_WIDTH))
    bx0, by0, bx1, by1 = boxes[GRID_CELLS.index(cell)]
    top = y0 + int(by0 * sy) + 2
    bottom = min(y0 + int(by1 * sy) - 2, shot.shape[0])
    assert bottom - top > 20, "the edit cells are not on screen"
    region = shot[top:bottom, x0 + int(bx0 * sx) + 2:x0 + int(bx1 * sx) - 2]
    return float((np.abs(region.astype(int) - PLACEHOLDER).sum(-1) < 24).mean())


def poll(check, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def test_viewer_in_headless_chromium(tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIFT_CACHE_DIR", str(TINY_CACHE))  # the session's tiny editor
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    outdir = fake_protect_outdir(tmp_path / "prot")
    app = ViewerApp(load_inputs([outdir]),
                    ViewerConfig(port=free_port(), editor="tiny", steps=2, render_width=RENDER_WIDTH, panel_width=360))  # fmt: skip
    app.start()
    try:
        with HeadlessChromium(width=WINDOW[0], height=WINDOW[1]) as browser:
            browser.navigate(app.url)
            assert browser.wait_for("document.querySelector('canvas') !== null", timeout=60), browser.console
            assert app.wait_for_panel(1, timeout=60), "the browser never sent its camera"
            # it starts on the first training camera
            assert poll(lambda: app.current.label == "train view bust_0001", timeout=30), app.current.label
            browser.evaluate(DISMISS_NOTIFICATIONS)  # "software WebGL" notice of viser 1.x
            assert browser.wait_for(f"[...document.images].some(i => i.naturalWidth === {app.panel.shape[1]})", 30)

            # 1 + 2: the splats are drawn where our renderer puts them, and the panel is on screen.
            state = {}

            def scene_and_panel_drawn():
                shot = screenshot_array(browser)
                rect = panel_rect(browser, app.panel)
                state.update(shot=shot, rect=rect, iou=scene_iou(shot, app, browser),
                             panel_error=panel_error(shot, rect, app.panel) if rect else None)  # fmt: skip
                return state["iou"][0] > 0.6 and rect is not None and state["panel_error"] < 12

            ok = poll(scene_and_panel_drawn, timeout=90, interval=0.2)  # splats fade in over a few frames
            Image.fromarray(state["shot"]).save(tmp_path / "viewer.png")
            assert ok, {k: v for k, v in state.items() if k != "shot"}
            iou, share = state["iou"]
            assert share > 0.1, share  # the bust fills a good part of the 3D view
            x0, y0, x1, y1 = state["rect"]
            assert (x1 - x0) > 200 and x0 >= int(round(app._camera.aspect * WINDOW[1])) - 2  # beside the 3D view
            raw_cell = state["shot"][y0 + 30:y0 + (y1 - y0) // 2 - 4, x0 + 4:x0 + (x1 - x0) // 3 - 4]
            assert raw_cell.std() > 20  # a picture, not a flat placeholder
            assert placeholder_share(state["shot"], state["rect"], app.panel.shape, "edit_raw") > 0.5  # no edit yet
            assert placeholder_share(state["shot"], state["rect"], app.panel.shape, "diff") < 0.2

            # 3: the edit button in the page runs the editor; edits replace the placeholders.
            shown = app.panel_count
            assert browser.evaluate(CLICK_EDIT)
            assert poll(lambda: app.worker.status.state in ("done", "error"), timeout=180), app.worker.status
            assert app.worker.status.state == "done", app.worker.status
            assert poll(lambda: app.panel_count > shown and app.worker.result(app.current.key, app.edit_settings()),
                        timeout=30)  # fmt: skip

            def edits_drawn():
                shot = screenshot_array(browser)
                rect = panel_rect(browser, app.panel)
                state.update(shot=shot, rect=rect)
                return rect is not None and panel_error(shot, rect, app.panel) < 12 and all(
                    placeholder_share(shot, rect, app.panel.shape, c) < 0.2 for c in ("edit_raw", "edit_protected"))

            ok = poll(edits_drawn, timeout=60, interval=0.2)
            Image.fromarray(state["shot"]).save(tmp_path / "viewer_edited.png")
            assert ok, browser.console[-5:]
            if os.environ.get("ADLIFT_VIEWER_SCREENSHOT"):
                shutil.copy(tmp_path / "viewer_edited.png", os.environ["ADLIFT_VIEWER_SCREENSHOT"])
    finally:
        app.stop()
