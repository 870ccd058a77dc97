#!/bin/bash
# Runs the two-instance order test and stalls engine worker infer-0 for ~2 s mid-run
# (SCHED_IDLE, pinned to CPU 0 next to a nice-19 busy loop), as a loaded machine does.
# Before the dispatch fix this dropped frames as late (frames_late > 0); now the other
# instance waits. Needs the binary of `cargo test --release --test instances --no-run`.
bin=${1:?usage: scripts/stall-instance.sh target/release/deps/instances-HASH}
$bin two_instances_keep_frame_order > "${TMPDIR:-/tmp}/stall-instance-$$.log" 2>&1 &
pid=$!
tid0=""
for _ in $(seq 600); do
  sleep 0.05
  t1=$(grep -lx infer-1 /proc/$pid/task/*/comm 2>/dev/null | head -1)
  if [ -n "$t1" ]; then
    sleep 1
    tid0=$(grep -lx infer-0 /proc/$pid/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
    break
  fi
done
if [ -n "$tid0" ]; then
  taskset -p -c 0 $tid0 >/dev/null; chrt -i -p 0 $tid0
  taskset -c 0 nice -n 19 sh -c 'while :; do :; done' &
  hog=$!
  sleep 2
  kill $hog
  chrt -o -p 0 $tid0 2>/dev/null; taskset -p -c 0-$(($(nproc) - 1)) $tid0 >/dev/null 2>&1
  echo "stalled infer-0 (tid $tid0) for 2 s"
else
  echo "infer-1 never appeared"
fi
wait $pid
rc=$?
grep -E "test result|no frame lost|late" "${TMPDIR:-/tmp}/stall-instance-$$.log" | head -3
exit $rc
