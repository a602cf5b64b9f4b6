"""Edits on demand in a background thread: the :class:`EditWorker` and its 2D job.

One job at a time, so one editor serves them all: an :class:`EditRequest` edits the current raw and
protected renders with InstructPix2Pix in one batch with the same seed (a paired comparison, as
``adlift evaluate`` does; progress is one bar over the denoising steps);
:class:`~adlift.viewer.scene_edits.SceneEditRequest` edits the raw and protected *scenes* DGE-style.
Any :class:`EditJob` works. Results are cached under the job's :meth:`~EditJob.cache_key` (2D: view +
editor settings), the loaded editor is kept for the next job, and :meth:`EditWorker.cancel` stops
the running job at its next progress report.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Hashable, Optional, Protocol

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


#: A job's progress report: (fraction done in [0, 1], one-line message).
Progress = Callable[[float, str], None]


class EditCancelled(AdLiftError):
    """Raised in a job's progress report after :meth:`EditWorker.cancel`."""


class EditJob(Protocol):
    """What :class:`EditWorker` runs."""

    kind: str
    """Which edit, "2d" or "dge" (the GUI shows each kind's results in its own place)."""
    view_key: Hashable
    """The view the job edits (None for a scene edit)."""
    settings: EditSettings
    """Editor and diffusion settings (the editor is loaded from ``settings.editor``)."""

    def cache_key(self) -> tuple:
        """Identifies the result: everything that changes it."""

    def run(self, editor: Any, progress: Progress) -> dict[str, Any]:
        """Edit with the loaded ``editor``, calling ``progress`` often; the result to cache (AdLiftError
        for what a user can fix)."""

    def summary(self, seconds: float) -> str:
        """One line for the status when done."""


@dataclasses.dataclass(frozen=True, eq=False)
class EditRequest:
    """Edit the renders of one view (``view_key`` identifies the camera and image size)."""

    view_key: Hashable
    images: dict[str, torch.Tensor]
    """Name ("raw", "protected") -> render [3, H, W] in [0, 1]."""
    settings: EditSettings
    kind = "2d"

    def cache_key(self) -> tuple:
        return edit_cache_key(self.view_key, self.settings)

    def run(self, editor, progress: Progress) -> dict[str, torch.Tensor]:
        """Both renders in one batch with one seed; progress per denoising step."""
        s = self.settings
        names = list(self.images)
        what = " and ".join(names)
        batch = torch.stack([self.images[n] for n in names])  # [B, 3, H, W]
        progress(0.0, f"editing {what}: step 0/{s.steps}")

        def on_step(done: int, total: int) -> None:
            progress(min(1.0, done / max(total, 1)), f"editing {what}: step {min(done, total)}/{total}")

        guidance = editor.default_guidance("2d") if s.guidance_scale is None else s.guidance_scale
        edited = editor.edit(batch, s.instruction, steps=s.steps, guidance_scale=guidance,
                             image_guidance_scale=s.image_guidance_scale, seed=s.seed, batch_size=len(names),
                             on_step=on_step)  # fmt: skip
        return {n: edited[i].cpu() for i, n in enumerate(names)}

    def summary(self, seconds: float) -> str:
        return f"edited in {seconds:.1f} s"


def edit_cache_key(view_key: Hashable, settings: EditSettings) -> tuple:
    return (view_key, dataclasses.astuple(settings))


@dataclasses.dataclass
class EditStatus:
    """What the worker is doing, for the GUI."""

    state: str = "idle"
    """idle | loading | editing | done | error | cancelled"""
    fraction: float = 0.0
    message: str = ""
    view_key: Hashable = None
    untrained: bool = False
    kind: str = "2d"
    """The job's kind ("2d", "dge")."""
    job_key: Hashable = None
    """The job's cache key (where a "done" job's result is)."""


def default_loader(reference: str, device: torch.device):
    from adlift.editors import load_editor

    return load_editor(reference, device=device)


class EditWorker:
    """Runs :class:`EditJob` jobs in a daemon thread; ``on_status`` is called on every change."""

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
        self._cancel = threading.Event()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def result(self, view_key: Hashable, settings: EditSettings) -> dict[str, torch.Tensor] | None:
        """Cached 2D edits of a view with these settings, or None."""
        return self.results.get(edit_cache_key(view_key, settings))

    def submit(self, job: EditJob) -> bool:
        """Start a job; False (and nothing started) when one is running or the result is cached."""
        with self._lock:
            if self.busy:
                return False
            key = job.cache_key()
            if key in self.results:
                self._set(EditStatus("done", 1.0, "already edited (cached)", job.view_key, self.status.untrained,
                                     job.kind, key))  # fmt: skip
                return False
            self._cancel.clear()
            self._thread = threading.Thread(target=self._run, args=(job,), name="adlift-view-edit", daemon=True)
            self._thread.start()
            return True

    def cancel(self) -> bool:
        """Ask the running job to stop at its next progress report; False when none is running."""
        if not self.busy:
            return False
        self._cancel.set()
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

    def _editor_for(self, reference: str, job: EditJob):
        if self._editor is None or self._editor_ref != reference:
            self._editor = None  # free the previous model before loading another
            self._set(EditStatus("loading", 0.0, f"loading editor {reference} ...", job.view_key, kind=job.kind))
            self._editor = self._loader(reference, self._device)
            self._editor_ref = reference
        return self._editor

    def _run(self, job: EditJob) -> None:
        s = job.settings
        key, kind = job.view_key, job.kind
        try:
            if not s.instruction.strip():
                raise AdLiftError("the instruction is empty: type one in the Instruction box")
            editor = self._editor_for(s.editor, job)
            untrained = bool(getattr(editor, "untrained", False))
            started = time.monotonic()

            def progress(fraction: float, message: str) -> None:
                if self._cancel.is_set():
                    raise EditCancelled("cancelled")
                self._set(EditStatus("editing", fraction, message, key, untrained, kind))

            result = job.run(editor, progress)
            self.results.put(job.cache_key(), result)
            seconds = time.monotonic() - started
            self._set(EditStatus("done", 1.0, job.summary(seconds), key, untrained, kind, job.cache_key()))
        except EditCancelled:
            self._set(EditStatus("cancelled", 0.0, "cancelled; nothing was kept", key, kind=kind))
        except AdLiftError as e:
            self._set(EditStatus("error", 0.0, " ".join(str(e).split()), key, kind=kind))
        except Exception as e:  # noqa: BLE001 - report in the GUI instead of dying silently in a thread
            self._set(EditStatus("error", 0.0, " ".join(f"{e.__class__.__name__}: {e}".split()), key, kind=kind))
