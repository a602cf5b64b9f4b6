"""Model weights through huggingface_hub: where they are, and one clear error when they are missing.

A model reference is either a Hugging Face hub id (``timbrooks/instruct-pix2pix``, a MagicBrush
checkpoint, ``openai/clip-vit-large-patch14``) or a local directory written by ``save_pretrained``.
:func:`locate_weights` decides which (hub ids are what ``huggingface_hub.utils.validate_repo_id``
accepts), checks a local directory, and for hub ids uses huggingface_hub's own settings: its cache
(``huggingface_hub.constants.HF_HUB_CACHE``: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``) and offline mode (``constants.is_offline_mode()``: ``HF_HUB_OFFLINE=1``),
where ``snapshot_download(..., local_files_only=True)`` finds the cached snapshot without touching
the network. :func:`loading_errors` turns what goes wrong while loading (huggingface_hub's error
types: gated or unknown repositories, offline mode, missing cache entries, HTTP errors; OSError /
ValueError from diffusers and transformers) into one :class:`MissingModelError` line saying which
model, where it looked and how to provide it. The editors (:class:`MissingWeightsError`) and the
CLIP metrics (``MissingClipError``) share all of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch

from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from diffusers import StableDiffusionInstructPix2PixPipeline

#: The InstructPix2Pix checkpoint used when no model is named.
DEFAULT_MODEL = "timbrooks/instruct-pix2pix"


class MissingModelError(AdLiftError):
    """A model's weights cannot be found (not cached, no network, or a bad local directory): one line
    naming the model, where it looked and how to provide it. Subclasses name the kind of model."""

    what: ClassVar[str] = "model"
    """The kind of model, first word of the message ("InstructPix2Pix", "CLIP")."""
    default_model: ClassVar[str] = ""
    """The hub id suggested for downloading when the reference was a local directory."""
    use_hint: ClassVar[str] = "then pass DIR"
    """How to use a downloaded directory."""

    def __init__(self, model: str, looked_in: str, problem: str):
        self.model = model
        self.looked_in = looked_in
        hint = model if not is_local_reference(model) else (self.default_model or model)
        msg = (
            f"{self.what} weights {model!r} are not available: {problem} (looked in {looked_in}); provide the "
            "weights in one of three ways: run once with network access so from_pretrained downloads the hub id "
            "into the cache; point HF_HOME (or HF_HUB_CACHE) at a cache that already holds it; or pass a local "
            f"directory written by save_pretrained (e.g. `hf download {hint} --local-dir DIR`, {self.use_hint})"
        )
        super().__init__(" ".join(msg.split()))  # one line, whatever the cause's text held


class MissingWeightsError(MissingModelError):
    """The editor's model weights cannot be found (not cached, no network, or a bad local directory)."""

    what = "InstructPix2Pix"
    default_model = DEFAULT_MODEL
    use_hint = "then `--editor DIR`"


def is_local_reference(model: str) -> bool:
    """True if ``model`` names a local directory rather than a hub id: an existing path, or anything
    huggingface_hub would not accept as a repository id (absolute, ``./x``, ``~/x``, ``a/b/c``, ...)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not model.strip() or Path(model).expanduser().exists():
        return True
    try:
        validate_repo_id(model)
    except HFValidationError:
        return True
    return False


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """Where :func:`locate_weights` found (or will fetch) a model."""

    model: str
    """The reference as given."""
    source: str
    """What ``from_pretrained`` gets: a local directory (a save_pretrained one or a cached hub snapshot) or a hub id."""
    where: str
    """Where it looked, for messages: "the local directory ..." or "the hub cache ..."."""
    kwargs: dict = dataclasses.field(default_factory=dict)
    """Keyword arguments for ``from_pretrained`` (``cache_dir``, ``local_files_only``)."""


def locate_weights(
    model: str | os.PathLike,
    *,
    marker: str = "model_index.json",
    kind: str = "a saved diffusers pipeline",
    cache_dir: str | os.PathLike | None = None,
    error: type[MissingModelError] = MissingWeightsError,
) -> WeightsSource:
    """Where to load ``model`` from, or ``error`` when the file system already says it cannot load.

    A local directory must hold ``marker`` (model_index.json for a diffusers pipeline, config.json
    for a transformers model). A hub id resolves through ``cache_dir`` (default: huggingface_hub's
    ``HF_HUB_CACHE``); in offline mode its cached snapshot is looked up with
    ``snapshot_download(local_files_only=True)`` and must exist and hold ``marker``.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    model = os.fspath(model)
    if is_local_reference(model):
        path = Path(model).expanduser()
        where = f"the local directory {path.resolve() if path.exists() else path.absolute()}"
        if not path.exists():
            raise error(model, where, "that directory does not exist")
        if not path.is_dir():
            raise error(model, where, "it is a file, expected a directory")
        if not (path / marker).is_file():
            raise error(model, where, f"it has no {marker}, so it is not {kind}")
        return WeightsSource(model, str(path), where, {"local_files_only": True})
    cache = Path(cache_dir).expanduser() if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    where = f"the hub cache {cache}"
    if not constants.is_offline_mode():
        return WeightsSource(model, model, where, {"cache_dir": str(cache)})
    try:
        snapshot = Path(snapshot_download(model, cache_dir=cache, local_files_only=True))
    except IncompleteSnapshotError:
        raise error(model, where, "its cached snapshot is incomplete and HF_HUB_OFFLINE=1 forbids downloading the rest") from None
    except LocalEntryNotFoundError:
        raise error(model, where, "it is not in the cache and HF_HUB_OFFLINE=1 forbids downloading") from None
    if not (snapshot / marker).is_file():
        raise error(model, where, f"its cached snapshot {snapshot} has no {marker}, so it is not {kind}")
    return WeightsSource(model, str(snapshot), where, {"local_files_only": True})


@contextlib.contextmanager
def loading_errors(found: WeightsSource, error: type[MissingModelError] = MissingWeightsError) -> Iterator[None]:
    """Run ``from_pretrained`` calls inside: what goes wrong becomes one ``error`` line (see the module docstring)."""
    from huggingface_hub import errors as hf

    def fail(problem: str):
        return error(found.model, found.where, problem)

    try:
        yield
    except hf.GatedRepoError:
        raise fail("it is a gated repository: accept its terms on the hub and log in (`hf auth login`)") from None
    except hf.RepositoryNotFoundError:
        raise fail("the hub has no repository of that id (a private one needs `hf auth login`)") from None
    except hf.RevisionNotFoundError:
        raise fail("the hub has no such revision of it") from None
    except hf.OfflineModeIsEnabled:
        raise fail("it is not in the cache and HF_HUB_OFFLINE=1 forbids downloading") from None
    except hf.LocalEntryNotFoundError:
        raise fail("it is not (completely) in the cache and the hub could not be reached") from None
    except hf.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        raise fail(f"the hub answered with an error (HTTP {status})") from None
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise fail(f"loading failed ({first[:300]})") from None


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


def load_ip2p_pipeline(
    model: str | os.PathLike = DEFAULT_MODEL,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_dir: str | os.PathLike | None = None,
) -> StableDiffusionInstructPix2PixPipeline:
    """``StableDiffusionInstructPix2PixPipeline.from_pretrained(model)`` on ``device`` in ``dtype``.

    ``model`` is a hub id or a local ``save_pretrained`` directory; ``cache_dir`` overrides the hub
    cache (default: huggingface_hub's). The safety checker is not loaded (AdLift studies the
    editor, and the checker would black out images). Missing weights raise
    :class:`MissingWeightsError` (an AdLiftError) before diffusers is even imported when that can
    be decided from the file system (a missing directory, an offline empty cache).
    """
    found = locate_weights(model, cache_dir=cache_dir)
    import_diffusers()
    from diffusers import StableDiffusionInstructPix2PixPipeline

    with loading_errors(found), quiet_hf():
        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            found.source, torch_dtype=dtype, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **found.kwargs,
        )  # fmt: skip
    return pipe.to(device)
