"""Shared pytest set-up: no network, a private torch-extensions cache, and the shared fixtures.

Plain helpers and constants (scenes, the tiny editor, ``run_cli``, parity checks, viewer data) are
in ``tests/helpers.py``; test modules import from there or use these fixtures, never another test
module.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach a model hub
# JIT-compiled torch extensions (our CUDA kernels, gsplat) must not touch the user's cache.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", tempfile.mkdtemp(prefix="adlift-torch-ext-"))

from adlift.scene import GaussianScene  # noqa: E402
from tests.helpers import random_scene  # noqa: E402


@pytest.fixture
def small_scene() -> GaussianScene:
    """50 random Gaussians, SH degree 1 (``helpers.random_scene()``)."""
    return random_scene()


@pytest.fixture
def single_thread():
    """Run torch on one thread in a test; a module opts in with
    ``pytestmark = pytest.mark.usefixtures("single_thread")``.

    These workloads are thousands of tiny ops; on 2 shared cores, OpenMP's spin-waiting turns
    any CPU contention from other processes into a 10-20x slowdown, while one thread is as fast
    as two on an idle machine.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_hub_network(monkeypatch):
    """No test may reach a model hub, whenever huggingface_hub was first imported (its settings are
    read from the environment once, at import); a module opts in with ``usefixtures``."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
