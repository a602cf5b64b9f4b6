"""Named registries: the one source of every user-facing name (backends, methods, losses, editors,
purifications, scene formats).

A kind of extension (say, purifications) owns one :class:`Registry`. Each implementation registers
itself once, next to its code; CLI choices (:meth:`Registry.literal`), config validation
(:meth:`Registry.get` / :meth:`Registry.check`) and docs (:meth:`Registry.describe`) all read the
registry, so a name is never restated.

    PURIFICATIONS = Registry[Purifier]("purification")

    @PURIFICATIONS.register("jpeg", help="JPEG re-encoding at a quality")
    def jpeg(images, quality): ...

    PURIFICATIONS.get("jpeg")             # the function
    PURIFICATIONS.get("gzip")             # AdLiftError: unknown purification 'gzip'; choose one of: jpeg, ...
    Literal_ = PURIFICATIONS.literal()    # typing.Literal["jpeg", ...] for a tyro field

Registration order is kept (it is the order shown to users).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Generic, Literal, TypeVar

from adlift.errors import AdLiftError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered implementation."""

    name: str
    """The name users type (CLI value, config value, file-format name)."""
    value: T
    """The implementation: a function, a class, or a spec object."""
    help: str
    """One line for --help and the docs."""


class Registry(Generic[T]):
    """An ordered name -> implementation map with one-line errors that list the choices."""

    def __init__(self, kind: str):
        self.kind = kind
        """What the names are, for messages ("render backend", "loss")."""
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, value: T, help: str = "", *, replace: bool = False) -> T:
        """Register ``value`` under ``name``; a second registration of a name is an error unless ``replace``."""
        if not name or name != name.strip():
            raise ValueError(f"invalid {self.kind} name {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, value, help)
        return value

    def register(self, name: str, help: str = "", *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(value: T) -> T:
            return self.add(name, value, help, replace=replace)

        return decorate

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def check(self, name: str) -> str:
        """``name`` if registered, else AdLiftError naming the choices."""
        if name not in self._entries:
            raise AdLiftError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}")
        return name

    def get(self, name: str) -> T:
        """The implementation registered as ``name`` (AdLiftError listing the choices otherwise)."""
        return self._entries[self.check(name)].value

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.check(name)]

    def items(self) -> Iterator[tuple[str, T]]:
        return ((e.name, e.value) for e in self._entries.values())

    def literal(self, *extra: str) -> Any:
        """``typing.Literal[*extra, *names]`` for a tyro field (``extra``: e.g. "auto")."""
        return Literal[tuple(extra) + self.names()]  # type: ignore[valid-type]

    def describe(self) -> str:
        """"name: help" lines, for docs and --help."""
        return "\n".join(f"{e.name}: {e.help}" if e.help else e.name for e in self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
