"""``adlift protect``: add safeguard Gaussians to a 3DGS asset so instruction-driven edits fail.

Writes OUT/protected.ply (one standard 3DGS .ply in the published order), OUT/manifest.json, the
cameras (OUT/transforms.json) and OUT/preview.png; see :mod:`adlift.protect.output`.

The options are the library's: :class:`~adlift.protect.config.ProtectConfig` (``--eta``,
``--rounds``, ``--init``, ``--lr-sh``, ``--eot.samples``, ``loss:unet --loss.unet-mode sds``, ...)
and :class:`~adlift.render.options.RenderOptions` (``--width``, ``--backend``, ...), nested without
a prefix, so ``adlift protect --eta`` and ``ns-train adlift-protect --pipeline.model.protect.eta``
are one field with one default and help text.

Under ``torchrun --nproc-per-node=N $(which adlift) protect ...`` the N processes share the views of
every unit (:mod:`adlift.distributed`); rank 0 alone prints, shows progress and writes files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Optional

import tyro

from adlift.editors import EditorRef
from adlift.errors import AdLiftError
from adlift.io.formats import SCENE_FORMATS
from adlift.io.spz import SpzAxes
from adlift.protect.config import ProtectConfig
from adlift.render.options import RenderOptions


@dataclasses.dataclass
class ProtectCommand:
    """Protect a 3DGS .ply against an instruction-driven editor (Lifted PGD, or a baseline).

    The loss kind is a subcommand with its own options, e.g. `loss:unet --loss.unet-mode sds`
    (default: loss:encoder)."""

    scene: tyro.conf.Positional[Path]
    """The 3D Gaussian Splatting .ply to protect (never modified)."""

    instruction: str
    """The edit to protect against, e.g. "turn him into a clown"."""

    out: Path
    """Output directory (created if needed); protected.ply (or protected.<ext> in --format), manifest.json,
    transforms.json, preview.png."""

    cameras: str = "auto"
    """Training views: auto (the transforms.json next to the .ply if there is one, else orbit:32), a
    transforms.json / COLMAP model / 3DGS cameras.json, or `orbit:N[,...]`. Their novel (test) split
    is never optimised on and is measured separately."""

    editor: EditorRef = "ip2p"  # type: ignore[valid-type]
    """The editor to protect against (help text: adlift.editors.EDITORS)."""

    protect: Annotated[ProtectConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=ProtectConfig)
    """Protection settings (method, budget, schedule, safeguard, EOT, loss)."""

    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)
    """Render size, rasteriser, device and background."""

    save_safeguard: bool = False
    """Also write the safeguard Gaussians alone as OUT/safeguard.ply."""

    resume: bool = False
    """Continue an interrupted run from OUT/checkpoint.pt (without it, an old checkpoint is discarded)."""

    format: Optional[SCENE_FORMATS.literal()] = None  # type: ignore[valid-type]
    """Scene format of the protected asset, OUT/protected.<its extension> (default: the input's format,
    so a .spz input gives protected.spz); the manifest records it. Lossy formats quantise the
    protection too (docs/FORMATS.md)."""

    quantise_in_fit: bool = True
    """With a lossy --format (every one but ply): fit with that format's quantiser in the loop (its real codec,
    straight-through; round trip every --quantise-every optimiser steps), so the written file keeps the
    protection. --no-quantise-in-fit fits in float32 and lets the writer quantise. Either way the written file
    is decoded and measured (the manifest's export section)."""

    dist_timeout: float = 600.0
    """Under torchrun: seconds a rank waits for the others in one step before the run stops with an error
    (the first step waits for every rank to load the editor)."""

    spz_axes: SpzAxes = None
    """Axes of .spz files, read and written: rub (the SPZ spec, Niantic's and splat-transform's
    convention: y and z flipped against the .ply) or raw (axes as stored, like gaussforge and gsply).
    Default: $ADLIFT_SPZ_AXES, else rub."""

    def config(self) -> ProtectConfig:
        """The library config of this run: the protect options, the render options' backend and
        background, and OUT/checkpoint.pt."""
        return dataclasses.replace(self.protect, backend=self.render.backend, background=tuple(self.render.background),
                                   checkpoint=self.out / "checkpoint.pt")  # fmt: skip

    def camera_source(self) -> str:
        if self.cameras != "auto":
            return self.cameras
        beside = self.scene.parent / "transforms.json"
        return str(beside) if beside.is_file() else "orbit:32"

    def asset_format(self) -> str:
        """The scene format the protected asset is written in: --format, else the input's."""
        from adlift.io.formats import detect_scene_format

        return self.format or detect_scene_format(self.scene)

    def run(self) -> None:
        import torch

        from adlift import distributed

        problem = None
        try:
            self.render.validate()
            device = distributed.local_device(self.render.torch_device())
        except AdLiftError as e:
            if not distributed.launched():
                raise
            device, problem = torch.device("cpu"), e  # join the other ranks first, so that one of them reports it
        group = distributed.init_from_env(device, self.dist_timeout)
        try:
            self._run(device, group, problem)
        finally:
            distributed.shutdown()

    def _run(self, device, group, problem: AdLiftError | None) -> None:
        from adlift import distributed
        from adlift.attacks import AdversarialLoss, describe_loss, format_budget
        from adlift.editors import load_editor, untrained_note, warn_untrained
        from adlift.io.cameras import load_cameras
        from adlift.io.formats import read_scene
        from adlift.io.json_safe import to_jsonable
        from adlift.protect import protect
        from adlift.protect.asset_format import prepare_for_format
        from adlift.protect.output import protected_file_name, write_protection
        from adlift.protect.report import print_summary

        say = print if group.is_main else (lambda *args, **kwargs: None)
        with distributed.agreed(group, "reading the inputs"):
            if problem is not None:
                raise problem
            if not self.instruction.strip():
                raise AdLiftError("--instruction is empty; give the edit to protect against, e.g. 'turn him into a clown'")
            asset_format = self.asset_format()
            config = self.config().for_ranks(group.world_size)
            config.validate()
            target = self.out / protected_file_name(asset_format)
            if target.exists() and self.scene.exists() and os.path.samefile(target, self.scene):
                raise AdLiftError(f"refusing to overwrite the input file {self.scene}; choose another --out directory")
            scene = read_scene(self.scene, spz_axes=self.spz_axes).to(device)
            # Protect what the published file can hold, so writing it does not drop the protection.
            scene, config, format_notes = prepare_for_format(scene, config, asset_format, quantise=self.quantise_in_fit,
                                                             options={"spz_axes": self.spz_axes})  # fmt: skip
            source = self.camera_source()
            size = {"width": self.render.width, "height": self.render.height}
            train = load_cameras(source, scene=scene, split="train", **size)
            try:
                novel = load_cameras(source, scene=scene, split="novel", **size)
            except AdLiftError:
                novel = None  # too few views for a hold-out split: report training views only
            editor = load_editor(self.editor, device=device)
            loss = AdversarialLoss(editor.surface, self.instruction, config.loss, config.eot)
            if group.is_main:
                warn_untrained(editor)
                self.out.mkdir(parents=True, exist_ok=True)
                if config.checkpoint.exists() and not self.resume:
                    print(f"starting over: discarding {config.checkpoint} (pass --resume to continue it)", flush=True)
                    config.checkpoint.unlink()
                elif config.checkpoint.exists():
                    print(f"resuming from {config.checkpoint}", flush=True)
        if group.distributed:
            say(f"distributed over {group.describe()}: units of {config.view_batch} views, each rank making the "
                "targets of its share; rank 0 writes the outputs", flush=True)  # fmt: skip
        for note in format_notes:
            say(note, flush=True)
        say(
            f"protecting {scene.num_gaussians} Gaussians with {config.method}, loss "
            f"{describe_loss(config.loss, config.eot)}, eta {format_budget(config.eta)}, {len(train)} training views "
            f"({train.width}x{train.height})" + (f", {len(novel)} novel views" if novel is not None else ""),
            flush=True,
        )
        result = protect(scene, train.to(device), loss, config, novel_cameras=novel)
        if not group.is_main:
            return
        manifest = write_protection(
            self.out, result, raw=scene, raw_path=self.scene, train_cameras=train, novel_cameras=novel,
            instruction=self.instruction, editor_metadata=editor.metadata(), config=config, cameras_source=source,
            save_safeguard=self.save_safeguard, asset_format=asset_format, scene_options={"spz_axes": self.spz_axes},
            loss=loss,
        )  # fmt: skip
        config.checkpoint.unlink(missing_ok=True)
        print_summary(result.summary, export=to_jsonable(manifest.export) if manifest.export else None)
        print(f"wrote {target}, {self.out / 'manifest.json'} and {self.out / 'preview.png'}"
              + untrained_note(editor, "protection"))  # fmt: skip
