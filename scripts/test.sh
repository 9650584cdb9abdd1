#!/usr/bin/env bash
# The test command: sets up .venv, then runs the CI test suite (slow sweeps excluded) on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# --dist loadgroup: the tests marked xdist_group("ray") share one worker, hence one local Ray cluster
exec .venv/bin/python -m pytest -m "not slow" -n "${SPECORACLE_TEST_WORKERS:-auto}" --dist loadgroup -q "$@"
