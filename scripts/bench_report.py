#!/usr/bin/env python3
"""`make bench-report`: one sitting, one command, docs/benchmarks.md regenerated from the JSON.

1. the Python pipeline (scripts/python_pipeline.py), half the frames, for every model x threads;
2. `edgelens bench` on every model (fp32 and int8) at 1 thread and all cores, ORT, with --html;
3. the Python pipeline again, the other half (so machine drift hits both sides alike);
4. HOOKS: `edgelens bench --layouts`, `--streams 1,2,4,8`, `--start` when this build has them;
5. docs/bench/{report.json,bench.png,bench.html} and docs/benchmarks.md (scripts/bench_render.py).

    scripts/bench_report.py --bin target/release/edgelens [--frames 300] [--out bench-out/report]

Standard library only (the Python pipeline runs in its own venv, scripts/pybench/venv.sh).
Environment: BENCH_REPORT_HOOKS=none skips the hook runs.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_render  # noqa: E402

MODELS = ["ssdlite-person", "ssdlite-person-int8", "ssd-mobilenetv2-oidv4", "ssd-mobilenetv2-oidv4-int8"]

# HOOKS: key in report.json -> extra `edgelens bench` arguments. Each runs (one model, ORT) only
# when `edgelens bench --help` lists its flag, and its bench.json must carry the key at top level
# (see scripts/bench_render.py for the shape). Owners: layouts = instances helper, streams =
# streams helper, start = mem helper.
HOOK_RUNS = [
    ("layouts", ["--layouts"]),
    ("streams", ["--streams", "1,2,4,8"]),
    ("start", ["--start"]),
]


def log(msg):
    print(f"[bench-report] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def python_pass(py, models, threads, frames, video):
    out = {}
    for m in models:
        for t in threads:
            r = run([py, os.path.join(HERE, "python_pipeline.py"), "--model", f"models/{m}", "--video", video,
                     "--frames", str(frames), "--threads", str(t)], stdout=subprocess.PIPE, text=True)
            out[(m, t)] = json.loads(r.stdout)
    return out


def combine(a, b):
    """Two half runs as one: frames over total steady time."""
    frames = a["frames"] + b["frames"]
    secs = (a["frames"] - 1) / a["fps"] + (b["frames"] - 1) / b["fps"]
    c = dict(a)
    c["frames"] = frames
    c["fps"] = round((frames - 2) / secs, 1)
    for k in ("decode_ms", "preprocess_ms", "infer_ms"):
        c[k] = round((a[k] * a["frames"] + b[k] * b["frames"]) / frames, 3)
    c["short_video"] = a["short_video"] or b["short_video"]
    return c


def hooks(binary, frames, video, out):
    if os.environ.get("BENCH_REPORT_HOOKS") == "none":
        return {}
    help_text = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True, cwd=ROOT).stdout
    found = {}
    for key, args in HOOK_RUNS:
        if args[0] not in help_text.split():
            log(f"hook {key}: `bench {args[0]}` not in this build, section skipped")
            continue
        dest = os.path.join(out, key)
        run([binary, "bench", "--model", "models/ssdlite-person", "--backend", "ort", "--video", video,
             "--frames", str(frames), "--quiet", "--out", dest, *args])
        # `--layouts` and `--streams` write their own <key>.json; `--start` rides in bench.json.
        own = os.path.join(dest, f"{key}.json")
        if os.path.exists(own):
            with open(own) as f:
                data = json.load(f)
        else:
            with open(os.path.join(dest, "bench.json")) as f:
                data = json.load(f).get(key)
        if data:
            found[key] = data
        else:
            log(f"hook {key}: bench.json has no top-level `{key}`, section skipped")
    return found


def commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv):
    p = argparse.ArgumentParser(description="make bench-report")
    p.add_argument("--bin", required=True, help="the edgelens binary (release build)")
    p.add_argument("--python", help="python of the pybench venv (default: scripts/pybench/venv.sh)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--video", default="samples/vtest.mp4")
    p.add_argument("--out", default="bench-out/report")
    p.add_argument("--docs", default="docs", help="where benchmarks.md and bench/ go")
    p.add_argument("--models", default=",".join(MODELS))
    a = p.parse_args(argv)
    if a.frames < 20:
        p.error("--frames must be at least 20 (two halves of 10 for Python)")
    models = [m for m in a.models.split(",") if m]
    binary = os.path.abspath(a.bin)
    out = os.path.abspath(os.path.join(ROOT, a.out))
    py = a.python or subprocess.run([os.path.join(HERE, "pybench", "venv.sh")], check=True,
                                    stdout=subprocess.PIPE, text=True).stdout.strip()
    cores = len(os.sched_getaffinity(0))
    threads = sorted({1, cores})
    os.makedirs(out, exist_ok=True)
    load_before = loadavg()

    half = a.frames // 2
    first = python_pass(py, models, threads, half, a.video)
    bench_dir = os.path.join(out, "bench")
    # One instance at 1 thread and at all cores: the rows that compare with Python's loop.
    cmd = [binary, "bench", "--backend", "ort", "--video", a.video, "--frames", str(a.frames),
           "--threads", ",".join(map(str, threads)), "--instances", "1", "--quiet", "--html",
           "--out", bench_dir]
    for m in models:
        cmd += ["--model", f"models/{m}"]
    run(cmd)
    # Defaults (auto-tuned instances x threads): what a user gets, against Python on all cores.
    auto_dir = os.path.join(out, "bench-auto")
    auto_cmd = [binary, "bench", "--backend", "ort", "--video", a.video, "--frames", str(a.frames),
                "--quiet", "--out", auto_dir]
    for m in models:
        auto_cmd += ["--model", f"models/{m}"]
    run(auto_cmd)
    second = python_pass(py, models, threads, a.frames - half, a.video)
    with open(os.path.join(bench_dir, "bench.json")) as f:
        bench = json.load(f)
    with open(os.path.join(auto_dir, "bench.json")) as f:
        for r in json.load(f)["results"]:
            r["threads_label"] = f"auto {r.get('instances', 1)}x{r['threads']}"
            r["python_threads"] = cores
            bench["results"].append(r)
    extra = hooks(binary, a.frames, a.video, out)

    report = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "command": "make bench-report",
        "machine": {"cores": cores, "host": bench.get("host", ""), "loadavg_before": load_before,
                    "loadavg_after": loadavg()},
        "bench": bench,
        "python": [combine(first[k], second[k]) for k in first],
        "chart": "bench/bench.png",
        "html": "bench/bench.html",
        **extra,
    }
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    docs_bench = os.path.join(ROOT, a.docs, "bench")
    os.makedirs(docs_bench, exist_ok=True)
    shutil.copy(os.path.join(out, "report.json"), os.path.join(docs_bench, "report.json"))
    for name in ("bench.png", "bench.html"):
        shutil.copy(os.path.join(bench_dir, name), os.path.join(docs_bench, name))
    bench_render.main([os.path.join(docs_bench, "report.json"), "--doc", os.path.join(ROOT, a.docs, "benchmarks.md")])
    print(bench_render.render(report))


if __name__ == "__main__":
    main(sys.argv[1:])
