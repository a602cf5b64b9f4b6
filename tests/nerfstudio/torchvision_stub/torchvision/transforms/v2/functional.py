"""Test-only stand-in: importable, nothing in it (transformers imports it when it sees a torchvision)."""


def __getattr__(name: str):
    raise AttributeError(f"torchvision.transforms.v2.functional.{name} is not in AdLift's test stand-in for torchvision")
