#!/usr/bin/env bash
# fp32 vs int8, side by side in one sitting: `edgelens bench` on samples/vtest.mp4, interleaved
# (fp32, int8, fp32, int8, ...) so machine drift hits both alike; prints a markdown table of medians.
#   models/convert/bench_int8.sh [ROUNDS=3] [FRAMES=200] [THREADS=1] [BACKEND=ort]
# Environment: EDGELENS (the binary, default target/release/edgelens), OUT (scratch, default /tmp/bench-int8).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${1:-3} FRAMES=${2:-200} THREADS=${3:-1} BACKEND=${4:-ort}
BIN=${EDGELENS:-$ROOT/target/release/edgelens}
OUT=${OUT:-/tmp/bench-int8}
PAIRS=(ssdlite-person ssd-mobilenetv2-oidv4)
cd "$ROOT"; rm -rf "$OUT"; mkdir -p "$OUT"
for r in $(seq "$ROUNDS"); do
  for m in "${PAIRS[@]}"; do
    for v in "$m" "$m-int8"; do
      "$BIN" bench --model "models/$v" --backend "$BACKEND" --video samples/vtest.mp4 --frames "$FRAMES" \
        --threads "$THREADS" --quiet --out "$OUT/$v.$r" > "$OUT/$v.$r.log" 2>&1 || { tail -5 "$OUT/$v.$r.log"; exit 1; }
    done
  done
done
python3 - "$OUT" "$ROUNDS" "$BACKEND" "$THREADS" "${PAIRS[@]}" <<'PY'
import json, statistics as st, sys
out, rounds, backend, threads, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def runs(m):
    rs = [json.load(open(f"{out}/{m}.{r}/bench.json")) for r in range(1, rounds + 1)]
    return [next(b for b in r["results"] if b["backend"] == backend) for r in rs]
def med(bs, f): return st.median(f(b) for b in bs)
print(f"| model | backend, threads | fp32 ceiling ms (p50) | int8 ceiling ms (p50) | ceiling ratio | fp32 pipeline fps | int8 pipeline fps | pipeline ratio |")
print("|---|---|---|---|---|---|---|---|")
for m in pairs:
    a, b = runs(m), runs(m + "-int8")
    ca, cb = med(a, lambda x: x["ceiling_ms"]["p50"]), med(b, lambda x: x["ceiling_ms"]["p50"])
    pa, pb = med(a, lambda x: x["pipeline_fps"]), med(b, lambda x: x["pipeline_fps"])
    print(f"| {m} | {backend}, {threads} | {ca:.2f} | {cb:.2f} | **{ca / cb:.2f}x** | {pa:.1f} | {pb:.1f} | **{pb / pa:.2f}x** |")
PY
