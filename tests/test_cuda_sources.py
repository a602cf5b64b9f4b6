"""CPU-side checks of the CUDA rasteriser (cuda/), run in CI where there is no GPU.

Every kernel file compiles with a plain ``nvcc -c`` (no torch headers: the bindings are the only
file that sees torch) for Hopper (sm_90) and one older architecture (sm_80, A100), with the build's
own flags; and the backend explains itself where it cannot run. Values and gradients are tested on
a GPU by tests/test_cuda_rasterizer.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from adlift.errors import AdLiftError
from adlift.render import render
from adlift.render.cuda_build import CUDA_FLAGS, source_dir, source_files

CUDA_DIR = Path(__file__).resolve().parents[1] / "cuda"
KERNELS = sorted((CUDA_DIR / "src").glob("*.cu"))


def find_nvcc() -> str | None:
    for candidate in (shutil.which("nvcc"), os.environ.get("CUDA_HOME", "") + "/bin/nvcc", "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


NVCC = find_nvcc()


def test_sources_are_where_the_build_looks():
    assert source_dir() == CUDA_DIR
    files = source_files()
    assert files[0].name == "bindings.cpp" and all(p.exists() for p in files)
    assert {p.name for p in KERNELS} == {"projection.cu", "binning.cu", "rasterize.cu"}


def test_kernel_sources_never_include_torch():
    for path in [*KERNELS, *CUDA_DIR.glob("src/*.cuh"), *CUDA_DIR.glob("include/**/*.h")]:
        includes = re.findall(r"#include\s*[<\"]([^>\"]+)[>\"]", path.read_text())
        leaked = [inc for inc in includes if inc.startswith(("torch", "ATen", "c10", "pybind11"))]
        assert not leaked, f"{path.name} includes {leaked}: keep torch in bindings.cpp only"


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed on this machine")
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("source", KERNELS, ids=lambda p: p.name)
def test_kernel_compiles_with_plain_nvcc(source, arch, tmp_path):
    cmd = [NVCC, "-c", *CUDA_FLAGS, f"-arch={arch}", f"-I{CUDA_DIR / 'include'}", str(source), "-o", str(tmp_path / "k.o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "warning" not in proc.stderr.lower(), proc.stderr[-4000:]
    assert (tmp_path / "k.o").stat().st_size > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no GPU is available")
def test_cuda_backend_explains_why_it_cannot_run():
    from adlift.cameras import orbit_cameras
    from adlift.scene import GaussianScene

    scene = GaussianScene.empty(sh_degree=0)
    cams = orbit_cameras(1, [0, 0, 0], 3.0, width=8, height=8)
    with pytest.raises(AdLiftError, match="render backend 'cuda' is unavailable: cannot build the CUDA rasteriser"):
        render(scene, cams, backend="cuda")
    assert render(scene, cams).backend == "torch"  # auto falls back
