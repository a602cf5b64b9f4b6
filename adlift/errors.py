"""The one error type a user can cause, and its subclasses.

Every error that bad input can trigger (a malformed file, an impossible camera, missing model
weights) is an :class:`AdLiftError` whose message says, in one line, what is wrong and where.
The CLI prints that line and exits with status 2 (:func:`run_command`, shared by every console
script); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class AdLiftError(Exception):
    """A problem the user can fix: the message says what is wrong and, where it can, how to fix it."""


class SceneError(AdLiftError):
    """A GaussianScene's tensors are inconsistent (shapes, dtypes, devices, non-finite values)."""


class FileFormatError(AdLiftError):
    """An input file cannot be read: wrong format, truncated, missing fields, bad values."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CameraError(AdLiftError):
    """Cameras are malformed or a camera spec cannot be resolved."""


class RankStopped(AdLiftError):
    """This rank of a distributed run stops because another rank failed or timed out (that rank reports
    the cause). ``quiet``: the cause is already printed by rank 0, say nothing more."""

    def __init__(self, message: str, *, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet


def _rank_prefix() -> str:
    """"[rank R of W] " in a process torchrun started as one of several ranks, else ""."""
    import os

    world = os.environ.get("WORLD_SIZE", "1") or "1"
    return f"[rank {os.environ.get('RANK', '?')} of {world}] " if world.isdigit() and int(world) > 1 else ""


def run_command(prog: str, parse) -> int:
    """Parse a command with ``parse()`` and ``run()`` it; the exit status, shared by every AdLift console
    script (``adlift``, ``ns-adlift-evaluate``): AdLiftError -> its one line on stderr and 2, Ctrl-C ->
    130, a closed output pipe -> 0. Under torchrun the line names the rank (unless the error says which
    ranks failed, ``names_ranks``; a quiet RankStopped prints nothing: rank 0 has said why)."""
    import contextlib
    import os
    import sys

    try:
        parse().run()
    except AdLiftError as err:
        if not getattr(err, "quiet", False):
            prefix = "" if getattr(err, "names_ranks", False) else _rank_prefix()
            print(f"{prog}: error: {prefix}{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stop the interpreter's flush from failing again
        return 0
    return 0
