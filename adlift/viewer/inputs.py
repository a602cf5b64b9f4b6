"""What the viewer shows, resolved from the command line: scenes, cameras, instruction, metrics.

``adlift view`` accepts

* ``OUTDIR`` written by ``adlift protect`` (protected.ply, manifest.json naming the raw scene,
  transforms.json, optionally evaluation/report.json from ``adlift evaluate``),
* the ``evaluation`` directory written by ``adlift evaluate`` (its report.json names the scenes),
* ``RAW.ply`` alone, or ``RAW.ply PROTECTED.ply`` (cameras: the transforms.json beside the raw
  .ply, else an orbit around the scene).

Everything a user can get wrong (a missing file, a manifest that is not one, a changed raw scene)
raises :class:`~adlift.errors.AdLiftError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from adlift.cameras import Cameras
from adlift.errors import AdLiftError
from adlift.evaluate.inputs import editor_reference, locate_raw_scene, recorded_background
from adlift.io.json_safe import read_json_object
from adlift.protect.manifest import MANIFEST_FILE, Manifest
from adlift.scene import GaussianScene

#: Camera rig used when a raw .ply comes without a transforms.json beside it.
FALLBACK_CAMERAS = "orbit:16"


@dataclasses.dataclass
class ViewerInputs:
    """Everything the viewer displays; only ``scenes["raw"]`` is required."""

    scenes: dict[str, GaussianScene]
    """Variants by label, in display order: "raw", "protected" (if any), then edited scenes."""
    paths: dict[str, Path]
    """The .ply each variant was read from."""
    cameras: dict[str, Cameras]
    """Camera rigs by split ("train", "novel"; "orbit" when made up around the scene)."""
    instruction: str = ""
    """The edit to try (the manifest's or the report's instruction)."""
    editor: str | None = None
    """The editor reference the protection was made against (tiny, ip2p, a hub id or a dir)."""
    eta: float | None = None
    """The protection's L-inf budget in [0, 1] (None when unknown)."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour the protection was computed with."""
    views: list[dict] = dataclasses.field(default_factory=list)
    """Per-view metrics: report.json's views, else manifest.json's (each has name and split)."""
    metrics_source: str | None = None
    """The file ``views`` came from."""
    editor_metadata: dict = dataclasses.field(default_factory=dict)
    """The metadata of the editor the protection was made against (manifest.json / report.json)."""

    @property
    def raw(self) -> GaussianScene:
        return self.scenes["raw"]

    @property
    def untrained(self) -> bool:
        """The protection was made against an untrained test model."""
        from adlift.editors.untrained import is_untrained

        return bool(self.editor_metadata) and is_untrained(self.editor_metadata)

    @property
    def protected(self) -> GaussianScene | None:
        return self.scenes.get("protected")

    def all_cameras(self) -> list[tuple[str, int, Cameras]]:
        """(split, index within split, rig) for every camera, training views first."""
        return [(split, i, cams) for split, cams in self.cameras.items() for i in range(len(cams))]

    def view_metrics(self, name: str) -> dict | None:
        """The metrics record of the view called ``name``, if any."""
        return next((v for v in self.views if v.get("name") == name), None)


def _existing(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def _budget(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else None


def _read_scene(path: Path, device: torch.device) -> GaussianScene:
    from adlift.io.formats import read_scene

    if not path.exists():
        raise AdLiftError(f"{path}: no such file")
    if path.is_dir():
        raise AdLiftError(f"{path}: is a directory, expected a 3DGS .ply")
    return read_scene(path).to(device)


def _load_rigs(source: str | Path, raw: GaussianScene) -> dict[str, Cameras]:
    """Train and novel cameras of a camera file (the novel split may be absent); "orbit" for a spec."""
    from adlift.io.cameras import is_camera_spec, load_cameras

    if is_camera_spec(str(source)):
        return {"orbit": load_cameras(str(source), scene=raw, split="all")}
    rigs = {"train": load_cameras(source, scene=raw, split="train")}
    try:
        rigs["novel"] = load_cameras(source, scene=raw, split="novel")
    except AdLiftError:
        pass
    return rigs


def load_inputs(
    paths: tuple[Path, ...] | list[Path],
    *,
    raw: Path | None = None,
    cameras: str | None = None,
    edited: tuple[Path, ...] = (),
    instruction: str | None = None,
    device: torch.device | str = "cpu",
) -> ViewerInputs:
    """Resolve the command line's positional ``paths`` (see the module docstring) and options."""
    device = torch.device(device)
    paths = [Path(p) for p in paths]
    if not 1 <= len(paths) <= 2:
        raise AdLiftError("give OUTDIR (from adlift protect or evaluate), RAW.ply, or RAW.ply PROTECTED.ply")
    first = paths[0]
    if not first.exists():
        raise AdLiftError(f"{first}: no such file or directory")
    if first.is_dir():
        if len(paths) == 2:
            raise AdLiftError(f"{first} is a directory: give either OUTDIR alone or RAW.ply [PROTECTED.ply]")
        inputs = _from_directory(first, raw_override=raw, cameras=cameras, device=device)
    else:
        if raw is not None:
            raise AdLiftError("--raw only applies to an OUTDIR; the first .ply given is the raw scene")
        inputs = _from_plys(paths, cameras=cameras, device=device)
    for path in edited:
        label = f"edited: {Path(path).parent.name}/{Path(path).name}" if Path(path).parent.name else f"edited: {path}"
        inputs.scenes[label] = _read_scene(Path(path), device)
        inputs.paths[label] = Path(path)
    if instruction is not None:
        inputs.instruction = instruction
    return inputs


def _from_plys(paths: list[Path], *, cameras: str | None, device: torch.device) -> ViewerInputs:
    scenes = {"raw": _read_scene(paths[0], device)}
    files = {"raw": paths[0]}
    if len(paths) == 2:
        scenes["protected"] = _read_scene(paths[1], device)
        files["protected"] = paths[1]
    if cameras is None:
        beside = paths[0].parent / "transforms.json"
        cameras = str(beside) if beside.is_file() else FALLBACK_CAMERAS
    rigs = _load_rigs(cameras, scenes["raw"])
    return ViewerInputs(scenes=scenes, paths=files, cameras=rigs)


def _from_directory(
    directory: Path, *, raw_override: Path | None, cameras: str | None, device: torch.device
) -> ViewerInputs:
    report_path = None
    if (directory / MANIFEST_FILE).is_file():
        outdir = directory
        if (directory / "evaluation" / "report.json").is_file():
            report_path = directory / "evaluation" / "report.json"
    elif (directory / "report.json").is_file():
        report_path = directory / "report.json"
        outdir = directory.parent if (directory.parent / MANIFEST_FILE).is_file() else None
    else:
        raise AdLiftError(
            f"{directory}: neither a protect output (manifest.json) nor an evaluation (report.json); "
            "give OUTDIR of adlift protect or evaluate, or RAW.ply [PROTECTED.ply]"
        )
    report = read_json_object(report_path, "expected report.json of adlift evaluate") if report_path else None
    if report is not None and not isinstance(report.get("views", []), list):
        raise AdLiftError(f"{report_path}: not an adlift evaluation report (views is not a list)")

    if outdir is not None:
        manifest = Manifest.read(outdir / MANIFEST_FILE)
        raw_path = locate_raw_scene(manifest, outdir, raw_override)
        protected_path = outdir / manifest.protected_scene.path
        camera_source = cameras or str(outdir / manifest.cameras.file)
        meta = manifest.editor
        eta = _budget(manifest.eta)
        instruction = manifest.instruction
        background = recorded_background(manifest) or (0.0, 0.0, 0.0)
        views, source = manifest.views, outdir / MANIFEST_FILE
    else:  # an evaluation directory without its protect output around it: trust report.json's sources
        sources = report.get("sources") or {}
        if not sources.get("raw") or not sources.get("protected"):
            raise AdLiftError(f"{report_path}: names no raw/protected scene (sources)")

        def locate(value: str) -> Path:
            p = Path(value)
            return _existing([p, directory / p]) or p

        raw_path = raw_override or locate(sources["raw"])
        protected_path = locate(sources["protected"])
        camera_source = cameras or (str(locate(sources["cameras"])) if sources.get("cameras") else None)
        meta = report.get("editor") or {}
        eta = _budget(report.get("eta"))
        instruction = str(report.get("instruction") or "")
        background = (report.get("settings") or {}).get("background") or (0.0, 0.0, 0.0)
        views, source = [], None
    if report is not None:
        views, source = report.get("views") or [], report_path
        eta = eta if eta is not None else _budget(report.get("eta"))

    scenes = {"raw": _read_scene(raw_path, device), "protected": _read_scene(protected_path, device)}
    if camera_source is None:
        camera_source = FALLBACK_CAMERAS
    rigs = _load_rigs(camera_source, scenes["raw"])
    try:
        bg = tuple(float(c) for c in background)
        if len(bg) != 3:
            raise ValueError
    except (TypeError, ValueError):
        bg = (0.0, 0.0, 0.0)
    return ViewerInputs(
        scenes=scenes,
        paths={"raw": raw_path, "protected": protected_path},
        cameras=rigs,
        instruction=instruction,
        editor=editor_reference(meta),
        eta=eta,
        background=bg,
        views=[v for v in views if isinstance(v, dict) and "name" in v],
        metrics_source=str(source) if source else None,
        editor_metadata=dict(meta) if isinstance(meta, dict) else {},
    )
