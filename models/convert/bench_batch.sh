#!/usr/bin/env bash
# Does batching frames into one inference pay on this CPU? (docs/batching.md)
#   models/convert/bench_batch.sh [ROUNDS=15] [SECONDS=0.4] [MODEL...]
# Copies each model (default: the four bundled SSDs, fp32 and int8) into OUT with its batch
# dimension made dynamic (dynamic_batch.py; the bundled models are not touched), checks that a
# batch of 4 gives each frame the same outputs and detections as the bundled batch-1 model, then
# prints the per-frame time table (bench_batch.py), in the quantize venv (onnxruntime 1.32).
# Environment: OUT (scratch, default /tmp/bench-batch), BATCHES (default 1,2,4).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROUNDS=${1:-15} SECONDS_PER=${2:-0.4}
shift $(($# < 2 ? $# : 2))
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(ssdlite-person ssd-mobilenetv2-oidv4 ssdlite-person-int8 ssd-mobilenetv2-oidv4-int8)
OUT=${OUT:-/tmp/bench-batch}
PY=$("$HERE/convert.sh" --quantize-venv)
cd "$ROOT"; rm -rf "$OUT"; mkdir -p "$OUT"
args=()
for m in "${MODELS[@]}"; do
  "$PY" "$HERE/dynamic_batch.py" "models/$m" "$OUT/$m"
  args+=(--reference "models/$m" "$OUT/$m")
done
"$PY" "$HERE/bench_batch.py" --rounds "$ROUNDS" --seconds "$SECONDS_PER" --batches "${BATCHES:-1,2,4}" "${args[@]}"
