"""Test-only stand-in for torchvision.transforms (see ../../README.md)."""

import enum

from torchvision.transforms import functional, v2


class InterpolationMode(enum.Enum):
    """Names only (transformers imports this enum when it sees a torchvision)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"

__all__ = ['InterpolationMode', 'functional', 'v2']
