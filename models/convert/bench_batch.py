#!/usr/bin/env python3
"""Does batching frames into one ONNX Runtime inference pay on this CPU? (docs/batching.md)

Usage: bench_batch.py [--rounds R] [--seconds S] [--batches 1,2,4] [--reference DIR] MODEL_DIR ...

Each MODEL_DIR holds a model with a dynamic batch dimension (dynamic_batch.py) and its model.toml;
one `--reference DIR` per MODEL_DIR (same order) names the bundled batch-1 model to check against.
Exits 1 if any batch gives a frame other detections than batch 1. bench_batch.sh runs it all.

1. Agreement: 4 different frames of samples/vtest.mp4 (decoded and scaled by the GStreamer elements
   of the edgelens pipeline), run as one batch of 4, as 2 batches of 2, and one by one; and one by
   one on the bundled batch-1 model. Prints the largest raw-output difference and whether the decoded
   detections (reference_detect.py's decoder and NMS) are the same per frame.
2. Speed: per-frame inference time for each batch size, in three layouts: 1 session x 1 intra-op
   thread, 1 session x 2 threads, 2 sessions x 1 thread running at once (the pool's 2x1 layout;
   per-frame = time / frames of both), as wall time and as process CPU time per frame. Session
   options as edgelens' ORT backend (graph optimisation ALL, memory pattern off) except that no
   thread spins, so CPU time is work. Configurations are interleaved within each round (short runs,
   rotating order); the table gives medians over rounds of each configuration's per-frame time and
   of its ratio to batch 1 in the same layout and round (the machine is shared: read ratios).
"""
import argparse
import os
import statistics
import sys
import threading
import time
import tomllib
import types

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.modules.setdefault("PIL", types.SimpleNamespace(Image=None))  # decoders only; no image files here
import reference_detect  # noqa: E402
from quantize import decode_frames, to_tensor  # noqa: E402

FRAMES = [0, 200, 400, 600]  # four different scenes stand in for four sources


def load_manifest(folder):
    with open(os.path.join(folder, "model.toml"), "rb") as f:
        return tomllib.load(f)


def session(path, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_mem_pattern = False
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no spinning: CPU time = work
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class Model:
    def __init__(self, folder):
        self.folder = folder
        self.m = load_manifest(folder)
        self.name = self.m["name"]
        self.inp = self.m["input"]
        self.dec = self.m["decoder"]
        self.path = os.path.join(folder, self.m["file"])
        self.outputs = [self.dec["boxes"], self.dec["logits"]]
        video = os.path.join(ROOT, "samples", "vtest.mp4")
        frames = decode_frames(video, self.inp["width"], self.inp["height"], self.inp.get("color", "rgb"),
                               self.inp.get("resize") == "letterbox", FRAMES[-1] + 1, 200)
        self.x = np.concatenate([to_tensor(f, self.inp) for f in frames])  # [4, H, W, C]

    def run(self, sess, x):
        return sess.run(self.outputs, {self.inp["name"]: x})

    def detections(self, outs, i):
        d = {n: o[i:i + 1] for n, o in zip(self.outputs, outs)}
        return [(lab, round(s, 4), tuple(np.round(b, 4).tolist()))
                for lab, s, b in reference_detect.decode_ssd_anchors(self, d)]


def agreement(model, reference):
    s = session(model.path, 1)
    ref = session(os.path.join(reference, load_manifest(reference)["file"]), 1)
    n = len(model.x)
    one = [model.run(s, model.x[i:i + 1]) for i in range(n)]
    bundled = [model.run(ref, model.x[i:i + 1]) for i in range(n)]
    four = model.run(s, model.x)
    two = [model.run(s, model.x[i:i + 2]) for i in range(0, n, 2)]
    worst, same, dets = 0.0, True, []
    for i in range(n):
        base = [o[0] for o in bundled[i]]
        cands = [[o[0] for o in one[i]], [o[i] for o in four], [o[i % 2] for o in two[i // 2]]]
        for c in cands:
            worst = max(worst, max(float(np.abs(a - b).max()) for a, b in zip(base, c)))
        want = model.detections([o[None] for o in base], 0)
        got4 = model.detections(four, i)
        dets.append(len(want))
        same &= want == got4 and want == model.detections(one[i], 0)
    print(f"AGREE {model.name}: frames {FRAMES}, detections per frame {dets}, batch 4 / 2x2 / 1 vs bundled: "
          f"max |diff| {worst:.2e}, same detections: {same}")
    return same


def timed(model, sessions, batch, seconds):
    """(wall ms, CPU ms) per frame: every session runs batches of `batch` frames for about
    `seconds`, at once. CPU time is the whole process's (every ORT thread; none spins), so it
    measures the work per frame, which other processes on the machine inflate much less than
    wall time."""
    x = np.ascontiguousarray(np.resize(model.x, (batch,) + model.x.shape[1:]))
    for s in sessions:
        model.run(s, x)  # warm-up (shape-specific allocations)
    counts = [0] * len(sessions)
    deadline = [0.0]

    def loop(k):
        while True:  # at least one batch each, however late the thread starts
            model.run(sessions[k], x)
            counts[k] += batch
            if time.perf_counter() >= deadline[0]:
                return

    c0, t0 = time.process_time(), time.perf_counter()
    deadline[0] = t0 + seconds
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(counts)
    return (time.perf_counter() - t0) * 1000.0 / n, (time.process_time() - c0) * 1000.0 / n


def speed(model, batches, rounds, seconds):
    layouts = {"1x1": [session(model.path, 1)], "1x2": [session(model.path, 2)],
               "2x1": [session(model.path, 1), session(model.path, 1)]}
    keys = [(lay, b) for lay in layouts for b in batches]
    wall = {k: [] for k in keys}
    cpu = {k: [] for k in keys}
    rw = {k: [] for k in keys}
    rc = {k: [] for k in keys}
    for r in range(rounds):
        # interleaved: every configuration once per round; the order rotates so none always goes first
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        got = {k: timed(model, layouts[k[0]], k[1], seconds) for k in order}
        for (lay, b), (w, c) in got.items():
            base = got[(lay, batches[0])]
            wall[(lay, b)].append(w)
            cpu[(lay, b)].append(c)
            rw[(lay, b)].append(w / base[0])
            rc[(lay, b)].append(c / base[1])
    med = statistics.median
    for k in keys:
        print(f"ROW | {model.name} | {k[0]} | {k[1]} | {med(wall[k]):.2f} | {med(rw[k]):.3f} | "
              f"{med(cpu[k]):.2f} | {med(rc[k]):.3f} | {min(rc[k]):.3f}-{max(rc[k]):.3f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--reference", action="append", default=[], help="bundled batch-1 model folder, per MODEL_DIR")
    ap.add_argument("models", nargs="+")
    a = ap.parse_intermixed_args()
    if a.reference and len(a.reference) != len(a.models):
        sys.exit("bench_batch.py: give one --reference per MODEL_DIR, or none")
    batches = [int(b) for b in a.batches.split(",")]
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"{a.rounds} rounds x {a.seconds} s per configuration", flush=True)
    ok = True
    models = [Model(f) for f in a.models]
    for i, m in enumerate(models):
        ok &= agreement(m, a.reference[i] if a.reference else m.folder)
    print("ROW | model | layout (sessions x threads) | batch | wall ms/frame | wall ratio to batch 1 | "
          "CPU ms/frame | CPU ratio to batch 1 | CPU ratio range |")
    for m in models:
        speed(m, batches, a.rounds, a.seconds)
    print(f"load at end {os.getloadavg()[0]:.1f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
