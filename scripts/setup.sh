#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with PyTorch and
# autoresearch (editable, with test extras). Safe to rerun; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
command -v git >/dev/null || { echo "setup: git is required (apt-get install git)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
# PyTorch first, so pip does not pick a build on its own. Override with TORCH_SPEC, e.g.
# TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" for a small CPU-only build.
if ! python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  python -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
fi
python -m pip install -q -e ".[dev]"
