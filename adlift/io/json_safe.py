"""JSON has no NaN or Infinity: :func:`finite` maps them to null (an infinite PSNR = identical images)."""

from __future__ import annotations

import math


def finite(value):
    """A copy of ``value`` (nested dicts, lists, tuples) with non-finite floats replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
