"""Server-side renders of the current view, cached per camera pose.

:class:`ViewRenderer` renders the raw and protected scenes (and 3D-edited ones) from one camera
with :func:`adlift.render.render` and keeps the last few views in an LRU cache keyed by the
camera's pose key, so returning to a view (for example by clicking its frustum) is instant.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, Hashable, TypeVar

import torch

from adlift.cameras import Cameras
from adlift.scene import GaussianScene

V = TypeVar("V")


class LRUCache(Generic[V]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, capacity: int = 32):
        self.capacity = max(1, int(capacity))
        self._items: collections.OrderedDict[Hashable, V] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class ViewRenderer:
    """Renders named scenes from one camera at a time; results [3, H, W] in [0, 1] on the CPU."""

    def __init__(
        self,
        scenes: dict[str, GaussianScene],
        *,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        backend: str = "auto",
        capacity: int = 32,
    ):
        self.scenes = scenes
        self.background = background
        self.backend = backend
        self.cache: LRUCache[dict[str, torch.Tensor]] = LRUCache(capacity)
        self._lock = threading.Lock()  # one render at a time (CPU threads are shared anyway)

    def render(self, key: Hashable, camera: Cameras, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """Renders of ``names`` (default: every scene) from ``camera`` (one view), cached under ``key``.

        The key must identify the camera *and* its image size; scenes rendered before for the same
        key are reused and only the missing ones are rendered.
        """
        from adlift.render import render

        names = tuple(self.scenes) if names is None else names
        have = dict(self.cache.get(key) or {})
        missing = [n for n in names if n not in have]
        if missing:
            with self._lock, torch.no_grad():
                for name in missing:
                    scene = self.scenes[name]
                    out = render(scene, camera.to(scene.device), backend=self.backend, background=self.background)
                    have[name] = out.rgb[0].clamp(0.0, 1.0).to("cpu", torch.float32)
            self.cache.put(key, have)
        return {n: have[n] for n in names}
