#!/usr/bin/env python3
"""Convert a TF.js *graph model* (model.json + weight shards) into a frozen TF GraphDef (.pb).

The TF.js graph-model format stores the GraphDef topology as proto3 JSON in
`modelTopology` (every Const node without its value) and the constant values in
binary shards described by `weightsManifest`.  This script:

  1. parses `modelTopology` into a tensorflow GraphDef (google.protobuf.json_format),
  2. reads the shards in manifest order and slices each weight,
  3. decodes quantized weights (here: float16 -> float32; uint8/uint16 affine too),
  4. writes each value into its Const node's `value` tensor, in the dtype the node
     declares: the TF.js converter stores int64 constants as int32, so those are
     widened back to int64 (the graph expects DT_INT64), int32 stays int32,
  5. serialises the GraphDef.

Usage: tfjs_to_graphdef.py MODEL_JSON OUT_PB
"""
import json
import os
import sys

import numpy as np
from google.protobuf import json_format
from tensorflow.core.framework import graph_pb2, types_pb2

DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
          "uint8": np.uint8, "uint16": np.uint16, "int64": np.int64}
TF_TO_NP = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_INT32: np.int32,
            types_pb2.DT_INT64: np.int64, types_pb2.DT_BOOL: np.bool_,
            types_pb2.DT_HALF: np.float16}


def read_weights(model_json, base_dir):
    values = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(open(os.path.join(base_dir, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qdt = np.dtype(DTYPES[q["dtype"]])
                raw = np.frombuffer(data, dtype=qdt, count=count, offset=off)
                off += count * qdt.itemsize
                if q["dtype"] == "float16":
                    arr = raw.astype(np.float32)
                else:  # affine uint8/uint16 quantization
                    arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
                arr = arr.astype(DTYPES[q.get("original_dtype", w["dtype"])])
            else:
                dt = np.dtype(DTYPES[w["dtype"]])
                arr = np.frombuffer(data, dtype=dt, count=count, offset=off)
                off += count * dt.itemsize
            values[w["name"]] = arr.reshape(shape)
        if off != len(data):
            raise SystemExit(f"weights manifest covers {off} bytes, shards hold {len(data)}")
    return values


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    model = json.load(open(src))
    if model.get("format") != "graph-model":
        raise SystemExit(f"{src}: not a TF.js graph model (format={model.get('format')!r})")
    topo = model["modelTopology"]
    gd = graph_pb2.GraphDef()
    json_format.ParseDict({k: topo[k] for k in ("node", "library", "versions") if k in topo}, gd)
    values = read_weights(model, os.path.dirname(os.path.abspath(src)))
    filled = 0
    for node in gd.node:
        if node.op != "Const":
            continue
        if node.name not in values:
            raise SystemExit(f"Const {node.name} has no weight in the manifest")
        tensor = node.attr["value"].tensor
        want = TF_TO_NP[tensor.dtype]
        arr = np.ascontiguousarray(values.pop(node.name).astype(want))
        declared = [d.size for d in tensor.tensor_shape.dim]
        if list(arr.shape) != declared:
            # the TF.js converter writes some scalars as shape [1]: accept equal sizes
            if arr.size != int(np.prod(declared)):
                raise SystemExit(f"{node.name}: weight shape {arr.shape} != node shape {declared}")
            arr = arr.reshape(declared)
        tensor.tensor_content = arr.tobytes()
        filled += 1
    if values:
        raise SystemExit(f"unused weights: {sorted(values)[:5]}")
    with open(dst, "wb") as f:
        f.write(gd.SerializeToString(deterministic=True))
    print(f"{dst}: {len(gd.node)} nodes, {filled} constants filled")


if __name__ == "__main__":
    main()
