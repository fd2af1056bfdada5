#!/usr/bin/env bash
# The main job on its embedded default: set up, make a workspace with the preset that fits this
# machine (cpu here) on Shakespeare, prepare the data offline-safe, and run experiments.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
WORKSPACE=${WORKSPACE:-runs/demo-$(date +%Y%m%d-%H%M%S)}
autoresearch init "$WORKSPACE" ${PRESET:+--preset "$PRESET"}
cd "$WORKSPACE"
autoresearch prepare
autoresearch exp -m "baseline"
autoresearch status
