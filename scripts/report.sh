#!/usr/bin/env bash
# The main job: sets up .venv, then writes the full report on built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/specoracle report "$@"
