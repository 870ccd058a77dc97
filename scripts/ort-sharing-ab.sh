#!/usr/bin/env bash
# What ORT sharing does to memory and speed (docs/memory.md, issue 12 §4), side by side:
# EDGELENS_ORT_SHARING=off|weights|... alternating in each build (default = the build's
# defaults: nothing shared; `on` shares weights and arena; `arena`/`weights` one kind;
# `openh264` = the defaults with GStreamer's openh264dec preferred over avdec_h264 through
# GST_PLUGIN_FEATURE_RANK), so load drift hits every variant alike:
#   1. peak RSS (ru_maxrss) of `edgelens run` over the whole sample clip, ssdlite-person on ORT,
#      in three layouts: 1x1, 2x1 and the default (auto: the tuner tries 1x2 then 2x1);
#   2. throughput: `edgelens bench` pipeline and ceiling fps in the usual 2x1 layout, interleaved.
# Usage: scripts/ort-sharing-ab.sh [ROUNDS] (default 2)
#   AB_ONLY=rss|fps   one part only
#   AB_MODES="off weights on"   the switch values compared (default "off weights")
#   AB_BINS="a b"     several builds too (e.g. one with defaults::DECODER_MAX_THREADS = 0)
# Needs a release build (make build). One line per run; compare ratios, not absolutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
BINS="${AB_BINS:-${EDGELENS_BIN:-${CARGO_TARGET_DIR:-target}/release/edgelens}}"
MODES="${AB_MODES:-off weights}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}"
MODEL=models/ssdlite-person
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Runs CMD... with the environment for variant $1.
with() {
  local v=$1; shift
  case $v in
    openh264) GST_PLUGIN_FEATURE_RANK=openh264dec:MAX EDGELENS_ORT_SHARING= "$@" ;;
    default) EDGELENS_ORT_SHARING= "$@" ;;
    *) EDGELENS_ORT_SHARING=$v "$@" ;;
  esac
}

rss() { # bin sharing layout-label run-args...
  local bin=$1 sharing=$2 label=$3; shift 3
  with "$sharing" /usr/bin/time -o "$TMP/time" -f "%M %e %U %S" \
    "$bin" run --source samples/vtest.mp4 --model "$MODEL" --backend ort \
    --metrics-addr off "$@" >"$TMP/out.jsonl" 2>/dev/null
  read -r kb wall user sys <"$TMP/time"
  printf 'rss bin=%s layout=%-4s sharing=%-7s peak_rss_mb=%6.1f messages=%s wall_s=%s cpu_s=%s\n' \
    "$(basename "$bin")" "$label" "$sharing" "$(echo "$kb / 1024" | bc -l)" \
    "$(wc -l <"$TMP/out.jsonl")" "$wall" "$(echo "$user + $sys" | bc -l)"
}

fps() { # bin sharing
  local bin=$1 sharing=$2
  with "$sharing" "$bin" bench --backend ort --model "$MODEL" --instances 2 --threads 1 \
    --frames 300 --out "$TMP/bench" --quiet >/dev/null 2>&1
  python3 -c '
import json, sys
row = json.load(open(sys.argv[1]))["results"][0]
keys = ("instances", "threads", "pipeline_fps", "ceiling_fps", "pipeline_over_limit", "peak_rss_mb")
print("fps bin=%s sharing=%-7s " % (sys.argv[2], sys.argv[3])
      + " ".join("%s=%s" % (k, row.get(k)) for k in keys))
' "$TMP/bench/bench.json" "$(basename "$bin")" "$sharing"
}

variants() { for b in $BINS; do for s in $MODES; do echo "$b $s"; done; done; }

for _ in $(seq "$ROUNDS"); do
  if [ "${AB_ONLY:-}" != fps ]; then
    for layout in 1x1 2x1 auto; do
      case $layout in
        1x1) args=(--instances 1 --threads 1) ;;
        2x1) args=(--instances 2 --threads 1) ;;
        auto) args=() ;;
      esac
      variants | while read -r b s; do rss "$b" "$s" "$layout" "${args[@]}"; done
    done
  fi
  if [ "${AB_ONLY:-}" != rss ]; then
    variants | while read -r b s; do fps "$b" "$s"; done
  fi
done
