"""``manifest.json``: what a protection run records, as one typed :class:`Manifest`.

Written by :func:`adlift.protect.output.write_protection` (``adlift protect`` and ``ns-train
adlift-protect``), read by ``adlift evaluate``, ``adlift view`` and ``ns-adlift-evaluate`` through
:meth:`Manifest.read`. The schema (version :data:`MANIFEST_VERSION`), written once, here:

* ``manifest_version`` (int), ``adlift_version`` (str), ``created`` (UTC ISO time), ``seconds``
  (optimisation time)
* ``raw_scene`` {``path`` (absolute, or relative to the output directory), ``sha256`` of the file,
  ``num_gaussians``} (:class:`RawSceneInfo`)
* ``protected_scene`` {``path`` (relative to the output directory), ``num_gaussians``, ``order``
  (``morton``: the published order of :mod:`adlift.protect.publish`; "" in version-1 manifests)}
  (:class:`ProtectedSceneInfo`); ``format``: the scene format of ``path`` (protected.ply, protected.spz, ...)
* ``safeguard`` {``first`` (null since version 2: the published order interleaves everything),
  ``count`` (Gaussians trained), ``frozen`` (raw copies never trained: 0 for inplace), ``file``
  (safeguard.ply or null), ``init``, ``trainable``, ``source_index_hash``} (:class:`SafeguardInfo`;
  null in hand-made manifests). This is the creator's private record: protected.ply stands alone.
* ``instruction`` (the edit protected against), ``editor`` (the editor's metadata: ``editor``,
  ``model``, ``untrained_test_model``, device, dtype, library versions), ``loss`` (a label such as
  ``encoder(gray)``), ``method``
* ``eta`` (L-infinity budget in [0, 1]) and ``eta_255`` (the same x 255)
* ``config``: every setting of the run (:class:`~adlift.protect.config.ProtectConfig` as JSON)
* ``cameras`` {``file`` (transforms.json), ``source`` (what ``--cameras`` named), ``width``,
  ``height``, ``train``: [names], ``novel``: [names]} (:class:`CamerasInfo`)
* ``views``: per view {name, split, loss_raw, loss_protected, linf_255, psnr, within_budget}
* ``summary``: means per split (train, novel) and ``novel_share`` (novel loss reduction / training
  loss reduction); see :func:`adlift.protect.api.summarise`
* ``history``: one record per work unit (loss, psnr, linf_255, seconds, ...)
* ``files``: {protected, cameras, preview}: the files of the output directory
* ``warning`` (only when the editor is the untrained test model)
* ``export`` (only when the protected file is in a lossy format and was measured): the protection
  measured on a decode of the written file (:class:`ExportInfo`, :mod:`adlift.protect.exported`):
  {``format``, ``path``, ``quantised_in_fit`` (the format whose quantiser was in the fit, or null),
  ``quantise_every``, ``splits``: per split {views, within_eta_2, loss_reduction_kept, cosine,
  cosine_vs_raw_file, linf_255_max, psnr, loss_raw, loss_protected, loss_decoded}}; absent in older manifests
* ``nerfstudio`` (only for ``ns-train adlift-protect``): {version, scene_source, scene_source_kind,
  scene_frame, dataparser_transform, dataparser_scale, iterations, complete} (:class:`NerfstudioInfo`)

Non-finite numbers are written as null (an infinite PSNR means identical images). Unknown keys are
ignored when reading, so older readers accept newer manifests.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any, Optional

from adlift.errors import AdLiftError
from adlift.io.json_safe import read_json_object, to_jsonable, write_json_atomic

MANIFEST_VERSION = 2

#: The file name inside a protect output directory.
MANIFEST_FILE = "manifest.json"


@dataclasses.dataclass
class RawSceneInfo:
    """The input scene a protection started from."""

    path: str
    """Where it was read from (absolute, or relative to the output directory)."""

    sha256: Optional[str] = None
    """sha256 of the file when it was protected (detects a changed raw scene)."""

    num_gaussians: Optional[int] = None
    """Number of Gaussians of the input scene."""


@dataclasses.dataclass
class ProtectedSceneInfo:
    """The protected scene (one set of Gaussians in the published order)."""

    path: str = "protected.ply"
    """Relative to the output directory."""

    num_gaussians: Optional[int] = None
    """Number of Gaussians of protected.ply."""

    format: str = "ply"
    """Its scene format, an :data:`adlift.io.SCENE_FORMATS` name (ply, compressed-ply, spz, splat, sog:
    ``adlift protect --format``, default the input's); "ply" in manifests written before it existed."""

    order: str = ""
    """The order of its Gaussians: ``morton`` (:mod:`adlift.protect.publish`; independent of the input
    file's order and of which Gaussians were trained); "" in version-1 manifests (raw, then safeguard)."""


@dataclasses.dataclass
class SafeguardInfo:
    """How the safeguard was made and how many Gaussians it has (the creator's private record)."""

    first: Optional[int] = None
    """Version 1 only: index of the first safeguard Gaussian in protected.ply (the safeguard ran to the
    end of the file). None since version 2: the published order interleaves all Gaussians."""

    count: int = 0
    """Number of safeguard (trained) Gaussians; inplace: all of them."""

    frozen: Optional[int] = None
    """Number of untrained raw copies in protected.ply (split/sample: the raw Gaussians with split
    opacities; inplace: 0); None in version-1 manifests."""

    file: Optional[str] = None
    """safeguard.ply when the safeguard was also written alone."""

    init: str = ""
    """Initialisation (inplace, split, sample)."""

    trainable: list[str] = dataclasses.field(default_factory=list)
    """Parameter groups that were optimised."""

    source_index_hash: str = ""
    """A short hash of the raw Gaussian each safeguard Gaussian started from."""


@dataclasses.dataclass
class CamerasInfo:
    """The views a run used."""

    file: str = "transforms.json"
    """The cameras, relative to the output directory (nerfstudio layout; train/test = train/novel)."""

    source: str = ""
    """What the cameras were read from (a file, ``orbit:N``, a nerfstudio datamanager)."""

    width: Optional[int] = None
    """Render width in pixels."""

    height: Optional[int] = None
    """Render height in pixels."""

    train: list[str] = dataclasses.field(default_factory=list)
    """Training views (optimised on)."""

    novel: list[str] = dataclasses.field(default_factory=list)
    """Novel views (only measured)."""


@dataclasses.dataclass
class ExportInfo:
    """The protection measured on a decode of the written (lossy) file."""

    format: str = ""
    """The scene format of the file (compressed-ply, spz, splat, sog)."""

    path: str = ""
    """The file decoded, relative to the output directory."""

    quantised_in_fit: Optional[str] = None
    """The format whose quantiser was in the fit (straight-through), or None (fitted in float32)."""

    quantise_every: Optional[int] = None
    """Optimiser steps between the fit's codec round trips (with ``quantised_in_fit``)."""

    splits: dict = dataclasses.field(default_factory=dict)
    """Per split (train, novel): views, within_eta_2 (share of pixels within eta + 2/255 of the raw
    render), loss_reduction_kept (decode's loss reduction / the run's), cosine (render perturbation
    before vs after export), cosine_vs_raw_file (after export against the raw scene in the same format),
    linf_255_max, psnr (lowest), loss_raw, loss_protected, loss_decoded."""


@dataclasses.dataclass
class NerfstudioInfo:
    """How an ``ns-train adlift-protect`` run got its scene and frame."""

    version: Optional[str] = None
    """nerfstudio's version."""

    scene_source: Optional[str] = None
    """The input scene (.ply or splatfacto checkpoint)."""

    scene_source_kind: str = ""
    """ply or splatfacto-checkpoint."""

    scene_frame: str = "training"
    """training (nerfstudio's training frame) or original (the dataset's own frame)."""

    dataparser_transform: Optional[list] = None
    """[3, 4] original -> training frame, as nested lists."""

    dataparser_scale: float = 1.0
    """Scale of the training frame."""

    iterations: int = 0
    """Training iterations (work units) done."""

    complete: Optional[bool] = None
    """Whether the run finished (false after ``--max-num-iterations`` stopped it); None for edits."""


@dataclasses.dataclass(kw_only=True)
class Manifest:
    """The record of one protection run (schema: the module docstring)."""

    manifest_version: int = MANIFEST_VERSION
    """Schema version."""

    adlift_version: str = ""
    """Version of AdLift that wrote it."""

    created: str = ""
    """UTC ISO time of writing."""

    seconds: float = 0.0
    """Optimisation time in seconds."""

    raw_scene: RawSceneInfo
    """The input scene."""

    protected_scene: ProtectedSceneInfo = dataclasses.field(default_factory=ProtectedSceneInfo)
    """The protected scene."""

    safeguard: Optional[SafeguardInfo] = None
    """How the safeguard was made (init, trainable groups, counts)."""

    instruction: str
    """The edit protected against."""

    editor: dict = dataclasses.field(default_factory=dict)
    """The editor's metadata (name, model, untrained_test_model, device, ...)."""

    loss: str = ""
    """The adversarial loss, as a label (``encoder(gray)``)."""

    method: str = ""
    """Protection method (lifted-pgd, fit2d, direct)."""

    eta: float = 8 / 255
    """L-infinity budget in [0, 1]."""

    eta_255: Optional[float] = None
    """The budget x 255 (for people); filled from eta when missing."""

    config: dict = dataclasses.field(default_factory=dict)
    """Every setting of the run (ProtectConfig as JSON)."""

    cameras: CamerasInfo = dataclasses.field(default_factory=CamerasInfo)
    """The views used."""

    views: list[dict] = dataclasses.field(default_factory=list)
    """Per-view metrics."""

    summary: dict = dataclasses.field(default_factory=dict)
    """Means per split and novel_share."""

    history: list[dict] = dataclasses.field(default_factory=list)
    """One record per work unit."""

    files: dict = dataclasses.field(default_factory=dict)
    """The output directory's files: protected, cameras, preview."""

    warning: Optional[str] = None
    """Set when the editor was the untrained test model."""

    nerfstudio: Optional[NerfstudioInfo] = None
    """Set by ``ns-train adlift-protect``."""

    export: Optional[ExportInfo] = None
    """The protection measured on a decode of a lossy protected file (None: ply, or not measured)."""

    def __post_init__(self) -> None:
        if self.eta_255 is None:
            self.eta_255 = self.eta * 255.0

    @property
    def untrained_editor(self) -> bool:
        """Whether the editor was the untrained test model."""
        return bool(self.editor.get("untrained_test_model"))

    @property
    def background(self) -> tuple[float, float, float]:
        """The background colour the run rendered with."""
        bg = self.config.get("background") or (0.0, 0.0, 0.0)
        return tuple(float(c) for c in bg)  # type: ignore[return-value]

    @staticmethod
    def now() -> str:
        """The current UTC time as ``created`` records it."""
        return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    def to_json(self) -> dict:
        """Plain JSON types; ``warning``, ``nerfstudio`` and ``export`` are left out when unset."""
        doc = to_jsonable(self)
        for key in ("warning", "nerfstudio", "export"):
            if doc.get(key) is None:
                doc.pop(key, None)
        return doc

    def write(self, path: str | Path) -> Path:
        """Write as indented JSON (non-finite numbers -> null), atomically; returns ``path``."""
        write_json_atomic(path, self.to_json())
        return Path(path)

    @classmethod
    def from_json(cls, doc: Any, source: object = "manifest") -> "Manifest":
        """A manifest from parsed JSON; AdLiftError naming ``source`` if it is not one."""
        what = f"{source}: not an adlift protection manifest"
        if not isinstance(doc, dict):
            raise AdLiftError(f"{what} (expected a JSON object)")
        for key in ("instruction", "raw_scene", "protected_scene"):
            if key not in doc:
                raise AdLiftError(f"{what} (no {key})")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        try:
            values["raw_scene"] = _nested(RawSceneInfo, values["raw_scene"], "raw_scene")
            values["protected_scene"] = _nested(ProtectedSceneInfo, values["protected_scene"] or {}, "protected_scene")
            values["cameras"] = _nested(CamerasInfo, values.get("cameras") or {}, "cameras")
            for key, kind in (("safeguard", SafeguardInfo), ("nerfstudio", NerfstudioInfo), ("export", ExportInfo)):
                if values.get(key) is not None:
                    values[key] = _nested(kind, values[key], key)
            for key, kind in (("instruction", str), ("editor", dict), ("config", dict), ("views", list),
                              ("summary", dict), ("history", list), ("files", dict)):  # fmt: skip
                if key in values and values[key] is None and key != "instruction":
                    values.pop(key)
                elif key in values and not isinstance(values[key], kind):
                    raise ValueError(f"{key} is not a {kind.__name__}")
            if "eta" in values:
                eta = values["eta"]
                if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 < eta <= 1.0:
                    raise ValueError(f"eta {eta!r} is not a number in (0, 1]")
                values["eta"] = float(eta)
            if not all(isinstance(v, dict) for v in values.get("views", [])):
                raise ValueError("views is not a list of objects")
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise AdLiftError(f"{what} ({e})") from None

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        """Read ``path`` (a manifest.json, or a directory holding one); one-line AdLiftError if it is
        missing, not JSON, or not a protection manifest."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        doc = read_json_object(path, "expected the manifest.json written by adlift protect")
        return cls.from_json(doc, path)


def _nested(kind: type, value: Any, name: str):
    """``kind(**value)`` for a nested section, ignoring unknown keys; ValueError naming ``name``."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not an object")
    known = {f.name for f in dataclasses.fields(kind)}
    try:
        return kind(**{k: v for k, v in value.items() if k in known})
    except TypeError:
        missing = [f.name for f in dataclasses.fields(kind)
                   if f.name not in value and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # fmt: skip
        raise ValueError(f"{name} lacks {', '.join(missing) or 'fields'}") from None
