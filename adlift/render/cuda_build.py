"""Build and load AdLift's CUDA rasteriser (the sources in ``cuda/``) with torch.utils.cpp_extension.

The extension is compiled on first use (JIT, about a minute) into a cache directory and loaded
from there afterwards; torch rebuilds it when a source file or flag changes. Build it ahead of
time with ``python -m adlift.render.cuda_build`` (or ``make cuda``) so the first render does not wait.

Environment:
    ADLIFT_CUDA_SOURCES  directory holding bindings.cpp, src/ and include/ (default: the repo's cuda/)
    ADLIFT_CUDA_CACHE    build directory (default: $TORCH_EXTENSIONS_DIR/adlift_cuda, else
                         ~/.cache/adlift/cuda/torch<version>-cu<version>)
    TORCH_CUDA_ARCH_LIST architectures to build for (default: the GPUs present, as torch does)
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import torch

from adlift.errors import AdLiftError

EXTENSION_NAME = "adlift_cuda"
CUDA_FLAGS = ["-O3", "-std=c++17", "-lineinfo"]


def source_dir() -> Path:
    """The directory with the rasteriser's sources."""
    env = os.environ.get("ADLIFT_CUDA_SOURCES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "cuda"


def source_files() -> list[Path]:
    """bindings.cpp followed by every kernel file, in a fixed order."""
    root = source_dir()
    return [root / "bindings.cpp", *sorted((root / "src").glob("*.cu"))]


def cache_dir() -> Path:
    """Where the extension is built and cached."""
    if os.environ.get("ADLIFT_CUDA_CACHE"):
        return Path(os.environ["ADLIFT_CUDA_CACHE"])
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / EXTENSION_NAME
    tag = f"torch{torch.__version__.split('+')[0]}-cu{torch.version.cuda or 'none'}"
    return Path.home() / ".cache" / "adlift" / "cuda" / tag


def why_not_buildable() -> str | None:
    """None when a build can be attempted here, else the one-line reason."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build; the CUDA rasteriser needs a CUDA build of torch"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    missing = [str(p) for p in source_files() if not p.exists()] or ([] if (source_dir() / "src").is_dir() else ["src/"])
    if missing:
        return f"CUDA sources not found ({', '.join(missing)}); set ADLIFT_CUDA_SOURCES to the repo's cuda/ directory"
    if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
        return "ninja is needed to build the CUDA rasteriser (pip install ninja)"
    return None


@functools.lru_cache(maxsize=1)
def load_extension(verbose: bool = False):
    """The compiled extension module (built on first call); AdLiftError if it cannot be built."""
    reason = why_not_buildable()
    if reason:
        raise AdLiftError(f"cannot build the CUDA rasteriser: {reason}")
    from torch.utils.cpp_extension import load

    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    if not (build / f"{EXTENSION_NAME}.so").exists():
        print(f"adlift: building the CUDA rasteriser into {build} (first use, about a minute)", file=sys.stderr)
    try:
        return load(
            name=EXTENSION_NAME,
            sources=[str(p) for p in source_files()],
            extra_include_paths=[str(source_dir() / "include")],
            extra_cflags=["-O3", "-std=c++17"],
            extra_cuda_cflags=CUDA_FLAGS,
            build_directory=str(build),
            verbose=verbose,
        )
    except Exception as exc:  # compiler errors arrive as RuntimeError / subprocess errors
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise AdLiftError(f"building the CUDA rasteriser failed ({first}); rerun with "
                          "`python -m adlift.render.cuda_build --verbose` for the compiler output") from exc


@functools.lru_cache(maxsize=1)
def probe() -> tuple[object | None, str]:
    """(module or None, reason it is unavailable); builds on the first call."""
    try:
        return load_extension(), ""
    except AdLiftError as err:
        return None, str(err)


def main(argv: list[str] | None = None) -> int:
    """``python -m adlift.render.cuda_build [--verbose]``: build ahead of time and say where."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        load_extension(verbose="--verbose" in argv)
    except AdLiftError as err:
        print(f"adlift: error: {err}", file=sys.stderr)
        return 2
    print(f"adlift: CUDA rasteriser ready in {cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
