#!/usr/bin/env bash
# Set up, then run the test suite. Slow suites (real 60-second experiments, the local model) run when CI=true,
# or on request: ./scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
if [ "${CI:-}" = "true" ] && [ $# -eq 0 ]; then
  set -- -m "slow or local_llm or not slow"
fi
exec python -m pytest -q "$@"
