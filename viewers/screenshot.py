"""Regenerate docs/viewer.png: the viewer on a protect OUTDIR, in headless Chromium, after an edit.

    python viewers/screenshot.py outputs/demo/protect --out docs/viewer.png      # after `make demo`

Starts the viewer on a free port, opens it in headless Chromium (flags in viewers/headless.py),
moves the browser camera onto ``--view`` (split:index, default the first novel view facing the
scene), clicks "Edit raw and protected" in the page, waits for the edits and for the splats to
settle, and saves the screenshot.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adlift.viewer import ViewerApp, ViewerConfig, load_inputs  # noqa: E402
from viewers.headless import HeadlessChromium  # noqa: E402

DISMISS = """(() => { const b = [...document.querySelectorAll('button')]
    .filter(b => b.closest('[class*="Notification"]')); b.forEach(x => x.click()); return b.length; })()"""
CLICK_EDIT = """(() => { const b = [...document.querySelectorAll('button')]
    .find(b => b.textContent.includes('Edit raw and protected')); if (b) b.click(); return !!b; })()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path, help="OUTDIR, or RAW.ply [PROTECTED.ply]")
    p.add_argument("--out", type=Path, default=Path("docs/viewer.png"))
    p.add_argument("--view", default="novel:2", help="split:index of the camera to show (default novel:2)")
    p.add_argument("--editor", default="tiny")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", default="1280x800", help="window WxH")
    p.add_argument("--settle", type=float, default=120.0, help="seconds to wait for edits and splats at most")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    split, index = args.view.split(":")

    from PIL import Image

    app = ViewerApp(load_inputs(args.inputs), ViewerConfig(port=free_port(), editor=args.editor, steps=args.steps))
    app.start()
    try:
        with HeadlessChromium(width=width, height=height) as browser:
            browser.navigate(app.url)
            if not app.wait_for_panel(1, timeout=120):
                raise SystemExit("the browser never connected")
            browser.evaluate(DISMISS)
            client = next(iter(app.server.get_clients().values()))
            app.jump(client, split, int(index))
            deadline = time.monotonic() + 30
            while not (app.current and app.current.key[:3] == ("rig", split, int(index))):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the browser did not move to {args.view}")
                time.sleep(0.2)
            if not browser.evaluate(CLICK_EDIT):
                raise SystemExit("no edit button in the page")
            deadline = time.monotonic() + args.settle
            while app.worker.status.state not in ("done", "error") or app.worker.busy:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the edit did not finish: {app.worker.status}")
                time.sleep(0.5)
            if app.worker.status.state == "error":
                raise SystemExit(f"the edit failed: {app.worker.status.message}")
            previous = None
            while time.monotonic() < deadline:  # until two screenshots agree (splats faded in, panel updated)
                time.sleep(1.0)
                shot = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB")).astype(np.float32)
                if previous is not None and np.abs(shot - previous).mean() < 0.5:
                    break
                previous = shot
            args.out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(shot.astype(np.uint8)).save(args.out, optimize=True)
            print(f"wrote {args.out} ({width}x{height}, view {app.current.label})")
    finally:
        app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
