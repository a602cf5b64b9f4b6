"""``adlift view``: the interactive browser viewer (viser) comparing raw, protected and edited views.

The options are the library's :class:`~adlift.viewer.app.ViewerConfig` and the shared
:class:`~adlift.render.options.RenderOptions` (``--width`` = width of the panel's renders), nested,
plus what to show (:func:`adlift.viewer.inputs.load_inputs`) and ``--max-seconds``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Optional

import tyro

from adlift.errors import AdLiftError
from adlift.render.options import RenderOptions
from adlift.viewer.app import ViewerConfig

try:  # tyro >= 0.9: say "required" instead of printing the empty default of a variadic positional
    _INPUTS_ARG = tyro.conf.arg(metavar="OUTDIR|RAW.ply [PROTECTED.ply]", help_behavior_hint="(required)")
except TypeError:
    _INPUTS_ARG = tyro.conf.arg(metavar="OUTDIR|RAW.ply [PROTECTED.ply]")

#: Panel render width when --width is not given.
DEFAULT_WIDTH = ViewerConfig().render_width


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

    raw: Annotated[Optional[Path], tyro.conf.arg(metavar="PLY")] = None
    """With OUTDIR: the raw .ply, when the one the manifest names has moved."""

    cameras: Annotated[Optional[str], tyro.conf.arg(metavar="SPEC")] = None
    """Cameras drawn as frustums: a camera file or `orbit:N` (default: OUTDIR/transforms.json, the
    transforms.json beside RAW.ply, else orbit:16)."""

    edited: Annotated[tuple[Path, ...], tyro.conf.arg(metavar="PLY")] = ()
    """Edited scenes to add to the scene switch (e.g. edited.ply of `adlift edit --mode 3d`)."""

    instruction: Annotated[Optional[str], tyro.conf.arg(metavar="TEXT")] = None
    """Edit instruction (default: the manifest's; it can be changed in the browser)."""

    viewer: Annotated[ViewerConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=ViewerConfig)
    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)

    max_seconds: Annotated[Optional[float], tyro.conf.arg(metavar="SECONDS")] = None
    """Stop after this many seconds (for scripts and tests); default: run until Ctrl-C."""

    def config(self) -> ViewerConfig:
        """The :class:`ViewerConfig` with the render options filled in (AdLiftError for bad values)."""
        self.render.validate()
        if self.render.height is not None:
            raise AdLiftError("--height does not apply to adlift view (the panel takes the browser camera's "
                              "aspect); give --width")  # fmt: skip
        if self.max_seconds is not None and self.max_seconds < 0:
            raise AdLiftError(f"--max-seconds must be >= 0, got {self.max_seconds}")
        config = dataclasses.replace(self.viewer, render_width=self.render.width or DEFAULT_WIDTH,
                                     backend=self.render.backend, device=str(self.render.torch_device()))  # fmt: skip
        config.validate()
        return config

    def run(self) -> None:
        from adlift.evaluate.inputs import chosen_background
        from adlift.render import resolve_backend
        from adlift.viewer.app import ViewerApp
        from adlift.viewer.inputs import load_inputs
        from adlift.viewer.viser_compat import import_viser, viser_version

        config = self.config()
        import_viser()  # fail early, before loading scenes, when viser is missing
        resolve_backend(config.backend)
        inputs = load_inputs(self.inputs, raw=self.raw, cameras=self.cameras, edited=self.edited,
                             instruction=self.instruction, device=config.device)  # fmt: skip
        inputs.background = chosen_background(self.render, inputs.background)
        app = ViewerApp(inputs, config)
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
