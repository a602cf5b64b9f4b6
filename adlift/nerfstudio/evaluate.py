"""``ns-adlift-evaluate``: ``adlift evaluate`` for an ``ns-train adlift-protect`` run (no nerfstudio import).

    ns-adlift-evaluate --load-config outputs/bust/adlift-protect/2026-11-23_010203/config.yml
    ns-adlift-evaluate outputs/bust/adlift-protect/2026-11-23_010203 --editor tiny --clip tiny

An adlift-protect run writes protected.ply, manifest.json and transforms.json next to its
config.yml, i.e. an ``adlift protect`` output directory; this command resolves the run directory
(from ``--load-config`` as ``ns-eval`` does, or given directly) and runs the same evaluation,
with every option of ``adlift evaluate``. The report goes to RUN/evaluation/ unless ``--out``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional, Sequence

import tyro

from adlift.commands.evaluate import EvaluateCommand
from adlift.errors import AdLiftError


@dataclasses.dataclass
class NsEvaluateCommand(EvaluateCommand):
    """Evaluate an `ns-train adlift-protect` run: invisibility, protection against the editor, robustness."""

    load_config: Optional[Path] = None
    """The run's config.yml (its directory holds protected.ply and manifest.json); or give the run directory."""

    def run(self) -> None:
        if self.load_config is not None:
            if self.outdir is not None:
                raise AdLiftError("give either --load-config or a run directory, not both")
            if not self.load_config.is_file():
                raise AdLiftError(f"{self.load_config}: no such config.yml; give the config.yml of an adlift-protect run")
            self.outdir = self.load_config.parent
        if self.outdir is not None and not (self.outdir / "manifest.json").is_file():
            if (self.outdir / "config.yml").is_file():
                raise AdLiftError(
                    f"{self.outdir} has no manifest.json: is it an adlift-protect run that finished? "
                    "(results are written when training ends)"
                )
        super().run()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``ns-adlift-evaluate``; returns the exit status (2 for errors a user can fix)."""
    from adlift.cli import run_command

    return run_command("ns-adlift-evaluate", lambda: tyro.cli(NsEvaluateCommand, args=args, prog="ns-adlift-evaluate"))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
