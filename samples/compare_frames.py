#!/usr/bin/env python3
"""Decode two videos with GStreamer and compare them frame by frame (needs numpy).

  compare_frames.py REFERENCE ENCODED [--dump N OUT.png]

Both are decoded by `decodebin ! videoconvert` to 8-bit luma (GRAY8) at their own size (they must
match). Prints the number of frames of each, and the luma PSNR (dB) per frame: min, mean, and the
worst frame. With --dump, also writes frame N (0-based) of ENCODED as an RGB PNG (needs Pillow).
Fails if the frame counts differ or the minimum PSNR is under 30 dB.
"""
import subprocess
import sys

import numpy as np


def caps_size(path):
    out = subprocess.run(["gst-discoverer-1.0", path], capture_output=True, text=True, check=True).stdout
    w = int(out.split("Width: ")[1].split()[0])
    h = int(out.split("Height: ")[1].split()[0])
    return w, h


def decoder(path, fmt):
    return subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!", "videoconvert", "!",
         f"video/x-raw,format={fmt}", "!", "fdsink", "fd=1"], stdout=subprocess.PIPE)


def read_exact(f, n):
    b = f.read(n)
    return b if len(b) == n else None


def main():
    a = sys.argv[1:]
    if len(a) not in (2, 5) or (len(a) == 5 and a[2] != "--dump"):
        raise SystemExit(__doc__)
    ref, enc = a[0], a[1]
    w, h = caps_size(ref)
    if caps_size(enc) != (w, h):
        raise SystemExit(f"FAIL: sizes differ: {caps_size(enc)} vs {(w, h)}")
    pr, pe = decoder(ref, "GRAY8"), decoder(enc, "GRAY8")
    psnr, n_ref, n_enc = [], 0, 0
    while True:
        x, y = read_exact(pr.stdout, w * h), read_exact(pe.stdout, w * h)
        n_ref += x is not None
        n_enc += y is not None
        if x is None or y is None:
            if x is not None or y is not None:
                continue  # drain the longer one to count its frames
            break
        d = np.frombuffer(x, np.uint8).astype(np.float64) - np.frombuffer(y, np.uint8)
        mse = float(np.mean(d * d))
        psnr.append(99.0 if mse == 0 else 10 * np.log10(255 * 255 / mse))
    pr.wait()
    pe.wait()
    p = np.asarray(psnr)
    print(f"frames: reference {n_ref}, encoded {n_enc}; luma PSNR min {p.min():.2f} dB (frame {int(p.argmin())}), "
          f"mean {p.mean():.2f} dB, max {p.max():.2f} dB")
    if len(a) == 5:
        from PIL import Image
        n = int(a[3])
        pd = decoder(enc, "RGB")
        for i in range(n + 1):
            fr = read_exact(pd.stdout, w * h * 3)
        pd.kill()
        Image.fromarray(np.frombuffer(fr, np.uint8).reshape(h, w, 3)).save(a[4])
        print(f"wrote frame {n} of {enc} to {a[4]}")
    if n_ref != n_enc or p.min() < 30:
        raise SystemExit("FAIL: frame counts differ or PSNR < 30 dB")
    print("OK")


if __name__ == "__main__":
    main()
