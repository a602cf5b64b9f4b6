"""Checkpoints that cannot run code: saved atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors, numbers, strings, bools, None, lists/tuples and dicts of them
(optimizer ``state_dict()`` and ``torch.Generator.get_state()`` qualify). Loading anything else, for
example a pickle whose ``__reduce__`` would call ``os.system``, is refused by torch's restricted
unpickler *before* any of it runs, and reported as one line::

    state = load_checkpoint(path)             # dict, or AdLiftError (exit 2 on the CLI)
    save_checkpoint(path, state)              # atomic: temp file + rename
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from adlift.errors import AdLiftError


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` with ``torch.save`` atomically; returns the path."""
    from adlift.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(
    path: str | Path, what: str = "checkpoint", map_location: str | torch.device = "cpu", *, data: bytes | None = None
) -> dict:
    """The dict saved at ``path``, loaded with ``weights_only=True``.

    ``data``: the file's bytes, already read (e.g. by another rank of a distributed run); ``path`` then
    only names it in messages. AdLiftError (one line, naming the file) when it is missing, unreadable,
    not a dict, or holds anything but tensors, numbers, strings, lists and dicts (nothing in such a
    file runs).
    """
    import io

    path = Path(path)
    if data is None and not path.is_file():
        raise AdLiftError(f"{path}: no {what} there")
    try:
        source = io.BytesIO(data) if data is not None else path
        state = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # no object to build (garbage bytes also fail "weights only")
            raise AdLiftError(f"{path}: cannot read the {what} (not a torch checkpoint); delete it to start over") from None
        raise AdLiftError(
            f"{path}: refused to load this {what}: it holds Python objects, not only tensors, numbers and "
            "strings (nothing in it was run); delete it to start over"
        ) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise AdLiftError(f"{path}: cannot read the {what} ({e.__class__.__name__}); delete it to start over") from None
    if not isinstance(state, dict):
        raise AdLiftError(f"{path}: not an AdLift {what} (expected a dict, got {type(state).__name__})")
    return state
