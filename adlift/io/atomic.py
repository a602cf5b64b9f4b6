"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash or an error while writing leaves either the old file or no file, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from adlift.errors import AdLiftError


@contextlib.contextmanager
def atomic_path(path: str | Path, *, protect: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    ``protect`` lists input files that must never be overwritten: naming one of them as the
    output raises :class:`AdLiftError` before anything is written.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and os.path.samefile(p, path):
            raise AdLiftError(f"refusing to overwrite the input file {p}; choose another output path")
    if path.exists() and path.is_dir():
        raise AdLiftError(f"{path}: is a directory, expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_current_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
