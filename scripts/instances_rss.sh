#!/bin/sh
# Peak RSS and wall time of `edgelens run` on the sample with 1 and 2 engine instances
# (1 thread each), twice, alternating, so load drift hits both alike. Issue 12 §1.
set -eu
BIN=${BIN:-target/release/edgelens}
for k in 1 2 1 2; do
  /usr/bin/time -f "instances=$k peak_rss_kb=%M wall_s=%e cpu_s=%U+%S" \
    "$BIN" run --source samples/vtest.mp4 --instances "$k" --threads 1 --metrics-addr off \
    2>&1 >/dev/null | tail -1
done
