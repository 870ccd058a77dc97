#!/usr/bin/env python3
"""Reference detector: runs a model exactly as its model.toml describes it.

This is the executable specification the Rust engine is checked against:
preprocess (stretch/letterbox resize with PIL bilinear, colour order, mean/std,
layout), run (onnxruntime for format "onnx", TensorFlow for "tf-frozen" and
"tf-saved-model" (signature keys)),
decode ("ssd-anchors", "ssd-postprocessed", "nanodet", "yolov8"), class-aware NMS.

Usage:
  reference_detect.py [--markdown] [--min-confidence X] MODEL_DIR [MODEL_DIR...] -- IMAGE [IMAGE...]

Prints one line per detection: model, image, label, score, box (l, t, w, h),
normalised to the original image (0..1).
"""
import argparse
import math
import os
import sys
import tomllib

import numpy as np
from PIL import Image


# ---------------------------------------------------------------- manifest
class Model:
    def __init__(self, folder):
        self.folder = folder
        with open(os.path.join(folder, "model.toml"), "rb") as f:
            self.m = tomllib.load(f)
        self.name = self.m["name"]
        with open(os.path.join(folder, self.m["labels"]), encoding="utf-8") as f:
            self.labels = [line.rstrip("\n") for line in f if line.strip()]
        self.inp = self.m["input"]
        self.dec = self.m["decoder"]
        self.path = os.path.join(folder, self.m["file"])
        fmt = self.m["format"]
        if fmt == "onnx":
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            self.sess = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
            self.run = self._run_ort
        elif fmt == "tf-frozen":
            import tensorflow as tf
            gd = tf.compat.v1.GraphDef()
            with open(self.path, "rb") as f:
                gd.ParseFromString(f.read())
            g = tf.Graph()
            with g.as_default():
                tf.import_graph_def(gd, name="")
            self.sess = tf.compat.v1.Session(graph=g)
            self.run = self._run_tf
        elif fmt == "tf-saved-model":
            import tensorflow as tf
            sig = self.m.get("signature", "serving_default")
            self.sess = tf.saved_model.load(self.path).signatures[sig]
            self.run = self._run_tf_saved_model
        else:
            raise SystemExit(f"{self.name}: format {fmt!r} not supported here")

    def output_names(self):
        d = self.dec
        if d["kind"] == "ssd-anchors":
            return [d["boxes"], d["logits"]]
        if d["kind"] == "ssd-postprocessed":
            return [d["boxes"], d["scores"], d["classes"], d["num_detections"]]
        if d["kind"] == "nanodet":
            return list(d["scores"]) + list(d["boxes"])
        if d["kind"] == "yolov8":
            return [d["output"]]
        raise SystemExit(f"unknown decoder {d['kind']}")

    def _run_ort(self, x):
        return dict(zip(self.output_names(), self.sess.run(self.output_names(), {self.inp["name"]: x})))

    def _run_tf(self, x):
        names = self.output_names()
        return dict(zip(names, self.sess.run(names, {self.inp["name"]: x})))

    def _run_tf_saved_model(self, x):
        # input and output names are the signature's keys, not tensor names
        r = self.sess(**{self.inp["name"]: x})
        return {n: r[n].numpy() for n in self.output_names()}


# ---------------------------------------------------------------- preprocess
def preprocess(model, img):
    """Returns (tensor, mapping) where mapping turns model-normalised boxes into image-normalised ones."""
    inp = model.inp
    W, H = inp["width"], inp["height"]
    img = img.convert("RGB")
    iw, ih = img.size
    if inp.get("resize", "stretch") == "stretch":
        canvas = img.resize((W, H), Image.BILINEAR)
        sx, sy, ox, oy = 1.0, 1.0, 0.0, 0.0
    elif inp["resize"] == "letterbox":
        s = min(W / iw, H / ih)
        nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
        canvas = Image.new("RGB", (W, H), (0, 0, 0))
        px, py = (W - nw) // 2, (H - nh) // 2
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), (px, py))
        # model-normalised x -> image-normalised x: (x*W - px) / nw
        sx, sy, ox, oy = W / nw, H / nh, px / nw, py / nh
    else:
        raise SystemExit(f"unknown resize {inp['resize']}")
    a = np.asarray(canvas)  # H, W, 3 RGB uint8
    if inp.get("color", "rgb") == "bgr":
        a = a[:, :, ::-1]
    if inp["dtype"] == "u8":
        x = a.astype(np.uint8)
    else:
        x = a.astype(np.float32)
        if "mean" in inp:
            x = (x - np.asarray(inp["mean"], np.float32)) / np.asarray(inp["std"], np.float32)
    if inp["layout"] == "nchw":
        x = x.transpose(2, 0, 1)
    x = np.ascontiguousarray(x[None])
    return x, (sx, sy, ox, oy)


# ---------------------------------------------------------------- decoders
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ssd_anchors(d, width, height):
    """TF Object Detection API ssd_anchor_generator / MediaPipe SsdAnchorsCalculator.

    Returns [N, 4] (ycenter, xcenter, h, w), normalised; order: layer, row, column, box spec.
    """
    n = d["num_layers"]
    lo, hi = d["min_scale"], d["max_scale"]
    scales = [lo + (hi - lo) * i / (n - 1) for i in range(n)] + [1.0]
    out = []
    for i, stride in enumerate(d["strides"]):
        specs = []  # (scale, aspect ratio)
        if i == 0 and d.get("reduce_boxes_in_lowest_layer", False):
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[i], ar) for ar in d["aspect_ratios"]]
            iar = d.get("interpolated_scale_aspect_ratio", 0.0)
            if iar > 0:
                specs.append((math.sqrt(scales[i] * scales[i + 1]), iar))
        fh, fw = math.ceil(height / stride), math.ceil(width / stride)
        for y in range(fh):
            for x in range(fw):
                for s, ar in specs:
                    r = math.sqrt(ar)
                    out.append(((y + 0.5) / fh, (x + 0.5) / fw, s / r, s * r))
    return np.asarray(out, np.float32)


def decode_ssd_anchors(model, outs):
    d = model.dec
    raw = outs[d["boxes"]][0].astype(np.float32)
    logits = outs[d["logits"]][0].astype(np.float32)
    anchors = ssd_anchors(d, model.inp["width"], model.inp["height"])
    if anchors.shape[0] != raw.shape[0]:
        raise SystemExit(f"{model.name}: {anchors.shape[0]} anchors, model has {raw.shape[0]} boxes")
    sy, sx, sh, sw = d["box_coder_scales"]
    yc = raw[:, 0] / sy * anchors[:, 2] + anchors[:, 0]
    xc = raw[:, 1] / sx * anchors[:, 3] + anchors[:, 1]
    h = np.exp(raw[:, 2] / sh) * anchors[:, 2]
    w = np.exp(raw[:, 3] / sw) * anchors[:, 3]
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], 1)  # x1 y1 x2 y2
    if d.get("score", "sigmoid") == "sigmoid":
        scores = sigmoid(logits)
    else:
        e = np.exp(logits - logits.max(1, keepdims=True))
        scores = e / e.sum(1, keepdims=True)
    bg = d.get("background_class")
    cls_ids = np.arange(scores.shape[1])
    if bg is not None:
        keep = cls_ids != bg
        scores, cls_ids = scores[:, keep], cls_ids[keep]
        label_ids = np.where(cls_ids > bg, cls_ids - 1, cls_ids)  # labels.txt omits the background
    else:
        label_ids = cls_ids
    dets = []
    a_idx, c_idx = np.nonzero(scores >= d["min_confidence"])
    for a, c in zip(a_idx, c_idx):
        dets.append((int(label_ids[c]), float(scores[a, c]), boxes[a]))
    return nms(dets, d["nms_iou"])


def decode_ssd_postprocessed(model, outs):
    d = model.dec
    boxes = outs[d["boxes"]][0]
    scores = outs[d["scores"]][0]
    classes = outs[d["classes"]][0]
    n = int(np.asarray(outs[d["num_detections"]]).reshape(-1)[0])
    dets = []
    for i in range(n):
        if scores[i] < d["min_confidence"]:
            continue
        y1, x1, y2, x2 = boxes[i]
        dets.append((int(round(classes[i])) - d.get("class_offset", 0), float(scores[i]),
                     np.asarray([x1, y1, x2, y2], np.float32)))
    if "nms_iou" in d:
        dets = nms(dets, d["nms_iou"])
    return dets


def decode_nanodet(model, outs):
    d = model.dec
    W, H = model.inp["width"], model.inp["height"]
    reg_max = d["reg_max"]
    proj = np.arange(reg_max + 1, dtype=np.float32)
    dets = []
    for stride, sname, bname in zip(d["strides"], d["scores"], d["boxes"]):
        scores = outs[sname][0]
        dist = outs[bname][0].reshape(-1, 4, reg_max + 1)
        fh, fw = math.ceil(H / stride), math.ceil(W / stride)
        if scores.shape[0] != fh * fw:
            raise SystemExit(f"{model.name}: {sname} has {scores.shape[0]} cells, expected {fh}x{fw}")
        e = np.exp(dist - dist.max(2, keepdims=True))
        ltrb = (e / e.sum(2, keepdims=True)) @ proj * stride  # [N, 4] left, top, right, bottom
        ys, xs = np.divmod(np.arange(fh * fw), fw)
        cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride  # NanoDet (GFL head) cell centres
        x1 = np.clip(cx - ltrb[:, 0], 0, W) / W
        y1 = np.clip(cy - ltrb[:, 1], 0, H) / H
        x2 = np.clip(cx + ltrb[:, 2], 0, W) / W
        y2 = np.clip(cy + ltrb[:, 3], 0, H) / H
        a_idx, c_idx = np.nonzero(scores >= d["min_confidence"])
        for a, c in zip(a_idx, c_idx):
            dets.append((int(c), float(scores[a, c]), np.asarray([x1[a], y1[a], x2[a], y2[a]], np.float32)))
    return nms(dets, d["nms_iou"])


def decode_yolov8(model, outs):
    """Ultralytics YOLOv8 export: [1, 4+C, N] (or [1, N, 4+C]); rows cx, cy, w, h in input pixels,
    then C class scores (already sigmoid). Each candidate keeps its best class (as Ultralytics'
    non_max_suppression with multi_label=False); boxes clamped to the input; class-aware NMS."""
    d = model.dec
    W, H = model.inp["width"], model.inp["height"]
    c = 4 + d["num_classes"]
    a = np.squeeze(outs[d["output"]].astype(np.float32), 0)
    if a.shape[0] != c:
        a = a.T
    if a.shape[0] != c:
        raise SystemExit(f"{model.name}: output shape {outs[d['output']].shape} does not fit num_classes")
    cls = a[4:].argmax(0)
    score = a[4:].max(0)
    cx, cy, w, h = a[0], a[1], a[2], a[3]
    x1, x2 = np.clip((cx - w / 2) / W, 0, 1), np.clip((cx + w / 2) / W, 0, 1)
    y1, y2 = np.clip((cy - h / 2) / H, 0, 1), np.clip((cy + h / 2) / H, 0, 1)
    dets = [(int(cls[i]), float(score[i]), np.asarray([x1[i], y1[i], x2[i], y2[i]], np.float32))
            for i in np.nonzero(score >= d.get("min_confidence", 0.25))[0]]
    return nms(dets, d["nms_iou"])[: d.get("max_detections", 100)]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets, thr):
    """Greedy class-aware NMS, highest score first."""
    dets = sorted(dets, key=lambda t: -t[1])
    kept = []
    for det in dets:
        if all(k[0] != det[0] or iou(k[2], det[2]) <= thr for k in kept):
            kept.append(det)
    return kept


DECODERS = {"ssd-anchors": decode_ssd_anchors, "ssd-postprocessed": decode_ssd_postprocessed,
            "nanodet": decode_nanodet, "yolov8": decode_yolov8}


def detect(model, image_path):
    img = Image.open(image_path)
    x, (sx, sy, ox, oy) = preprocess(model, img)
    outs = model.run(x)
    res = []
    for label, score, (x1, y1, x2, y2) in DECODERS[model.dec["kind"]](model, outs):
        # model-normalised -> image-normalised, clamped
        x1, x2 = [min(1.0, max(0.0, v * sx - ox)) for v in (x1, x2)]
        y1, y2 = [min(1.0, max(0.0, v * sy - oy)) for v in (y1, y2)]
        res.append((model.labels[label], score, (x1, y1, x2 - x1, y2 - y1)))
    return res


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        raise SystemExit(__doc__)
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--min-confidence", type=float)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args(argv[:cut])
    images = argv[cut + 1:]
    if args.markdown:
        print("| model | image | label | score | l | t | w | h |")
        print("|---|---|---|---|---|---|---|---|")
    for folder in args.models:
        model = Model(folder)
        if args.min_confidence is not None:
            model.dec["min_confidence"] = args.min_confidence
        for path in images:
            dets = detect(model, path)
            name = os.path.basename(path)
            if not dets:
                print(f"| {model.name} | {name} | (none) | | | | | |" if args.markdown
                      else f"{model.name:24} {name:18} (none)")
            for label, score, (l, t, w, h) in dets:
                if args.markdown:
                    print(f"| {model.name} | {name} | {label} | {score:.3f} | {l:.3f} | {t:.3f} | {w:.3f} | {h:.3f} |")
                else:
                    print(f"{model.name:24} {name:18} {label:12} {score:.4f}  l={l:.4f} t={t:.4f} w={w:.4f} h={h:.4f}")


if __name__ == "__main__":
    main()
