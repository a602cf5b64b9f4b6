"""Drive a headless Chromium over the DevTools protocol: open a page, wait, evaluate, screenshot.

Used by the viewer's browser test (tests/test_viewer_browser.py) and by viewers/screenshot.py.
Only the standard library and the ``websockets`` package (a viser dependency) are needed.

    with HeadlessChromium(width=1280, height=800) as browser:
        browser.navigate("http://127.0.0.1:8080")
        browser.wait_for("document.querySelector('canvas') !== null")
        png = browser.screenshot()      # PNG bytes

Chromium runs with the flags of the project's design notes (no sandbox, no GPU: WebGL through
SwiftShader, no background networking) and a throw-away profile directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

#: Flags from docs (DESIGN.md, "Machines"): what makes Debian's chromium work headless on CI machines.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # keep rendering frames although no window is ever visible (WebGL would otherwise only
    # advance when a screenshot is taken)
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--hide-scrollbars",
    "--mute-audio",
)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium executable: $ADLIFT_CHROMIUM, else the first of :data:`CANDIDATES` on PATH."""
    env = os.environ.get("ADLIFT_CHROMIUM")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    return next((p for p in (shutil.which(c) for c in CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


class HeadlessChromium:
    """One headless Chromium with one page, controlled through the DevTools protocol."""

    def __init__(self, executable: str | None = None, *, width: int = 1280, height: int = 800,
                 start_timeout: float = 60.0):  # fmt: skip
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError("no chromium found (apt-get install chromium, or set ADLIFT_CHROMIUM)")
        self.width, self.height = width, height
        self.start_timeout = start_timeout
        self.console: list[str] = []
        self._profile = None
        self._proc = None
        self._ws = None
        self._next_id = 0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "HeadlessChromium":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="adlift-chromium-")
        cmd = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
               f"--window-size={self.width},{self.height}", "about:blank"]  # fmt: skip
        self._log = open(Path(self._profile) / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"chromium did not start (exit {self._proc.poll()}): {self.log_tail()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page = None
        while page is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                page = next((t for t in json.loads(r.read()) if t.get("type") == "page"), None)
            if page is None:
                if time.monotonic() > deadline:
                    raise BrowserError("chromium has no page target")
                time.sleep(0.1)
        self._ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Page.bringToFront")
        self.send("Emulation.setFocusEmulationEnabled", enabled=True)
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height, deviceScaleFactor=1,
                  mobile=False)  # fmt: skip

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            self._ws = None
        if self._proc is not None:
            if self._proc.poll() is None:
                os.killpg(self._proc.pid, 15)
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self._proc.pid, 9)
                    self._proc.wait(timeout=10)
            self._proc = None
            self._log.close()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (Path(self._profile) / "chromium.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, timeout: float = 60.0, **params) -> dict:
        """Send one DevTools command and return its result (events in between are collected/ignored)."""
        self._next_id += 1
        cid = self._next_id
        self._ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"DevTools {method} timed out")
            msg = json.loads(self._ws.recv(timeout=left))
            if msg.get("id") == cid:
                if "error" in msg:
                    raise BrowserError(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(msg["params"].get("exceptionDetails", {}))[:500])

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"JavaScript failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.25) -> bool:
        """Poll a JavaScript expression until it is truthy; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return True
            except BrowserError:
                pass
            time.sleep(interval)
        return False

    def screenshot(self, path: str | Path | None = None) -> bytes:
        """A PNG of the viewport (width x height); written to ``path`` if given."""
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        if path is not None:
            Path(path).write_bytes(data)
        return data
