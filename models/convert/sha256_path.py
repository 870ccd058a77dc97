#!/usr/bin/env python3
"""sha256 of a model file or SavedModel folder, exactly as edgelens computes it.

  sha256_path.py PATH...      prints "<hex>  PATH" for each

A file: sha256 of its bytes. A folder (SavedModel): one sha256 over every file below it,
in sorted relative-path order, each as: relative path (UTF-8, '/' separators), a 0 byte,
then the file's bytes. This mirrors `sha256_path` in src/model/mod.rs: Rust sorts the
paths as `PathBuf`s, i.e. component by component, so "a/b" sorts before "a.b" (a plain
string sort would put "a.b" first); sorting by the tuple of components does the same.
Folders only contribute the files in them (an empty `assets/` adds nothing).
Standard library only: convert.sh --check runs it with the system python3.
"""
import hashlib
import os
import sys


def files_under(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            out.append(tuple(rel.split(os.sep)))
    return sorted(out, key=lambda parts: [p.encode("utf-8", "surrogateescape") for p in parts])


def sha256_path(path):
    h = hashlib.sha256()
    if os.path.isdir(path):
        for parts in files_under(path):
            rel = "/".join(parts)
            h.update(rel.encode("utf-8", "surrogateescape"))
            h.update(b"\0")
            with open(os.path.join(path, *parts), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for p in sys.argv[1:]:
        print(f"{sha256_path(p)}  {p}")
