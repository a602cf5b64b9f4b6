"""Scene file formats: one registry, one way to read and write a scene file.

Every format is one :class:`SceneFormat` in :data:`SCENE_FORMATS`: the file extensions it uses,
a sniffer that recognises its first bytes, a reader and (optionally) a writer. Everything that
reads or writes a scene file goes through :func:`read_scene` / :func:`write_scene`::

    scene = read_scene("splat.ply")              # format from the extension, confirmed by content
    write_scene(scene, "out/protected.ply")      # format from the extension
    write_scene(scene, "out/x.bin", format="ply")

Detection (:func:`detect_scene_format`): the formats whose extension is the longest one the file
name ends with (``.compressed.ply`` beats ``.ply``) are the candidates; the one whose sniffer
accepts the first :data:`SNIFF_BYTES` bytes wins. A format may list another's extension after its
own (compressed-ply lists ``.ply``: SuperSplat writes compressed files named ``*.ply``); the format
whose *first* extension it is owns it for messages, for writing and for content no sniffer knows. A file whose content is another registered
format, or whose extension no format uses, is a one-line :class:`~adlift.errors.FileFormatError`
listing the supported formats. When no sniffer recognises the content, the single candidate's
reader reads it anyway and reports exactly what is wrong (truncated, missing properties, ...).

Adding a format: a module ``adlift/io/<format>.py`` with ``sniff(head) -> bool``,
``read(path, *, dtype)`` and ``write(scene, path, *, comments)``, plus one
``SCENE_FORMATS.add(...)`` line at the bottom of this file. Sniffers must tell formats that share
an extension apart by content (a compressed .ply declares ``packed_*`` vertex properties; see
:func:`adlift.io.ply.is_compressed_header`).
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Tuple

import numpy as np
import torch

from adlift.errors import AdLiftError, FileFormatError
from adlift.io import compressed_ply, ply, sog, splat, spz
from adlift.registry import Registry
from adlift.scene import GaussianScene

#: How many leading bytes a sniffer sees (a degree-3 INRIA header is about 1.7 kB).
SNIFF_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class SceneFormat:
    """How one scene file format is recognised, read and written."""

    extensions: Tuple[str, ...]
    """Lower-case file name endings with their dot (``.ply``, ``.compressed.ply``); the first is
    the one written by default."""

    sniff: Callable[[bytes], bool]
    """``sniff(head)``: whether the first :data:`SNIFF_BYTES` bytes (fewer for short files) are
    this format. Must be cheap and never raise."""

    read: Callable[..., GaussianScene]
    """``read(path, *, dtype)``: the scene, or a one-line FileFormatError naming the file."""

    write: Optional[Callable[..., Path]] = None
    """``write(scene, path, *, comments)``: write atomically, return the path; None: read-only."""

    max_sh_degree: int = 3
    """The highest SH degree a file of this format holds (higher coefficients are dropped on write)."""

    lossless: bool = False
    """Whether a file holds every float32 value exactly (ply); a lossy format's values are what
    :func:`adlift.io.quantise.roundtrip` gives back."""

    reorders: bool = False
    """Whether the writer reorders the Gaussians (SOG sorts them spatially): a decode's rows are not
    the written scene's (:func:`adlift.io.quantise.roundtrip` matches them back)."""

    file_order: Optional[Callable[[GaussianScene], np.ndarray]] = None
    """For a format that reorders: ``file_order(scene)``, [N] int64, the scene's row indices in the
    order its writer stores them (a decode's row i is the scene's row ``file_order(scene)[i]``), so
    :func:`adlift.io.quantise.roundtrip` puts a decode back exactly; None: unknown (matched back by
    nearest neighbours)."""

    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Options of :func:`read_scene` / :func:`write_scene` this format uses: public name -> the
    keyword of its ``read``/``write`` (``{"spz_axes": "axes"}``). Callers may pass an option for
    any file; a format that does not use it ignores it."""


SCENE_FORMATS = Registry[SceneFormat]("scene format")


def supported_formats() -> str:
    """``"ply (.ply), ..."``: the registered formats and their extensions, for messages."""
    return ", ".join(f"{name} ({' / '.join(fmt.extensions)})" for name, fmt in SCENE_FORMATS.items())


def formats_for_name(path: str | Path) -> list[str]:
    """The formats using the longest extension that ``path``'s file name ends with ([] if none)."""
    name = Path(path).name.lower()
    best = max((len(ext) for _, fmt in SCENE_FORMATS.items() for ext in fmt.extensions if name.endswith(ext)),
               default=0)  # fmt: skip
    return [n for n, fmt in SCENE_FORMATS.items() if best and any(name.endswith(e) and len(e) == best
                                                                   for e in fmt.extensions)]  # fmt: skip


def owners(path: str | Path, names: list[str]) -> list[str]:
    """Of ``names`` (:func:`formats_for_name`), those whose *first* extension ``path`` ends with
    (``.ply`` names ply, not compressed-ply, which also lists it); all of them if none is."""
    name = Path(path).name.lower()
    own = [n for n in names if name.endswith(SCENE_FORMATS.get(n).extensions[0])]
    return own or names


def _head(path: Path) -> bytes:
    """The first SNIFF_BYTES bytes of an existing regular file (one-line errors otherwise)."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileFormatError(path, "no such file") from None
    except (OSError, ValueError) as err:
        raise FileFormatError(path, f"cannot access the file: {getattr(err, 'strerror', None) or err}") from None
    if stat.S_ISDIR(mode):
        raise FileFormatError(path, f"is a directory, expected a scene file ({supported_formats()})")
    try:
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None


def _sniffed(head: bytes, names: Iterable[str]) -> list[str]:
    return [name for name in names if SCENE_FORMATS.get(name).sniff(head)]


def detect_scene_format(path: str | Path) -> str:
    """The registered format of the scene file at ``path``, by extension and content."""
    path = Path(path)
    head = _head(path)
    by_name = formats_for_name(path)
    by_content = _sniffed(head, SCENE_FORMATS.names())
    matching = [name for name in by_name if name in by_content]
    if matching:
        return matching[0]
    if by_name and by_content:
        other = SCENE_FORMATS.get(by_content[0])
        raise FileFormatError(
            path, f"named like a {' / '.join(owners(path, by_name))} file but its content is {by_content[0]}; "
            f"rename it to end with {other.extensions[0]}"
        )
    if len(owners(path, by_name)) == 1:
        return owners(path, by_name)[0]  # unrecognised content: the reader says exactly what is wrong with it
    if by_name:
        raise FileFormatError(path, f"content is none of the formats named {', '.join(by_name)}")
    suffix = "".join(path.suffixes[-2:]) or "no extension"
    hint = ""
    if by_content:
        hint = f"; its content looks like {by_content[0]}: rename it to end with " + (
            SCENE_FORMATS.get(by_content[0]).extensions[0]
        )
    raise FileFormatError(
        path, f"unknown scene file type ({suffix}){hint}; supported scene formats: {supported_formats()}"
    )


def scene_options() -> list[str]:
    """Every option name a registered format uses (``spz_axes``)."""
    return sorted({name for _, fmt in SCENE_FORMATS.items() for name in fmt.options})


def _keywords(fmt: SceneFormat, options: dict) -> dict:
    """The keywords of ``fmt``'s read/write for ``options`` (unknown option names are an error,
    options another format uses are ignored, None means the format's default)."""
    unknown = sorted(set(options) - set(scene_options()))
    if unknown:
        raise AdLiftError(f"unknown scene file option(s) {', '.join(unknown)}; known: {', '.join(scene_options()) or 'none'}")
    return {fmt.options[k]: v for k, v in options.items() if k in fmt.options and v is not None}


def read_scene(path: str | Path, *, dtype: torch.dtype = torch.float32, **options) -> GaussianScene:
    """Read a scene file of any registered format (detected by extension and content) on the CPU.

    ``options`` are format options (:func:`scene_options`, e.g. ``spz_axes="raw"``); a format
    that does not use one ignores it.
    """
    path = Path(path)
    fmt = SCENE_FORMATS.get(detect_scene_format(path))
    return fmt.read(path, dtype=dtype, **_keywords(fmt, options))


def write_scene(
    scene: GaussianScene, path: str | Path, format: Optional[str] = None, *, comments: Iterable[str] = (), **options
) -> Path:
    """Write ``scene`` to ``path`` atomically in ``format`` (default: the one its extension names).

    ``comments`` are provenance lines for formats that can store them (.ply header comments);
    ``options`` as in :func:`read_scene`. Returns the path written.
    """
    path = Path(path)
    by_name = formats_for_name(path)
    if format is None:
        if not by_name:
            raise AdLiftError(
                f"cannot write {path}: unknown scene file type; name it after one of the supported "
                f"scene formats: {supported_formats()} (or pass a format)"
            )
        format = owners(path, by_name)[0]
    fmt = SCENE_FORMATS.get(format)
    if by_name and format not in by_name:
        raise AdLiftError(
            f"cannot write {path} as {format}: its name says {' / '.join(owners(path, by_name))}; "
            f"name it *{fmt.extensions[0]}"
        )
    if fmt.write is None:
        raise AdLiftError(f"cannot write {path}: the {format} scene format is read-only")
    return fmt.write(scene, path, comments=comments, **_keywords(fmt, options))


# ---------------------------------------------------------------------------------------------
# The formats: one registration each.
# ---------------------------------------------------------------------------------------------
SCENE_FORMATS.add(
    "ply",
    SceneFormat(extensions=(".ply",), sniff=ply.sniff, read=ply.read_ply, write=ply.write_ply, lossless=True),
    help="INRIA 3DGS layout (original 3DGS code, gsplat, nerfstudio ns-export), SH degree 0-3",
)
SCENE_FORMATS.add(
    "compressed-ply",
    SceneFormat(extensions=(".compressed.ply", ".ply"), sniff=compressed_ply.sniff, read=compressed_ply.read,
                write=compressed_ply.write),  # fmt: skip
    help="PlayCanvas/SuperSplat compressed .ply (256-Gaussian chunks, 8-11 bit quantisation), SH 0-3",
)
SCENE_FORMATS.add(
    "spz",
    SceneFormat(extensions=(".spz",), sniff=spz.sniff, read=spz.read, write=spz.write,
                options={"spz_axes": "axes"}),  # fmt: skip
    help="Niantic .spz (reads versions 2-4, writes 4; axes: --spz-axes rub|raw), SH 0-3",
)
SCENE_FORMATS.add(
    "splat",
    SceneFormat(extensions=(".splat",), sniff=splat.sniff, read=splat.read, write=splat.write, max_sh_degree=0),
    help="antimatter15 .splat (32 bytes a Gaussian, SH degree 0 only)",
)
SCENE_FORMATS.add(
    "sog",
    SceneFormat(extensions=(".sog", "meta.json"), sniff=sog.sniff, read=sog.read, write=sog.write, reorders=True,
                file_order=sog.file_order),
    help="PlayCanvas SOG: a .sog bundle or meta.json + WebP images (reordered, codebook-quantised), SH 0-3",
)
