"""Loading InstructPix2Pix weights through ``from_pretrained``, with a clear error when they are missing.

A model reference is either a Hugging Face hub id (``timbrooks/instruct-pix2pix``, a MagicBrush
checkpoint, ...) or a local directory written by ``save_pretrained`` (it holds ``model_index.json``).
Hub ids resolve through the hub cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``); with ``HF_HUB_OFFLINE=1`` or without network nothing is downloaded.
Whatever goes wrong, the caller gets one :class:`~adlift.errors.AdLiftError` saying which model,
where it looked and how to provide it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from diffusers import StableDiffusionInstructPix2PixPipeline

#: The InstructPix2Pix checkpoint used when no model is named.
DEFAULT_MODEL = "timbrooks/instruct-pix2pix"

_HOW_TO_PROVIDE = (
    "provide the weights in one of three ways: run once with network access so from_pretrained downloads "
    "the hub id into the cache; point HF_HOME (or HF_HUB_CACHE) at a cache that already holds it; or pass a "
    "local directory written by save_pretrained (e.g. `huggingface-cli download {model} --local-dir DIR`, "
    "then `--editor DIR`)"
)


class MissingWeightsError(AdLiftError):
    """The editor's model weights cannot be found (not cached, no network, or a bad local directory)."""

    def __init__(self, model: str, looked_in: str, problem: str, hint_model: str = DEFAULT_MODEL):
        self.model = model
        self.looked_in = looked_in
        msg = f"InstructPix2Pix weights {model!r} are not available: {problem} (looked in {looked_in}); "
        msg += _HOW_TO_PROVIDE.format(model=hint_model)
        super().__init__(" ".join(msg.split()))  # one line, whatever the cause's text held


def hub_cache_dir() -> Path:
    """The hub cache directory huggingface_hub uses now (read from the environment at call time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hub_offline() -> bool:
    """True if ``HF_HUB_OFFLINE`` asks huggingface_hub never to use the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_local_reference(model: str) -> bool:
    """True if ``model`` names a local directory rather than a hub id.

    An existing path is local; so is anything that can only be a path: absolute, starting with
    ``.`` or ``~``, containing a backslash or more than one ``/``. ``owner/name`` is a hub id.
    """
    if Path(model).expanduser().exists():
        return True
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1 or not model.strip()


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence transformers/diffusers warnings and their progress bars inside the block.

    Importing diffusers without torchvision makes transformers warn about image processors we never
    use, an offline ``from_pretrained`` logs connection attempts, and loading/saving draws progress
    bars per component; AdLift reports problems and progress itself.
    """
    bars = []
    for mod in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:  # import first: their first import resets the library loggers' levels
            lg = importlib.import_module(mod)
        except ImportError:
            continue
        bars.append((lg, lg.is_progress_bar_enabled()))
        lg.disable_progress_bar()
    names = ("transformers", "diffusers", "huggingface_hub")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # e.g. torch_dtype -> dtype renames
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
        for lg, enabled in bars:
            if enabled:
                lg.enable_progress_bar()


def import_diffusers():
    """``import diffusers`` and its InstructPix2Pix pipeline quietly (see :func:`quiet_hf`).

    AdLiftError if diffusers or transformers is not installed.
    """
    with quiet_hf():
        try:
            import diffusers
            import transformers  # noqa: F401
            from diffusers import StableDiffusionInstructPix2PixPipeline  # noqa: F401  (the warning fires here)
        except ImportError as err:
            raise AdLiftError(
                f"the editors need diffusers and transformers ({err}); "
                "install them with `pip install 'adlift[editors]'`"
            ) from None
    return diffusers


def cached_snapshot(model: str, cache: Path, marker: str = "model_index.json") -> Path | None:
    """The newest snapshot of hub id ``model`` in hub cache ``cache`` holding ``marker`` (default: a
    diffusers pipeline's model_index.json; config.json for a transformers model), if any."""
    snapshots = cache / ("models--" + model.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    found = [d for d in snapshots.iterdir() if (d / marker).is_file()]
    return max(found, key=lambda d: d.stat().st_mtime) if found else None


def hub_lookup(
    model: str, cache_dir: str | os.PathLike | None = None, marker: str = "model_index.json"
) -> tuple[dict, str, str | None]:
    """How ``from_pretrained`` should look for hub id ``model``: (its keyword arguments, a phrase
    saying where it looks, and the problem if it already cannot succeed: offline and not cached)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    kwargs: dict = {"cache_dir": str(cache)}
    problem = None
    if hub_offline():
        kwargs["local_files_only"] = True
        if cached_snapshot(model, cache, marker) is None:
            problem = "it is not in the cache and HF_HUB_OFFLINE=1 forbids downloading"
    return kwargs, f"the hub cache {cache}", problem


def load_ip2p_pipeline(
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike | None = None,
) -> StableDiffusionInstructPix2PixPipeline:
    """``StableDiffusionInstructPix2PixPipeline.from_pretrained(model)`` on ``device`` in ``dtype``.

    ``model`` is a hub id or a local ``save_pretrained`` directory; ``cache_dir`` overrides the hub
    cache (default: :func:`hub_cache_dir`). The safety checker is not loaded (AdLift studies the
    editor, and the checker would black out images). Missing weights raise
    :class:`MissingWeightsError` (an AdLiftError) before diffusers is even imported when that can
    be decided from the file system (a missing directory, an offline empty cache).
    """
    model = os.fspath(model)
    kwargs: dict = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if is_local_reference(model):
        path = Path(model).expanduser()
        where = f"the local directory {path.resolve() if path.exists() else path.absolute()}"
        if not path.exists():
            raise MissingWeightsError(model, where, "that directory does not exist")
        if not path.is_dir():
            raise MissingWeightsError(model, where, "it is a file, expected a diffusers pipeline directory")
        if not (path / "model_index.json").is_file():
            problem = "it has no model_index.json, so it is not a saved diffusers pipeline"
            raise MissingWeightsError(model, where, problem)
        source, kwargs["local_files_only"] = str(path), True
    else:
        hub_kwargs, where, problem = hub_lookup(model, cache_dir)
        if problem:
            raise MissingWeightsError(model, where, problem)
        source = model
        kwargs.update(hub_kwargs)
    import_diffusers()
    from diffusers import StableDiffusionInstructPix2PixPipeline

    try:
        with quiet_hf():
            pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(source, torch_dtype=dtype, **kwargs)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MissingWeightsError(model, where, f"loading failed ({first[:300]})") from None
    except Exception as err:  # network libraries raise their own types (httpx, requests, hub HTTP errors)
        if type(err).__module__.split(".")[0] not in {"huggingface_hub", "httpx", "requests", "urllib3", "httpcore"}:
            raise
        raise MissingWeightsError(model, where, f"the hub could not be reached ({type(err).__name__})") from None
    return pipe.to(device)
