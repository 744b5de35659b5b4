#!/usr/bin/env bash
# Sets up .venv, then runs the benchmark: `bash scripts/benchmark.sh` (full: 3 repeats, 5,000
# images, 224 px rows; not timed on this tree, expect about an hour on 2 CPU cores) or
# `bash scripts/benchmark.sh --quick` (~9 minutes). Both write benchmarks/RESULTS.md.
# The full run uses 5,000 Fashion-MNIST images from Debian's dataset-fashion-mnist package,
# installed here when apt-get can; without it, it falls back to the committed images.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if [[ " $* " != *" --quick "* && ! -d /usr/share/datasets/fashion-mnist ]] \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq dataset-fashion-mnist >/dev/null || true
fi
exec .venv/bin/python benchmarks/run.py "$@"
