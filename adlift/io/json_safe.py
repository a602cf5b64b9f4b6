"""Safe JSON, the one way AdLift serialises anything: :func:`to_jsonable` turns dataclasses (configs),
Paths, tuples and tensors into plain JSON types; :func:`finite` maps NaN/Infinity (which JSON lacks)
to null (an infinite PSNR = identical images); :func:`write_json_atomic` writes both through
:func:`~adlift.io.atomic.write_text_atomic`; :func:`read_json_object` reads a JSON object or raises a
one-line AdLiftError."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from adlift.errors import AdLiftError
from adlift.io.atomic import write_text_atomic


def to_jsonable(value):
    """``value`` as plain JSON types: dataclass instances -> dicts (recursively), Paths -> str,
    tuples -> lists, 0-d tensors / numpy scalars -> numbers. Other values pass through unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # torch / numpy scalars
        return value.item()
    return value


def finite(value):
    """A copy of ``value`` (nested dicts, lists, tuples) with non-finite floats replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object from ``path``; AdLiftError ending in ``what`` (a hint) if it is missing, not JSON, or not an object."""
    if not path.is_file():
        raise AdLiftError(f"{path}: not found; {what}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdLiftError(f"{path}: cannot read it as JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise AdLiftError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def write_json_atomic(path: str | Path, value) -> None:
    """Write ``to_jsonable(value)`` as indented JSON (non-finite floats -> null), atomically."""
    write_text_atomic(path, json.dumps(finite(to_jsonable(value)), indent=2) + "\n")
