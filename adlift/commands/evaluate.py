"""``adlift evaluate``: did the protection work? Invisibility, protection, robustness -> a report.

``adlift evaluate OUTDIR`` reads a directory written by ``adlift protect`` (raw scene, protected
scene, cameras, instruction, eta and editor from its manifest.json); every one of them can be
given or overridden explicitly (``--raw --protected --cameras --instruction --eta --editor``).
Writes into ``--out`` (default OUTDIR/evaluation): report.json, report.md, grid_train.png,
grid_novel.png and metrics.png (see :mod:`adlift.evaluate.report`). The work is
:func:`adlift.evaluate.api.run_evaluation`; the options are the library's configs, nested.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import tyro

from adlift.evaluate.inputs import EvaluateInputs
from adlift.evaluate.run import EvaluateConfig
from adlift.render.options import RenderOptions


@dataclasses.dataclass
class EvaluateCommand:
    """Evaluate a protected 3DGS scene: invisibility, protection against the editor, robustness."""

    inputs: Annotated[EvaluateInputs, tyro.conf.arg(name="")] = dataclasses.field(default_factory=EvaluateInputs)
    evaluate: Annotated[EvaluateConfig, tyro.conf.arg(name="")] = dataclasses.field(default_factory=EvaluateConfig)
    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)

    def run(self) -> None:
        from adlift.evaluate.api import run_evaluation

        run_evaluation(self.inputs, self.evaluate, self.render).print()
