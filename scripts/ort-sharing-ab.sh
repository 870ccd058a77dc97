#!/usr/bin/env bash
# What ORT sharing (one CPU arena per process, one copy of a model's weights per model) does,
# with one binary and EDGELENS_ORT_SHARING=off|default alternating (default = the build's
# defaults: weights shared, arena per session; `on` also shares the arena), so load drift
# hits both alike
# (docs/memory.md, issue 12 §4):
#   1. peak RSS (ru_maxrss) of `edgelens run` over the whole sample clip, ssdlite-person on ORT,
#      in three layouts: 1x1, 2x1 and the default (auto: the tuner tries 1x2 then 2x1);
#   2. throughput: `edgelens bench` pipeline and ceiling fps, off/on interleaved.
# Usage: scripts/ort-sharing-ab.sh [ROUNDS] (default 2); AB_ONLY=rss or AB_ONLY=fps runs one
# part; AB_MODES="off default on" picks the switch values compared.
# Needs a release build (make build). Prints one line per run; compare ratios, not absolutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
BIN="${EDGELENS_BIN:-${CARGO_TARGET_DIR:-target}/release/edgelens}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}"
MODEL=models/ssdlite-person
MODES="${AB_MODES:-off default}"   # any of: off default on arena weights
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

rss() { # sharing layout-label run-args...
  local sharing=$1 label=$2; shift 2
  EDGELENS_ORT_SHARING=${sharing/default/} /usr/bin/time -o "$TMP/time" -f "%M %e %U %S" \
    "$BIN" run --source samples/vtest.mp4 --model "$MODEL" --backend ort \
    --metrics-addr off "$@" >"$TMP/out.jsonl" 2>/dev/null
  read -r kb wall user sys <"$TMP/time"
  printf 'rss layout=%-5s sharing=%-7s peak_rss_mb=%6.1f messages=%s wall_s=%s cpu_s=%s\n' \
    "$label" "$sharing" "$(echo "$kb / 1024" | bc -l)" "$(wc -l <"$TMP/out.jsonl")" \
    "$wall" "$(echo "$user + $sys" | bc -l)"
}

fps() { # sharing
  EDGELENS_ORT_SHARING=${1/default/} "$BIN" bench --backend ort --model "$MODEL" --frames 300 \
    --out "$TMP/bench-$1" --quiet >/dev/null 2>&1
  python3 - "$1" "$TMP/bench-$1/bench.json" <<'EOF'
import json, sys
row = json.load(open(sys.argv[2]))["results"][0]
keys = ("instances", "threads", "pipeline_fps", "ceiling_fps", "pipeline_over_limit", "peak_rss_mb")
print("fps sharing=%-7s " % sys.argv[1] + " ".join("%s=%s" % (k, row.get(k)) for k in keys))
EOF
}

for _ in $(seq "$ROUNDS"); do
  if [ "${AB_ONLY:-}" != fps ]; then
    for s in $MODES; do rss "$s" 1x1 --instances 1 --threads 1; done
    for s in $MODES; do rss "$s" 2x1 --instances 2 --threads 1; done
    for s in $MODES; do rss "$s" auto; done
  fi
  if [ "${AB_ONLY:-}" != rss ]; then
    for s in $MODES; do fps "$s"; done
  fi
done
