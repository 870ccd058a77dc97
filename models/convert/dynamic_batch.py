#!/usr/bin/env python3
"""Copies a model folder with its ONNX graph's batch dimension made dynamic.

Usage: dynamic_batch.py MODEL_DIR OUT_DIR

The bundled SSD graphs (tf2onnx output, and their QDQ int8 versions) fix the batch at 1 in three
places: the input shape, the output shapes, and the shape constants of their Reshape nodes
([1, -1, 2], [1, 128, 1, 1], [1, 1917, 4], ...). Every one of those Reshapes has the batch as its
input's first dimension, so a leading 1 becomes 0 ("copy the input's dimension", allowzero=0).
Intermediate value_info (the int8 graphs carry batch-1 shapes there) is dropped; ORT infers it.
Refuses graphs with ops whose batch handling it does not know (Loop, NMS, ...): those need a real
re-export, not this edit.

Needs onnx (the quantize venv: models/convert/convert.sh --quantize-venv).
"""
import os
import shutil
import sys
import tomllib

import numpy as np
import onnx
from onnx import numpy_helper

BATCH = "batch"
# ops that act per sample (or are shape constants handled below): safe with any batch size
PER_SAMPLE = {"Conv", "Clip", "Relu", "Add", "Mul", "Sub", "BatchNormalization", "Transpose", "Concat",
              "Squeeze", "Reshape", "QuantizeLinear", "DequantizeLinear", "Sigmoid", "Identity"}


def fail(msg):
    sys.exit(f"dynamic_batch.py: {msg}")


def make_dynamic(model):
    g = model.graph
    unknown = sorted({n.op_type for n in g.node} - PER_SAMPLE)
    if unknown:
        fail(f"ops {unknown} are not known to be batch-safe; re-export the model instead")
    for n in g.node:
        # batch-mixing axes: Concat/Squeeze on axis 0 would join or drop the batch
        for a in n.attribute:
            if n.op_type == "Concat" and a.name == "axis" and a.i == 0:
                fail(f"{n.name}: Concat on axis 0")
        if n.op_type == "Transpose":
            perm = next((list(a.ints) for a in n.attribute if a.name == "perm"), None)
            if perm and perm[0] != 0:
                fail(f"{n.name}: Transpose moves the batch axis ({perm})")
    inits = {i.name: i for i in g.initializer}
    done = set()
    for n in g.node:
        if n.op_type == "Squeeze" and len(n.input) > 1:
            axes = numpy_helper.to_array(inits[n.input[1]]).tolist()
            if 0 in axes:
                fail(f"{n.name}: Squeeze of axis 0")
        if n.op_type != "Reshape":
            continue
        if n.input[1] not in inits:
            fail(f"{n.name}: shape is not an initializer")
        # a shape initializer may be shared by several Reshapes: edit it once
        if n.input[1] not in done:
            shape = numpy_helper.to_array(inits[n.input[1]]).copy()
            if shape[0] != 1:
                fail(f"{n.name}: shape {shape.tolist()} does not start with the batch 1")
            shape[0] = 0
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(shape.astype(np.int64), n.input[1]))
            done.add(n.input[1])
        for a in n.attribute:
            if a.name == "allowzero" and a.i:
                fail(f"{n.name}: allowzero=1")
    for v in list(g.input) + list(g.output):
        d = v.type.tensor_type.shape.dim[0]
        if d.dim_value != 1:
            fail(f"{v.name}: first dimension is {d}, expected 1")
        d.ClearField("dim_value")
        d.dim_param = BATCH
    del g.value_info[:]
    onnx.checker.check_model(model)
    return len(done)


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "model.toml"), "rb") as f:
        file = tomllib.load(f)["file"]
    if os.path.exists(out):
        fail(f"{out} exists")
    shutil.copytree(src, out)
    model = onnx.load(os.path.join(src, file))
    edited = make_dynamic(model)
    onnx.save(model, os.path.join(out, file))
    print(f"OK {out}/{file}: batch dimension '{BATCH}', {edited} Reshape shape constants edited")


if __name__ == "__main__":
    main()
