#!/usr/bin/env python3
"""SavedModel exports (Keras 3 `model.export(..., format="tf_saved_model")`) and their checks.

  export_savedmodel.py ssd FROZEN_PB OUT_DIR
      Wrap the TF Object Detection API frozen graph (image_tensor:0 uint8 -> detection_boxes:0,
      detection_scores:0, detection_classes:0, num_detections:0) in a Keras 3 model and export it
      with model.export(OUT_DIR, format="tf_saved_model"). The frozen graph is imported with
      tf.compat.v1.wrap_function + import_graph_def and pruned to that input and those outputs;
      its weights stay graph constants (the SavedModel has no variables to speak of). Signature
      `serving_default` (and the same function as `serve`): input key `image`, uint8 [1,300,300,3];
      output keys `detection_boxes` [1,100,4], `detection_scores` [1,100], `detection_classes`
      [1,100], `num_detections` [1].

  export_savedmodel.py other-signature OUT_DIR
      A tiny SavedModel (a few hundred bytes of weights) whose ONLY signature is `detect` (no
      `serving_default`), for the "no such signature" error test. Input key `image` uint8
      [1,4,4,3]; outputs as `ssd` above but with 1 detection slot. Written with
      tf.saved_model.save on a tf.Module (no Keras: ExportArchive.write_out always adds a
      `serving_default` alias, which is what this fixture must not have; the Keras 3 pitfall of
      DESIGN.md 2b concerns Keras variables, and this module has plain tf.Variables).

  export_savedmodel.py describe SAVED_MODEL_DIR
      Print every signature: input and output keys, dtypes, shapes, tensor names.

  export_savedmodel.py verify SAVED_MODEL_DIR FROZEN_PB IMAGE...
      Run the SavedModel the way the TensorFlow C API does (v1 loader, tag "serve", the signature's
      tensor names, as models/ssdlite-person-savedmodel/model.toml names them) AND through
      tf.saved_model.load(...).signatures[...]; run the frozen graph on the same inputs
      (preprocessed as the manifest says); all outputs must be equal (tolerance 1e-5).

  export_savedmodel.py same NEW_DIR OLD_DIR IMAGE...
      For a re-export that is not byte-identical (saved_model.pb's generated function names and
      order, and fingerprint.pb's random UUID, change on every export): same signatures (keys,
      dtypes, shapes), byte-identical variables/, and the outputs of every signature within 1e-5
      on the images (stretched to the signature's input size).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np

SSD_OUTPUTS = ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]
SSD_SHAPES = {"detection_boxes": [1, 100, 4], "detection_scores": [1, 100],
              "detection_classes": [1, 100], "num_detections": [1]}
MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ssdlite-person-savedmodel")
TOL = 1e-5


def export_ssd(pb_path, out_dir):
    import tensorflow as tf
    import keras

    gd = tf.compat.v1.GraphDef()
    with open(pb_path, "rb") as f:
        gd.ParseFromString(f.read())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(gd, name=""), [])
    g = wrapped.graph
    frozen = wrapped.prune(feeds=g.as_graph_element("image_tensor:0"),
                           fetches=[g.as_graph_element(n + ":0") for n in SSD_OUTPUTS])

    class FrozenSSD(keras.Model):
        """The frozen graph as a Keras model: uint8 image -> dict of the four detection tensors."""

        def __init__(self, fn, **kw):
            super().__init__(**kw)
            self.frozen = fn

        def call(self, image):
            outs = self.frozen(image)
            # the pruned function has no static output shapes; give the signature real ones
            return {n: tf.ensure_shape(t, SSD_SHAPES[n]) for n, t in zip(SSD_OUTPUTS, outs)}

    model = FrozenSSD(frozen, name="ssdlite_person")
    model(np.zeros((1, 300, 300, 3), np.uint8))  # build (export wants a built model)
    model.export(out_dir, format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec([1, 300, 300, 3], tf.uint8, name="image")])


def export_other_signature(out_dir):
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(1.0 / 255.0, name="scale")
            self.box = tf.Variable([[[0.25, 0.25, 0.75, 0.75]]], name="box")

        @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.uint8, name="image")])
        def detect(self, image):
            score = tf.reduce_mean(tf.cast(image, tf.float32), axis=[1, 2, 3]) * self.scale  # [1]
            return {"detection_boxes": self.box,
                    "detection_scores": score[:, None],
                    "detection_classes": tf.ones([1, 1], tf.float32),
                    "num_detections": tf.ones([1], tf.float32)}

    m = Tiny()
    tf.saved_model.save(m, out_dir, signatures={"detect": m.detect})


def signatures(path):
    """{sig: {"inputs": {key: (dtype, shape, tensor)}, "outputs": {...}}} from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    (mg,) = [m for m in sm.meta_graphs if "serve" in m.meta_info_def.tags]
    out = {}
    for name, sd in sorted(mg.signature_def.items()):
        if name.startswith("__"):
            continue
        conv = lambda d: {k: (dtypes.as_dtype(v.dtype).name,
                              None if v.tensor_shape.unknown_rank else [x.size for x in v.tensor_shape.dim],
                              v.name) for k, v in sorted(d.items())}
        out[name] = {"inputs": conv(sd.inputs), "outputs": conv(sd.outputs)}
    return out


def describe(path):
    for name, sd in signatures(path).items():
        print(f"signature '{name}'")
        for kind in ("inputs", "outputs"):
            for k, (dt, shape, t) in sd[kind].items():
                print(f"  {kind[:-1]:6} {k:18} {dt:7} {shape}  ({t})")


def manifest():
    import tomllib
    with open(os.path.join(MODEL_DIR, "model.toml"), "rb") as f:
        return tomllib.load(f)


def load_inputs(m, images):
    from PIL import Image
    import reference_detect as rd

    class Stub:
        inp = m["input"]
    return [rd.preprocess(Stub, Image.open(p))[0] for p in images]


def run_c_api_style(path, sig_name, in_key, out_keys, xs):
    """What the Rust TensorFlow backend does: load tag "serve", feed/fetch the signature's tensors."""
    import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        sess = tf.compat.v1.Session(graph=g)
        mg = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
    sd = mg.signature_def[sig_name]
    feed = sd.inputs[in_key].name
    fetch = [sd.outputs[k].name for k in out_keys]
    return [sess.run(fetch, {feed: x}) for x in xs]


def run_object_api(path, sig_name, in_key, out_keys, xs):
    import tensorflow as tf
    fn = tf.saved_model.load(path).signatures[sig_name]
    res = []
    for x in xs:
        r = fn(**{in_key: tf.constant(x)})
        res.append([r[k].numpy() for k in out_keys])
    return res


def max_diff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise SystemExit(f"FAIL: shapes {a.shape} != {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def verify(path, pb_path, images):
    import tensorflow as tf
    m = manifest()
    sig = m.get("signature", "serving_default")
    d = m["decoder"]
    out_keys = [d["boxes"], d["scores"], d["classes"], d["num_detections"]]
    xs = load_inputs(m, images)

    gd = tf.compat.v1.GraphDef()
    with open(pb_path, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.import_graph_def(gd, name="")
    sess = tf.compat.v1.Session(graph=g)
    want = [sess.run([n + ":0" for n in SSD_OUTPUTS], {"image_tensor:0": x}) for x in xs]

    worst = 0.0
    for label, runner in (("v1 loader + signature tensor names (as the C API)", run_c_api_style),
                          ("tf.saved_model.load().signatures", run_object_api)):
        got = runner(path, sig, m["input"]["name"], out_keys, xs)
        for img, gr, wr in zip(images, got, want):
            n = int(wr[3][0])
            diffs = [max_diff(a, b) for a, b in zip(gr, wr)]
            worst = max(worst, *diffs)
            top = ", ".join(f"{s:.4f}" for s in wr[1][0][:n] if s >= d["min_confidence"])
            print(f"  {label}: {os.path.basename(img)}: num_detections {int(gr[3][0])} (frozen {n}), "
                  f"scores >= {d['min_confidence']}: [{top}], max|diff| per output {['%.3g' % x for x in diffs]}")
    if worst > TOL:
        raise SystemExit(f"FAIL: SavedModel differs from the frozen graph by {worst}")
    print(f"OK {path}: signature '{sig}' matches the frozen graph (max |diff| {worst:.3g})")


def same(new, old, images):
    """Re-export vs committed: same signatures (keys, dtypes, shapes), byte-identical variables/,
    and every signature's outputs within TOL on the images (stretched to the signature's input)."""
    import tensorflow as tf
    from PIL import Image
    sn, so = signatures(new), signatures(old)
    strip = lambda s: {k: {kind: {kk: v[:2] for kk, v in sd[kind].items()} for kind in sd} for k, sd in s.items()}
    if strip(sn) != strip(so):
        raise SystemExit(f"FAIL: signatures differ\n new {strip(sn)}\n old {strip(so)}")
    for d in (new, old):
        if not os.path.isdir(os.path.join(d, "variables")):
            raise SystemExit(f"FAIL: {d} has no variables/")
    for f in sorted(os.listdir(os.path.join(new, "variables"))):
        with open(os.path.join(new, "variables", f), "rb") as a, open(os.path.join(old, "variables", f), "rb") as b:
            if a.read() != b.read():
                raise SystemExit(f"FAIL: variables/{f} differs")
    ln, lo = tf.saved_model.load(new), tf.saved_model.load(old)
    worst = 0.0
    for name, sd in sn.items():
        (in_key, (dt, shape, _)), = sd["inputs"].items()
        if dt != "uint8" or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise SystemExit(f"FAIL: signature {name}: input {in_key} {dt}{shape} is not a uint8 image")
        for p in images:
            x = np.asarray(Image.open(p).convert("RGB").resize((shape[2], shape[1]), Image.BILINEAR))[None]
            ra = ln.signatures[name](**{in_key: tf.constant(x)})
            rb = lo.signatures[name](**{in_key: tf.constant(x)})
            worst = max([worst] + [max_diff(ra[k].numpy(), rb[k].numpy()) for k in sd["outputs"]])
    if worst > TOL:
        raise SystemExit(f"FAIL: outputs differ by {worst}")
    print(f"OK {new}: equivalent to {old} (signatures {', '.join(sn)}; variables byte-identical; "
          f"max |diff| {worst:.3g} on {len(images)} images)")


def main():
    a = sys.argv[1:]
    if a[:1] == ["ssd"] and len(a) == 3:
        export_ssd(a[1], a[2])
    elif a[:1] == ["other-signature"] and len(a) == 2:
        export_other_signature(a[1])
    elif a[:1] == ["describe"] and len(a) == 2:
        describe(a[1])
    elif a[:1] == ["verify"] and len(a) >= 4:
        verify(a[1], a[2], a[3:])
    elif a[:1] == ["same"] and len(a) >= 4:
        same(a[1], a[2], a[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
