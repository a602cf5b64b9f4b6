"""PlayCanvas SOG (spatially ordered Gaussians): decoded by gaussforge, encoded by AdLift's own
encoder (:mod:`adlift.io.sog_encode`, minutes faster than gaussforge's for a million Gaussians).

Two layouts of the same data: a ``.sog`` bundle (a zip archive) or a folder holding ``meta.json``
and the WebP images it names. ``meta.json`` (version 2) gives the count, the position range
(``means``: 16-bit positions split over ``means_l.webp`` / ``means_u.webp``, log-transformed),
256-entry codebooks for log-scales, DC colour and the higher-order SH, and the files: ``quats.webp``
(smallest-three, 8 bits), ``scales.webp``, ``sh0.webp`` (colour codebook indices and 8-bit
opacity), and for SH degree 1-3 ``shN_centroids.webp`` (a palette of at most 65,536 SH vectors)
and ``shN_labels.webp`` (each Gaussian's palette entry).

What it cannot hold exactly (docs/FORMATS.md): Gaussians are reordered (spatially sorted), every
attribute is quantised to 8-bit codebooks, and higher-order SH are clustered into the palette
beyond 65,536 Gaussians. (Other writers, gaussforge's among them, also lose the colour of a Gaussian
of opacity 0; AdLift's keeps it.)

Checks before decoding: the zip's directory (names, sizes, at most :data:`MAX_RATIO` times the
archive's bytes), meta.json (version 2, count, sections, the files it names exist) and every image's
size from its WebP header (it must hold the count, and not be far larger), so a hostile count or
image size is a one-line error before anything is decoded.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from adlift.errors import FileFormatError
from adlift.io import sog_encode, web_codec
from adlift.scene import GaussianScene

META = "meta.json"
VERSION = 2
MAX_META_BYTES = 64 << 20
MAX_RATIO = 1100
FREE_BYTES = 64 << 20
MAX_PALETTE = 65536
_SECTIONS = {"means": 2, "scales": 1, "quats": 1, "sh0": 1}


def sniff(head: bytes) -> bool:
    """A zip archive naming meta.json and .webp entries, or a JSON object with SOG sections."""
    if head.startswith(b"PK\x03\x04"):
        return b"meta.json" in head or b".webp" in head
    text = head.lstrip()
    return text.startswith(b"{") and all(f'"{k}"'.encode() in head for k in ("means", "quats", "sh0"))


def _plain(path: Path, name) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise FileFormatError(path, f"meta.json names a file {name!r}; expected a plain file name")
    return name


def parse_meta(path: Path, raw: bytes) -> tuple[int, int, dict, list[str]]:
    """(count, SH degree, meta, the image files it names) of a meta.json's bytes."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(path, f"meta.json is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise FileFormatError(path, "meta.json must hold a JSON object")
    version = meta.get("version")
    if version != VERSION:
        raise FileFormatError(path, f"unsupported SOG version {version!r} (AdLift reads meta.json version {VERSION})")
    count = meta.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise FileFormatError(path, f"meta.json 'count' must be a non-negative integer, got {count!r}")
    files = []
    sections = dict(_SECTIONS, **({"shN": 2} if "shN" in meta else {}))
    for name, nfiles in sections.items():
        section = meta.get(name)
        if not isinstance(section, dict) or not isinstance(section.get("files"), list) or len(section["files"]) != nfiles:
            raise FileFormatError(path, f"meta.json section '{name}' must be an object with {nfiles} file name(s)")
        files += [_plain(path, f) for f in section["files"]]
    degree = 0
    if "shN" in meta:
        bands, palette = meta["shN"].get("bands"), meta["shN"].get("count")
        if bands not in (1, 2, 3):
            raise FileFormatError(path, f"meta.json shN.bands must be 1, 2 or 3, got {bands!r}")
        if not isinstance(palette, int) or isinstance(palette, bool) or not 0 < palette <= MAX_PALETTE:
            raise FileFormatError(path, f"meta.json shN.count (palette size) must be 1..{MAX_PALETTE}, got {palette!r}")
        degree = bands
    return count, degree, meta, files


def _check_image(path: Path, name: str, data: bytes, least: int) -> None:
    """The WebP header of ``name`` must be readable and hold at least ``least`` (and not much more) pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            fmt, (w, h) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise FileFormatError(path, f"{name} is not a readable image: {err}") from None
    if fmt != "WEBP":
        raise FileFormatError(path, f"{name} is a {fmt} image, SOG images are WebP")
    if w * h < least:
        raise FileFormatError(path, f"{name} is {w}x{h} pixels, too small for {least:,} entries (truncated or corrupt)")
    if w * h > 2 * least + 4 * (w + h) + (1 << 16):
        raise FileFormatError(path, f"{name} is {w}x{h} pixels, far larger than {least:,} entries need")


def _check_files(path: Path, meta: dict, count: int, files: dict[str, bytes]) -> None:
    for section in _SECTIONS:
        for name in meta[section]["files"]:
            _check_image(path, name, files[name], count)
    if "shN" in meta:
        centroids, labels = meta["shN"]["files"]
        coeffs = (meta["shN"]["bands"] + 1) ** 2 - 1
        _check_image(path, centroids, files[centroids], meta["shN"]["count"] * coeffs)
        _check_image(path, labels, files[labels], count)


def _bundle(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _read_bundle(path: Path) -> tuple[int, int, bytes]:
    size = web_codec.file_size(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = {info.filename: info for info in z.infolist()}
            if META not in infos:
                raise FileFormatError(path, f"SOG bundle has no {META} (entries: {', '.join(list(infos)[:8]) or 'none'})")
            if infos[META].file_size > MAX_META_BYTES:
                raise FileFormatError(path, f"{META} declares {infos[META].file_size:,} bytes, more than {MAX_META_BYTES:,}")
            raw = z.read(META)
            count, degree, meta, names = parse_meta(path, raw)
            missing = [n for n in names if n not in infos]
            if missing:
                raise FileFormatError(path, f"SOG bundle lacks the files meta.json names: {', '.join(missing)}")
            total = sum(infos[n].file_size for n in names)
            if total > FREE_BYTES + MAX_RATIO * size:
                raise FileFormatError(path, f"SOG bundle entries declare {total:,} bytes, more than a {size:,}-byte archive can hold")
            files = {n: z.read(n) for n in dict.fromkeys(names)}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as err:
        raise FileFormatError(path, f"corrupt or truncated SOG bundle (zip): {err}") from None
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    _check_files(path, meta, count, files)
    return count, degree, _bundle({META: raw, **files})


def _read_folder(path: Path) -> tuple[int, int, bytes]:
    size = web_codec.file_size(path)
    if size > MAX_META_BYTES:
        raise FileFormatError(path, f"{META} is {size:,} bytes, more than {MAX_META_BYTES:,}")
    raw = web_codec.read_file(path)
    count, degree, meta, names = parse_meta(path, raw)
    files = {}
    for name in dict.fromkeys(names):
        image = path.parent / name
        if not image.is_file():
            raise FileFormatError(path, f"{name}, named in meta.json, is missing beside it")
        if image.stat().st_size > FREE_BYTES + MAX_RATIO * size:
            raise FileFormatError(path, f"{name} is implausibly large ({image.stat().st_size:,} bytes)")
        files[name] = web_codec.read_file(image)
    _check_files(path, meta, count, files)
    return count, degree, _bundle({META: raw, **files})


def read(path: str | Path, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Read a SOG scene: a ``.sog`` bundle or a ``meta.json`` with its WebP images beside it."""
    path = Path(path)
    try:
        path.stat()
    except OSError as err:
        raise FileFormatError(path, f"cannot access the file: {err.strerror or err}") from None
    count, degree, bundle = _read_folder(path) if path.name.lower().endswith(".json") else _read_bundle(path)
    if count == 0:
        return GaussianScene.empty(degree, dtype=dtype)
    return web_codec.decode(path, bundle, "sog", count=count, sh_degree=degree, dtype=dtype)


def write(scene: GaussianScene, path: str | Path, *, comments: Iterable[str] = ()) -> Path:
    """Write ``scene`` as SOG (AdLift's encoder, :mod:`adlift.io.sog_encode`), atomically: a ``.sog``
    bundle, or for a path named ``*meta.json`` that file and its WebP images beside it (each image
    written atomically, meta.json last)."""
    path = Path(path)
    files = sog_encode.encode(web_codec.writable(scene, path))
    if not path.name.lower().endswith(".json"):
        return web_codec.write_bytes_atomic(path, _bundle(files))
    for name, blob in files.items():
        if name != META:
            web_codec.write_bytes_atomic(path.parent / name, blob)
    return web_codec.write_bytes_atomic(path, files[META])


def file_order(scene: GaussianScene) -> np.ndarray:
    """[N] int64: ``scene``'s rows in the order :func:`write` stores them (Morton order of the means)."""
    return sog_encode.morton_order(scene.means.detach().to("cpu", torch.float32).numpy())


def images_beside(path: Path) -> list[Path]:
    """The image files a meta.json at ``path`` names (for callers that copy or remove the layout)."""
    _, _, _, names = parse_meta(path, web_codec.read_file(path))
    return [path.parent / n for n in dict.fromkeys(names)]

