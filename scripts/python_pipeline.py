#!/usr/bin/env python3
"""The straightforward Python pipeline edgelens is compared with (issue 12's table).

OpenCV decodes the video, each frame is resized and normalized as the model's model.toml says,
and onnxruntime runs the model with the same intra-op thread count as `edgelens bench --threads`.
No NMS, no box decoding, no messages: this is the cheapest honest Python loop, not a strawman.
One loop, one frame at a time (what most people write first); decode is OpenCV's default
(FFmpeg with its own threads, as GStreamer's avdec_h264 has its own).

Prints one JSON object on stdout: fps over the steady state (first to last inferred frame, like
edgelens bench's pipeline figure), mean stage times in ms, and the versions used.

Run it in its venv (scripts/pybench/venv.sh prints the python to use):
    $(scripts/pybench/venv.sh) scripts/python_pipeline.py --model models/ssdlite-person \
        --video samples/vtest.mp4 --frames 300 --threads 1
"""

import argparse
import json
import os
import sys
import time
import tomllib


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder holding model.toml (format onnx)")
    p.add_argument("--video", default="samples/vtest.mp4")
    p.add_argument("--frames", type=int, default=300, help="inferred frames to time (>= 10)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--warmup", type=int, default=5, help="frames run before timing starts")
    a = p.parse_args(argv)
    if a.frames < 10:
        p.error("--frames must be at least 10")
    if a.threads < 1:
        p.error("--threads must be at least 1")
    return a


def load_manifest(model_dir):
    """model.toml's file name and input section: the same preprocessing edgelens applies."""
    with open(os.path.join(model_dir, "model.toml"), "rb") as f:
        m = tomllib.load(f)
    if m.get("format") != "onnx":
        raise SystemExit(f"{model_dir}: format {m.get('format')!r}, this script runs onnx models only")
    return m


def preprocessor(inp, cv2, np):
    """A function BGR frame -> input tensor, from model.toml's [input]."""
    w, h = int(inp["width"]), int(inp["height"])
    rgb = inp.get("color", "rgb") == "rgb"
    nchw = inp.get("layout", "nhwc") == "nchw"
    mean = np.asarray(inp.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    scale = 1.0 / np.asarray(inp.get("std", [1.0, 1.0, 1.0]), dtype=np.float32)

    def run(frame):
        x = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        if rgb:
            x = cv2.cvtColor(x, cv2.COLOR_BGR2RGB)
        x = (x.astype(np.float32) - mean) * scale
        if nchw:
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])

    return run


def main(argv):
    a = parse_args(argv)
    import cv2
    import numpy as np
    import onnxruntime as ort

    m = load_manifest(a.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(a.model, m["file"]), so, providers=["CPUExecutionProvider"])
    input_name = m["input"].get("name") or sess.get_inputs()[0].name
    pre = preprocessor(m["input"], cv2, np)

    cap = cv2.VideoCapture(a.video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {a.video} with OpenCV")
    t_dec = t_pre = t_inf = 0.0
    n = 0
    first = last = None
    while n < a.warmup + a.frames:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        t1 = time.perf_counter()
        x = pre(frame)
        t2 = time.perf_counter()
        sess.run(None, {input_name: x})
        t3 = time.perf_counter()
        n += 1
        if n > a.warmup:
            t_dec, t_pre, t_inf = t_dec + t1 - t0, t_pre + t2 - t1, t_inf + t3 - t2
            if first is None:
                first = t3
            last = t3
    cap.release()
    timed = max(n - a.warmup, 0)
    if timed < 2:
        raise SystemExit(f"{a.video}: only {n} frames decoded")
    ms = lambda t: round(t / timed * 1e3, 3)  # noqa: E731
    out = {
        "model": m.get("name", os.path.basename(os.path.normpath(a.model))),
        "model_dir": a.model,
        "video": a.video,
        "threads": a.threads,
        "frames": timed,
        # Steady state, first to last inferred frame: frames-1 intervals.
        "fps": round((timed - 1) / (last - first), 1),
        "decode_ms": ms(t_dec),
        "preprocess_ms": ms(t_pre),
        "infer_ms": ms(t_inf),
        "short_video": timed < a.frames,
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
