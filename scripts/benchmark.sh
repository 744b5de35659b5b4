#!/usr/bin/env bash
# Sets up .venv, then runs the benchmark: `bash scripts/benchmark.sh` (full: 3 repeats on 1,000
# committed images, with the 224 px row) or `bash scripts/benchmark.sh --quick` (1 repeat on
# 900, no 224 px row). Both write benchmarks/RESULTS.md; see benchmarks/run.py for the rows.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python benchmarks/run.py "$@"
