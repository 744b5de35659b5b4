#!/usr/bin/env bash
# Sets up .venv and runs the test suite. Default: the fast tests (under ~10 minutes on 2 CPU
# cores). `bash scripts/test.sh -m slow` runs the slow end-to-end ones; other pytest arguments
# pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
