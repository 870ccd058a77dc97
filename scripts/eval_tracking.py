#!/usr/bin/env python3
"""Scores edgelens's trackers on MOT15 TUD-Campus and TUD-Stadtmitte with py-motmetrics.

The ground truth is the one the `motmetrics` wheel ships. Detections are made from it with the
seeded noise protocol in scripts/tracking/protocol.py (docs/tracking.md), each tracker runs as
`edgelens track --detections det.txt ...`, and motmetrics scores the MOTChallenge results
(IoU >= 0.5). Prints a table; --json writes every figure.

Run it in the tracking venv:  $(scripts/tracking/venv.sh) scripts/eval_tracking.py --bin BIN

Extra trackers (e.g. a crate wrapped in a throwaway binary that speaks the same MOT text):
  --command NAME='/path/to/bin --flag'   (the detection file is appended as the last argument)
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

# motmetrics 1.4 calls np.asfarray, which NumPy 2 removed.
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tracking"))
import protocol  # noqa: E402

SEQUENCES = ["TUD-Campus", "TUD-Stadtmitte"]
# name -> `edgelens track` arguments. SORT runs with the paper's settings (Bewley et al. 2016:
# min_hits 3, max_age 1, IoU 0.3); the others with edgelens's defaults.
TRACKERS = {
    "iou": ["--tracker", "iou"],
    "sort": ["--tracker", "sort", "--min-hits", "3", "--max-missed", "1", "--match-iou", "0.3"],
    "bytetrack": ["--tracker", "bytetrack"],
}
METRICS = ["mota", "idf1", "num_switches", "precision", "recall", "num_false_positives", "num_misses"]


def default_bin():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    return os.path.join(target, "release", "edgelens")


def load_results(path):
    """motmetrics frame, or an empty one for a tracker that output nothing."""
    if os.path.getsize(path) > 0:
        return mm.io.loadtxt(path, fmt="mot15-2D")
    cols = ["X", "Y", "Width", "Height", "Confidence", "ClassId", "Visibility"]
    index = pd.MultiIndex.from_arrays([[], []], names=["FrameId", "Id"])
    return pd.DataFrame(columns=cols, index=index, dtype=float)


def score(gt_path, res_path, name):
    gt = mm.io.loadtxt(gt_path, fmt="mot15-2D", min_confidence=1)
    acc = mm.utils.compare_to_groundtruth(gt, load_results(res_path), "iou", distth=0.5)
    row = mm.metrics.create().compute(acc, metrics=METRICS, name=name)
    out = {k: float(row[k].iloc[0]) for k in METRICS}
    for k in ("num_switches", "num_false_positives", "num_misses"):
        out[k] = int(out[k])
    return out


def run_tracker(cmd, det_path, res_path):
    with open(res_path, "w") as out:
        p = subprocess.run(cmd + [det_path], stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=default_bin(), help="edgelens binary (default: $CARGO_TARGET_DIR/release/edgelens)")
    ap.add_argument("--json", help="write all figures here")
    ap.add_argument("--keep", help="keep detections and results in this folder")
    ap.add_argument("--trackers", default=",".join(TRACKERS), help="edgelens trackers to run (comma-separated)")
    ap.add_argument("--command", action="append", default=[], metavar="NAME=CMD", help="extra tracker command")
    args = ap.parse_args()

    commands = {}
    for name in filter(None, args.trackers.split(",")):
        if name not in TRACKERS:
            raise SystemExit(f"unknown tracker '{name}'; known: {', '.join(TRACKERS)}")
        commands[name] = [args.bin, "track"] + TRACKERS[name] + ["--detections"]
    for spec in args.command:
        name, _, cmd = spec.partition("=")
        if not name or not cmd:
            raise SystemExit(f"--command wants NAME=CMD, got '{spec}'")
        commands[name] = shlex.split(cmd)
    if not os.access(args.bin, os.X_OK) and any(c[0] == args.bin for c in commands.values()):
        raise SystemExit(f"{args.bin} is not an executable: build it (cargo build --release) or pass --bin")

    data = os.path.join(os.path.dirname(mm.__file__), "data")
    work = args.keep or tempfile.mkdtemp(prefix="eval-tracking-")
    report = {"protocol": protocol.PROTOCOL, "motmetricsVersion": mm.__version__, "sequences": {}}
    for seq in SEQUENCES:
        gt_path = os.path.join(data, seq, "gt.txt")
        with open(gt_path) as f:
            lines, stats = protocol.make_detections(seq, protocol.read_gt(f.read()))
        os.makedirs(os.path.join(work, seq), exist_ok=True)
        det_path = os.path.join(work, seq, "det.txt")
        with open(det_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        results = {}
        for name, cmd in commands.items():
            res_path = os.path.join(work, seq, f"{name}.txt")
            run_tracker(cmd, det_path, res_path)
            results[name] = score(gt_path, res_path, name)
        report["sequences"][seq] = {"detections": stats, "trackers": results}

    print(f"{'sequence':<16}{'tracker':<22}{'MOTA':>7}{'IDF1':>7}{'IDs':>5}{'prec':>7}{'recall':>7}{'FP':>5}{'FN':>5}")
    for seq, r in report["sequences"].items():
        for name, m in r["trackers"].items():
            print(
                f"{seq:<16}{name:<22}{m['mota']:>7.3f}{m['idf1']:>7.3f}{m['num_switches']:>5}"
                f"{m['precision']:>7.3f}{m['recall']:>7.3f}{m['num_false_positives']:>5}{m['num_misses']:>5}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if not args.keep:
        for seq in SEQUENCES:
            for fn in os.listdir(os.path.join(work, seq)):
                os.remove(os.path.join(work, seq, fn))
            os.rmdir(os.path.join(work, seq))
        os.rmdir(work)


if __name__ == "__main__":
    main()
