#!/usr/bin/env python3
"""Tiny ISO-BMFF (MP4) helper for make-samples.sh. Standard library only.

  mp4tool.py zero-times FILE   set creation_time and modification_time of every mvhd, tkhd and
                               mdhd box to 0 (in place, same size). GStreamer's mp4mux always
                               writes the wall-clock time there; this is what makes the re-encode
                               byte-reproducible (ffmpeg's -fflags +bitexact writes 0 too).
  mp4tool.py info FILE         print, per track: codec, width x height, sample count, timescale,
                               duration, frame rate, sync samples; and the creation times.
"""
import struct
import sys

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def boxes(buf, start, end):
    """Yield (type, box_start, header_len, box_end) for the boxes in buf[start:end]."""
    i = start
    while i + 8 <= end:
        size, typ = struct.unpack(">I4s", buf[i:i + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", buf[i + 8:i + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - i
        if size < hdr or i + size > end:
            raise SystemExit(f"bad box {typ!r} at {i} (size {size})")
        yield typ, i, hdr, i + size
        i += size


def walk(buf, start, end, path=()):
    for typ, b, hdr, e in boxes(buf, start, end):
        yield path + (typ,), b, hdr, e
        if typ in CONTAINERS:
            yield from walk(buf, b + hdr, e, path + (typ,))
        elif typ == b"stsd":  # full box + entry count, then sample entries
            yield from walk(buf, b + hdr + 8, e, path + (typ,))
        elif typ in (b"avc1", b"avc3"):  # visual sample entry: 78 bytes, then avcC, pasp, ...
            yield from walk(buf, b + hdr + 78, e, path + (typ,))


def zero_times(path):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    n = 0
    for p, b, hdr, e in walk(buf, 0, len(buf)):
        if p[-1] in (b"mvhd", b"tkhd", b"mdhd"):
            v = buf[b + hdr]
            off = b + hdr + 4
            width = 8 if v == 1 else 4
            buf[off:off + 2 * width] = bytes(2 * width)
            n += 1
    if n == 0:
        raise SystemExit(f"{path}: no mvhd/tkhd/mdhd box found")
    with open(path, "r+b") as f:
        f.write(buf)
    print(f"{path}: zeroed creation/modification time in {n} boxes")


def info(path):
    with open(path, "rb") as f:
        buf = f.read()
    tracks = []
    cur = None
    for p, b, hdr, e in walk(buf, 0, len(buf)):
        body = b + hdr
        t = p[-1]
        if t == b"mvhd":
            v = buf[body]
            c, m = struct.unpack(">QQ" if v == 1 else ">II", buf[body + 4: body + 4 + (16 if v == 1 else 8)])
            print(f"movie: creation_time {c}, modification_time {m}")
        elif t == b"trak":
            cur = {}
            tracks.append(cur)
        elif t == b"mdhd":
            v = buf[body]
            if v == 1:
                ts, dur = struct.unpack(">IQ", buf[body + 20: body + 32])
            else:
                ts, dur = struct.unpack(">II", buf[body + 12: body + 20])
            cur["timescale"], cur["duration"] = ts, dur
        elif len(p) >= 2 and p[-2] == b"stsd":
            cur["codec"] = t.decode("latin-1")
            cur["width"], cur["height"] = struct.unpack(">HH", buf[body + 24: body + 28])
        elif t == b"avcC":
            prof, compat, level = buf[body + 1], buf[body + 2], buf[body + 3]
            names = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10",
                     122: "High 4:2:2", 244: "High 4:4:4"}
            cur["avc"] = f"profile {names.get(prof, prof)} ({prof}), level {level / 10}"
        elif t == b"stsz":
            size, count = struct.unpack(">II", buf[body + 4: body + 12])
            cur["samples"] = count
        elif t == b"stss":
            cur["sync"] = struct.unpack(">I", buf[body + 4: body + 8])[0]
    for i, tr in enumerate(tracks):
        fps = tr["samples"] * tr["timescale"] / tr["duration"] if tr.get("duration") else 0
        print(f"track {i}: {tr.get('codec')} {tr.get('width')}x{tr.get('height')}, {tr.get('avc', '')}; "
              f"{tr.get('samples')} samples, timescale {tr.get('timescale')}, duration {tr.get('duration')} "
              f"({tr['duration'] / tr['timescale']:.3f} s, {fps:.3f} fps), {tr.get('sync', 'all')} sync samples")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("zero-times", "info"):
        raise SystemExit(__doc__)
    (zero_times if sys.argv[1] == "zero-times" else info)(sys.argv[2])
