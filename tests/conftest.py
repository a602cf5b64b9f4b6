"""Shared pytest set-up: a private torch-extensions cache and small scene factories."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# JIT-compiled torch extensions (our CUDA kernels, gsplat) must not touch the user's cache.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", tempfile.mkdtemp(prefix="adlift-torch-ext-"))

from adlift.scene import GaussianScene  # noqa: E402


def random_scene(n: int = 50, sh_degree: int = 1, seed: int = 0, dtype=torch.float32) -> GaussianScene:
    """A random scene of ``n`` Gaussians around the origin (deterministic for ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return GaussianScene(
        means=torch.randn(n, 3, generator=g, dtype=dtype) * 0.5,
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
        log_scales=torch.randn(n, 3, generator=g, dtype=dtype) * 0.3 - 3.0,
        opacity_logits=torch.randn(n, generator=g, dtype=dtype),
        sh=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.3,
    )


@pytest.fixture
def small_scene() -> GaussianScene:
    return random_scene()
