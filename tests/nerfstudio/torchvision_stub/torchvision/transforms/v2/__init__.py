"""Test-only stand-in: an importable but empty torchvision.transforms.v2 (see ../../../README.md)."""

from torchvision.transforms.v2 import functional

__all__ = ['functional']
