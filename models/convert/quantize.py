#!/usr/bin/env python3
"""Static int8 quantization of an edgelens ONNX model folder (onnxruntime.quantization, QDQ).

    quantize.py --model models/ssdlite-person --calibration samples/vtest.mp4 --out models/ssdlite-person-int8

Recipe (DESIGN.md 9): quant_pre_process, then quantize_static with QDQ, per-channel weights, u8
activations, s8 weights, MinMax calibration on frames of a video. The frames are decoded and scaled
by GStreamer exactly as the edgelens video pipeline does (videoscale, then videoconvert to the
model's color order), then normalised as model.toml says (mean/std, layout). Frame selection is
fixed (every STEP-th frame from the first, FRAMES of them), so the same inputs give the same bytes
on the same kind of CPU. The output is a normal model folder: model.toml (fp32 manifest with the
new file, sha256, backends and a [source] that records the recipe), labels, LICENSE.
Needs only onnxruntime, onnx, sympy and numpy (requirements-quantize.txt) and gst-launch-1.0.
"""
import argparse
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

MAX_FRAMES = 200  # calibration keeps every frame and its activations in memory: bound it
MAX_SIDE = 4096  # the model input edgelens takes (src/defaults.rs MODEL_INPUT_MAX_SIDE)


def fail(msg):
    print(f"quantize.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decode_frames(video, width, height, color, letterbox, frames, step):
    """Every `step`-th frame (from frame 0) of `video`, `frames` of them, as uint8 [h, w, 3] arrays,
    scaled and converted by the same GStreamer elements the edgelens video pipeline uses."""
    if any(c in str(video) for c in '"\\'):
        fail(f"calibration video path must not contain quotes or backslashes: {video}")
    par = ",pixel-aspect-ratio=1/1" if letterbox else ""
    fmt = "BGR" if color == "bgr" else "RGB"
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={video}", "!", "decodebin", "!",
           "videoscale", f"add-borders={'true' if letterbox else 'false'}", "!",
           f"video/x-raw,width={width},height={height}{par}", "!", "videoconvert", "!",
           f"video/x-raw,format={fmt}", "!", "fdsink", "fd=1"]
    size = width * height * 3
    out, index = [], 0
    # stderr to a file: a pipe nobody reads could fill up and stall the decoder
    with tempfile.TemporaryFile() as errf, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf) as p:
        while len(out) < frames:
            buf = p.stdout.read(size)
            if len(buf) < size:
                break
            if index % step == 0:
                out.append(np.frombuffer(buf, np.uint8).reshape(height, width, 3))
            index += 1
        p.kill()
        p.wait()
        errf.seek(0)
        err = errf.read(65536).decode(errors="replace").strip()
    if not out:
        fail(f"no frame decoded from {video} (gst-launch-1.0: {' '.join(err[-300:].split()) or 'no output'})")
    return out


def to_tensor(frame, inp):
    x = frame.astype(np.float32)
    mean = np.array(inp.get("mean", [0.0, 0.0, 0.0]), np.float32)
    std = np.array(inp.get("std", [1.0, 1.0, 1.0]), np.float32)
    x = (x - mean) / std
    if inp["layout"] == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis])


class Frames(CalibrationDataReader):
    def __init__(self, name, tensors):
        self.items = iter([{name: t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def input_name(model_path, manifest_name):
    inputs = [i.name for i in onnx.load(model_path, load_external_data=False).graph.input]
    if manifest_name and manifest_name not in inputs:
        fail(f"model.toml input name '{manifest_name}' is not an input of the graph (it has: {inputs})")
    return manifest_name or inputs[0]


def infinite_pads(model):
    """Pad nodes that pad with +-inf (TF's SAME max-pooling, e.g. NanoDet) and the nodes reading them:
    an infinite range has no int8 scale (it becomes NaN), so these stay float."""
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    pads = {n.output[0]: n.name for n in model.graph.node if n.op_type == "Pad" and len(n.input) > 2
            and n.input[2] in consts and not np.all(np.isfinite(consts[n.input[2]]))}
    readers = [n.name for n in model.graph.node if any(i in pads for i in n.input)]
    return sorted(set(pads.values()) | set(readers))


def quantize(src_onnx, dst_onnx, name, tensors, work):
    """Returns the names of the nodes left in float."""
    pre = work / "pre.onnx"
    quant_pre_process(str(src_onnx), str(pre))
    exclude = infinite_pads(onnx.load(pre))
    quantize_static(str(pre), str(dst_onnx), Frames(name, tensors), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
    return exclude


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(src_text, m, out_name, file, digest, source):
    """The fp32 manifest with new top-level name/description/file/sha256/backends and a new [source]."""
    head, _, rest = src_text.partition("\n[")
    rest = "[" + rest if rest else ""
    new = {"name": toml_str(out_name), "file": toml_str(file), "sha256": toml_str(digest),
           "description": toml_str(f"{m.get('description', m['name'])}; int8 (QDQ) by models/convert/quantize.py"),
           "backends": '["ort"]'}
    lines = []
    for line in head.splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {new.pop(key)}" if key in new and "=" in line else line)
    lines += [f"{k} = {v}" for k, v in new.items()]
    # drop the old [source] table, keep every other table as written
    rest = re.sub(r"\[source\]\n(?:(?!\[).*\n?)*", "", rest)
    src = "[source]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in source.items())
    return "\n".join(lines).rstrip("\n") + "\n\n" + src + "\n" + rest.rstrip("\n") + "\n"


def inside(base, where, what, rel):
    """`base / rel` for a path named in model.toml (or made from its name), refused unless it is
    relative, has no `..` and resolves (links followed) inside `base`: a hostile manifest must not
    make this script read or write anywhere else."""
    if not isinstance(rel, str) or not rel or "\0" in rel:
        fail(f"{what} = {rel!r} must be a non-empty relative path inside {where}")
    p = Path(rel)
    if p.is_absolute() or rel.startswith("\\"):
        fail(f"{what} = {rel!r} is an absolute path: name a file inside {where}")
    if ".." in p.parts or ".." in rel.split("\\"):
        fail(f"{what} = {rel!r} contains '..': name a file inside {where}")
    root, target = base.resolve(), (base / p).resolve()
    if root not in target.parents:
        fail(f"{what} = {rel!r} resolves outside {where} {base} (to {target}): "
             f"name a regular file inside it, not a link out of it")
    return base / p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="fp32 model folder (with model.toml)")
    ap.add_argument("--calibration", required=True, type=Path, help="video to calibrate on")
    ap.add_argument("--out", required=True, type=Path, help="output model folder (created)")
    ap.add_argument("--frames", type=int, default=40, help="calibration frames (default 40)")
    ap.add_argument("--step", type=int, default=20, help="take every STEP-th frame (default 20)")
    ap.add_argument("--name", help="model name (default: <fp32 name>-int8)")
    a = ap.parse_args()
    # onnxruntime.quantization warns on every rank-1 weight it cannot quantize per channel: noise here
    logging.getLogger().setLevel(logging.ERROR)
    if not 1 <= a.frames <= MAX_FRAMES or a.step < 1:
        fail(f"--frames must be 1..{MAX_FRAMES} and --step >= 1")
    toml_path = a.model / "model.toml"
    if not toml_path.is_file():
        fail(f"{toml_path} not found: --model must be a model folder with a model.toml")
    if not a.calibration.is_file():
        fail(f"calibration video {a.calibration} not found")
    src_text = toml_path.read_text()
    try:
        m = tomllib.loads(src_text)
    except tomllib.TOMLDecodeError as e:
        fail(f"{toml_path}: {e}")
    inp = m.get("input", {})
    if m.get("format") != "onnx" or inp.get("dtype") != "f32":
        fail(f"{a.model}: only ONNX models with a float32 input can be quantized "
             f"(format={m.get('format')}, input dtype={inp.get('dtype')})")
    if a.out.resolve() == a.model.resolve():
        fail("--out must differ from --model")
    # Every path model.toml names is checked against both folders before anything is written.
    model_dir, out_dir = "the model folder", "the --out folder"
    src_onnx = inside(a.model, model_dir, "model.toml file", m.get("file"))
    if not src_onnx.is_file():
        fail(f"{src_onnx} not found")
    copies = [(inside(a.model, model_dir, f"model.toml {key}", m[key]),
               inside(a.out, out_dir, f"model.toml {key}", m[key]))
              for key in ("labels", "license_file") if m.get(key)]
    out_name = a.name or f"{m.get('name')}-int8"
    file = f"{out_name}.onnx"
    if Path(file).name != file or "\\" in file:
        fail(f"model name {out_name!r} must be a plain name (no '/'): the output file is <name>.onnx")
    inside(a.out, out_dir, "output file", file)
    inside(a.out, out_dir, "output manifest", "model.toml")
    if not all(isinstance(inp.get(k), int) and 1 <= inp[k] <= MAX_SIDE for k in ("width", "height")):
        fail(f"model.toml [input] width and height must be integers in 1..{MAX_SIDE} "
             f"(width={inp.get('width')!r}, height={inp.get('height')!r})")

    frames = decode_frames(a.calibration.resolve(), inp["width"], inp["height"], inp.get("color", "rgb"),
                           inp.get("resize") == "letterbox", a.frames, a.step)
    tensors = [to_tensor(f, inp) for f in frames]
    name = input_name(src_onnx, inp.get("name"))

    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work) / file
        kept_float = quantize(src_onnx, tmp, name, tensors, Path(work))
        shutil.move(tmp, a.out / file)
    digest = sha256(a.out / file)
    for src, dst in copies:
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    source = {
        "registry": "edgelens",
        "package": m["name"],
        "version": m.get("version", ""),
        "path": m["file"],
        "sha256": sha256(src_onnx),
        "conversion": (f"models/convert/quantize.py: onnxruntime {ort.__version__} quant_pre_process, then "
                       f"quantize_static QDQ, per_channel, activations QUInt8, weights QInt8, MinMax "
                       f"(onnx {onnx.__version__}, numpy {np.__version__})"
                       + (f"; kept float (pad with infinity): {', '.join(kept_float)}" if kept_float else "")),
        "calibration": (f"{a.calibration.name} (sha256 {sha256(a.calibration)}): frames 0, {a.step}, "
                        f"{2 * a.step}, ... ({len(frames)} frames), gst-launch-1.0 videoscale/videoconvert "
                        f"to {inp['width']}x{inp['height']} {inp.get('color', 'rgb')}, then model.toml mean/std"),
    }
    (a.out / "model.toml").write_text(manifest_text(src_text, m, out_name, file, digest, source))
    size = os.path.getsize(a.out / file)
    print(f"{a.out}: {file} {size / 1e6:.1f} MB sha256 {digest} ({len(frames)} calibration frames)")


if __name__ == "__main__":
    main()
