"""The ``adlift`` command line (tyro): ``adlift info|render|...``.

Errors a user can cause are :class:`~adlift.errors.AdLiftError`: the CLI prints their one-line
message to stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

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
from adlift.errors import run_command  # the console scripts' exit-status contract (also ns-adlift-evaluate's)

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
