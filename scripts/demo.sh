#!/usr/bin/env bash
# The main job on its embedded default: set up, make a workspace with the preset that fits this
# machine (cpu here) on Shakespeare, prepare the data, and run the research loop. With no model
# configured the loop uses the built-in random proposer; set e.g. MODEL=gpt-4.1 (and
# OPENAI_API_KEY) or BASE_URL=http://localhost:8000/v1 to let a model propose.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
WORKSPACE=${WORKSPACE:-runs/demo-$(date +%Y%m%d-%H%M%S)}
autoresearch init "$WORKSPACE" ${PRESET:+--preset "$PRESET"}
cd "$WORKSPACE"
autoresearch prepare
autoresearch run --max-experiments "${MAX_EXPERIMENTS:-5}" ${MODEL:+--model "$MODEL"} ${BASE_URL:+--base-url "$BASE_URL"}
autoresearch status
