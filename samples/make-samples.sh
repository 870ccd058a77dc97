#!/usr/bin/env bash
# Re-derive the bundled sample video samples/vtest.mp4 (see samples/README.md).
#
#   samples/make-samples.sh --check     sha256 of the committed files against samples/SHA256SUMS only
#   samples/make-samples.sh [--verify]  re-encode into .deps/samples-work and require a byte-identical result
#   samples/make-samples.sh --write     re-encode and replace samples/vtest.mp4, samples/LICENSE.vtest
#                                       and samples/SHA256SUMS
#
# Needs GStreamer 1.22 (gst-launch-1.0; gst-discoverer-1.0 from gstreamer1.0-plugins-base-apps;
# plugins good, bad, ugly (x264enc), libav)
# and Debian 12's opencv-doc 4.6.0+dfsg-12 (/usr/share/doc/opencv-doc/examples/data/vtest.avi).
# The output is byte-identical only with the same x264 build (Debian 12: libx264-164, core 164
# r3095); --verify also prints the frame-by-frame comparison when numpy is available
# ($PYTHON, default .deps/convert-venv/bin/python).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${EDGELENS_DEPS:-$ROOT/.deps}/samples-work
MODE=${1:---verify}
case "$MODE" in --check|--verify|--write) ;; *) sed -n '2,14p' "$0"; exit 2 ;; esac

SRC=/usr/share/doc/opencv-doc/examples/data/vtest.avi
SRC_SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
die() { echo "make-samples.sh: $*" >&2; exit 1; }

check() {
  cd "$ROOT"
  sha256sum --quiet --strict -c samples/SHA256SUMS || die "sha256 mismatch in samples/"
  echo "OK: $(grep -c . samples/SHA256SUMS) sample files match samples/SHA256SUMS"
}

# vtest.avi (MPEG-4 part 2 "MP43", 768x576, 10 fps, 795 frames) -> H.264 High, 4:2:0, in MP4.
# Two pipelines joined by a pipe of raw I420 frames, so that none of the AVI's tags (e.g. its
# "encoder: MEncoder ..." tag) reach the MP4. threads=1: with tune=zerolatency x264 cuts each frame
# into one slice per thread, so the thread count changes the bitstream; 1 keeps it machine-independent.
encode() {
  local out=$1
  gst-launch-1.0 -q filesrc location="$SRC" ! avidemux ! avdec_msmpeg4 ! videoconvert \
      ! video/x-raw,format=I420,width=768,height=576 ! fdsink fd=1 \
    | gst-launch-1.0 -q fdsrc fd=0 \
      ! rawvideoparse format=i420 width=768 height=576 framerate=10/1 pixel-aspect-ratio=1/1 \
      ! x264enc speed-preset=medium tune=zerolatency key-int-max=30 pass=qual quantizer=28 threads=1 \
      ! video/x-h264,profile=high ! h264parse ! mp4mux faststart=true ! filesink location="$out"
  # mp4mux stamps the wall-clock time into mvhd/tkhd/mdhd; zero it so that the file is reproducible
  python3 "$HERE/mp4tool.py" zero-times "$out"
}

# samples/LICENSE.vtest: vtest.avi is covered by the "Files: *" stanza of Debian's copyright file for
# opencv (Apache-2.0 AND BSD-3-Clause); that stanza, the BSD-3-Clause text from the same file, and
# the Apache-2.0 text from /usr/share/common-licenses.
license() {
  local c=/usr/share/doc/opencv-doc/copyright
  echo 'samples/vtest.mp4 is a re-encode of vtest.avi (OpenCV samples/data/vtest.avi) as shipped in the'
  echo 'Debian 12 package opencv-doc 4.6.0+dfsg-12 (/usr/share/doc/opencv-doc/examples/data/vtest.avi).'
  echo 'No stanza of /usr/share/doc/opencv-doc/copyright names samples/data, so the file falls under'
  echo '"Files: *", reproduced here, followed by the texts of both licenses.'
  echo
  echo "--- $c: Files: * ---"
  sed -n '/^Files: \*$/,/^$/p' "$c"
  echo "--- $c: License: BSD-3-clause ---"
  awk '/^License: BSD-3-clause$/ {n++} n == 2 {print} n == 2 && /^$/ {exit}' "$c"
  echo "--- Apache License 2.0 (/usr/share/common-licenses/Apache-2.0) ---"
  cat /usr/share/common-licenses/Apache-2.0
}

case "$MODE" in
  --check) check ;;
  --verify|--write)
    [ -f "$SRC" ] || die "$SRC missing (apt-get install opencv-doc)"
    echo "$SRC_SHA256  $SRC" | sha256sum --quiet --strict -c - || die "$SRC is not the expected file"
    mkdir -p "$WORK"
    rm -f "$WORK/vtest.mp4" "$WORK/LICENSE.vtest"
    license > "$WORK/LICENSE.vtest"
    echo "== encoding $SRC -> $WORK/vtest.mp4 (about 15 s)"
    encode "$WORK/vtest.mp4"
    python3 "$HERE/mp4tool.py" info "$WORK/vtest.mp4"
    gst-discoverer-1.0 "$WORK/vtest.mp4" | grep -E 'Duration|video #|Width|Height|Frame rate'
    PY=${PYTHON:-$ROOT/.deps/convert-venv/bin/python}
    if [ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; then
      echo "== frame-by-frame comparison with the source"
      "$PY" "$HERE/compare_frames.py" "$SRC" "$WORK/vtest.mp4"
    fi
    if [ "$MODE" = --write ]; then
      cp "$WORK/vtest.mp4" "$WORK/LICENSE.vtest" "$ROOT/samples/"
      (cd "$ROOT" && sha256sum samples/vtest.mp4 samples/LICENSE.vtest > samples/SHA256SUMS)
      echo "wrote samples/vtest.mp4 ($(stat -c %s "$ROOT/samples/vtest.mp4") bytes), samples/LICENSE.vtest and samples/SHA256SUMS"
    else
      cmp -s "$WORK/LICENSE.vtest" "$ROOT/samples/LICENSE.vtest" || die "samples/LICENSE.vtest differs from $WORK/LICENSE.vtest"
      echo "SAME samples/LICENSE.vtest (byte-identical)"
      cmp -s "$WORK/vtest.mp4" "$ROOT/samples/vtest.mp4" \
        || die "re-encoded vtest.mp4 differs from samples/vtest.mp4 (another x264/GStreamer build?); see the comparison above"
      echo "SAME samples/vtest.mp4 (byte-identical)"
    fi
    check
    ;;
esac
