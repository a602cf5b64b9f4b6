"""Read and write 3D Gaussian Splatting assets in the INRIA .ply layout.

Vertex properties (float32 unless the file says otherwise; order and extra properties vary
between writers and are ignored):

    x y z  [nx ny nz]  f_dc_0..2  f_rest_0..f_rest_{3(K-1)-1}  opacity  scale_0..2  rot_0..3

``f_rest`` is channel-major: the K-1 higher-order coefficients of red, then green, then blue.
``opacity`` is a logit, ``scale_*`` are log standard deviations, ``rot_*`` a (w, x, y, z)
quaternion of any norm: exactly the unactivated :class:`~adlift.scene.GaussianScene` fields.

Reading: binary little/big endian and ASCII, via plyfile. Before plyfile sees the data, the
header is checked against the file size, so a truncated file or a header claiming more vertices
than the bytes can hold fails fast with a clear message instead of allocating memory for them.
Writing: binary little endian, float32, atomically; round trips are bit-exact.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plyfile
import torch

from adlift.errors import FileFormatError
from adlift.io.atomic import atomic_path
from adlift.scene import SH_COEFFS_TO_DEGREE, GaussianScene

#: PLY scalar type names (both spellings) and their sizes in bytes.
PLY_SCALAR_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4,
    "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip

MAX_HEADER_BYTES = 1 << 20
REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
_F_REST = re.compile(r"^f_rest_(\d+)$")


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)  # (name, type or "list")

    def row_bytes(self) -> int | None:
        """Bytes per row in a binary file; None when a list property makes rows variable."""
        if any(t == "list" for _, t in self.properties):
            return None
        return sum(PLY_SCALAR_SIZES[t] for _, t in self.properties)


@dataclass
class _Header:
    format: str
    elements: list[_Element]
    data_offset: int


def _read_header(path: Path) -> _Header:
    """Parse and sanity-check the PLY header (plyfile parses the data afterwards)."""
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        raise FileFormatError(path, "not a PLY file (it does not start with the 'ply' magic line)")
    end = re.search(rb"end_header\r?\n", head)
    if end is None:
        raise FileFormatError(path, "PLY header has no 'end_header' line (truncated or not a PLY file)")
    try:
        lines = head[: end.start()].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise FileFormatError(path, "PLY header contains non-ASCII bytes") from None
    fmt = None
    elements: list[_Element] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise FileFormatError(path, f"unsupported PLY format line {line.strip()!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise FileFormatError(path, f"malformed PLY element line {number}: {line.strip()!r}")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise FileFormatError(path, f"PLY property before any element on line {number}")
            if len(words) == 5 and words[1] == "list":
                elements[-1].properties.append((words[4], "list"))
            elif len(words) == 3:
                ptype, pname = words[1], words[2]
                if ptype not in PLY_SCALAR_SIZES:
                    raise FileFormatError(
                        path, f"property '{pname}' of element '{elements[-1].name}' has type '{ptype}', "
                        "which is not a numeric PLY type"
                    )
                elements[-1].properties.append((pname, ptype))
            else:
                raise FileFormatError(path, f"malformed PLY property line {number}: {line.strip()!r}")
        else:
            raise FileFormatError(path, f"unknown PLY header keyword {words[0]!r} on line {number}")
    if fmt is None:
        raise FileFormatError(path, "PLY header has no 'format' line")
    return _Header(fmt, elements, end.end())


def _check_size(path: Path, header: _Header) -> None:
    """Refuse element counts the file's bytes cannot hold (before anything is allocated)."""
    available = path.stat().st_size - header.data_offset
    needed = 0
    for el in header.elements:
        if header.format == "ascii":
            # Every value takes at least one character and one separator.
            row = max(1, 2 * len(el.properties))
        else:
            row = el.row_bytes()
            if row is None:  # variable-length rows: at least one byte per list length
                row = max(1, sum(PLY_SCALAR_SIZES.get(t, 1) for _, t in el.properties))
        needed += el.count * row
        if needed > available:
            what = "vertex count" if el.name == "vertex" else f"'{el.name}' count"
            raise FileFormatError(
                path,
                f"truncated data: the header's {what} ({el.count:,}) needs at least {needed:,} bytes "
                f"but the file holds only {available:,} bytes after the header",
            )


def _float_column(path: Path, data: np.ndarray, name: str) -> np.ndarray:
    column = data[name]
    if column.dtype.kind not in "fiu":
        raise FileFormatError(path, f"vertex property '{name}' is not numeric (dtype {column.dtype})")
    return column.astype(np.float32, copy=False) if column.dtype != np.float32 else column


def read_ply(path: str | Path, *, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Load a 3DGS .ply (INRIA layout) into a :class:`GaussianScene` (on the CPU).

    Raises :class:`~adlift.errors.FileFormatError` naming the file and the problem for anything
    that is not a readable, finite 3DGS asset.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, "no such file")
    if path.is_dir():
        raise FileFormatError(path, "is a directory, expected a .ply file")
    header = _read_header(path)
    vertex = next((el for el in header.elements if el.name == "vertex"), None)
    if vertex is None:
        names = ", ".join(el.name for el in header.elements) or "none"
        raise FileFormatError(path, f"PLY file has no 'vertex' element (elements: {names})")
    types = dict(vertex.properties)
    missing = [name for name in REQUIRED if name not in types]
    if missing:
        raise FileFormatError(
            path, f"not a 3D Gaussian Splatting .ply: vertex properties missing: {', '.join(missing)}"
        )
    rest_ids = sorted(int(m.group(1)) for name, _ in vertex.properties if (m := _F_REST.match(name)))
    for name in REQUIRED + [f"f_rest_{i}" for i in rest_ids]:
        if types[name] == "list":
            raise FileFormatError(path, f"vertex property '{name}' is a list, expected a numeric scalar")
    if rest_ids != list(range(len(rest_ids))):
        raise FileFormatError(path, f"f_rest_* properties are not numbered 0..{len(rest_ids) - 1} without gaps")
    if len(rest_ids) % 3 or (len(rest_ids) // 3 + 1) not in SH_COEFFS_TO_DEGREE:
        raise FileFormatError(
            path,
            f"{len(rest_ids)} f_rest_* properties is no SH degree "
            "(expected 0, 9, 24 or 45 for degree 0, 1, 2 or 3)",
        )
    _check_size(path, header)

    try:
        with open(path, "rb") as f:
            ply = plyfile.PlyData.read(f, mmap=False)
    except (plyfile.PlyParseError, ValueError, EOFError, OSError, IndexError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileFormatError(path, f"cannot parse PLY data: {message}") from None
    data = ply["vertex"].data
    n = len(data)
    if n != vertex.count:
        raise FileFormatError(path, f"truncated data: header declares {vertex.count} vertices, read {n}")

    def stack(names: list[str]) -> np.ndarray:
        if not names:
            return np.zeros((n, 0), dtype=np.float32)
        return np.stack([_float_column(path, data, name) for name in names], axis=1)

    means = stack(["x", "y", "z"])
    dc = stack(["f_dc_0", "f_dc_1", "f_dc_2"])
    k_rest = len(rest_ids) // 3
    rest = stack([f"f_rest_{i}" for i in rest_ids]).reshape(n, 3, k_rest).transpose(0, 2, 1)
    sh = np.concatenate([dc[:, None, :], rest], axis=1)
    opacity = _float_column(path, data, "opacity")
    scales = stack(["scale_0", "scale_1", "scale_2"])
    quats = stack(["rot_0", "rot_1", "rot_2", "rot_3"])

    for label, arr in (("position", means), ("colour", sh), ("opacity", opacity), ("scale", scales),
                       ("rotation", quats)):  # fmt: skip
        finite = np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise FileFormatError(
                path, f"{len(bad)} vertices have NaN/Inf {label} values (first: vertex {int(bad[0])})"
            )

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

    return GaussianScene(t(means), t(quats), t(scales), t(opacity), t(sh), check_finite=False)


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


def write_ply(scene: GaussianScene, path: str | Path, *, normals: bool = True, comments: list[str] = ()) -> Path:
    """Write ``scene`` as a binary little-endian INRIA 3DGS .ply, atomically. Returns the path.

    Values are stored as float32 (as every 3DGS tool expects). ``normals`` writes the zero
    ``nx ny nz`` columns the original 3DGS code writes.
    """
    path = Path(path)
    vertices = scene_to_vertex_array(scene, normals=normals)
    ply = plyfile.PlyData(
        [plyfile.PlyElement.describe(vertices, "vertex")], text=False, byte_order="<", comments=list(comments)
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            ply.write(f)
    return path
