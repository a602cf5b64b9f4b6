"""``ns-adlift-evaluate``: ``adlift evaluate`` for an ``ns-train adlift-protect`` run (no nerfstudio import).

    ns-adlift-evaluate --load-config outputs/bust/adlift-protect/2026-11-23_010203/config.yml
    ns-adlift-evaluate outputs/bust/adlift-protect/2026-11-23_010203 --editor tiny --clip tiny

An adlift-protect run writes protected.ply, manifest.json and transforms.json next to its
config.yml, i.e. an ``adlift protect`` output directory; this command resolves the run directory
(from ``--load-config`` as ``ns-eval`` does, or given directly) and runs the same evaluation
(:func:`adlift.evaluate.api.run_evaluation`) with the same options as ``adlift evaluate``: both
nest the library's :class:`~adlift.evaluate.inputs.EvaluateInputs`,
:class:`~adlift.evaluate.run.EvaluateConfig` and :class:`~adlift.render.options.RenderOptions`.
The report goes to RUN/evaluation/ unless ``--out``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional, Sequence

import tyro

from adlift.errors import AdLiftError
from adlift.evaluate.inputs import EvaluateInputs
from adlift.evaluate.run import EvaluateConfig
from adlift.render.options import RenderOptions


@dataclasses.dataclass
class NsEvaluateCommand:
    """Evaluate an `ns-train adlift-protect` run: invisibility, protection against the editor, robustness."""

    load_config: Annotated[Optional[Path], tyro.conf.arg(metavar="CONFIG.yml")] = None
    """The run's config.yml (its directory holds protected.ply and manifest.json); or give the run directory."""

    inputs: Annotated[EvaluateInputs, tyro.conf.arg(name="")] = dataclasses.field(default_factory=EvaluateInputs)
    evaluate: Annotated[EvaluateConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=EvaluateConfig)
    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)

    def run_directory(self) -> Path | None:
        """The run directory, from --load-config or the positional argument; AdLiftError for a run
        without results."""
        outdir = self.inputs.outdir
        if self.load_config is not None:
            if outdir is not None:
                raise AdLiftError("give either --load-config or a run directory, not both")
            if not self.load_config.is_file():
                raise AdLiftError(f"{self.load_config}: no such config.yml; give the config.yml of an adlift-protect run")
            outdir = self.load_config.parent
        if outdir is not None and not (outdir / "manifest.json").is_file() and (outdir / "config.yml").is_file():
            raise AdLiftError(
                f"{outdir} has no manifest.json: is it an adlift-protect run that finished? "
                "(results are written when training ends)"
            )
        return outdir

    def run(self) -> None:
        from adlift.evaluate.api import run_evaluation

        inputs = dataclasses.replace(self.inputs, outdir=self.run_directory())
        run_evaluation(inputs, self.evaluate, self.render).print()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``ns-adlift-evaluate``; returns the exit status (2 for errors a user can fix)."""
    from adlift.errors import run_command

    return run_command("ns-adlift-evaluate", lambda: tyro.cli(NsEvaluateCommand, args=args, prog="ns-adlift-evaluate"))


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
