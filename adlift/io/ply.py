"""Read and write 3D Gaussian Splatting assets in the INRIA .ply layout.

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

Compressed PLYs (SuperSplat / gsplat ``ply_compressed``) are refused with a clear message.

Reading: binary little/big endian and ASCII, with LF, CRLF or CR header lines. The header is
parsed here (accepting what plyfile accepts) and checked against the file size before anything
is allocated, so a truncated file or a header claiming 10^12 vertices fails fast with a clear
message. The vertex data is then read with numpy: one ``np.fromfile`` for the fixed-size rows of
every 3DGS writer (plyfile's non-mmap reader loops over rows in Python: minutes for a million
Gaussians), ``np.loadtxt`` for ASCII. Elements after the vertex element are never parsed. Every
problem is a one-line :class:`~adlift.errors.FileFormatError` naming the file.
Writing (via plyfile): binary little endian, float32, atomically; round trips are bit-exact.
"""

from __future__ import annotations

import math
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import plyfile
import torch

from adlift.errors import AdLiftError, FileFormatError, SceneError
from adlift.io.atomic import atomic_path
from adlift.scene import SH_C0, SH_COEFFS_TO_DEGREE, GaussianScene

#: PLY scalar type names (both spellings) and their sizes in bytes.
PLY_SCALAR_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4,
    "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip
_PLY_INT_TYPES = {name for name in PLY_SCALAR_SIZES if not name.startswith(("float", "double"))}
#: numpy type codes of the PLY scalar types (byte order added per file).
_NUMPY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_STRUCT_CODES = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}

MAX_HEADER_BYTES = 1 << 20
REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
_RGB = ["red", "green", "blue"]
_F_REST = re.compile(r"^f_rest_(0|[1-9][0-9]*)$")
_COMPRESSED_MARKERS = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


@dataclass
class _Property:
    name: str
    type: str  # a PLY scalar type, or "list"
    count_type: str | None = None  # for lists: the type of the length prefix
    item_type: str | None = None  # for lists: the type of the items


@dataclass
class _Element:
    name: str
    count: int
    properties: list[_Property] = field(default_factory=list)

    def min_row_bytes(self) -> int:
        """A lower bound on the bytes of one row in a binary file (exact without list properties)."""
        return sum(PLY_SCALAR_SIZES[p.count_type if p.type == "list" else p.type] for p in self.properties)


@dataclass
class _Header:
    format: str
    elements: list[_Element]
    data_offset: int


def _read_header(path: Path) -> _Header:
    """Parse and sanity-check the PLY header.

    Accepts what plyfile accepts (LF, CRLF or CR line endings, 'comment' and 'obj_info' lines)
    and rejects the rest with a specific message.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    if not head:
        raise FileFormatError(path, "empty file, expected a PLY file")
    nl = next((n for n in (b"\r\n", b"\n", b"\r") if head.startswith(b"ply" + n)), None)
    if nl is None:
        raise FileFormatError(path, "not a PLY file (it does not start with the 'ply' magic line)")
    marker = nl + b"end_header" + nl
    end = head.find(marker)
    if end < 0:
        if len(head) >= MAX_HEADER_BYTES:
            raise FileFormatError(path, f"PLY header is longer than {MAX_HEADER_BYTES} bytes or has no 'end_header'")
        raise FileFormatError(path, "PLY header has no 'end_header' line (truncated or not a PLY file)")
    try:
        lines = head[:end].decode("ascii").split(nl.decode("ascii"))
    except UnicodeDecodeError:
        raise FileFormatError(path, "PLY header contains non-ASCII bytes") from None
    fmt = None
    elements: list[_Element] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words:
            raise FileFormatError(path, f"empty line {number} in the PLY header")
        if words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise FileFormatError(path, f"unsupported PLY format line {line.strip()!r}")
            if words[2] != "1.0":
                raise FileFormatError(path, f"unsupported PLY version {words[2]!r} (only 1.0 exists)")
            if fmt is not None:
                raise FileFormatError(path, f"second 'format' line {number} in the PLY header")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not (words[2].isascii() and words[2].isdigit()):
                raise FileFormatError(
                    path, f"malformed PLY element line {number}: {line.strip()!r} (expected 'element NAME COUNT' "
                    "with a non-negative integer COUNT)"
                )
            if any(el.name == words[1] for el in elements):
                raise FileFormatError(path, f"PLY header declares element '{words[1]}' twice")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise FileFormatError(path, f"PLY property before any element on line {number}")
            element = elements[-1]
            if len(words) == 5 and words[1] == "list":
                count_type, item_type, name = words[2], words[3], words[4]
                if count_type not in _PLY_INT_TYPES or item_type not in PLY_SCALAR_SIZES:
                    raise FileFormatError(
                        path, f"list property '{name}' of element '{element.name}' has types "
                        f"'{count_type} {item_type}'; expected an integer length type and a numeric item type"
                    )
                prop = _Property(name, "list", count_type, item_type)
            elif len(words) == 3 and words[1] != "list":
                ptype, name = words[1], words[2]
                if ptype not in PLY_SCALAR_SIZES:
                    raise FileFormatError(
                        path, f"property '{name}' of element '{element.name}' has type '{ptype}', "
                        "which is not a numeric PLY type"
                    )
                prop = _Property(name, ptype)
            else:
                raise FileFormatError(path, f"malformed PLY property line {number}: {line.strip()!r}")
            if any(p.name == prop.name for p in element.properties):
                raise FileFormatError(path, f"element '{element.name}' declares property '{prop.name}' twice")
            element.properties.append(prop)
        else:
            raise FileFormatError(path, f"unknown PLY header keyword {words[0]!r} on line {number}")
    if fmt is None:
        raise FileFormatError(path, "PLY header has no 'format' line")
    return _Header(fmt, elements, end + len(marker))


def _check_size(path: Path, header: _Header) -> None:
    """Refuse element counts the file's bytes cannot hold (before anything is allocated)."""
    available = path.stat().st_size - header.data_offset
    needed = 0
    for el in header.elements:
        if el.count and not el.properties:
            raise FileFormatError(path, f"PLY element '{el.name}' has {el.count:,} rows but no properties")
        if header.format == "ascii":
            # Every value takes at least one character and one separator (the very last value
            # of the file may lack its newline, hence the one byte of slack below).
            row = 2 * len(el.properties)
        else:
            row = el.min_row_bytes()  # list rows hold at least their length prefixes
        needed += el.count * row
        if needed - (header.format == "ascii") > available:
            what = "vertex count" if el.name == "vertex" else f"'{el.name}' count"
            raise FileFormatError(
                path,
                f"truncated data: the header's {what} ({el.count:,}) needs at least {needed:,} bytes "
                f"but the file holds only {available:,} bytes after the header",
            )


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
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileFormatError(path, "no such file") from None
    except (OSError, ValueError) as err:
        raise FileFormatError(path, f"cannot access the file: {getattr(err, 'strerror', None) or err}") from None
    if stat.S_ISDIR(mode):
        raise FileFormatError(path, "is a directory, expected a .ply file")
    header = _read_header(path)
    vertex = next((el for el in header.elements if el.name == "vertex"), None)
    if vertex is None:
        names = ", ".join(el.name for el in header.elements) or "none"
        raise FileFormatError(path, f"PLY file has no 'vertex' element (elements: {names})")
    props = {p.name: p for p in vertex.properties}
    if any(name in props for name in _COMPRESSED_MARKERS):
        raise FileFormatError(
            path, "compressed 3DGS .ply (SuperSplat / gsplat 'ply_compressed') is not supported; "
            "export an uncompressed .ply (INRIA layout with f_dc_*, opacity, scale_*, rot_*)"
        )
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
        if props[name].type == "list":
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
        if props[c].type not in ("uchar", "uint8", "ushort", "uint16", "float", "float32", "double", "float64"):
            raise FileFormatError(
                path, f"colour property '{c}' has type '{props[c].type}', expected uchar, ushort or float"
            )
    _check_size(path, header)

    if header.format == "ascii":
        data = _read_vertex_ascii(path, header, vertex)
    else:
        data = _read_vertex_binary(path, header, vertex)
    return _vertices_to_scene(path, data, n=vertex.count, k=len(rest_ids) // 3 + 1, rgb_mode=rgb_mode, dtype=dtype)


# ------------------------------------------------------------------------------------ data readers
# Only the elements up to the vertex element are looked at: mesh faces or other data after it
# (beyond the size check above) cannot slow down or break loading the Gaussians.
def _truncated(path: Path, el: _Element, row: int) -> FileFormatError:
    what = "vertex" if el.name == "vertex" else f"'{el.name}'"
    return FileFormatError(
        path, f"truncated data: the file ends at {what} row {row:,} of the {el.count:,} the header declares"
    )


def _read_vertex_binary(path: Path, header: _Header, vertex: _Element) -> np.ndarray:
    """The vertex element of a binary PLY as a structured array of its scalar properties."""
    order = "<" if header.format == "binary_little_endian" else ">"
    scalar_dtype = np.dtype([(p.name, order + _NUMPY_TYPES[p.type]) for p in vertex.properties if p.type != "list"])
    before = header.elements[: header.elements.index(vertex)]
    try:
        with open(path, "rb") as f:
            if not any(p.type == "list" for el in [*before, vertex] for p in el.properties):
                # Fixed-size rows (every 3DGS writer): seek past earlier elements, read in one go.
                f.seek(header.data_offset + sum(el.count * el.min_row_bytes() for el in before))
                data = np.fromfile(f, dtype=scalar_dtype, count=vertex.count)
                if len(data) != vertex.count:
                    raise _truncated(path, vertex, len(data))
                return data
            f.seek(header.data_offset)
            buf = f.read()  # bounded by the file size
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    # Variable-length rows: walk them (slow, but no 3DGS writer puts lists before or in the vertices).
    pos = 0
    for el in before:
        for row in range(el.count):
            pos = _walk_binary_row(path, buf, pos, el, row, order, None)
    out = bytearray()
    for row in range(vertex.count):
        pos = _walk_binary_row(path, buf, pos, vertex, row, order, out)
    return np.frombuffer(bytes(out), dtype=scalar_dtype, count=vertex.count)


def _walk_binary_row(path: Path, buf: bytes, pos: int, el: _Element, row: int, order: str, out) -> int:
    """Step over one row of ``el`` starting at ``pos``; append its scalar values' bytes to ``out``."""
    for p in el.properties:
        if p.type == "list":
            size = PLY_SCALAR_SIZES[p.count_type]
            if pos + size > len(buf):
                raise _truncated(path, el, row)
            (length,) = struct.unpack_from(order + _STRUCT_CODES[_NUMPY_TYPES[p.count_type]], buf, pos)
            if length < 0:
                raise FileFormatError(path, f"negative list length {length} in '{el.name}' row {row:,}")
            pos += size + length * PLY_SCALAR_SIZES[p.item_type]
        else:
            size = PLY_SCALAR_SIZES[p.type]
            if out is not None:
                out += buf[pos : pos + size]
            pos += size
        if pos > len(buf):
            raise _truncated(path, el, row)
    return pos


def _read_vertex_ascii(path: Path, header: _Header, vertex: _Element) -> dict[str, np.ndarray]:
    """The vertex element of an ASCII PLY: its scalar properties as arrays of their declared types.

    As in plyfile (and the PLY spec), every row is one line; LF, CRLF and CR all end lines.
    """
    try:
        with open(path, "rb") as f:
            f.seek(header.data_offset)
            lines = f.read().splitlines()
    except OSError as err:
        raise FileFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    skip = sum(el.count for el in header.elements[: header.elements.index(vertex)])
    rows = lines[skip : skip + vertex.count]
    if len(rows) < vertex.count:
        raise _truncated(path, vertex, len(rows))
    props = vertex.properties
    if any(p.type == "list" for p in props):
        return _parse_ascii_rows_with_lists(path, rows, props)
    values = None
    if rows:
        try:
            text = [row.decode("ascii") for row in rows]
            values = np.loadtxt(text, dtype=np.float64, comments=None, ndmin=2)
        except ValueError:  # also UnicodeDecodeError: find the row and say what is wrong with it
            values = None
        if values is not None and values.shape != (len(rows), len(props)):
            values = None
        if values is None:
            return _parse_ascii_rows_with_lists(path, rows, props)  # raises with the exact row
    else:
        values = np.zeros((0, len(props)))
    return {p.name: _ascii_column(path, values[:, i], p) for i, p in enumerate(props)}


def _parse_ascii_rows_with_lists(path: Path, rows: list[bytes], props: list[_Property]) -> dict[str, np.ndarray]:
    """Token by token (slow): rows with list properties, and pinpointing errors in plain rows."""
    scalars = [p for p in props if p.type != "list"]
    values = np.zeros((len(rows), len(scalars)))
    for r, row in enumerate(rows):
        tokens = row.split()
        t = 0
        column = 0
        for p in props:
            if t >= len(tokens):
                raise FileFormatError(path, f"vertex row {r:,} ends before property '{p.name}' (too few values)")
            number = _ascii_number(path, tokens[t], r, p.name)
            t += 1
            if p.type == "list":
                if not math.isfinite(number) or number != int(number) or number < 0:
                    raise FileFormatError(path, f"vertex row {r:,}: list length of '{p.name}' is not a count")
                t += int(number)
                if t > len(tokens):
                    raise FileFormatError(path, f"vertex row {r:,} ends inside list property '{p.name}'")
            else:
                values[r, column] = number
                column += 1
        if t != len(tokens):
            raise FileFormatError(
                path, f"vertex row {r:,} has {len(tokens) - t} value(s) more than the header declares"
            )
    return {p.name: _ascii_column(path, values[:, i], p) for i, p in enumerate(scalars)}


def _ascii_number(path: Path, token: bytes, row: int, name: str) -> float:
    try:
        return float(token.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        shown = token[:20].decode("ascii", "replace")
        raise FileFormatError(path, f"vertex row {row:,}: {shown!r} for property '{name}' is not a number") from None


def _ascii_column(path: Path, values: np.ndarray, p: _Property) -> np.ndarray:
    """Cast parsed float64 values to the declared type (integers must be in range, as plyfile demands)."""
    np_type = np.dtype(_NUMPY_TYPES[p.type])
    if np_type.kind == "f":
        with np.errstate(over="ignore"):
            return values.astype(np_type)  # out-of-range floats become inf and are reported as such
    info = np.iinfo(np_type)
    ok = (values == np.floor(values)) & (values >= info.min) & (values <= info.max)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise FileFormatError(
            path, f"vertex row {row:,}: {float(values[row]):g} for property '{p.name}' is not a {p.type} integer"
        )
    return values.astype(np_type)


def _vertices_to_scene(path: Path, data, *, n: int, k: int, rgb_mode: bool, dtype: torch.dtype) -> GaussianScene:
    """Columns of the parsed vertex element (``data[name]`` -> [n]) -> GaussianScene, checking
    every value is finite."""
    work = np.float64 if dtype == torch.float64 else np.float32

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

    tensors = {}
    for name, array in (("means", means), ("quats", quats), ("log_scales", scales), ("opacity_logits", opacity),
                        ("sh", sh)):  # fmt: skip
        t = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
        if torch.finfo(dtype).max < np.finfo(work).max and not bool(torch.isfinite(t).all()):
            raise FileFormatError(path, f"{name} values exceed the range of {dtype}; read with a wider dtype")
        tensors[name] = t
    return GaussianScene(**tensors, check_finite=False)


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
    flat = np.concatenate(cols, axis=1).astype(np.float32, copy=False)
    out = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        out[name] = flat[:, i]
    return out


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
    try:
        scene.check_values()
    except SceneError as err:
        raise SceneError(f"cannot write {path}: {err}") from None
    as_float32 = scene.detach().to("cpu", torch.float32)
    try:
        as_float32.check_values()
    except SceneError as err:
        raise SceneError(f"cannot write {path}: values beyond the float32 range: {err}") from None
    vertices = scene_to_vertex_array(as_float32, normals=normals)
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
