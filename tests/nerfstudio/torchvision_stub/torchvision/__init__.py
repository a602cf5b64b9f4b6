"""Test-only stand-in for torchvision (see ../README.md): just what nerfstudio 1.1.5 imports."""

from torchvision import io, transforms, utils

__version__ = "0.0.0+adlift.test.stub"

__all__ = ['io', 'transforms', 'utils']
