#!/usr/bin/env bash
# The venv scripts/eval_tracking.py runs in (.deps/tracking-venv): see scripts/py-venv.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/../py-venv.sh" tracking "$@"
