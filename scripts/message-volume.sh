#!/bin/sh
# Message counts per output mode on samples/vtest.mp4 (whole clip, stdout): the README's
# "Message volume" table. Usage: scripts/message-volume.sh [BIN]
set -e
B=${1:-${CARGO_TARGET_DIR:-target}/release/edgelens}
S=samples/vtest.mp4
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# A zone over the middle of the pavement and a line through it (as tests/scene_pipeline.rs).
cat > "$T/zones.json" <<'JSON'
{"zones": {"middle": {"polygon": [[0.4,0.3],[0.6,0.3],[0.6,0.75],[0.4,0.75]], "classes": ["person"]}},
 "lines": {"mid": {"from": [0.5,0.2], "to": [0.5,0.8]}}}
JSON
# The same zone and line, events unbatched (eventsBatchSecs 0), and no zones unbatched.
sed 's/^ "lines"/ "eventsBatchSecs": 0,\n "lines"/' "$T/zones.json" > "$T/zones0.json"
echo '{"eventsBatchSecs": 0}' > "$T/nozones0.json"
run() { "$B" run --no-module --metrics-addr off --source "$S" "$@" 2>/dev/null; }
largest() { awk '{ if (length > m) m = length } END { print m }'; }
echo "frames: $(run --output-mode frames | wc -l)"
echo "events, unbatched: $(run --output-mode events --zones "$T/nozones0.json" | wc -l)"
run --output-mode events > "$T/e.jsonl"
echo "events: $(wc -l < "$T/e.jsonl") (largest message $(largest < "$T/e.jsonl") bytes)"
echo "events+snapshots: $(run --output-mode events --snapshots "$T/s1" | wc -l)"
run --output-mode events --zones "$T/zones.json" > "$T/z.jsonl"
echo "events+zone+line: $(wc -l < "$T/z.jsonl") (counts: $(grep -c zoneCount "$T/z.jsonl"))"
echo "events+zone+line+snapshots: $(run --output-mode events --zones "$T/zones.json" --snapshots "$T/s2" | wc -l)"
echo "events+zone+line+snapshots, unbatched: $(run --output-mode events --zones "$T/zones0.json" --snapshots "$T/s3" | wc -l)"
