"""``adlift edit``: edit a 3DGS asset with an instruction, as an attacker would.

``--mode 2d`` renders the views and edits each with InstructPix2Pix; ``--mode 3d`` runs the
Instruct-GS2GS-style iterative dataset update on the Gaussians and writes the edited .ply;
``--mode dge`` edits the views jointly and consistently (DGE: key views with multi-view attention,
features injected along epipolar correspondences) and fits the Gaussians to them once.
All write what :func:`adlift.editors.outputs.write_edit_outputs` writes (original/, edited/,
before_after.png, edit.json; 3d and dge also targets/ and edited.ply).

The options are the library's: :class:`~adlift.editors.scene_edit.SceneEditConfig` (``--steps``,
``--guidance-scale``, ``--rounds``, ``--gs-steps``, ...; the 2d edit uses its diffusion settings) and
:class:`~adlift.render.options.RenderOptions` (``--width``, ``--backend``, ...), nested without a
prefix, so ``adlift edit --rounds`` and ``ns-train adlift-edit --pipeline.model.edit.rounds`` are one
field with one default and help text; DGE's own settings are :class:`~adlift.editors.dge.DGEConfig`
under ``--dge.*``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Annotated, Literal

import tyro

from adlift.editors import EditorRef, SceneEditConfig
from adlift.editors.dge import DGEConfig
from adlift.errors import AdLiftError
from adlift.render.options import RenderOptions


@dataclasses.dataclass
class EditCommand:
    """Edit a 3DGS scene with an instruction: 2D (InstructPix2Pix on its renders), 3D (Instruct-GS2GS-style) or
    DGE (consistent multi-view edit, then one direct fit of the Gaussians)."""

    scene: tyro.conf.Positional[Path]
    """Path of the 3D Gaussian Splatting .ply to edit (never overwritten)."""

    instruction: str
    """The editing instruction, e.g. "turn him into a clown"."""

    out: Path
    """Output directory (created if needed); files of the same names are replaced."""

    mode: Literal["2d", "3d", "dge"] = "2d"
    """2d: edit each rendered view independently; 3d: edit the Gaussians (iterative dataset update);
    dge: edit all views jointly and consistently, then fit the Gaussians to them (Direct Gaussian Editor)."""

    editor: EditorRef = "ip2p"  # type: ignore[valid-type]
    """The editor: a name registered in adlift.editors.EDITORS, a hub id or a local directory (the help
    text lists the names)."""

    cameras: str = "orbit:8"
    """Camera file or spec: a nerfstudio transforms.json (or its directory), a COLMAP sparse model
    directory, a 3DGS cameras.json, or `orbit:N[,elev=MIN:MAX,radius=R,fov=DEG,size=WxH]`. In 3d and dge
    modes these are the training views."""

    split: Literal["all", "train", "novel"] = "all"
    """Which views of a camera file to use (train/novel split stored with the cameras)."""

    edit: Annotated[SceneEditConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=SceneEditConfig)
    """Edit settings (2d uses steps, guidance, seed and batch size; 3d all of them; dge all but rounds,
    gs-steps, t-lower and t-upper)."""

    dge: Annotated[DGEConfig, tyro.conf.arg(name="dge")] = dataclasses.field(default_factory=DGEConfig)
    """dge: DGE's own settings (key views, correspondence matching, noise level, fitting steps)."""

    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)
    """Render size, rasteriser, device and background."""

    resume: bool = False
    """3d, dge: continue an interrupted run from OUT/checkpoint.pt (3d: written after every round; dge: after
    the multi-view edit and every dge.checkpoint-every fitting steps); without it an old checkpoint is discarded."""

    def config(self) -> SceneEditConfig:
        """The library config these options describe (backend and background from the render options)."""
        return dataclasses.replace(self.edit, backend=self.render.backend, background=tuple(self.render.background),
                                   checkpoint=self.out / "checkpoint.pt" if self.mode != "2d" else None)  # fmt: skip

    def run(self) -> None:
        from rich.console import Console

        from adlift.editors import load_editor, untrained_note, warn_untrained, write_edit_outputs
        from adlift.io.cameras import load_cameras
        from adlift.io.formats import read_scene

        config = self.config()
        config.validate()
        self.dge.validate()
        self.render.validate()
        if not self.instruction.strip():
            raise AdLiftError("--instruction is empty; say what the edit should do, e.g. 'turn him into a clown'")
        ply_path = self.out / "edited.ply"
        if self.mode != "2d" and ply_path.exists() and self.scene.exists() and os.path.samefile(ply_path, self.scene):
            raise AdLiftError(f"refusing to overwrite the input file {self.scene}; choose another --out directory")
        device = self.render.torch_device()
        scene = read_scene(self.scene).to(device)
        cameras = load_cameras(self.cameras, scene=scene, split=self.split, width=self.render.width,
                               height=self.render.height)  # fmt: skip
        if len(cameras) == 0:
            raise AdLiftError(f"no cameras selected from {self.cameras!r} (split {self.split!r})")
        cameras = cameras.to(device)
        editor = load_editor(self.editor, device=device)
        warn_untrained(editor)  # the first line a user sees
        console = Console(highlight=False, markup=False)  # instructions and paths are shown as typed
        self.out.mkdir(parents=True, exist_ok=True)
        tic = time.perf_counter()
        guidance = editor.default_guidance(self.mode) if config.guidance_scale is None else config.guidance_scale
        console.print(_plan_table(self, editor, cameras, guidance))
        if self.mode == "2d":
            originals, edited, extra = self._run_2d(scene, cameras, editor, config, guidance)
        elif self.mode == "3d":
            originals, edited, extra = self._run_3d(scene, cameras, editor, config, console)
        else:
            originals, edited, extra = self._run_dge(scene, cameras, editor, config, console)
        record = {
            "scene": str(self.scene),
            "cameras": self.cameras,
            "split": self.split,
            "steps": config.steps,
            "guidance_scale": guidance,
            "image_guidance_scale": config.image_guidance_scale,
            "seed": config.seed,
            "batch_size": config.batch_size,
            **extra.pop("record", {}),
            "seconds": round(time.perf_counter() - tic, 3),
        }
        write_edit_outputs(self.out, instruction=self.instruction, mode=self.mode, editor_metadata=editor.metadata(),
                           names=list(cameras.names), originals=originals, edited=edited, record=record,
                           protect=(self.scene,), **extra)  # fmt: skip
        if self.mode != "2d":
            config.checkpoint.unlink(missing_ok=True)  # the run is complete
        written = "edited.ply, " if self.mode != "2d" else ""
        console.print(f"wrote {written}original/, edited/, before_after.png and edit.json into {self.out}"
                      + untrained_note(editor, "edit"), soft_wrap=True)  # fmt: skip

    # ------------------------------------------------------------------ 2d
    def _run_2d(self, scene, cameras, editor, config: SceneEditConfig, guidance: float):
        from adlift.render import render_images

        originals = render_images(scene, cameras, backend=self.render.backend, background=self.render.background,
                                  progress="rendering views").cpu()  # fmt: skip
        edited = editor.edit(originals, self.instruction, steps=config.steps, guidance_scale=guidance,
                             image_guidance_scale=config.image_guidance_scale, seed=config.seed,
                             batch_size=config.batch_size, progress=True)  # fmt: skip
        return originals, edited, {}

    # ------------------------------------------------------------------ 3d
    def _checkpoint(self, config: SceneEditConfig, console) -> None:
        """Discard an old checkpoint unless --resume (the edit loads it safely and checks it belongs to this run)."""
        checkpoint = config.checkpoint
        if checkpoint.exists() and not self.resume:
            console.print(f"starting over: discarding {checkpoint} (pass --resume to continue it)")
            checkpoint.unlink()
        elif checkpoint.exists():
            console.print(f"resuming from {checkpoint}")

    def _run_3d(self, scene, cameras, editor, config: SceneEditConfig, console):
        from adlift.editors import edit_scene
        from adlift.render import render_images

        self._checkpoint(config, console)
        result = edit_scene(scene, cameras, editor, self.instruction, config)
        rendered = render_images(result.scene, cameras, backend=self.render.backend,
                                 background=self.render.background, progress="rendering edited scene").cpu()  # fmt: skip
        console.print(_history_table(result.history, config.gs_steps))
        record = {"config": config, "history": result.history}
        return result.originals, rendered, {"scene": result.scene, "targets": result.targets, "record": record}

    # ------------------------------------------------------------------ dge
    def _run_dge(self, scene, cameras, editor, config: SceneEditConfig, console):
        from adlift.editors.dge import edit_scene_dge
        from adlift.render import render_images

        self._checkpoint(config, console)
        result = edit_scene_dge(scene, cameras, editor, self.instruction, self.dge, config)
        rendered = render_images(result.scene, cameras, backend=self.render.backend,
                                 background=self.render.background, progress="rendering edited scene").cpu()  # fmt: skip
        (h,) = result.history
        keys = [cameras.names[i] for i in result.key_views]
        console.print(f"DGE: multi-view edit {h['edit_seconds']:.1f} s (key views {', '.join(keys)}); fit "
                      f"{h['fit_steps']} steps {h['fit_seconds']:.1f} s, photometric loss to the edited views "
                      f"{h['loss_before_fit']:.4f} -> {h['loss_after_fit']:.4f}", soft_wrap=True)  # fmt: skip
        record = {"config": config, "dge": self.dge, "key_views": keys, "history": result.history}
        return result.originals, rendered, {"scene": result.scene, "targets": result.targets, "record": record}


def _plan_table(cmd: EditCommand, editor, cameras, guidance: float):
    """What is about to run, as a rich table."""
    from rich.table import Table

    table = Table(title=f"adlift edit --mode {cmd.mode}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("instruction", cmd.instruction),
        ("editor", f"{editor.name} ({editor.model})" + (" - untrained test model" if editor.untrained else "")),
        ("views", f"{len(cameras)} ({cameras.width}x{cameras.height}) from {cmd.cameras}"),
        ("diffusion", f"{cmd.edit.steps} steps, guidance {guidance:g}, image guidance {cmd.edit.image_guidance_scale:g}, "
                      f"seed {cmd.edit.seed}"),
    ]  # fmt: skip
    if cmd.mode == "3d":
        rows.append(("fitting", f"{cmd.edit.rounds} round(s) x {cmd.edit.gs_steps} Gaussian steps"))
    if cmd.mode == "dge":
        d = cmd.dge
        rows.append(("key views", f"{d.num_key_views(len(cameras))} of {len(cameras)}, {d.matching} matching, "
                                  f"noise {d.t_start:g} T"))  # fmt: skip
        rows.append(("fitting", f"{d.fit_steps} Gaussian steps to the edited views"))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _history_table(history: list[dict], gs_steps: int):
    """Per-round loss to the edited targets before and after fitting, as a rich table."""
    from rich.table import Table

    table = Table(title=f"3D edit: photometric loss to the edited targets ({gs_steps} steps per round)",
                  title_justify="left")  # fmt: skip
    for col in ("round", "before fit", "after fit", "seconds"):
        table.add_column(col, justify="right")
    for h in history:
        table.add_row(str(h["round"]), f"{h['loss_before_fit']:.4f}", f"{h['loss_after_fit']:.4f}",
                      f"{h.get('seconds', float('nan')):.1f}")  # fmt: skip
    return table
