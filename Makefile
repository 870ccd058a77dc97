# Two commands do all the set-up on a fresh Debian 12: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export ORT_DYLIB_PATH ?= $(CURDIR)/.deps/onnxruntime/libonnxruntime.so
export TENSORFLOW_DIR ?= $(CURDIR)/.deps/tensorflow
BIN := $(CARGO_TARGET_DIR)/release/edgelens
MODEL ?= models/ssdlite-person
BACKEND ?= ort

.PHONY: deps build run detect test bench lint fmt clippy clean

deps:
	@scripts/deps.sh
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }

build: deps
	$(CARGO) build --release --locked

# The main job: detect on the bundled sample images with the bundled model.
run: build
	$(BIN) detect --model $(MODEL) --backend $(BACKEND) tests/data/astronaut.png tests/data/messi5.jpg tests/data/vtest-frame.png

test: deps
	$(CARGO) test --release --locked -- --test-threads=2

bench: build
	$(CARGO) bench --locked --bench engine

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

clean:
	$(CARGO) clean
