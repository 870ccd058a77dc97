#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ on the stable toolchain (see docs/fuzzing.md).
#   scripts/fuzz.sh smoke                  every target a few seconds on the committed corpus
#   scripts/fuzz.sh run TARGET [SECONDS]   one target for long, on a working corpus in the cache
#   scripts/fuzz.sh cmin TARGET            minimize the working corpus into fuzz/corpus/TARGET
# Exits non-zero when a target crashes; the crashing input is kept in fuzz/artifacts/TARGET/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${EDGELENS_CACHE:-$HOME/.cache/edgelens}"
export PATH="$CACHE/tools/bin:$PATH"
# cargo-fuzz passes -Z flags (sanitizer, coverage passes); stable rustc accepts them with this.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET_DIR="${EDGELENS_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
SANITIZER="${EDGELENS_FUZZ_SANITIZER:-address}"
SMOKE_SECONDS="${EDGELENS_FUZZ_SMOKE_SECONDS:-7}"
# The fuzz crate builds against the stable toolchain even where nightly is the default.
# (Without rustup, the one cargo there is.)
if command -v rustup >/dev/null; then
  FUZZ=(cargo "+${EDGELENS_FUZZ_TOOLCHAIN:-stable}" fuzz)
else
  FUZZ=(cargo fuzz)
fi
COMMON=(--sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" --fuzz-dir "$ROOT/fuzz")
# A timeout or a 2 GB heap is a finding too (hostile input must stay bounded).
LIBFUZZER=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: run make deps" >&2; exit 1; }
cd "$ROOT"

targets() { "${FUZZ[@]}" list --fuzz-dir "$ROOT/fuzz"; }

# run TARGET SECONDS CORPUS_DIR...: the first dir receives new inputs.
run() {
  local t="$1" secs="$2"; shift 2
  local asan="${ASAN_OPTIONS:-}"
  # source_resolve builds GStreamer elements: glib keeps one 16 KiB allocation for the
  # process's life, which LeakSanitizer reports at exit. Our own leaks would show in the
  # other targets and in the soak's RSS slope.
  if [ "$t" = source_resolve ]; then asan="detect_leaks=0${asan:+:$asan}"; fi
  mkdir -p "fuzz/artifacts/$t"
  ASAN_OPTIONS="$asan" "${FUZZ[@]}" run "${COMMON[@]}" "$t" "$@" -- "${LIBFUZZER[@]}" \
    -max_total_time="$secs" -artifact_prefix="fuzz/artifacts/$t/"
}

case "${1:-smoke}" in
  smoke)
    "${FUZZ[@]}" build "${COMMON[@]}"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    failed=()
    for t in $(targets); do
      mkdir -p "$scratch/$t"
      # New inputs go to the scratch dir, so the committed corpus stays as it is.
      if ! run "$t" "$SMOKE_SECONDS" "$scratch/$t" "fuzz/corpus/$t" >"$scratch/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "$scratch/$t.log"
      fi
      execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$' || echo '?')
      echo "fuzz-smoke: $t ${execs} execs in ${SMOKE_SECONDS} s"
    done
    if ((${#failed[@]})); then
      echo "fuzz-smoke: CRASH in ${failed[*]}; inputs in fuzz/artifacts/, reproduce with scripts/fuzz.sh repro TARGET FILE" >&2
      exit 1
    fi
    ;;
  run)
    t="$2" secs="${3:-600}"
    work="$CACHE/fuzz-corpus/$t"
    mkdir -p "$work"
    run "$t" "$secs" "$work" "fuzz/corpus/$t"
    ;;
  cmin)
    t="$2"
    work="$CACHE/fuzz-corpus/$t"
    merged=$(mktemp -d)
    # -merge=1 keeps the smallest inputs that cover everything the old and new corpora cover.
    "${FUZZ[@]}" run "${COMMON[@]}" "$t" "$merged" "fuzz/corpus/$t" "$work" -- -merge=1 -rss_limit_mb=2048
    # Committed corpora stay small: past the budget, the largest inputs go first.
    budget="${EDGELENS_FUZZ_CORPUS_BYTES:-200000}"
    total=0
    while read -r size file; do
      total=$((total + size))
      if ((total > budget)); then rm -f "$file"; fi
    done < <(find "$merged" -type f -printf '%s %p\n' | sort -n)
    rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t" && chmod 755 "fuzz/corpus/$t"
    echo "fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) inputs, $(du -sh "fuzz/corpus/$t" | cut -f1)"
    ;;
  repro)
    "${FUZZ[@]}" run "${COMMON[@]}" "$2" "$3"
    ;;
  *) echo "usage: $0 smoke | run TARGET [SECONDS] | cmin TARGET | repro TARGET FILE" >&2; exit 2 ;;
esac
