"""The ``adlift`` command line (tyro): ``adlift info|render|...``.

Errors a user can cause are :class:`~adlift.errors.AdLiftError`: the CLI prints their one-line
message to stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Sequence

import tyro

from adlift.commands.edit import EditCommand
from adlift.commands.evaluate import EvaluateCommand
from adlift.commands.info import InfoCommand
from adlift.commands.protect import ProtectCommand
from adlift.commands.protect_image import ProtectImageCommand
from adlift.commands.render import RenderCommand
from adlift.commands.view import ViewCommand
from adlift.errors import AdLiftError

#: Subcommand name -> dataclass config with a ``run()`` method.
COMMANDS: dict[str, Callable] = {
    "info": InfoCommand,
    "render": RenderCommand,
    "protect": ProtectCommand,
    "protect-image": ProtectImageCommand,
    "edit": EditCommand,
    "evaluate": EvaluateCommand,
    "view": ViewCommand,
}

DESCRIPTION = (
    "AdLift: protect 3D Gaussian Splatting assets against instruction-driven editing. "
    "Run `adlift COMMAND --help` for a command's options."
)


def run_command(prog: str, parse: Callable[[], object]) -> int:
    """Parse a command with ``parse()`` and run it; the exit status. AdLiftError -> one line on
    stderr and 2, Ctrl-C -> 130, a closed output pipe -> 0 (shared by every AdLift console script)."""
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


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``adlift`` console script; returns the exit status."""
    return run_command(
        "adlift",
        lambda: tyro.extras.subcommand_cli_from_dict(COMMANDS, prog="adlift", description=DESCRIPTION, args=args),
    )


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
