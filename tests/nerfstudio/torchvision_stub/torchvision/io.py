"""Test-only stand-in: importable, nothing in it (see ../README.md)."""


def __getattr__(name: str):
    raise AttributeError(f"torchvision.io.{name} is not in AdLift's test stand-in for torchvision")
