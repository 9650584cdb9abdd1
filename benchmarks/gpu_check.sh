#!/usr/bin/env bash
# One-call GPU validation (issue 19): cuda-marked tests with SPECORACLE_REQUIRE_CUDA=1, the B=256
# V=128,000 benchmark with achieved HBM bandwidth as a fraction of the device peak, and the
# report's parity section on cuda, under an 8-minute wall-clock limit, into ONE JSON summary.
#   benchmarks/gpu_check.sh [--out FILE] [--dry] [gpu_check.py options]
# --dry: the same stages on the CPU at tiny sizes (run by tests/test_gpu_check.py in CI).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python}"
[ -x "$here/../.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && py="$here/../.venv/bin/python"
exec timeout --kill-after=10 "${GPU_CHECK_LIMIT_S:-480}" "$py" "$here/gpu_check.py" "$@"
