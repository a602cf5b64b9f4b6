"""2D edits on demand: InstructPix2Pix on the current raw and protected renders, in a background thread.

One job at a time. The raw and protected renders of a view are edited in one batch with the same
seed (a paired comparison, as ``adlift evaluate`` does), so progress is one bar over the
denoising steps. Results are cached under :meth:`EditRequest.cache_key` (view + editor settings),
and the loaded editor is kept for the next job.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Hashable, Optional

import torch

from adlift.errors import AdLiftError
from adlift.viewer.compare import LRUCache


@dataclasses.dataclass(frozen=True)
class EditSettings:
    """How to edit: the editor reference and InstructPix2Pix's settings."""

    editor: str
    instruction: str
    steps: int = 20
    guidance_scale: Optional[float] = None  # None: the editor's default (IP2P 7.5, mini 3.0)
    image_guidance_scale: float = 1.5
    seed: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class EditRequest:
    """Edit the renders of one view (``view_key`` identifies the camera and image size)."""

    view_key: Hashable
    images: dict[str, torch.Tensor]
    """Name ("raw", "protected") -> render [3, H, W] in [0, 1]."""
    settings: EditSettings

    def cache_key(self) -> tuple:
        return edit_cache_key(self.view_key, self.settings)


def edit_cache_key(view_key: Hashable, settings: EditSettings) -> tuple:
    return (view_key, dataclasses.astuple(settings))


@dataclasses.dataclass
class EditStatus:
    """What the worker is doing, for the GUI."""

    state: str = "idle"
    """idle | loading | editing | done | error"""
    fraction: float = 0.0
    message: str = ""
    view_key: Hashable = None
    untrained: bool = False


def default_loader(reference: str, device: torch.device):
    from adlift.editors import load_editor

    return load_editor(reference, device=device)


class EditWorker:
    """Runs :class:`EditRequest` jobs in a daemon thread; ``on_status`` is called on every change."""

    def __init__(
        self,
        on_status: Callable[[EditStatus], None] = lambda status: None,
        *,
        device: torch.device | str = "cpu",
        loader: Callable[[str, torch.device], object] = default_loader,
        capacity: int = 64,
    ):
        self.results: LRUCache[dict[str, torch.Tensor]] = LRUCache(capacity)
        self.status = EditStatus()
        self._on_status = on_status
        self._device = torch.device(device)
        self._loader = loader
        self._editor = None
        self._editor_ref: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def result(self, view_key: Hashable, settings: EditSettings) -> dict[str, torch.Tensor] | None:
        """Cached edits of a view with these settings, or None."""
        return self.results.get(edit_cache_key(view_key, settings))

    def submit(self, request: EditRequest) -> bool:
        """Start a job; False (and nothing started) when one is running or the result is cached."""
        with self._lock:
            if self.busy:
                return False
            if request.cache_key() in self.results:
                self._set(EditStatus("done", 1.0, "already edited (cached)", request.view_key, self.status.untrained))
                return False
            self._thread = threading.Thread(target=self._run, args=(request,), name="adlift-view-edit", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def _set(self, status: EditStatus) -> None:
        self.status = status
        try:
            self._on_status(status)
        except Exception as e:  # noqa: BLE001 - a GUI update must not kill the worker
            print(f"adlift view: status update failed: {e!r}", flush=True)

    def _editor_for(self, reference: str, key: Hashable):
        if self._editor is None or self._editor_ref != reference:
            self._editor = None  # free the previous model before loading another
            self._set(EditStatus("loading", 0.0, f"loading editor {reference} ...", key))
            self._editor = self._loader(reference, self._device)
            self._editor_ref = reference
        return self._editor

    def _run(self, request: EditRequest) -> None:
        s = request.settings
        key = request.view_key
        try:
            if not s.instruction.strip():
                raise AdLiftError("the instruction is empty: type one in the Instruction box")
            editor = self._editor_for(s.editor, key)
            untrained = bool(getattr(editor, "untrained", False))
            names = list(request.images)
            batch = torch.stack([request.images[n] for n in names])  # [B, 3, H, W]
            started = time.monotonic()
            self._set(EditStatus("editing", 0.0, f"editing {' and '.join(names)}: step 0/{s.steps}", key, untrained))

            def on_step(done: int, total: int) -> None:
                self._set(EditStatus("editing", min(1.0, done / max(total, 1)),
                                     f"editing {' and '.join(names)}: step {min(done, total)}/{total}", key,
                                     untrained))  # fmt: skip

            guidance = editor.default_guidance("2d") if s.guidance_scale is None else s.guidance_scale
            edited = editor.edit(batch, s.instruction, steps=s.steps, guidance_scale=guidance,
                                 image_guidance_scale=s.image_guidance_scale, seed=s.seed, batch_size=len(names),
                                 on_step=on_step)  # fmt: skip
            self.results.put(request.cache_key(), {n: edited[i].cpu() for i, n in enumerate(names)})
            seconds = time.monotonic() - started
            self._set(EditStatus("done", 1.0, f"edited in {seconds:.1f} s", key, untrained))
        except AdLiftError as e:
            self._set(EditStatus("error", 0.0, str(e), key))
        except Exception as e:  # noqa: BLE001 - report in the GUI instead of dying silently in a thread
            self._set(EditStatus("error", 0.0, f"{e.__class__.__name__}: {e}", key))
