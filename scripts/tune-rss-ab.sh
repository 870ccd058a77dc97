#!/usr/bin/env bash
# Peak RSS of `edgelens run` with the defaults (auto layout: the tuner tries 1x2 then 2x1 on
# two cores; sample clip, ssdlite-person), two builds interleaved, plus the fixed 2x1 layout
# once per build as the reference; prints each run's tuner lines (layouts measured, the
# relayout's drain and load times). docs/memory.md, "Figures".
# Usage: scripts/tune-rss-ab.sh OLD_BIN NEW_BIN [ROUNDS] (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 ROUNDS=${3:-4}
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
run() { # label bin args...
  local label=$1 bin=$2; shift 2
  /usr/bin/time -o "$TMP/time" -f %M "$bin" run --metrics-addr off --no-module "$@" \
    >/dev/null 2>"$TMP/log"
  printf '%-10s peak %6.1f MB\n' "$label" "$(awk '{print $1/1024}' "$TMP/time")"
  grep -E 'relayout|engine layout chosen' "$TMP/log" | sed -E 's/^[^ ]+ +INFO [^ ]+ /    /' || true
}
for i in $(seq "$ROUNDS"); do
  run "auto old" "$OLD"
  run "auto new" "$NEW"
done
run "2x1 old" "$OLD" --instances 2 --threads 1
run "2x1 new" "$NEW" --instances 2 --threads 1
