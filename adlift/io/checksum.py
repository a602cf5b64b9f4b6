"""Content hashes of files (the manifest's record of which raw scene a protection belongs to) and of tensors
(the inputs a checkpoint belongs to)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(*tensors, digits: int = 16) -> str:
    """Short hex SHA-256 of tensors' shapes and float32 values (a scene's parameters, camera matrices):
    what a checkpoint records to recognise the inputs of its run."""
    import torch

    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:digits]
