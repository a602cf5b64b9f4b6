"""Safe JSON: :func:`finite` maps NaN/Infinity (which JSON lacks) to null (an infinite PSNR =
identical images); :func:`read_json_object` reads a JSON object or raises a one-line AdLiftError."""

from __future__ import annotations

import json
import math
from pathlib import Path

from adlift.errors import AdLiftError


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
