#!/usr/bin/env python3
"""Numerical checks for the converted models.

  verify_onnx.py source MODEL_DIR ONNX SOURCE_KIND SOURCE_FILE IMAGE...
      Run ONNX (onnxruntime) and the model it came from (TensorFlow GraphDef or
      TFLite interpreter) on the test images, preprocessed as MODEL_DIR/model.toml
      says; print the max abs difference per output; fail above the tolerance.
      SOURCE_KIND: graphdef | tflite

  verify_onnx.py same NEW_ONNX OLD_ONNX MODEL_DIR IMAGE...
      tf2onnx output is not byte-deterministic (node order and generated names
      change between runs). Check that a regenerated ONNX is equivalent to the
      committed one: same inputs/outputs (names, dtypes, shapes), same multiset of
      op types, same initializer values (as a multiset), and outputs within 1e-5.

  verify_onnx.py backends MODEL_DIR IMAGE...
      For a model whose manifest lists "tract" in backends, run it with tract
      (Python binding of tract 0.23.9, the version the Rust crate pins) and
      compare with onnxruntime.

  verify_onnx.py describe ONNX...
      Print inputs/outputs (name, dtype, shape) as stored in the file.
"""
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TOL = {"source": 2e-3, "same": 1e-5}


def io_sig(model):
    import onnx
    out = []
    for kind, vals in (("in", model.graph.input), ("out", model.graph.output)):
        for v in vals:
            t = v.type.tensor_type
            out.append((kind, v.name, onnx.TensorProto.DataType.Name(t.elem_type),
                        tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim)))
    return out


def inputs_for(model_dir, images):
    from PIL import Image
    import reference_detect as rd
    import tomllib
    with open(os.path.join(model_dir, "model.toml"), "rb") as f:
        m = tomllib.load(f)

    class Stub:  # preprocess() only reads .inp
        inp = m["input"]
    return m, [rd.preprocess(Stub, Image.open(p))[0] for p in images]


def ort_run(path, feed, names=None):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = names or [o.name for o in s.get_outputs()]
    return names, s.run(names, feed)


def cmd_source(model_dir, onnx_path, kind, src, images):
    m, xs = inputs_for(model_dir, images)
    in_name = m["input"]["name"]
    import onnxruntime as ort
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_in = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    if onnx_in != [in_name]:
        raise SystemExit(f"{onnx_path}: inputs {onnx_in}, manifest says {in_name}")
    if kind == "graphdef":
        import tensorflow as tf
        gd = tf.compat.v1.GraphDef()
        gd.ParseFromString(open(src, "rb").read())
        g = tf.Graph()
        with g.as_default():
            tf.import_graph_def(gd, name="")
        tfs = tf.compat.v1.Session(graph=g)
        ref = lambda x: tfs.run(out_names, {in_name: x})
    elif kind == "tflite":
        import tensorflow as tf
        it = tf.lite.Interpreter(model_path=src)
        it.allocate_tensors()
        det = it.get_input_details()
        if len(det) != 1 or det[0]["name"] != in_name:
            raise SystemExit(f"tflite input {[d['name'] for d in det]} != {in_name}")
        outs = {d["name"]: d["index"] for d in it.get_output_details()}

        def ref(x):
            it.set_tensor(det[0]["index"], x)
            it.invoke()
            return [it.get_tensor(outs[n]) for n in out_names]
    else:
        raise SystemExit(f"unknown source kind {kind}")
    worst = 0.0
    for path, x in zip(images, xs):
        got = sess.run(out_names, {in_name: x})
        want = ref(x)
        for n, a, b in zip(out_names, got, want):
            if a.shape != b.shape:
                raise SystemExit(f"{n}: onnx shape {a.shape} != source {b.shape}")
            d = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
            worst = max(worst, d)
            print(f"  {os.path.basename(onnx_path)} vs {kind} on {os.path.basename(path)}: {n} {a.dtype}{list(a.shape)} max|diff| {d:.3g}")
    if worst > TOL["source"]:
        raise SystemExit(f"FAIL: {onnx_path} differs from its source by {worst}")
    print(f"OK {onnx_path}: matches {kind} source (max |diff| {worst:.3g})")


def cmd_same(new, old, model_dir, images):
    import onnx
    from onnx import numpy_helper
    a, b = onnx.load(new), onnx.load(old)
    if io_sig(a) != io_sig(b):
        raise SystemExit(f"FAIL: I/O differ\n new {io_sig(a)}\n old {io_sig(b)}")
    if Counter(n.op_type for n in a.graph.node) != Counter(n.op_type for n in b.graph.node):
        raise SystemExit("FAIL: op types differ")
    digest = lambda m: Counter(numpy_helper.to_array(t).tobytes() + str(numpy_helper.to_array(t).shape).encode()
                               for t in m.graph.initializer)
    if digest(a) != digest(b):
        raise SystemExit("FAIL: initializer values differ")
    m, xs = inputs_for(model_dir, images)
    in_name = m["input"]["name"]
    worst = 0.0
    for x in xs:
        names, ra = ort_run(new, {in_name: x})
        _, rb = ort_run(old, {in_name: x}, names)
        for p, q in zip(ra, rb):
            if p.size:
                worst = max(worst, float(np.max(np.abs(p.astype(np.float64) - q.astype(np.float64)))))
    if worst > TOL["same"]:
        raise SystemExit(f"FAIL: outputs differ by {worst}")
    print(f"OK {new}: equivalent to {old} (same I/O, ops, weights; max |diff| {worst:.3g})")


def cmd_backends(model_dir, images):
    m, xs = inputs_for(model_dir, images)
    path = os.path.join(model_dir, m["file"])
    if "tract" not in m.get("backends", []):
        print(f"OK {model_dir}: tract not listed, skipped")
        return
    import tract
    runnable = tract.onnx().load(path).into_model().into_runnable()
    worst = 0.0
    for x in xs:
        names, want = ort_run(path, {m["input"]["name"]: x})
        got = [t.to_numpy() for t in runnable.run([x])]
        for n, a, b in zip(names, got, want):
            if a.shape != b.shape:
                raise SystemExit(f"FAIL: tract {n} shape {a.shape} != onnxruntime {b.shape}")
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    if worst > TOL["source"]:
        raise SystemExit(f"FAIL: tract differs from onnxruntime by {worst}")
    print(f"OK {path}: tract 0.23.9 runs it, max |diff| vs onnxruntime {worst:.3g}")


def cmd_describe(paths):
    import onnx
    for p in paths:
        m = onnx.load(p)
        print(f"{p}: opset {[(o.domain or 'ai.onnx', o.version) for o in m.opset_import]}, producer {m.producer_name} {m.producer_version}")
        for kind, name, dt, shape in io_sig(m):
            print(f"  {kind:3} {name:32} {dt:6} {list(shape)}")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "source" and len(args) >= 5:
        cmd_source(args[0], args[1], args[2], args[3], args[4:])
    elif cmd == "same" and len(args) >= 4:
        cmd_same(args[0], args[1], args[2], args[3:])
    elif cmd == "backends" and len(args) >= 2:
        cmd_backends(args[0], args[1:])
    elif cmd == "describe":
        cmd_describe(args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
