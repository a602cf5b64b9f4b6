"""What to evaluate: a protect output directory and/or explicit files, resolved into scenes, cameras,
instruction, budget and editor (``adlift evaluate`` and ``ns-adlift-evaluate`` nest
:class:`EvaluateInputs` as their options).

    resolved = EvaluateInputs(outdir=Path("outputs/protected")).resolve()
    resolved.raw, resolved.protected, resolved.cameras, resolved.instruction, resolved.eta, resolved.editor

A protect OUTDIR supplies everything through its :class:`~adlift.protect.manifest.Manifest`
(the raw scene it names, checked by sha256; protected.ply; transforms.json; instruction; eta;
editor; background); each can be given or overridden explicitly. :func:`locate_raw_scene`,
:func:`editor_reference` and :func:`chosen_background` are shared with the viewer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import tyro

from adlift.attacks.pgd import format_budget, parse_budget
from adlift.editors import editor_help
from adlift.errors import AdLiftError
from adlift.evaluate.clip_metrics import DEFAULT_CLIP
from adlift.protect.manifest import MANIFEST_FILE, Manifest

if TYPE_CHECKING:
    from adlift.render.options import RenderOptions


def _optional_budget(args: list[str]) -> float | None:
    if args[0].strip().lower() in ("", "none", "manifest"):
        return None
    return parse_budget(args[0])  # AdLiftError passes through tyro: one line, exit 2 (see attacks.pgd.Budget)


#: A :data:`~adlift.attacks.pgd.Budget` that may be left to the manifest (None).
OptionalBudget = Annotated[
    Optional[float],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="N/255|FLOAT",
        instance_from_str=_optional_budget,
        is_instance=lambda value: value is None or isinstance(value, float),
        str_from_instance=lambda value: ["manifest" if value is None else format_budget(value)],
    ),
]


@dataclasses.dataclass
class EvaluateInputs:
    """What to evaluate, with which models, and where the report goes."""

    outdir: Annotated[tyro.conf.Positional[Optional[Path]], tyro.conf.arg(metavar="OUTDIR")] = None
    """A directory written by `adlift protect` (its manifest.json supplies what is not given)."""

    raw: Annotated[Optional[Path], tyro.conf.arg(metavar="PLY")] = None
    """The unprotected .ply (default: the manifest's raw scene, checked by sha256)."""

    protected: Annotated[Optional[Path], tyro.conf.arg(metavar="PLY")] = None
    """The protected .ply (default: OUTDIR/protected.ply)."""

    cameras: Annotated[Optional[str], tyro.conf.arg(metavar="SPEC")] = None
    """Views with a train/novel split: a camera file or `orbit:N` (default: OUTDIR/transforms.json)."""

    instruction: Annotated[Optional[str], tyro.conf.arg(metavar="TEXT")] = None
    """The edit to test (default: the manifest's instruction)."""

    eta: OptionalBudget = None
    """The protection budget, e.g. 8/255 (default: the manifest's, else 8/255)."""

    editor: Annotated[Optional[str], tyro.conf.arg(metavar="NAME|HUB_ID|DIR", help=editor_help(
        "Default: the one the manifest names, else ip2p."))] = None
    """The editor the protection is tested against (help: :func:`adlift.editors.editor_help`)."""

    clip: str = DEFAULT_CLIP
    """CLIP for the text/directional similarities: a hub id, a local dir, tiny (untrained test model) or none; missing weights are reported and the CLIP metrics marked unavailable."""  # noqa: E501

    lpips: bool = True
    """Compute LPIPS if the lpips package and its weights are available (never estimated otherwise)."""

    out: Annotated[Optional[Path], tyro.conf.arg(metavar="DIR")] = None
    """Output directory (default: OUTDIR/evaluation)."""

    def read_manifest(self) -> Manifest | None:
        """OUTDIR's manifest (None without OUTDIR); one-line AdLiftError if it is not one."""
        if self.outdir is None:
            return None
        if not self.outdir.is_dir():
            raise AdLiftError(f"{self.outdir}: not a directory; give a directory written by `adlift protect`")
        if not (self.outdir / MANIFEST_FILE).is_file():
            raise AdLiftError(f"{self.outdir / MANIFEST_FILE}: not found; is {self.outdir} a directory written by "
                              "`adlift protect`?")  # fmt: skip
        return Manifest.read(self.outdir / MANIFEST_FILE)

    def resolve(self, render: "RenderOptions | None" = None) -> "ResolvedInputs":
        """Every input, from the options and the manifest; AdLiftError naming what is missing.

        ``render``: the render options, whose non-default ``background`` overrides the manifest's."""
        manifest = self.read_manifest()
        if manifest is None and None in (self.raw, self.protected, self.cameras, self.instruction, self.out):
            raise AdLiftError("without a protect OUTDIR, give --raw, --protected, --cameras, --instruction and --out")
        instruction = self.instruction if self.instruction is not None else manifest.instruction  # type: ignore[union-attr]
        if not str(instruction).strip():
            raise AdLiftError("the instruction is empty; give --instruction")
        outdir = self.outdir or Path(".")
        return ResolvedInputs(
            manifest=manifest,
            manifest_path=self.outdir / MANIFEST_FILE if manifest is not None else None,
            raw=locate_raw_scene(manifest, outdir, self.raw) if manifest is not None else self.raw,  # type: ignore[arg-type]
            protected=self.protected or outdir / manifest.protected_scene.path,  # type: ignore[union-attr]
            cameras=self.cameras or str(outdir / manifest.cameras.file),  # type: ignore[union-attr]
            instruction=str(instruction),
            eta=self.eta if self.eta is not None else (manifest.eta if manifest is not None else 8 / 255),
            editor=self.editor or (editor_reference(manifest.editor) if manifest is not None else None) or "ip2p",
            out=self.out or outdir / "evaluation",
            background=chosen_background(render, recorded_background(manifest)),
        )


@dataclasses.dataclass
class ResolvedInputs:
    """:class:`EvaluateInputs` with every default filled in."""

    manifest: Manifest | None
    """The protect OUTDIR's manifest, if one was given."""
    manifest_path: Path | None
    """Its file."""
    raw: Path
    """The raw .ply (sha256-checked when it came from the manifest)."""
    protected: Path
    """The protected .ply."""
    cameras: str
    """The camera source (a file or an ``orbit:`` spec)."""
    instruction: str
    """The edit to test."""
    eta: float
    """The protection budget in (0, 1]."""
    editor: str
    """The editor reference for :func:`adlift.editors.load_editor`."""
    out: Path
    """Where the report goes."""
    background: tuple[float, float, float]
    """Background colour of the renders."""


def locate_raw_scene(manifest: Manifest, outdir: Path, override: Path | None = None) -> Path:
    """The raw .ply a manifest names (absolute, or relative to the cwd or ``outdir``), checked against
    the recorded sha256; ``override`` (``--raw``) wins. One-line AdLiftError when it is missing or changed."""
    from adlift.io.checksum import file_sha256

    if override is not None:
        return override
    if not manifest.raw_scene.path:
        raise AdLiftError(f"{outdir / MANIFEST_FILE} names no raw scene; give it with --raw RAW.ply")
    recorded = Path(manifest.raw_scene.path)
    candidates = [recorded] if recorded.is_absolute() else [recorded, outdir / recorded]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise AdLiftError(f"the raw scene {recorded} named in {outdir / MANIFEST_FILE} is not found; give it with --raw")
    if manifest.raw_scene.sha256 and file_sha256(found) != manifest.raw_scene.sha256:
        raise AdLiftError(f"{found} changed since it was protected (sha256 differs); give the original with --raw")
    return found


def editor_reference(metadata: dict) -> str | None:
    """The editor reference (for :func:`~adlift.editors.load_editor`) that reloads the editor whose
    metadata a manifest or report recorded; None when it names none. A registered model organism
    (``mini``) is reloaded by its name, so that it keeps its exact answers (edit success)."""
    from adlift.editors.registry import EDITORS
    from adlift.editors.untrained import is_untrained

    if is_untrained(metadata):
        return "tiny"
    if metadata.get("model_organism") and metadata.get("editor") in EDITORS.names():
        return metadata["editor"]
    return metadata.get("model") or None


def recorded_background(manifest: Manifest | None) -> tuple[float, float, float] | None:
    """The background a protection rendered with (None without a manifest or when it is malformed)."""
    if manifest is None:
        return None
    try:
        background = manifest.background
    except (TypeError, ValueError):
        return None
    return background if len(background) == 3 else None


def chosen_background(render: "RenderOptions | None", recorded: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """The background to render with: ``--background`` when it differs from the default, else the one the
    protection was computed with (``recorded``), else black."""
    from adlift.render.options import RenderOptions

    default = RenderOptions().background
    if render is not None and tuple(render.background) != tuple(default):
        return tuple(float(c) for c in render.background)  # type: ignore[return-value]
    if recorded is not None and len(recorded) == 3:
        return tuple(float(c) for c in recorded)  # type: ignore[return-value]
    return tuple(default)  # type: ignore[return-value]
