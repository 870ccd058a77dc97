#!/usr/bin/env bash
# The venv scripts/python_pipeline.py runs in (.deps/pybench-venv): see scripts/py-venv.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/../py-venv.sh" pybench "$@"
