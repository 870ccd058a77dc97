# Two commands do all the set-up on a fresh Debian 12: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export ORT_DYLIB_PATH ?= $(CURDIR)/.deps/onnxruntime/libonnxruntime.so
export TENSORFLOW_DIR ?= $(CURDIR)/.deps/tensorflow
BIN := $(CARGO_TARGET_DIR)/release/edgelens
MODEL ?= models/ssdlite-person
BACKEND ?= ort

.PHONY: deps build run detect bench-video bench-report test bench lint fmt clippy clean soak eval-tracking fuzz fuzz-smoke

deps:
	@scripts/deps.sh
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }

build: deps
	$(CARGO) build --release --locked

# The main job: the bundled sample video through the bundled model, messages on stdout.
run: build
	$(BIN) run --source samples/vtest.mp4 --model $(MODEL) --backend $(BACKEND) --metrics-addr 127.0.0.1:9600

# Still images, annotated into out/annotated.
detect: build
	$(BIN) detect --model $(MODEL) --backend $(BACKEND) --annotate out/annotated tests/data/astronaut.png tests/data/messi5.jpg tests/data/vtest-frame.png

# Compare backends on the sample video: table on stdout, bench-out/bench.json and bench.png.
bench-video: build
	$(BIN) bench --model $(MODEL) --backend ort,tract --video samples/vtest.mp4 --frames 300

# One sitting, one command: fp32 vs int8 at 1 thread and all cores, the machine limit and the
# ratios, the Python pipeline (scripts/python_pipeline.py) bracketing the run, and the layouts /
# streams / start sections when this build has them; regenerates docs/benchmarks.md from the JSON
# (docs/bench/report.json). About 5 minutes on 2 cores.
BENCH_FRAMES ?= 300
bench-report: build
	scripts/bench_report.py --bin $(BIN) --frames $(BENCH_FRAMES)

test: deps
	$(CARGO) test --release --locked -- --test-threads=2

# 30 minutes with faults injected; RSS/fd slopes and message accounting in bench-out/soak.json.
soak: deps
	EDGELENS_SOAK_MINUTES=$${EDGELENS_SOAK_MINUTES:-30} $(CARGO) test --release --locked --test soak -- --ignored --nocapture

# Fuzzing (docs/fuzzing.md): every target a few seconds (CI), or one target for long.
fuzz-smoke: deps
	scripts/fuzz.sh smoke

FUZZ_TARGET ?= twin_apply
FUZZ_SECONDS ?= 600
fuzz: deps
	scripts/fuzz.sh run $(FUZZ_TARGET) $(FUZZ_SECONDS)

bench: deps
	$(CARGO) bench --locked --bench engine --bench tracker

# Tracker quality on MOT15 TUD (motmetrics): table on stdout, figures in out/tracking.json.
eval-tracking: build
	@mkdir -p out
	$$(scripts/tracking/venv.sh) scripts/eval_tracking.py --bin $(BIN) --json out/tracking.json

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
include mk/images.mk
