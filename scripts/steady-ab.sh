#!/usr/bin/env bash
# Steady-state fps (from /metrics, 1.7-4.7 s into the clip) and peak RSS of `edgelens run` at
# the fixed 2x1 layout, variants interleaved: plain, inference threads pinned one per core
# (taskset on infer-0 / infer-1), and malloc with transparent huge pages
# (GLIBC_TUNABLES=glibc.malloc.hugetlb=1). docs/benchmarks.md, "Tried and measured".
# Usage: scripts/steady-ab.sh BIN [ROUNDS] (default 4). Uses 127.0.0.1:9655.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1 ROUNDS=${2:-4} ADDR=127.0.0.1:9655
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}"
frames() { curl -s "http://$ADDR/metrics" | awk '/^edgelens_frames_inferred_total/ {print $2}'; }
one() { # variant
  local variant=$1 env=()
  [ "$variant" = hugepages ] && env=(GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
  env "${env[@]}" "$BIN" run --source samples/vtest.mp4 --model models/ssdlite-person \
    --backend ort --instances 2 --threads 1 --metrics-addr "$ADDR" --no-module >/dev/null 2>&1 &
  local pid=$!
  sleep 1.2
  if [ "$variant" = pinned ]; then
    for t in /proc/$pid/task/*; do
      case "$(cat "$t/comm")" in
        infer-0) taskset -p -c 0 "${t##*/}" >/dev/null ;;
        infer-1) taskset -p -c 1 "${t##*/}" >/dev/null ;;
      esac
    done
  fi
  sleep 0.5
  local f0 t0 f1 t1 hwm
  f0=$(frames); t0=$(date +%s.%N); sleep 3; f1=$(frames); t1=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  wait "$pid" || true
  printf '%-10s fps %6.1f  peak so far %5.1f MB\n' "$variant" \
    "$(echo "($f1 - $f0) / ($t1 - $t0)" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
}
for _ in $(seq "$ROUNDS"); do
  for v in plain pinned hugepages; do one "$v"; done
done
