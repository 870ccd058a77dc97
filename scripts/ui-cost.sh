#!/usr/bin/env bash
# What the live view costs the pipeline, as ratios taken side by side in one run:
#   1. throughput on samples/vtest.mp4 (as fast as possible) with --ui off, --ui on and
#      nobody watching, and --ui on with one viewer on /stream.mjpeg; rounds interleave the
#      three so a noisy machine hits all of them alike;
#   2. the edgelens process's CPU seconds over a fixed time on a 10 fps live source, with one
#      viewer on MJPEG vs one polling /frame.jpg at the same rate (which transport is lighter).
# Usage: scripts/ui-cost.sh [ROUNDS] (default 3); UI_COST_ONLY=transport runs part 2 only.
# Needs a release build (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
BIN="${EDGELENS_BIN:-${CARGO_TARGET_DIR:-target}/release/edgelens}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}"
export RUST_LOG=info
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT

ui_addr() { # log file -> host:port once logged
  for _ in $(seq 1 300); do
    a=$(grep -o 'url=http://[0-9.:]*' "$1" 2>/dev/null | head -n1 | sed 's|url=http://||')
    if [ -n "$a" ]; then echo "$a"; return; fi
    sleep 0.1
  done
  echo "no ui address in $1" >&2; exit 1
}

# One run; prints "frames seconds".
run_once() { # mode: off | idle | viewer
  local mode=$1 log="$TMP/$1.log" args=()
  [ "$mode" != off ] && args=(--ui 127.0.0.1:0)
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" run --no-module --metrics-addr off --source samples/vtest.mp4 --output-mode frames \
    "${args[@]}" >/dev/null 2>"$log" &
  local pid=$!
  if [ "$mode" = viewer ]; then
    local addr; addr=$(ui_addr "$log")
    curl -s -o /dev/null --max-time 600 "http://$addr/stream.mjpeg" &
  fi
  wait "$pid"
  t1=$(date +%s.%N)
  local frames
  frames=$(grep -o 'inferred=[0-9]*' "$log" | tail -n1 | cut -d= -f2)
  echo "$frames $(echo "$t1 - $t0" | bc -l)"
}

if [ "${UI_COST_ONLY:-}" != transport ]; then
declare -A FR SEC
for m in off idle viewer; do FR[$m]=0; SEC[$m]=0; done
for r in $(seq 1 "$ROUNDS"); do
  for m in off idle viewer; do
    read -r f s < <(run_once "$m")
    FR[$m]=$((FR[$m] + f)); SEC[$m]=$(echo "${SEC[$m]} + $s" | bc -l)
    printf 'round %d %-6s %5d frames %6.2f s %6.2f fps\n' "$r" "$m" "$f" "$s" "$(echo "$f / $s" | bc -l)"
  done
done
fps() { echo "${FR[$1]} / ${SEC[$1]}" | bc -l; }
off=$(fps off)
printf '\nthroughput (fps, %d rounds): off %.2f | on, no viewer %.2f (ratio %.3f) | on, one viewer %.2f (ratio %.3f)\n' \
  "$ROUNDS" "$off" "$(fps idle)" "$(echo "$(fps idle) / $off" | bc -l)" \
  "$(fps viewer)" "$(echo "$(fps viewer) / $off" | bc -l)"
fi

# --- MJPEG vs polled /frame.jpg: CPU seconds of the edgelens process over 20 s each ---
SRC="filesrc location=tests/data/vtest-frame.png ! pngdec ! imagefreeze is-live=true ! video/x-raw,framerate=10/1"
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
measure() { # transport
  local log="$TMP/t-$1.log"
  "$BIN" run --no-module --metrics-addr off --pipeline "$SRC" --live --ui 127.0.0.1:0 >/dev/null 2>"$log" &
  local pid=$! addr; addr=$(ui_addr "$log")
  sleep 3
  local c0; c0=$(cpu "$pid")
  if [ "$1" = none ]; then
    sleep 20
  elif [ "$1" = mjpeg ]; then
    curl -s -o /dev/null --max-time 20 "http://$addr/stream.mjpeg" || true
  else
    local end=$((SECONDS + 20))
    while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "http://$addr/frame.jpg"; sleep 0.2; done
  fi
  local c1; c1=$(cpu "$pid")
  # CPU seconds per thread since start (load-independent: what the live view itself costs).
  for t in /proc/"$pid"/task/*; do
    awk -v tr="$1" '{n=$2; gsub(/[()]/,"",n); if (n ~ /^(infer|ui-encode|ui-http)$/) printf "  %-6s thread %-9s %6.2f CPU s\n", tr, n, ($14+$15)/100}' "$t/stat" >&2
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$c1 - $c0" | bc -l
}
no=$(measure none); mj=$(measure mjpeg); po=$(measure poll)
printf 'edgelens CPU seconds over 20 s, 10 fps live source: nobody watching %.2f | MJPEG %.2f | polled /frame.jpg %.2f\n' \
  "$no" "$mj" "$po"
printf 'live-view share: MJPEG %.2f s, polled %.2f s (poll/MJPEG %.2f)\n' \
  "$(echo "$mj - $no" | bc -l)" "$(echo "$po - $no" | bc -l)" "$(echo "($po - $no) / ($mj - $no)" | bc -l)"
