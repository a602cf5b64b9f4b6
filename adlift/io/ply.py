"""Read and write 3D Gaussian Splatting assets in the INRIA .ply layout (via plyfile).

Vertex properties (float32 unless the file says otherwise; order and extra properties vary
between writers and are ignored):

    x y z  [nx ny nz]  f_dc_0..2  f_rest_0..f_rest_{3(K-1)-1}  opacity  scale_0..2  rot_0..3

``f_rest`` is channel-major: the K-1 higher-order coefficients of red, then green, then blue.
``opacity`` is a logit, ``scale_*`` are log standard deviations, ``rot_*`` a (w, x, y, z)
quaternion of any norm: exactly the unactivated :class:`~adlift.scene.GaussianScene` fields.

Writers this reads (see ``tests/ply_fixtures.py`` for each one's exact header):

* the original INRIA code (``GaussianModel.save_ply``): the layout above with zero normals;
* gsplat's ``export_splats(format="ply")``: the same without normals;
* nerfstudio's ``ns-export gaussian-splat``: with normals and two comments; with
  ``--ply-color-mode rgb`` it writes ``red green blue`` (uchar) instead of ``f_dc_*``, which is
  read as the DC colour (8-bit, so not lossless) with no higher-order SH.

Compressed PLYs (SuperSplat / gsplat ``ply_compressed``: ``packed_*`` vertex properties) are
read by :mod:`adlift.io.compressed_ply` (``read_ply`` hands them over).

Reading: plyfile parses the header and the data (binary little/big endian memory-mapped, ASCII
row by row, LF/CR/CRLF lines). Around it, this module only adds what makes a hostile or broken
file fail fast with a one-line :class:`~adlift.errors.FileFormatError` naming the file:

1. the header must end (``end_header``) within ``MAX_HEADER_BYTES`` and be ASCII;
2. plyfile's header errors are reworded to name the line and what is wrong with it;
3. every element count is checked against the file size *before* plyfile allocates anything,
   and reads are capped at the bytes the file holds (a bogus list length cannot allocate);
4. only the elements up to the vertex element are read (faces after it are never parsed);
5. values must be finite. ``benchmarks/io.py`` measures this path: no hand-written reader is kept.

Writing (via plyfile): binary little endian, float32, atomically; round trips are bit-exact.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import plyfile
import torch

from adlift.errors import AdLiftError, FileFormatError, SceneError
from adlift.io.atomic import atomic_path
from adlift.scene import SH_C0, SH_COEFFS_TO_DEGREE, GaussianScene

MAX_HEADER_BYTES = 1 << 20
REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
_RGB = ["red", "green", "blue"]
_F_REST = re.compile(r"^f_rest_(0|[1-9][0-9]*)$")
#: Vertex properties of the compressed layout (SuperSplat / gsplat ``ply_compressed``).
COMPRESSED_MARKERS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_NEWLINES = (b"\r\n", b"\n", b"\r")


# ------------------------------------------------------------------------------------ the header
def split_header(head: bytes) -> tuple[bytes, bytes] | None:
    """``(header lines incl. 'end_header', newline)`` of a PLY file starting with ``head``, or
    None when ``head`` holds no complete PLY header (used by the scene-format sniffers too)."""
    nl = next((n for n in _NEWLINES if head.startswith(b"ply" + n)), None)
    if nl is None:
        return None
    end = head.find(nl + b"end_header" + nl)
    return None if end < 0 else (head[: end + len(nl) + len(b"end_header")], nl)


_PACKED = re.compile(rb"(?:^|[\r\n])property\s+\S+\s+(?:" + "|".join(COMPRESSED_MARKERS).encode() + rb")\s")


def is_compressed_header(header: bytes) -> bool:
    """Whether PLY header bytes declare the compressed 3DGS layout's packed vertex properties."""
    return _PACKED.search(header + b"\n") is not None


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes start an INRIA 3DGS .ply (a PLY header, not the compressed layout)."""
    if not any(head.startswith(b"ply" + n) for n in _NEWLINES):
        return False
    found = split_header(head)
    return not is_compressed_header(found[0] if found else head)


def _read_head(path: Path) -> tuple[bytes, bytes]:
    """The header bytes (through ``end_header``) and its newline; refuses non-PLY files early."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    if not head:
        raise FileFormatError(path, "empty file, expected a PLY file")
    if not any(head.startswith(b"ply" + n) for n in _NEWLINES):
        raise FileFormatError(path, "not a PLY file (it does not start with the 'ply' magic line)")
    found = split_header(head)
    if found is None:
        if len(head) >= MAX_HEADER_BYTES:
            raise FileFormatError(path, f"PLY header is longer than {MAX_HEADER_BYTES} bytes or has no 'end_header'")
        raise FileFormatError(path, "PLY header has no 'end_header' line (truncated or not a PLY file)")
    header, nl = found
    if not header.isascii():
        raise FileFormatError(path, "PLY header contains non-ASCII bytes")
    return header, nl


def _element_at(lines: list[str], number: int) -> str:
    """The name of the element a header line (1-based ``number``) belongs to."""
    names = [ln.split()[1] for ln in lines[: number - 1] if ln.split()[:1] == ["element"] and len(ln.split()) > 1]
    return names[-1] if names else "?"


def _header_problem(lines: list[str], err: plyfile.PlyHeaderParseError) -> str:
    """plyfile's header error as today's one-line problem: which line, and what is wrong with it."""
    number = err.line or 0
    text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    words = text.split()
    keyword = words[0] if words else ""
    message = err.message
    if message.startswith("expected one of"):
        if "format," in message:
            return "PLY header has no 'format' line"
        if keyword == "format":
            return f"second 'format' line {number} in the PLY header"
        if keyword == "property":
            return f"PLY property before any element on line {number}"
        return f"unknown PLY header keyword {keyword!r} on line {number}"
    if message == "early end-of-file" and not text:  # plyfile stops at an empty line
        return f"empty line {number} in the PLY header"
    if keyword == "format":
        if message.startswith("expected version") and len(words) == 3:
            return f"unsupported PLY version {words[2]!r} (only 1.0 exists)"
        return f"unsupported PLY format line {text!r}"
    if keyword == "element":
        return (f"malformed PLY element line {number}: {text!r} (expected 'element NAME COUNT' "
                "with a non-negative integer COUNT)")  # fmt: skip
    if keyword == "property" and message.startswith("field type") and len(words) in (3, 5):
        element = _element_at(lines, number)
        if words[1] == "list":
            return (f"list property '{words[4]}' of element '{element}' has types '{words[2]} {words[3]}'; "
                    "expected an integer length type and a numeric item type")  # fmt: skip
        return f"property '{words[2]}' of element '{element}' has type '{words[1]}', which is not a numeric PLY type"
    if keyword == "property":
        return f"malformed PLY property line {number}: {text!r}"
    return f"malformed PLY header line {number} {text!r}: {message}"


def _declared_twice(lines: list[str]) -> str:
    """The element or (element, property) a header declares twice (plyfile only says that one is)."""
    elements: dict[str, set[str]] = {}
    current = None
    for words in (line.split() for line in lines):
        if words[:1] == ["element"] and len(words) > 1:
            if words[1] in elements:
                return f"PLY header declares element '{words[1]}' twice"
            current = elements.setdefault(words[1], set())
        elif words[:1] == ["property"] and current is not None and len(words) > 2:
            if words[-1] in current:
                element = next(name for name, props in elements.items() if props is current)
                return f"element '{element}' declares property '{words[-1]}' twice"
            current.add(words[-1])
    return "PLY header declares an element or property twice"


def _parse_header(path: Path, header: bytes, nl: bytes) -> plyfile.PlyData:
    """plyfile's parse of ``header`` (elements, properties, format), as a PlyData without data.

    plyfile has no public header-only read (``PlyData.read`` reads every element's data right
    after its header, allocating from the header's counts), so this calls its header parser,
    ``PlyData._parse_header`` (unchanged since plyfile 0.7); tests/test_ply.py covers it.
    """
    lines = header.decode("ascii").split(nl.decode("ascii"))
    try:
        ply = plyfile.PlyData._parse_header(io.BytesIO(header + nl))
    except plyfile.PlyHeaderParseError as err:
        raise FileFormatError(path, _header_problem(lines, err)) from None
    except ValueError as err:  # raised by PlyData / PlyElement for repeated names
        if "same name" not in str(err):
            raise FileFormatError(path, f"malformed PLY header: {err}") from None
        raise FileFormatError(path, _declared_twice(lines)) from None
    for el in ply.elements:
        if el.count < 0:
            number = next(i + 1 for i, ln in enumerate(lines) if ln.split()[:2] == ["element", el.name])
            raise FileFormatError(
                path, f"malformed PLY element line {number}: {lines[number - 1].strip()!r} (expected "
                "'element NAME COUNT' with a non-negative integer COUNT)"
            )
        for p in el.properties:
            if isinstance(p, plyfile.PlyListProperty) and np.dtype(p.len_dtype).kind not in "iu":
                types = " ".join(str(p).split()[2:4])
                raise FileFormatError(
                    path, f"list property '{p.name}' of element '{el.name}' has types '{types}'; "
                    "expected an integer length type and a numeric item type"
                )
    return ply


def _row_bytes(el: plyfile.PlyElement, text: bool) -> int:
    """A lower bound on the bytes of one row (exact for binary rows without list properties)."""
    if text:  # every value takes at least one character and one separator
        return 2 * len(el.properties)
    return sum(
        np.dtype(p.len_dtype if isinstance(p, plyfile.PlyListProperty) else p.val_dtype).itemsize
        for p in el.properties
    )


def _check_size(path: Path, ply: plyfile.PlyData, available: int) -> None:
    """Refuse element counts the file's bytes cannot hold (before anything is allocated)."""
    needed = 0
    for el in ply.elements:
        if el.count and not el.properties:
            raise FileFormatError(path, f"PLY element '{el.name}' has {el.count:,} rows but no properties")
        needed += el.count * _row_bytes(el, ply.text)
        if needed - ply.text > available:  # the last ASCII value may lack its newline: one byte of slack
            what = "vertex count" if el.name == "vertex" else f"'{el.name}' count"
            raise FileFormatError(
                path,
                f"truncated data: the header's {what} ({el.count:,}) needs at least {needed:,} bytes "
                f"but the file holds only {available:,} bytes after the header",
            )


def _type_name(p: plyfile.PlyProperty) -> str:
    """The PLY type name of a property as its header spells it (``float``, ``list uchar int``)."""
    return " ".join(str(p).split()[1:-1])


# ------------------------------------------------------------------------------------ the data
class _BoundedReader(io.BufferedReader):
    """A file whose reads never ask for more than the bytes left in it.

    plyfile reads a binary list with ``stream.read(length * itemsize)``, ``length`` taken from the
    file: capping the request keeps a bogus length from allocating gigabytes (it reads short and
    plyfile reports the end of the file)."""

    def __init__(self, path: Path):
        super().__init__(io.FileIO(path, "rb"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(int(size), max(self._size - self.tell(), 0))
        return super().read(size)


def _data_problem(err: plyfile.PlyElementParseError) -> str:
    """plyfile's data error as a one-line problem naming the element, row and property."""
    el, row, prop = err.element, err.row, err.prop
    what = "vertex" if el is not None and el.name == "vertex" else f"'{el.name if el is not None else '?'}'"
    is_list = isinstance(prop, plyfile.PlyListProperty)
    if err.message == "early end-of-file":
        return f"truncated data: the file ends at {what} row {row:,} of the {el.count:,} the header declares"
    if err.message == "early end-of-line" and prop is not None:
        if is_list:
            return f"{what} row {row:,} ends inside list property '{prop.name}'"
        return f"{what} row {row:,} ends before property '{prop.name}' (too few values)"
    if err.message == "malformed input" and prop is not None:
        if is_list:
            return (f"{what} row {row:,}: list property '{prop.name}' has a length that is not a count "
                    "or items that are not numbers")  # fmt: skip
        return f"{what} row {row:,}: the value of property '{prop.name}' is not a valid {_type_name(prop)}"
    if err.message == "expected end-of-line":
        return f"{what} row {row:,} has more values than the header declares"
    return str(err)


def _read_elements(path: Path, ply: plyfile.PlyData, data_offset: int, upto: int) -> None:
    """Read the data of ``ply.elements[: upto + 1]`` with plyfile (binary memory-mapped)."""
    current = ply.elements[0]
    try:
        with _BoundedReader(path) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # np.loadtxt on empty ASCII lists, float overflow to inf
            f.seek(data_offset)
            stream = io.TextIOWrapper(f, "ascii", errors="replace") if ply.text else f
            for current in ply.elements[: upto + 1]:
                # plyfile has no public per-element read (PlyData.read reads every element, even
                # faces after the vertices); PlyElement._read is what PlyData.read calls.
                current._read(stream, ply.text, ply.byte_order, mmap="c")
            if ply.text:
                stream.detach()
    except plyfile.PlyElementParseError as err:
        raise FileFormatError(path, _data_problem(err)) from None
    except OverflowError as err:  # an ASCII integer beyond its type (plyfile does not catch it)
        raise FileFormatError(path, f"element '{current.name}': a value is out of range of its type ({err})") from None
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None


def read_ply(path: str | Path, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Load a 3DGS .ply (INRIA layout) into a :class:`GaussianScene` (on the CPU).

    Values are converted to ``dtype``; with ``torch.float64`` a double-typed file keeps its full
    precision. Raises :class:`~adlift.errors.FileFormatError` naming the file and the problem, in
    one line, for anything that is not a readable, finite 3DGS asset.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise SceneError(f"read_ply dtype must be a floating-point torch dtype, got {dtype}")
    path = Path(path)
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise FileFormatError(path, "no such file") from None
    except (OSError, ValueError) as err:
        raise FileFormatError(path, f"cannot access the file: {getattr(err, 'strerror', None) or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFormatError(path, "is a directory, expected a .ply file")
    header, nl = _read_head(path)
    ply = _parse_header(path, header, nl)
    names = [el.name for el in ply.elements]
    if "vertex" not in names:
        raise FileFormatError(path, f"PLY file has no 'vertex' element (elements: {', '.join(names) or 'none'})")
    vertex = ply["vertex"]
    props = {p.name: p for p in vertex.properties}
    if any(name in props for name in COMPRESSED_MARKERS):  # SuperSplat / gsplat 'ply_compressed'
        from adlift.io import compressed_ply

        return compressed_ply.read(path, dtype=dtype)
    rgb_mode = not any(f"f_dc_{i}" in props for i in range(3)) and all(c in props for c in _RGB)
    required = [name for name in REQUIRED if not (rgb_mode and name.startswith("f_dc_"))]
    missing = [name for name in required if name not in props]
    if missing:
        raise FileFormatError(
            path, f"not a 3D Gaussian Splatting .ply: vertex properties missing: {', '.join(missing)}"
        )
    rest_ids = sorted(int(m.group(1)) for name in props if (m := _F_REST.match(name)))
    used = required + [f"f_rest_{i}" for i in rest_ids] + (_RGB if rgb_mode else [])
    for name in used:
        if isinstance(props[name], plyfile.PlyListProperty):
            raise FileFormatError(path, f"vertex property '{name}' is a list, expected a numeric scalar")
    if rest_ids != list(range(len(rest_ids))):
        raise FileFormatError(path, f"f_rest_* properties are not numbered 0..{len(rest_ids) - 1} without gaps")
    if len(rest_ids) % 3 or (len(rest_ids) // 3 + 1) not in SH_COEFFS_TO_DEGREE:
        raise FileFormatError(
            path,
            f"{len(rest_ids)} f_rest_* properties is no SH degree "
            "(expected 0, 9, 24 or 45 for degree 0, 1, 2 or 3)",
        )
    if rgb_mode and rest_ids:
        raise FileFormatError(path, "vertex has red/green/blue and f_rest_* but no f_dc_* (DC colour) properties")
    for c in _RGB if rgb_mode else ():
        kind, size = np.dtype(props[c].val_dtype).kind, np.dtype(props[c].val_dtype).itemsize
        if not (kind == "f" or (kind == "u" and size <= 2)):
            raise FileFormatError(
                path, f"colour property '{c}' has type '{_type_name(props[c])}', expected uchar, ushort or float"
            )
    data_offset = len(header) + len(nl)
    _check_size(path, ply, st.st_size - data_offset)
    _read_elements(path, ply, data_offset, names.index("vertex"))
    return _vertices_to_scene(
        path, vertex.data, n=vertex.count, k=len(rest_ids) // 3 + 1, rgb_mode=rgb_mode, dtype=dtype
    )


def _order(k: int) -> list[str]:
    """The used vertex properties of an f_dc file with K SH coefficients, in the order of
    ``_gather_rows``: means, DC colour, f_rest (channel-major), opacity, scales, quaternion."""
    return ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(3 * (k - 1))),
            "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip


def _gather_rows(data, *, n: int, k: int, work) -> dict[str, np.ndarray] | None:
    """Fast path for rows of one float type (every 3DGS writer): one gather of the used columns
    and one finiteness check. None when the layout differs or a value is not finite (the
    per-column path then reads it and names the bad property)."""
    fields = data.dtype.fields or {}
    types = {f[0] for f in fields.values()}
    if len(types) != 1:
        return None
    (ftype,) = types
    if ftype.kind != "f" or data.dtype.itemsize != len(fields) * ftype.itemsize:
        return None
    names = list(data.dtype.names)
    rows = np.asarray(data).view(ftype).reshape(n, len(names))  # [N, P], no copy
    with np.errstate(over="ignore"):
        table = rows[:, [names.index(name) for name in _order(k)]].astype(work, copy=False)  # [N, 17 + 3(K-1)]
    if not np.isfinite(table).all():
        return None
    r = 6 + 3 * (k - 1)
    rest = table[:, 6:r].reshape(n, 3, k - 1).transpose(0, 2, 1)  # channel-major f_rest -> [N, K-1, 3]
    return {"means": table[:, :3], "sh": np.concatenate([table[:, None, 3:6], rest], axis=1),
            "opacity": table[:, r], "scales": table[:, r + 1 : r + 4], "quats": table[:, r + 4 : r + 8]}  # fmt: skip


def _vertices_to_scene(path: Path, data, *, n: int, k: int, rgb_mode: bool, dtype: torch.dtype) -> GaussianScene:
    """Columns of the parsed vertex element (``data[name]`` -> [n]) -> GaussianScene, checking
    every value is finite."""
    work = np.float64 if dtype == torch.float64 else np.float32
    fast = None if rgb_mode else _gather_rows(data, n=n, k=k, work=work)
    if fast is None:
        fast = _gather_columns(path, data, n=n, k=k, rgb_mode=rgb_mode, work=work)
    tensors = {}
    for name, key in (("means", "means"), ("quats", "quats"), ("log_scales", "scales"),
                      ("opacity_logits", "opacity"), ("sh", "sh")):  # fmt: skip
        t = torch.from_numpy(np.ascontiguousarray(fast[key])).to(dtype)
        if torch.finfo(dtype).max < np.finfo(work).max and not bool(torch.isfinite(t).all()):
            raise FileFormatError(path, f"{name} values exceed the range of {dtype}; read with a wider dtype")
        tensors[name] = t
    return GaussianScene(**tensors, check_finite=False)


def _gather_columns(path: Path, data, *, n: int, k: int, rgb_mode: bool, work) -> dict[str, np.ndarray]:
    """Column by column, any numeric types: the arrays of :func:`_gather_rows`, or a one-line
    FileFormatError naming the first vertex and property with a non-finite value."""

    def column(name: str) -> np.ndarray:
        raw = data[name]
        if raw.dtype.kind not in "fiu":
            raise FileFormatError(path, f"vertex property '{name}' is not numeric (dtype {raw.dtype})")
        if raw.dtype.kind == "f":
            bad = ~np.isfinite(raw)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise FileFormatError(
                    path, f"vertex {first} has a NaN/Inf value in property '{name}' "
                    f"({int(bad.sum())} vertices have one)"
                )
        with np.errstate(over="ignore"):
            out = raw.astype(work)
        if raw.dtype.kind == "f" and raw.dtype.itemsize > np.dtype(work).itemsize and not np.isfinite(out).all():
            first = int(np.flatnonzero(~np.isfinite(out))[0])
            raise FileFormatError(
                path, f"vertex {first} has a value in property '{name}' beyond the {np.dtype(work).name} range"
            )
        return out

    def fill(shape: tuple[int, ...], names: list[str]) -> np.ndarray:
        out = np.empty((n, len(names)), dtype=work)
        for i, name in enumerate(names):
            out[:, i] = column(name)
        return out.reshape(shape)

    means = fill((n, 3), ["x", "y", "z"])
    sh = np.zeros((n, k, 3), dtype=work)
    if rgb_mode:
        for c, name in enumerate(_RGB):
            raw = data[name]
            scale = {1: 255.0, 2: 65535.0}[raw.dtype.itemsize] if raw.dtype.kind == "u" else 1.0
            sh[:, 0, c] = (column(name) / scale - 0.5) / SH_C0
    else:
        sh[:, 0, :] = fill((n, 3), [f"f_dc_{c}" for c in range(3)])
    for c in range(3):  # f_rest is channel-major: all of red's coefficients 1..K-1, then green, then blue
        for j in range(1, k):
            sh[:, j, c] = column(f"f_rest_{c * (k - 1) + j - 1}")
    opacity = column("opacity")
    scales = fill((n, 3), [f"scale_{i}" for i in range(3)])
    quats = fill((n, 4), [f"rot_{i}" for i in range(4)])
    return {"means": means, "sh": sh, "opacity": opacity, "scales": scales, "quats": quats}


def scene_to_vertex_array(scene: GaussianScene, *, normals: bool = True) -> np.ndarray:
    """The scene as a numpy structured array with the INRIA vertex properties (float32)."""
    k_rest = scene.sh.shape[1] - 1
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(3 * k_rest)]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    s = scene.detach().to("cpu", torch.float32)
    n = s.num_gaussians
    cols = [s.means.numpy()]
    if normals:
        cols.append(np.zeros((n, 3), dtype=np.float32))
    cols += [
        s.sh[:, 0].numpy(),
        s.sh[:, 1:].permute(0, 2, 1).reshape(n, 3 * k_rest).numpy(),  # channel-major
        s.opacity_logits[:, None].numpy(),
        s.log_scales.numpy(),
        s.quats.numpy(),
    ]
    flat = np.ascontiguousarray(np.concatenate(cols, axis=1), dtype="<f4")  # [N, P]
    return flat.view(np.dtype([(name, "<f4") for name in names])).reshape(n)  # one record per row, no copy


def write_ply(
    scene: GaussianScene, path: str | Path, *, normals: bool = True, comments: Iterable[str] = ()
) -> Path:
    """Write ``scene`` as a binary little-endian INRIA 3DGS .ply, atomically. Returns the path.

    Values are stored as float32 (as every 3DGS tool expects). ``normals`` writes the zero
    ``nx ny nz`` columns the original 3DGS code writes. A scene with NaN/Inf values (or values
    beyond the float32 range) raises :class:`~adlift.errors.SceneError` and writes nothing; an
    I/O failure raises :class:`~adlift.errors.AdLiftError` and leaves any existing file unchanged.
    """
    path = Path(path)
    comments = [comments] if isinstance(comments, str) else [str(c) for c in comments]
    for c in comments:
        if not c.isascii() or "\n" in c or "\r" in c:
            raise AdLiftError(f"cannot write {path}: PLY comments must be one line of ASCII text, got {c!r}")
    vertices = scene_to_vertex_array(scene, normals=normals)
    if not np.isfinite(vertices.view("<f4")).all():  # one check of the float32 values; say which field
        try:
            scene.check_values()
        except SceneError as err:
            raise SceneError(f"cannot write {path}: {err}") from None
        try:
            scene.detach().to("cpu", torch.float32).check_values()
        except SceneError as err:
            raise SceneError(f"cannot write {path}: values beyond the float32 range: {err}") from None
        raise SceneError(f"cannot write {path}: non-finite values")  # not reached: one of the above raises
    ply = plyfile.PlyData(
        [plyfile.PlyElement.describe(vertices, "vertex")], text=False, byte_order="<", comments=comments
    )
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                ply.write(f)
    except OSError as err:
        raise AdLiftError(f"cannot write {path}: {err.strerror or err}") from None
    return path
