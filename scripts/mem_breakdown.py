#!/usr/bin/env python3
"""Where a process's resident memory goes: runs a command, samples /proc/PID/smaps every
0.1 s, and prints the per-mapping breakdown (MB) right after the model loaded (the first
stderr line containing "model loaded") and at the sample with the highest RSS.
Usage: scripts/mem_breakdown.py [--json OUT] -- CMD ARGS...   (docs/memory.md)"""
import json, os, subprocess, sys, threading, time

LIBAV = "/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstlibav.so"


def ldd(path):
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    except OSError:
        return set()
    return {os.path.realpath(l.split("=>")[1].split()[0]) for l in out.splitlines()
            if "=>" in l and "/" in l.split("=>")[1]}


# Libraries mapped only because GStreamer's libav plugin (avdec_h264) pulls them in.
LIBAV_ONLY = ldd(LIBAV) - ldd("/usr/lib/x86_64-linux-gnu/libgstvideo-1.0.so.0")

def category(path):
    if not path:
        return "anon (heap arenas, ORT arena, thread stacks)"
    if path == "[heap]":
        return "[heap] (main brk heap)"
    if path.startswith("[stack"):
        return "[stack]"
    if path.startswith("["):
        return "other kernel mappings"
    name = path.rsplit("/", 1)[-1]
    if os.path.realpath(path) in LIBAV_ONLY or name == "libgstlibav.so":
        return "libav decoder plugin + its ~170 libs (file-backed)"
    if "onnxruntime" in name:
        return "libonnxruntime.so"
    if "tensorflow" in name:
        return "libtensorflow*"
    if "/gstreamer-1.0/" in path:
        return "GStreamer plugins (.so)"
    if "libgst" in name:
        return "GStreamer core libs"
    if "libav" in name or "libsw" in name or "libx26" in name:
        return "ffmpeg / codec libs"
    if name.endswith(".onnx") or name.endswith(".pb"):
        return "model file (mmap)"
    if "edgelens" in name:
        return "edgelens binary"
    if "registry" in name and name.endswith(".bin"):
        return "GStreamer registry (mmap)"
    if ".so" in name:
        return "other shared libs"
    return "other files"

def sample(pid):
    out, cur = {}, None
    total = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and not parts[0].endswith(":"):
                cur = category(parts[5] if len(parts) > 5 else "")
            elif parts[0] == "Rss:":
                kb = int(parts[1])
                out[cur] = out.get(cur, 0) + kb
                total += kb
    return total, out

def main():
    argv = sys.argv[1:]
    jpath = None
    if argv and argv[0] == "--json":
        jpath, argv = argv[1], argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loaded = threading.Event()

    def watch():
        for line in p.stderr:
            if "model loaded" in line:
                loaded.set()
    threading.Thread(target=watch, daemon=True).start()
    best, series, at_load = (0, {}), [], None
    t0 = time.time()
    while p.poll() is None:
        try:
            total, cats = sample(p.pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            break
        series.append((round(time.time() - t0, 2), total // 1024))
        if total > best[0]:
            best = (total, cats)
        if at_load is None and loaded.is_set():
            at_load = (total, cats)
        time.sleep(0.1)
    p.wait()
    at_load = at_load or (0, {})
    total, cats = best
    print(f"{'MB':>7} {'MB':>7}")
    print(f"{'loaded':>7} {'peak':>7}  mapping")
    for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"{at_load[1].get(k, 0)/1024:7.1f} {v/1024:7.1f}  {k}")
    print(f"{at_load[0]/1024:7.1f} {total/1024:7.1f}  total (sampled RSS)")
    if jpath:
        with open(jpath, "w") as f:
            json.dump({"peak_kb": total, "categories_kb": cats, "after_load_kb": at_load[0],
                       "after_load_categories_kb": at_load[1], "series_mb": series}, f, indent=1)

main()
