#!/usr/bin/env bash
# Sets up .venv and runs the test suite. Default: the unit tier (tests/unit, seconds) and the
# integration tests, not the slow ones. `bash scripts/test.sh tests/unit` runs the unit tier
# alone, `bash scripts/test.sh -m slow` the slow end-to-end tests; pytest arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
