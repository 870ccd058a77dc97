"""The seeded noise protocol that turns MOT ground truth into detections (docs/tracking.md).

Per sequence, with numpy's default_rng([SEED, crc32(sequence name)]), in this order:
1. drops: until at least 10% of all boxes are dropped, pick a random kept box and drop it and
   the next frames of the same object, a run of 3-8 boxes (uniform; cut short where the
   object's track ends) - an occlusion, not a coin flip per box;
2. for each kept box, in file order: each edge moves by N(0, 0.05 * size) (left/right by the
   width, top/bottom by the height), then a confidence ~ U(0.5, 1);
3. for each frame 1..last: with probability 1/4 one false positive, its size taken from a random
   ground-truth box, placed uniformly inside the image, confidence ~ U(0.1, 0.6).
Output: MOTChallenge detection lines `frame,-1,x,y,w,h,conf,-1,-1,-1`, sorted by frame.
Only numpy; no I/O.
"""

import zlib

import numpy as np

SEED = 11
DROP_FRACTION = 0.10
RUN_MIN, RUN_MAX = 3, 8
JITTER = 0.05
FP_PER_FRAME = 0.25
TRUE_CONF = (0.5, 1.0)
FALSE_CONF = (0.1, 0.6)
# MOT15 seqinfo: both TUD sequences are 640x480.
IMAGE_SIZE = {"TUD-Campus": (640, 480), "TUD-Stadtmitte": (640, 480)}

PROTOCOL = {
    "seed": SEED,
    "dropFraction": DROP_FRACTION,
    "dropRunFrames": [RUN_MIN, RUN_MAX],
    "edgeJitterSigma": f"{JITTER} * size",
    "falsePositivesPerFrame": FP_PER_FRAME,
    "trueConfidence": list(TRUE_CONF),
    "falseConfidence": list(FALSE_CONF),
}


def read_gt(text):
    """Ground-truth rows (frame, id, x, y, w, h) of a MOT gt.txt, confidence-0 rows skipped."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        c = line.split(",")
        if len(c) > 6 and float(c[6]) == 0:
            continue
        rows.append((int(float(c[0])), int(float(c[1])), *map(float, c[2:6])))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def _drops(rows, rng):
    """A boolean mask of dropped rows: runs of RUN_MIN..RUN_MAX boxes of one object."""
    n = len(rows)
    by_id = {}
    for i in sorted(range(n), key=lambda i: (rows[i][1], rows[i][0])):
        by_id.setdefault(rows[i][1], []).append(i)
    pos = {i: (tid, k) for tid, idx in by_id.items() for k, i in enumerate(idx)}
    dropped = np.zeros(n, dtype=bool)
    target = int(np.ceil(DROP_FRACTION * n))
    while dropped.sum() < target:
        i = int(rng.integers(n))
        if dropped[i]:
            continue
        run = int(rng.integers(RUN_MIN, RUN_MAX + 1))
        tid, k = pos[i]
        for j in by_id[tid][k:k + run]:
            dropped[j] = True
    return dropped


def make_detections(name, rows):
    """Detection lines for sequence `name` from its ground-truth rows (see read_gt)."""
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    width, height = IMAGE_SIZE[name]
    dropped = _drops(rows, rng)
    dets = []
    for (frame, _, x, y, w, h), gone in zip(rows, dropped):
        if gone:
            continue
        dl, dr = rng.normal(0.0, JITTER * w, 2)
        dt, db = rng.normal(0.0, JITTER * h, 2)
        x1, x2 = x + dl, x + w + dr
        y1, y2 = y + dt, y + h + db
        conf = rng.uniform(*TRUE_CONF)
        dets.append((frame, x1, y1, max(x2 - x1, 1.0), max(y2 - y1, 1.0), conf))
    last = max(r[0] for r in rows)
    for frame in range(1, last + 1):
        if rng.random() < FP_PER_FRAME:
            _, _, _, _, w, h = rows[int(rng.integers(len(rows)))]
            w, h = min(w, width - 1), min(h, height - 1)
            x = rng.uniform(0, width - w)
            y = rng.uniform(0, height - h)
            dets.append((frame, x, y, w, h, rng.uniform(*FALSE_CONF)))
    dets.sort(key=lambda d: d[0])
    stats = {
        "gtBoxes": len(rows),
        "dropped": int(dropped.sum()),
        "falsePositives": len(dets) - int((~dropped).sum()),
        "frames": last,
    }
    lines = [f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{c:.4f},-1,-1,-1" for f, x, y, w, h, c in dets]
    return lines, stats
