#!/usr/bin/env bash
# Build the virtualenv the nerfstudio plugin tests run in (used by `make test-nerfstudio`).
#
#   bash tests/nerfstudio/make_venv.sh [VENV [PYTHON]]      (defaults: .venv-nerfstudio, python3)
#
# 1. torch 2.13.0 first (the local CPU wheel; any other version pulls gigabytes of CUDA packages),
# 2. adlift with its nerfstudio and test extras, constrained to that torch and to numpy < 2,
# 3. the torchvision workaround, for this test venv only: PyPI's torchvision is a CUDA build that
#    cannot import against CPU torch, so it is uninstalled and tests/nerfstudio/torchvision_stub
#    (a stand-in with the few functions nerfstudio touches; see its README) goes on the venv's path.
set -euo pipefail
VENV=${1:-.venv-nerfstudio}
PYTHON=${2:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
"$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet torch==2.13.0
"$PY" -m pip install --quiet -c "$HERE/constraints.txt" -e "$REPO[nerfstudio,test]"
"$PY" -m pip uninstall --quiet -y torchvision || true
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$HERE/torchvision_stub" > "$SITE/adlift-test-torchvision-stub.pth"
"$PY" - <<'PYEOF'
from importlib.metadata import version

import nerfstudio, torch, torchvision  # noqa: F401  (torchvision: the test stand-in)

pins = ", ".join(f"{name} {version(name)}" for name in ("nerfstudio", "numpy", "gsplat", "viser", "torch"))
print(f"nerfstudio venv: {pins}, torchvision {torchvision.__version__}")
PYEOF
