"""Launch the viewer without installing the console script: ``python viewers/launch.py OUTDIR``.

The same as ``adlift view OUTDIR`` (every option of ``adlift view --help`` works here too).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adlift.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["view", *sys.argv[1:]]))
