"""``adlift view``: the interactive browser viewer (viser) comparing raw, protected and edited views."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Literal

import tyro

from adlift.errors import AdLiftError

try:  # tyro >= 0.9: say "required" instead of printing the empty default of a variadic positional
    _INPUTS_ARG = tyro.conf.arg(metavar="OUTDIR|RAW.ply [PROTECTED.ply]", help_behavior_hint="(required)")
except TypeError:
    _INPUTS_ARG = tyro.conf.arg(metavar="OUTDIR|RAW.ply [PROTECTED.ply]")


@dataclasses.dataclass
class ViewCommand:
    """Serve an interactive viewer in the browser: the scene as Gaussian splats (raw / protected /
    edited), camera frustums to click, and a panel of server-side renders from the browser's camera:
    raw | protected | |difference| heatmap | edit(raw) | edit(protected), edits on demand.

    Needs viser (pip install 'adlift[viewer]'); tested with viser 0.2.7 (nerfstudio's pin; the
    splats use its experimental renderer) and 1.1. Ctrl-C stops the server."""

    inputs: Annotated[tyro.conf.Positional[tuple[Path, ...]], _INPUTS_ARG]
    """A directory written by `adlift protect` (or its `evaluation/` from `adlift evaluate`), or a raw
    .ply and optionally its protected .ply."""

    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 serves other machines too (anyone who can reach it can use it)."""

    port: int = 8080
    """Port to serve on (the next free one if it is taken)."""

    raw: Annotated[Path | None, tyro.conf.arg(metavar="PLY")] = None
    """With OUTDIR: the raw .ply, when the one the manifest names has moved."""

    cameras: Annotated[str | None, tyro.conf.arg(metavar="SPEC")] = None
    """Cameras drawn as frustums: a camera file or `orbit:N` (default: OUTDIR/transforms.json, the
    transforms.json beside RAW.ply, else orbit:16)."""

    edited: Annotated[tuple[Path, ...], tyro.conf.arg(metavar="PLY")] = ()
    """Edited scenes to add to the scene switch (e.g. edited.ply of `adlift edit --mode 3d`)."""

    instruction: Annotated[str | None, tyro.conf.arg(metavar="TEXT")] = None
    """Edit instruction (default: the manifest's; it can be changed in the browser)."""

    editor: Annotated[str | None, tyro.conf.arg(metavar="EDITOR")] = None
    """Editor of the on-demand edits: ip2p, tiny (untrained offline test model), a hub id or a local
    dir (default: the one the protection was made against, else ip2p)."""

    steps: int = 20
    """Diffusion steps per edit (changeable in the browser)."""

    render_width: int = 256
    """Width in pixels of the server-side renders in the panel (changeable in the browser)."""

    layout: Literal["grid", "row"] = "grid"
    """Panel layout: grid (two columns, fits the side panel) or row (five images side by side)."""

    gain: Annotated[float | None, tyro.conf.arg(metavar="FLOAT")] = None
    """Gain of the |protected - raw| heatmap (default 1/eta: the budget is full scale; else 32)."""

    points: bool = False
    """Draw the scenes as point clouds of the Gaussian means instead of splats (for huge scenes)."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser of the server-side renders."""

    device: Annotated[str | None, tyro.conf.arg(metavar="DEVICE")] = None
    """Torch device of renders and edits; default cuda if available, else cpu."""

    max_seconds: Annotated[float | None, tyro.conf.arg(metavar="SECONDS")] = None
    """Stop after this many seconds (for scripts and tests); default: run until Ctrl-C."""

    def config(self, inputs):
        """The :class:`~adlift.viewer.app.ViewerConfig` of these options (AdLiftError for bad values)."""
        from adlift.viewer.app import ViewerConfig

        if not 1 <= self.port <= 65535:
            raise AdLiftError(f"--port must be in 1..65535, got {self.port}")
        if not 16 <= self.render_width <= 4096:
            raise AdLiftError(f"--render-width must be in 16..4096, got {self.render_width}")
        if self.steps < 1:
            raise AdLiftError(f"--steps must be >= 1, got {self.steps}")
        if self.gain is not None and not self.gain > 0:
            raise AdLiftError(f"--gain must be positive, got {self.gain}")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise AdLiftError(f"--max-seconds must be >= 0, got {self.max_seconds}")
        return ViewerConfig(
            host=self.host, port=self.port, render_width=self.render_width, layout=self.layout, gain=self.gain,
            editor=self.editor or inputs.editor or "ip2p", steps=self.steps, points=self.points,
            backend=self.backend, device=self._device(),
        )  # fmt: skip

    def _device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def run(self) -> None:
        from adlift.render import resolve_backend
        from adlift.viewer.app import ViewerApp
        from adlift.viewer.inputs import load_inputs
        from adlift.viewer.viser_compat import import_viser, viser_version

        import_viser()  # fail early, before loading scenes, when viser is missing
        resolve_backend(self.backend)
        inputs = load_inputs(self.inputs, raw=self.raw, cameras=self.cameras, edited=self.edited,
                             instruction=self.instruction, device=self._device())  # fmt: skip
        app = ViewerApp(inputs, self.config(inputs))
        url = app.start()
        n_cams = sum(len(c) for c in inputs.cameras.values())
        variants = ", ".join(inputs.scenes)
        print(f"adlift view: {url}  ({variants}; {n_cams} cameras; viser {'.'.join(map(str, viser_version()))}, "
              f"scenes drawn as {app.splat_mode}); Ctrl-C to stop", flush=True)  # fmt: skip
        try:
            deadline = None if self.max_seconds is None else time.monotonic() + self.max_seconds
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
        except KeyboardInterrupt:
            pass
        finally:
            app.stop()
