#!/usr/bin/env bash
# Creates (or checks) the Python venv scripts/python_pipeline.py runs in: .deps/pybench-venv, from
# the full lock in requirements.txt, like models/convert's venv. Idempotent: an up-to-date venv
# (same requirements.txt hash) is left alone. Prints the venv's python on stdout.
#
# Environment: PYTHON (default python3, 3.11+), EDGELENS_DEPS (default <repo>/.deps).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPS=${EDGELENS_DEPS:-$ROOT/.deps}
VENV=$DEPS/pybench-venv
PY=$VENV/bin/python
log() { printf '[pybench-venv] %s\n' "$*" >&2; }

# Two runs may start at once (make deps, make bench-report): one at a time.
mkdir -p "$DEPS"
exec 9>"$DEPS/.pybench-venv.lock"
flock 9

want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ -x "$PY" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
  printf '%s\n' "$PY"
  exit 0
fi
"${PYTHON:-python3}" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' \
  || { log "needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
log "creating $VENV (pip install --no-deps -r scripts/pybench/requirements.txt)"
# The hash stamp is written last: an interrupted install is rebuilt on the next run. (No
# build-and-rename: a venv's scripts hold their absolute path.)
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install -q --no-deps -r "$HERE/requirements.txt" >&2
"$VENV/bin/pip" check >&2
echo "$want" > "$VENV/.requirements.sha256"
printf '%s\n' "$PY"
