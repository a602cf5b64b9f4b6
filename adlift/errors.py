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


def run_command(prog: str, parse) -> int:
    """Parse a command with ``parse()`` and ``run()`` it; the exit status, shared by every AdLift console
    script (``adlift``, ``ns-adlift-evaluate``): AdLiftError -> its one line on stderr and 2, Ctrl-C ->
    130, a closed output pipe -> 0."""
    import contextlib
    import os
    import sys

    try:
        parse().run()
    except AdLiftError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stop the interpreter's flush from failing again
        return 0
    return 0
