#!/usr/bin/env bash
# Set up, then run the test suite (slow suites are opt-in: pass -m slow, or "-m slow or not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
exec python -m pytest -q "$@"
