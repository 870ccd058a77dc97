#!/usr/bin/env bash
# Creates (or checks) the Python venv .deps/NAME-venv from the full lock in
# scripts/NAME/requirements.txt, like models/convert's venv. Idempotent: an up-to-date venv
# (same requirements.txt hash) is left alone. Prints the venv's python on stdout.
# Used by scripts/tracking/venv.sh (eval_tracking.py) and scripts/pybench/venv.sh
# (python_pipeline.py).
#
# Environment: PYTHON (default python3, 3.11+), EDGELENS_DEPS (default <repo>/.deps).
set -euo pipefail

NAME=${1:?usage: scripts/py-venv.sh NAME (the folder scripts/NAME holding requirements.txt)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/$NAME" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPS=${EDGELENS_DEPS:-$ROOT/.deps}
VENV=$DEPS/$NAME-venv
PY=$VENV/bin/python
log() { printf '[$NAME-venv] %s\n' "$*" >&2; }

# Tests and make targets may run this concurrently: one at a time.
mkdir -p "$DEPS"
exec 9>"$DEPS/.$NAME-venv.lock"
flock 9

want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ -x "$PY" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
  printf '%s\n' "$PY"
  exit 0
fi
"${PYTHON:-python3}" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' \
  || { log "needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
log "creating $VENV (pip install --no-deps -r scripts/$NAME/requirements.txt)"
# The hash stamp is written last: an interrupted install is rebuilt on the next run. (No
# build-and-rename: a venv's scripts hold their absolute path.)
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" install -q --no-deps -r "$HERE/requirements.txt" >&2
"$VENV/bin/pip" check >&2
echo "$want" > "$VENV/.requirements.sha256"
printf '%s\n' "$PY"
