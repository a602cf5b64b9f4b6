"""The interactive browser viewer (``adlift view``): raw vs protected vs edits, on a viser server.

    from adlift.viewer import ViewerApp, ViewerConfig, load_inputs
    app = ViewerApp(load_inputs(["outputs/demo/protect"]), ViewerConfig(port=8080))
    print(app.start())   # the URL; the server runs in background threads until app.stop()

Modules, one job each: :mod:`~adlift.viewer.inputs` (what to show, from OUTDIR or .ply files),
:mod:`~adlift.viewer.camera` (browser camera <-> :class:`~adlift.cameras.Cameras`),
:mod:`~adlift.viewer.compare` (server-side renders, cached per view),
:mod:`~adlift.viewer.panel` (the labelled comparison image), :mod:`~adlift.viewer.edits`
(InstructPix2Pix on demand in a thread, with progress), :mod:`~adlift.viewer.metrics`
(per-view metrics as markdown), :mod:`~adlift.viewer.viser_compat` (viser 0.2.7 vs 1.x) and
:mod:`~adlift.viewer.app` (the GUI wiring). viser is imported only when a server starts.
"""

from adlift.viewer.app import ViewerApp, ViewerConfig
from adlift.viewer.camera import BrowserCamera, camera_pose
from adlift.viewer.inputs import ViewerInputs, load_inputs
from adlift.viewer.panel import comparison_panel

__all__ = ["BrowserCamera", "ViewerApp", "ViewerConfig", "ViewerInputs", "camera_pose", "comparison_panel",
           "load_inputs"]
