"""Reading ``torch.save`` files (checkpoints) safely: tensors, numbers, strings, lists and dicts only.

Every checkpoint AdLift reads (protection and edit checkpoints, splatfacto / nerfstudio checkpoints)
goes through :func:`load_tensors`, which uses ``torch.load(weights_only=True)``: a file whose pickle
would construct any other object (and so could run code) is refused before anything in it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from adlift.errors import FileFormatError


def load_tensors(path: str | Path, what: str = "checkpoint", map_location: str | torch.device = "cpu"):
    """``torch.load(path, weights_only=True)``; one-line :class:`FileFormatError` (an AdLiftError) if the file is missing, unreadable,
    or holds pickled Python objects other than tensors, numbers, strings, lists, tuples and dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(path, f"no such {what} file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # no object to construct: not a torch.save file (or a truncated one)
            raise FileFormatError(path, f"cannot read the {what} (not a torch.save file); delete it or give another file") from None
        raise FileFormatError(
            path, f"refusing to load this {what}: it holds pickled Python objects, which could run code "
            "(AdLift reads only tensors, numbers, strings, lists and dicts); delete it or use a trusted file",
        ) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise FileFormatError(path, f"cannot read the {what} ({e.__class__.__name__}); delete it or give another file") from None
