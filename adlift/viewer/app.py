"""The viser application: splats, frustums, the comparison panel and the edit controls, wired together.

    app = ViewerApp(load_inputs([Path("outputs/demo/protect")]), ViewerConfig(port=8080))
    url = app.start()          # returns at once; the server runs in background threads
    ...
    app.stop()

Threads: viser calls the camera and GUI callbacks from its own threads; they only record what
changed and wake the *panel thread*, which waits until the camera has been still for
``debounce`` seconds, renders the current view (raw, protected; cached per view) and pushes one
composed image to the GUI. Edits run in the :class:`~adlift.viewer.edits.EditWorker` thread, one job at
a time: 2D edits of the current view, or a DGE edit of the raw and protected scenes
(:mod:`~adlift.viewer.scene_edits`), whose results become extra scene variants and can fill the
panel's edit cells with renders of the edited scenes.

The panel follows the browser tab whose camera moved last (the viewer is meant for one user).
When the browser camera sits on a training or novel camera (after a click on its frustum), the
panel renders *that* camera exactly (its own intrinsics and aspect) and shows its metrics.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Annotated, Literal, Optional

import numpy as np
import tyro

from adlift.cameras import Cameras
from adlift.editors import EDITORS, editor_help
from adlift.editors.dge import NoCheckpointDGEConfig
from adlift.editors.untrained import untrained_banner, untrained_note
from adlift.errors import AdLiftError
from adlift.viewer.camera import BrowserCamera, camera_pose, quat_to_matrix, world_up
from adlift.viewer.compare import ViewRenderer
from adlift.viewer.edits import EditRequest, EditSettings, EditStatus, EditWorker, default_loader
from adlift.viewer.inputs import ViewerInputs
from adlift.viewer.metrics import metrics_table, view_summary
from adlift.viewer.panel import comparison_panel
from adlift.viewer.scene_edits import VARIANT_LABELS, SceneEditRequest, training_cameras

#: Frustum colours per camera split.
SPLIT_COLOURS = {"train": (40, 110, 220), "novel": (240, 140, 20), "orbit": (120, 120, 120)}

#: What the panel's edit cells show (the "Panel edits" menu): kind of edit -> menu label.
EDIT_SOURCES = {"2d": "2D edits of this view", "dge": "renders of the DGE-edited scenes"}

#: DGE fitting steps of the viewer's scene edits (DGE: 1000).
INTERACTIVE_FIT_STEPS = 300


@dataclasses.dataclass
class ViewerConfig:
    """Settings of :class:`ViewerApp` (``adlift view`` nests them as its options)."""

    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 serves other machines too (anyone who can reach it can use it)."""

    port: int = 8080
    """Port to serve on (the next free one if it is taken)."""

    render_width: tyro.conf.Suppress[int] = 256
    """Width in pixels of the server-side renders in the panel (``adlift view --width``; changeable in
    the browser)."""

    layout: Literal["grid", "row"] = "grid"
    """Panel layout: grid (two columns, fits the side panel) or row (five images side by side)."""

    gain: Annotated[Optional[float], tyro.conf.arg(metavar="FLOAT")] = None
    """Gain of the |protected - raw| heatmap (default 1/eta: the budget is full scale; else 32)."""

    editor: Annotated[Optional[str], tyro.conf.arg(metavar="NAME|HUB_ID|DIR", help=editor_help(
        "Default: the one the protection was made against, else ip2p (changeable in the browser)."))] = None
    """Editor of the on-demand edits (help: :func:`adlift.editors.editor_help`)."""

    steps: int = 20
    """Diffusion steps per edit (changeable in the browser)."""

    guidance_scale: Annotated[Optional[float], tyro.conf.arg(metavar="FLOAT")] = None
    """Text guidance of the on-demand edits; default: the editor's (InstructPix2Pix 7.5, mini 3.0)."""

    image_guidance_scale: float = 1.5
    """Image guidance of the on-demand edits."""

    seed: int = 0
    """Seed of the on-demand edits (changeable in the browser; raw and protected share it)."""

    debounce: tyro.conf.Suppress[float] = 0.15
    """Seconds the browser camera must be still before the panel is rendered."""

    points: bool = False
    """Draw the scenes as point clouds of the Gaussian means instead of splats (for huge scenes)."""

    backend: tyro.conf.Suppress[str] = "auto"
    """Rasteriser of the server-side renders (``adlift view --backend``)."""

    device: tyro.conf.Suppress[str] = "cpu"
    """Torch device of renders and edits (``adlift view --device``)."""

    show: Annotated[Optional[str], tyro.conf.arg(metavar="SCENE")] = None
    """Scene variant drawn first: raw, protected or an edited one (default: protected if given, else raw)."""

    panel_width: Annotated[Optional[int], tyro.conf.arg(metavar="PIXELS")] = 600
    """Width in pixels of the control panel holding the comparison (viser >= 1.1; 0.2.x: "large")."""

    dge: Annotated[NoCheckpointDGEConfig, tyro.conf.arg(name="dge")] = dataclasses.field(
        default_factory=lambda: NoCheckpointDGEConfig(fit_steps=INTERACTIVE_FIT_STEPS)
    )
    """DGE scene edits ("Edit scenes (DGE)"; editor, instruction, steps and seed come from the Edit folder):
    DGE's settings, for interactive use with 300 fitting steps instead of DGE's 1000 (each step is one
    render and backward pass of the scene: about 0.28 s for the 26k-Gaussian bust at 128 px on a CPU)."""

    dge_width: Annotated[int, tyro.conf.arg(metavar="PIXELS")] = 128
    """Width of the training views a DGE scene edit renders, edits and fits to (height keeps the aspect;
    the multi-view edit's cost grows with the pixels: 128 px is what benchmarks/dge.py measured)."""

    def validate(self) -> None:
        """One-line AdLiftError naming the option of a bad value."""
        from adlift.errors import AdLiftError

        if not 1 <= self.port <= 65535:
            raise AdLiftError(f"--port must be in 1..65535, got {self.port}")
        if not 16 <= self.render_width <= 4096:
            raise AdLiftError(f"--width must be in 16..4096, got {self.render_width}")
        if self.steps < 1:
            raise AdLiftError(f"--steps must be >= 1, got {self.steps}")
        if self.gain is not None and not self.gain > 0:
            raise AdLiftError(f"--gain must be positive, got {self.gain}")
        if self.debounce < 0:
            raise AdLiftError(f"debounce must be >= 0, got {self.debounce}")
        if not 16 <= self.dge_width <= 4096:
            raise AdLiftError(f"--dge-width must be in 16..4096, got {self.dge_width}")
        self.dge.validate()


@dataclasses.dataclass(frozen=True)
class CurrentView:
    """The view the panel shows: the browser camera, or a rig camera it sits on."""

    key: tuple
    camera: Cameras
    label: str
    record: dict | None = None


class ViewerApp:
    """One viser server showing one :class:`ViewerInputs`; ``editor_loader(reference, device)`` loads the
    editor of the edits (default :func:`~adlift.viewer.edits.default_loader`)."""

    def __init__(self, inputs: ViewerInputs, config: ViewerConfig | None = None, *, editor_loader=default_loader):
        self.inputs = inputs
        self.config = config or ViewerConfig()
        self.config.validate()
        #: The editor of the on-demand edits: the configured one, else the protection's, else ip2p.
        self.editor = self.config.editor or inputs.editor or "ip2p"
        if self.config.show is not None and self.config.show not in inputs.scenes:
            raise AdLiftError(f"no scene {self.config.show!r} to show; have {', '.join(inputs.scenes)}")
        center, radius = inputs.raw.center_and_radius()
        self.center = center.detach().cpu().double().numpy()
        self.radius = max(float(radius), 1e-6)
        self.up = world_up(list(inputs.cameras.values()))
        self.gain = self.config.gain or (1.0 / inputs.eta if inputs.eta else 32.0)
        rendered = {k: v for k, v in inputs.scenes.items() if k in ("raw", "protected")}
        self.renderer = ViewRenderer(rendered, background=inputs.background, backend=self.config.backend)
        self.worker = EditWorker(self._edit_status_changed, device=self.config.device, loader=editor_loader)
        #: Scene variants by label: the inputs' scenes, then the DGE-edited ones once made.
        self.scenes = dict(inputs.scenes)
        #: Which edits the panel's edit cells show: "2d" or "dge" (:data:`EDIT_SOURCES`).
        self.edit_source = "2d"
        self._dge_cameras: Cameras | None = None
        self._dge_renderer: tuple[tuple, ViewRenderer] | None = None
        self.server = None
        self.url: str | None = None
        self.splat_mode: str | None = None
        #: The last panel pushed to the browser [H, W, 3] uint8, and how many were pushed.
        self.panel: np.ndarray | None = None
        self.panel_count = 0
        self.panel_pushed = threading.Condition()
        self.current: CurrentView | None = None
        self._camera: BrowserCamera | None = None
        self._camera_time = 0.0
        self._jump_time = -1e9
        self._pinned: tuple[str, int] | None = None
        self._at: tuple[str, int] | None = None
        self._last_progress_refresh = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._variants: dict[str, object] = {}
        self._shown: str | None = None
        self._drawn = 0
        self._variants_lock = threading.RLock()
        self._frustums: dict[tuple[str, int], object] = {}
        self._show_frustums = True
        self._gui: dict[str, object] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start the server and the panel thread; returns the URL to open."""
        from adlift.viewer.viser_compat import import_viser, set_initial_camera

        viser = import_viser()
        self.server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=False)
        port = self.server.get_port()
        shown_host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        self.url = f"http://{shown_host}:{port}"
        try:
            self.server.scene.set_up_direction(tuple(float(v) for v in self.up))
            first = self._first_camera()
            if first is not None:
                pose = camera_pose(*first)
                set_initial_camera(self.server, position=pose.position, look_at=self._look_at(pose), up=self.up,
                                   fov=pose.fov)  # fmt: skip
            self._build_gui()
            self._build_scene()
            self.server.on_client_connect(self._client_connected)
        except BaseException:
            self.server.stop()
            raise
        self._thread = threading.Thread(target=self._panel_loop, name="adlift-view-panel", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.server is not None:
            self.server.stop()

    def wait_for_panel(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` panels were pushed to the browser (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self.panel_pushed:
            while self.panel_count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.panel_pushed.wait(left)
        return True

    # ------------------------------------------------------------------ scene
    def _first_camera(self) -> tuple[Cameras, int] | None:
        for cams in self.inputs.cameras.values():
            if len(cams):
                return cams, 0
        return None

    def _look_at(self, pose: BrowserCamera) -> np.ndarray:
        """A point ahead of ``pose`` at the depth of the scene centre (the orbit pivot)."""
        forward = quat_to_matrix(pose.wxyz)[:, 2]
        depth = float((self.center - np.asarray(pose.position)) @ forward)
        return np.asarray(pose.position) + forward * max(depth, 0.1 * self.radius)

    def _build_scene(self) -> None:
        from adlift.viewer.viser_compat import call_with_supported

        names = list(self.scenes)
        first = self.config.show or ("protected" if "protected" in names else "raw")
        self._show_variant(first)
        distances = [np.linalg.norm(np.asarray(camera_pose(c, i).position) - self.center)
                     for _, i, c in self.inputs.all_cameras()]  # fmt: skip
        scale = 0.06 * (float(np.median(distances)) if distances else 2 * self.radius)
        for split, i, cams in self.inputs.all_cameras():
            pose = camera_pose(cams, i)
            handle = call_with_supported(
                self.server.scene.add_camera_frustum, f"/cameras/{split}/{cams.names[i]}", fov=pose.fov,
                aspect=pose.aspect, scale=scale, color=SPLIT_COLOURS.get(split, (120, 120, 120)), wxyz=pose.wxyz,
                position=pose.position, thickness=2.0, thickness_units="screen",
            )  # fmt: skip
            handle.on_click(lambda event, split=split, i=i: self.jump(event.client, split, i))
            self._frustums[(split, i)] = handle

    def _show_variant(self, name: str) -> None:
        from adlift.viewer.viser_compat import add_scene

        with self._variants_lock:
            if name not in self.scenes:
                return
            if name not in self._variants:
                self._drawn += 1  # a fresh scene-tree name for every drawing (replaced variants are removed)
                handle, mode = add_scene(self.server, f"/scene/{self._drawn}", self.scenes[name],
                                         points=self.config.points)  # fmt: skip
                self._variants[name] = handle
                self.splat_mode = self.splat_mode or mode
            self._shown = name
            for other, handle in self._variants.items():
                handle.visible = other == name

    def _add_dge_variants(self, scenes: dict) -> None:
        """Make the DGE-edited ``scenes`` (name -> scene) the variants :data:`VARIANT_LABELS` names, replacing
        older ones (redrawn now if shown), and list them in the scene switch."""
        with self._variants_lock:
            for name, scene in scenes.items():
                label = VARIANT_LABELS[name]
                if self.scenes.get(label) is scene:
                    continue
                self.scenes[label] = scene
                old = self._variants.pop(label, None)
                if old is not None:
                    old.remove()
                    if self._shown == label:
                        self._show_variant(label)
            pick = self._gui.get("scene")
            if pick is not None and tuple(pick.options) != tuple(self.scenes):
                pick.options = list(self.scenes)

    # ------------------------------------------------------------------ GUI
    def _build_gui(self) -> None:
        from adlift.viewer.viser_compat import GuiImage

        gui = self.server.gui
        gui.configure_theme(control_layout="fixed", control_width="large", show_logo=False, show_share_button=False)
        main_panel = getattr(gui, "main_panel", None)  # viser >= 1.1: a resizable dock
        if main_panel is not None and self.config.panel_width:
            main_panel.set_width(int(self.config.panel_width))
        inp = self.inputs
        prot = f" · protected `{inp.paths['protected'].name}`" if "protected" in inp.paths else ""
        eta = f" · η = {inp.eta * 255:.3g}/255" if inp.eta else ""
        head = f"**AdLift** · raw `{inp.paths['raw'].name}`{prot}{eta}"
        if inp.untrained:
            head += f"\n\n⚠ {untrained_banner(inp.editor_metadata, 'protection')}"
        gui.add_markdown(head)
        scene_pick = gui.add_dropdown("Scene", options=list(self.scenes),
                                      initial_value=self.config.show or ("protected" if inp.protected else "raw"))  # fmt: skip
        scene_pick.on_update(lambda _: self._show_variant(scene_pick.value))
        self._gui["scene"] = scene_pick

        placeholder = np.full((64, 128, 3), 40, dtype=np.uint8)
        self._gui["view"] = gui.add_markdown("**waiting for the browser camera**")
        self._gui["panel"] = GuiImage(gui, placeholder, label=None)

        with gui.add_folder("Edit"):
            options = list(dict.fromkeys([self.editor, *EDITORS.names()]))
            self._gui["editor"] = gui.add_dropdown("Editor", options=options, initial_value=self.editor)
            self._gui["instruction"] = gui.add_text("Instruction", initial_value=inp.instruction)
            self._gui["steps"] = gui.add_slider("Steps", min=1, max=50, step=1, initial_value=self.config.steps)
            self._gui["seed"] = gui.add_number("Seed", initial_value=self.config.seed, step=1)
            button = gui.add_button("Edit raw and protected")
            button.on_click(lambda _: self.request_edit())
            self._gui["button"] = button
            dge_button = gui.add_button("Edit scenes (DGE)")
            dge_button.on_click(lambda _: self.request_dge_edit())
            self._gui["dge_button"] = dge_button
            cancel = gui.add_button("Cancel edit")
            cancel.on_click(lambda _: self.worker.cancel())
            cancel.disabled = True
            self._gui["cancel"] = cancel
            source = gui.add_dropdown("Panel edits", options=list(EDIT_SOURCES.values()),
                                      initial_value=EDIT_SOURCES[self.edit_source])  # fmt: skip
            source.on_update(lambda _: self._set_edit_source(source.value))
            self._gui["edit_source"] = source
            self._gui["progress"] = gui.add_progress_bar(0.0, animated=False)
            self._gui["status"] = gui.add_markdown(
                "'Edit raw and protected' runs InstructPix2Pix on the two renders above; 'Edit scenes (DGE)' "
                "edits both scenes DGE-style from the training views (minutes)"
            )
            for name in ("editor", "instruction", "steps", "seed"):
                self._gui[name].on_update(lambda _: self._request_refresh())

        with gui.add_folder("Comparison"):
            gain = gui.add_slider("|diff| gain", min=1.0, max=256.0, step=1.0, initial_value=float(round(self.gain)))
            gain.on_update(lambda _: self._set_gain(gain.value))
            w0 = int(self.config.render_width)
            width = gui.add_slider("Render width", min=min(64, w0), max=max(1024, w0), step=16, initial_value=w0)
            width.on_update(lambda _: self._set_width(width.value))
            show_cams = gui.add_checkbox("Show cameras", initial_value=True)
            show_cams.on_update(lambda _: self._show_cameras(show_cams.value))

        if inp.views:
            with gui.add_folder("Per-view metrics", expand_by_default=False):
                gui.add_markdown(metrics_table(inp.views, inp.metrics_source))

    def _set_edit_source(self, label: str) -> None:
        self.edit_source = next((k for k, v in EDIT_SOURCES.items() if v == label), "2d")
        self._request_refresh()

    def _set_gain(self, value: float) -> None:
        self.gain = max(float(value), 1e-6)
        self._request_refresh()

    def _set_width(self, value: int) -> None:
        self.config.render_width = int(value)
        self._request_refresh()

    def _show_cameras(self, visible: bool) -> None:
        self._show_frustums = bool(visible)
        self._update_frustums()

    def _update_frustums(self) -> None:
        """Show the frustums (if switched on), except the one the browser camera sits in."""
        for key, handle in self._frustums.items():
            visible = self._show_frustums and key != self._at
            if handle.visible != visible:
                handle.visible = visible

    def edit_settings(self) -> EditSettings:
        g = self._gui
        return EditSettings(editor=str(g["editor"].value), instruction=str(g["instruction"].value),
                            steps=int(g["steps"].value), guidance_scale=self.config.guidance_scale,
                            image_guidance_scale=self.config.image_guidance_scale, seed=int(g["seed"].value))  # fmt: skip

    # ------------------------------------------------------------------ cameras
    def _client_connected(self, client) -> None:
        client.camera.on_update(self._camera_moved)
        first = self._first_camera()
        if first is not None:
            split = next(s for s, c in self.inputs.cameras.items() if c is first[0])
            self.jump(client, split, first[1])
        else:
            self._camera_moved(client.camera)

    def jump(self, client, split: str, index: int) -> None:
        """Move ``client``'s camera onto rig camera ``index`` of ``split`` (a frustum click)."""
        pose = camera_pose(self.inputs.cameras[split], index)
        self._pinned = self._at = (split, index)
        self._update_frustums()
        with client.atomic():
            client.camera.fov = pose.fov
            client.camera.position = pose.position
            client.camera.look_at = tuple(self._look_at(pose))
            client.camera.up_direction = tuple(float(v) for v in self.up)
        self._camera = dataclasses.replace(pose, aspect=float(client.camera.aspect) or pose.aspect)
        self._camera_time = time.monotonic()
        self._jump_time = self._camera_time
        self._wake.set()

    def _camera_moved(self, camera) -> None:
        try:
            cam = BrowserCamera.from_handle(camera)
            cam.validate()
        except Exception:  # noqa: BLE001 - a half-initialised camera: wait for the next message
            return
        if time.monotonic() - self._jump_time < 1.0 and self._pinned_at(cam) is None:
            return  # the pose from before a jump, reported after it
        self._camera = cam
        self._camera_time = time.monotonic()
        self._wake.set()

    def _pinned_at(self, cam: BrowserCamera) -> tuple[str, int] | None:
        """The rig camera ``cam`` sits on: the one jumped to last, if ``cam`` is within 1 % of the
        scene size and 1 degree of it (the browser may report an older pose first, so the jump
        target is kept until the next jump)."""
        if self._pinned is None:
            return None
        split, index = self._pinned
        pose = camera_pose(self.inputs.cameras[split], index)
        dist = float(np.linalg.norm(np.asarray(cam.position) - np.asarray(pose.position)))
        dot = abs(float(np.dot(np.asarray(cam.wxyz) / np.linalg.norm(cam.wxyz), np.asarray(pose.wxyz))))
        angle = 2 * math.degrees(math.acos(min(1.0, dot)))
        return self._pinned if dist <= 0.01 * self.radius and angle <= 1.0 else None

    def current_view(self) -> CurrentView | None:
        cam = self._camera
        if cam is None:
            return None
        width = int(self.config.render_width)
        pinned = self._pinned_at(cam)
        if pinned != self._at:
            self._at = pinned
            self._update_frustums()
        if pinned is not None:
            split, index = pinned
            rig = self.inputs.cameras[split]
            name = rig.names[index]
            return CurrentView(("rig", split, index, width), rig[index].resized(width=width), f"{split} view {name}",
                               self.inputs.view_metrics(name))  # fmt: skip
        return CurrentView(("browser", cam.key(self.radius), width), cam.to_cameras(width), "browser camera")

    # ------------------------------------------------------------------ edits
    def dge_request(self) -> SceneEditRequest:
        """A DGE edit of the raw and protected scenes with the Edit folder's settings (AdLiftError without cameras)."""
        if self._dge_cameras is None:
            self._dge_cameras = training_cameras(self.inputs.cameras, self.config.dge_width)
        scenes = {n: self.inputs.scenes[n] for n in VARIANT_LABELS if n in self.inputs.scenes}
        return SceneEditRequest(scenes, self._dge_cameras, self.edit_settings(), self.config.dge,
                                background=self.inputs.background, backend=self.config.backend)  # fmt: skip

    def request_dge_edit(self) -> bool:
        """DGE-edit the raw and protected scenes in the worker (what "Edit scenes (DGE)" does); False if not
        started (one is running, the result is cached and shown at once, or the request is impossible)."""
        try:
            request = self.dge_request()
        except AdLiftError as e:
            self._gui["status"].content = f"**error:** {e}"
            return False
        started = self.worker.submit(request)
        if not started and self.worker.busy:
            self._gui["status"].content = "an edit is running; wait for it to finish or cancel it"
        return started

    def request_edit(self) -> bool:
        """Edit the current view's raw and protected renders (what the button does); False if not started."""
        view = self.current
        if view is None:
            self._gui["status"].content = "no view yet: wait for the browser to connect"
            return False
        images = self.renderer.render(view.key, view.camera)
        started = self.worker.submit(EditRequest(view.key, images, self.edit_settings()))
        if not started and self.worker.busy:
            self._gui["status"].content = "an edit is running; wait for it to finish or cancel it"
        return started

    def _edit_status_changed(self, status: EditStatus) -> None:
        g = self._gui
        running = status.state in ("loading", "editing")
        if status.state == "done" and status.kind == "dge":
            scenes = self.worker.results.get(status.job_key)
            if scenes is not None:
                self._add_dge_variants(scenes)
                self.edit_source = "dge"
                g["edit_source"].value = EDIT_SOURCES["dge"]
        g["progress"].value = 100.0 * status.fraction
        g["progress"].animated = running
        note = untrained_note(status.untrained, "edit")
        prefix = {"error": "**error:** ", "done": "done: ", "cancelled": "**cancelled:** "}.get(status.state, "")
        g["status"].content = prefix + status.message + (note if status.state == "done" else "")
        g["button"].disabled = g["dge_button"].disabled = running
        g["cancel"].disabled = not running
        now = time.monotonic()
        if status.state != "editing" or now - self._last_progress_refresh > 0.5:
            self._last_progress_refresh = now
            self._request_refresh()

    # ------------------------------------------------------------------ panel
    def _request_refresh(self) -> None:
        self._wake.set()

    def _panel_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=0.5)
            if self._stopping.is_set():
                break
            if not self._wake.is_set():
                continue
            self._wake.clear()
            while time.monotonic() - self._camera_time < self.config.debounce and not self._stopping.is_set():
                time.sleep(0.03)
            try:
                self.refresh()
            except Exception as e:  # noqa: BLE001 - keep serving; show the problem in the GUI
                self._gui["view"].content = f"**render failed:** {e.__class__.__name__}: {e}"

    def refresh(self) -> np.ndarray | None:
        """Render the current view, compose the panel, push it to the browser; returns the panel."""
        view = self.current_view()
        if view is None:
            return None
        self.current = view
        images = self.renderer.render(view.key, view.camera)
        settings = self.edit_settings()
        edits, note, label = self._dge_cells(view) if self.edit_source == "dge" else self._2d_cells(view, settings)
        panel = comparison_panel(
            images["raw"], images.get("protected"),
            edits.get("raw") if edits else None, edits.get("protected") if edits else None,
            gain=self.gain, edit_note=note, edit_label=label, layout=self.config.layout,
        )  # fmt: skip
        self._gui["view"].content = view_summary(view.label, view.record)
        self._gui["panel"].update(panel)
        with self.panel_pushed:
            self.panel = panel
            self.panel_count += 1
            self.panel_pushed.notify_all()
        return panel

    def _busy_note(self, kind: str, view_key=None) -> str | None:
        """The panel note while the worker runs: this job's progress, or what else it is doing; None when idle."""
        status = self.worker.status
        if not self.worker.busy:
            return None
        if status.kind == kind and (kind == "dge" or status.view_key == view_key):
            return f"{status.message} ({100 * status.fraction:.0f} %)"
        if status.kind == "dge":
            return "the editor is busy with the DGE scene edit"
        return "the editor is busy with another view"

    def _2d_cells(self, view: CurrentView, settings: EditSettings) -> tuple[dict | None, str, str]:
        """(edits of the view's raw and protected renders or None, placeholder note, label) for the edit cells."""
        edits = self.worker.result(view.key, settings)
        note = "" if edits is not None else self._busy_note("2d", view.key) or "press 'Edit raw and protected'"
        return edits, note, f"edit[{settings.editor}]"

    def _dge_cells(self, view: CurrentView) -> tuple[dict | None, str, str]:
        """(renders of the DGE-edited scenes from the view or None, placeholder note, label) for the edit cells."""
        try:
            request = self.dge_request()
        except AdLiftError as e:
            return None, str(e), "dge"
        key = request.cache_key()
        scenes = self.worker.results.get(key)
        label = f"dge[{request.settings.editor}]"
        if scenes is None:
            return None, self._busy_note("dge") or "press 'Edit scenes (DGE)'", label
        if self._dge_renderer is None or self._dge_renderer[0] != key:
            self._dge_renderer = (key, ViewRenderer(scenes, background=self.inputs.background,
                                                    backend=self.config.backend))  # fmt: skip
        return self._dge_renderer[1].render(view.key, view.camera), "", label
