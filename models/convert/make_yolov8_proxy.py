#!/usr/bin/env python3
"""Build models/yolov8n-proxy: an UNTRAINED compute-shape proxy in the YOLOv8 ONNX output format.

  make_yolov8_proxy.py OUT_DIR     writes OUT_DIR/yolov8n-proxy.onnx, labels.txt, LICENSE

NOT a detector. No trained YOLO weights can be had from the registries (DESIGN.md 3), so this
builds a graph with the same input/output contract as an Ultralytics YOLOv8 detection export, to
test the `yolov8` decoder and to benchmark the pipeline around it:

  input  `images`  float32 [1, 3, 320, 320]  (RGB, 0..1: mean 0, std 255, letterboxed)
  output `output0` float32 [1, 84, 2100]     rows 0-3: cx, cy, w, h in input pixels
                                             (see below); rows 4-83: 80 class scores (sigmoid)
  2100 = 40*40 + 20*20 + 10*10 candidates (strides 8, 16, 32), in that order, row-major per level.

Backbone: five 3x3 stride-2 convolutions with SiLU (x * sigmoid(x)), 3 -> 16 -> 32 -> 64 -> 64 -> 64
channels (160, 80, 40, 20, 10 px); the last three are the stride 8/16/32 feature maps. Head: one 1x1
convolution 64 -> 84 per level, reshaped to [1, 84, h*w], concatenated on the last axis, split into
2 + 2 box rows and 80 class rows, each through Sigmoid, box rows scaled to pixels, concatenated again
(as in YOLOv8's export: Concat(dbox, cls.sigmoid())). About 113k weights, ~0.1 GMAC (a real
yolov8n at 320x320 is ~2.2 GFLOP, so time it as a decoder/pipeline benchmark, not as yolov8n).

Weights: uniform in +-sqrt(6 / fan_in) ("He uniform"), drawn from SHAKE-256 of a fixed seed string
(not numpy's RNG), so every numpy/onnx version produces the same numbers. The class head's weights
are scaled by 3 and its bias is -4.75 (sigmoid 0.0086), so that on the test images between 1 and ~100
candidates pass min_confidence 0.25 (instead of all 168,000 or none): the decoder and NMS get a
realistic amount of work. Boxes are tied to their cells like a real detector's:
  cx, cy = (cell centre + 2 * (sigmoid - 0.5)) * stride     (within one cell of the candidate's cell)
  w, h   = sigmoid * 8 * stride                              (up to 64 px at stride 8, 256 px at 32)
so they spread over the whole input and the letterbox mapping and NMS are exercised.

The file is byte-deterministic (fixed weights, fixed node order and names, no timestamps): onnx
1.23.2 gives the sha256 recorded in SHA256SUMS.
"""
import hashlib
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 320
NUM_CLASSES = 80
SEED = b"edgelens yolov8n-proxy v1"
CHANNELS = [3, 16, 32, 64, 64, 64]   # five stride-2 convs: 160, 80, 40, 20, 10 px
LEVELS = [(2, 8), (3, 16), (4, 32)]   # (index of the conv whose output is the level, stride)
HERE = os.path.dirname(os.path.abspath(__file__))
CLASS_BIAS = -4.75  # class head bias: sigmoid(-4.75) = 0.0086
CLASS_GAIN = 3.0    # class head weights x3 (He uniform alone gives logits with std ~0.2-0.4)


def uniform(name, shape, bound):
    """Deterministic uniform(-bound, bound) float32 from SHAKE-256(seed / name)."""
    n = int(np.prod(shape))
    raw = hashlib.shake_256(SEED + b"/" + name.encode()).digest(4 * n)
    u = np.frombuffer(raw, dtype="<u4").astype(np.float64) / 2.0**32  # [0, 1)
    return ((u * 2.0 - 1.0) * bound).astype(np.float32).reshape(shape)


def build():
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv(name, x, cin, cout, k, stride, weight=None, bias=None):
        if weight is None:
            weight = uniform(f"{name}.weight", (cout, cin, k, k), np.sqrt(6.0 / (cin * k * k)))
        w = init(f"{name}.weight", weight)
        b = init(f"{name}.bias", np.full(cout, 0.0, np.float32) if bias is None else bias)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}.out"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4))
        return f"{name}.out"

    def silu(name, x):
        nodes.append(helper.make_node("Sigmoid", [x], [f"{name}.sig"], name=f"{name}.sigmoid"))
        nodes.append(helper.make_node("Mul", [x, f"{name}.sig"], [f"{name}.silu"], name=f"{name}.mul"))
        return f"{name}.silu"

    x = "images"
    feats = []
    for i in range(5):
        x = silu(f"backbone.{i}", conv(f"backbone.{i}.conv", x, CHANNELS[i], CHANNELS[i + 1], 3, 2))
        feats.append(x)

    outs = 4 + NUM_CLASSES
    n = sum((SIZE // s) ** 2 for _, s in LEVELS)
    head_bias = np.concatenate([np.zeros(4, np.float32), np.full(NUM_CLASSES, CLASS_BIAS, np.float32)])
    flat = []
    for idx, stride in LEVELS:
        side = SIZE // stride
        cin = CHANNELS[idx + 1]
        w = uniform(f"head.p{idx + 1}.weight", (outs, cin, 1, 1), np.sqrt(6.0 / cin))
        w[4:] *= CLASS_GAIN
        y = conv(f"head.p{idx + 1}", feats[idx], cin, outs, 1, 1, weight=w, bias=head_bias)
        shape = init(f"head.p{idx + 1}.shape", np.asarray([1, outs, side * side], np.int64))
        nodes.append(helper.make_node("Reshape", [y, shape], [f"head.p{idx + 1}.flat"], name=f"head.p{idx + 1}.reshape"))
        flat.append(f"head.p{idx + 1}.flat")
    nodes.append(helper.make_node("Concat", flat, ["head.cat"], name="head.concat", axis=2))
    split = init("head.split", np.asarray([2, 2, NUM_CLASSES], np.int64))
    nodes.append(helper.make_node("Split", ["head.cat", split], ["head.xy_raw", "head.wh_raw", "head.cls_raw"],
                                  name="head.split", axis=1))
    # per candidate: cell centre (x + 0.5, y + 0.5) in cells, and the level's stride, row-major per level
    grid, strides = [], []
    for _, stride in LEVELS:
        side = SIZE // stride
        ys, xs = np.divmod(np.arange(side * side), side)
        grid.append(np.stack([xs, ys]).astype(np.float32) + 0.5)
        strides.append(np.full(side * side, stride, np.float32))
    grid = init("head.grid", np.concatenate(grid, 1)[None])            # [1, 2, N]
    stride_t = init("head.stride", np.concatenate(strides)[None, None])  # [1, 1, N]
    # xy = (cell centre + 2 * (sigmoid - 0.5)) * stride: within one cell of its own cell centre
    # wh = sigmoid * 8 * stride: up to 64 px at stride 8, 256 px at stride 32
    two = init("head.two", np.asarray(2.0, np.float32))
    one = init("head.one", np.asarray(1.0, np.float32))
    eight = init("head.eight", np.asarray(8.0, np.float32))
    for op, ins, out in [
        ("Sigmoid", ["head.xy_raw"], "head.xy_sig"),
        ("Mul", ["head.xy_sig", two], "head.xy_2"),
        ("Sub", ["head.xy_2", one], "head.xy_off"),
        ("Add", ["head.xy_off", grid], "head.xy_cells"),
        ("Mul", ["head.xy_cells", stride_t], "head.xy"),
        ("Sigmoid", ["head.wh_raw"], "head.wh_sig"),
        ("Mul", ["head.wh_sig", eight], "head.wh_cells"),
        ("Mul", ["head.wh_cells", stride_t], "head.wh"),
        ("Sigmoid", ["head.cls_raw"], "head.cls"),
    ]:
        nodes.append(helper.make_node(op, ins, [out], name=out.replace("head.", "head.op_")))
    nodes.append(helper.make_node("Concat", ["head.xy", "head.wh", "head.cls"], ["output0"], name="output.concat", axis=1))

    graph = helper.make_graph(
        nodes, "yolov8n_proxy",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, outs, n])],
        initializer=inits)
    model = helper.make_model(graph, producer_name="edgelens models/convert/make_yolov8_proxy.py",
                              producer_version="1", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.doc_string = ("UNTRAINED compute-shape proxy for the yolov8 decoder and benchmarks; NOT a detector. "
                        "Random weights, YOLOv8 output format [1, 84, 2100].")
    helper.set_model_props(model, {"edgelens.note": "UNTRAINED proxy, NOT a detector"})
    onnx.checker.check_model(model, full_check=True)
    return model


LICENSE = """\
yolov8n-proxy.onnx is generated by models/convert/make_yolov8_proxy.py in the edgelens project. It is
an UNTRAINED compute-shape proxy (its weights are pseudo-random numbers derived from a fixed seed),
NOT a detector; it contains no weights, code or data from Ultralytics YOLO or any other model. Only
its input/output layout follows the YOLOv8 ONNX export format. labels.txt lists the 80 COCO class
names, the order YOLOv8 uses.

MIT License

Copyright (c) the edgelens authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model = build()
    with open(os.path.join(out, "yolov8n-proxy.onnx"), "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    shutil.copyfile(os.path.join(HERE, "coco80.txt"), os.path.join(out, "labels.txt"))
    with open(os.path.join(out, "LICENSE"), "w", encoding="utf-8") as f:
        f.write(LICENSE)


if __name__ == "__main__":
    main()
