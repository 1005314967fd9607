#!/usr/bin/env python3
"""Serves the embeddings that `tgcn embed` exports from FAISS (PyPI `faiss-cpu`, `make faiss`).

An export folder (`tgcn embed --run RUN --split S --out DIR`) holds `text.npy` and
`image.npy` (float32 [n, D], row i = item i), `ids.txt` (n ids in row order),
`labels.npy` (float32 [n, C] multi-hot) and `manifest.json` (`scorer`, `dim`, `count`,
`bias`, `split`, `classes`, ...). The model's score of text i against image j is exactly

    score(i, j) = dot(text[i], image[j]) + bias

(the product scorer's weight is already folded into text.npy; for the cosine scorer both
sides are L2-normalised and bias is 0). The bias is the same for every pair, so it never
changes a ranking: index the vectors with the *inner product* metric and add the bias to
the returned scores only where absolute scores matter (thresholds, calibration, comparing
with `tgcn search --json`).

Serving, step by step (text -> image; swap the two files for image -> text):

    import json, faiss, numpy as np
    img = np.load("emb/image.npy")                       # the database side, float32 [n, D]
    ids = open("emb/ids.txt").read().splitlines()
    bias = json.load(open("emb/manifest.json"))["bias"]
    index = faiss.IndexFlatIP(img.shape[1])              # exact; or the HNSW index below
    index.add(img)
    faiss.write_index(index, "emb/image.faiss")          # once, offline

    index = faiss.read_index("emb/image.faiss")          # at serving start-up
    q = np.load("emb/text.npy")[:8]                      # query vectors (or fresh ones from the model)
    scores, rows = index.search(q, 10)                   # top-10 by inner product, best first
    hits = [[(ids[r], float(s) + bias) for s, r in zip(sr, rr) if r >= 0]
            for sr, rr in zip(scores, rows)]

Approximate search: `faiss.IndexHNSWFlat(D, 32, faiss.METRIC_INNER_PRODUCT)` with
`hnsw.efConstruction = 200` before `add` and `hnsw.efSearch` set at query time (the
`query` and `bench` subcommands below measure the recall@k that a given efSearch reaches
against the exact index). Never build an L2 index for these vectors: with the product
scorer they are not normalised, and L2 ranks differently from the inner product.

Past one machine: split the image rows into shards, one index per shard (each on its own
host or process), and merge the per-shard top-k by score: `faiss.IndexShards(D)` does that
merge inside one process (`add_shard` per sub-index; keep the row -> id map per shard),
and an `faiss.IndexIVFFlat(quantizer, D, nlist, faiss.METRIC_INNER_PRODUCT)` with its
inverted lists on disk (`faiss.contrib.ondisk.merge_ondisk`) serves a collection larger
than RAM. Any vector database that accepts raw vectors with the inner-product metric
(called "inner product", "ip", "dot" or "dot product"; not "cosine" unless the manifest's
scorer is cosine, and never "l2"/"euclidean") serves them the same way: upload image.npy
with ids.txt as the keys, query with text rows, then add `bias` to the returned scores if
absolute values matter.

Subcommands (this script installs nothing; `make faiss` installs faiss-cpu into .venv):

    query --db DIR [--queries DIR] --direction t2i|i2t [--k 10] [--index flat|hnsw|both]
          [--json OUT] [--ef-search auto|N] [--hnsw-m 32] [--ef-construction 200]
          [--target-recall 0.95] [--threads N]
        Exact IndexFlatIP over the database side of --db (t2i: image.npy, i2t: text.npy),
        queried with every row of the other side of --queries (default --db), plus an HNSW
        index; prints build seconds, queries/s and the HNSW's recall@k against the exact
        index. `--ef-search auto` (the default, needs the exact index) doubles efSearch from
        max(16, k) until recall@k reaches --target-recall. --json writes the exact index's
        top-k (the HNSW's with --index hnsw) as {"direction", "k", "index", "bias",
        "results": [{"query_id", "ids", "scores"}]}, scores = inner product + bias, the same
        shape as `tgcn search --json`.

    bench [--n 100000] [--dim 256] [--queries 2000] [--k 10] [--seed 0] [--centres 50]
          [--ef-sweep 16 32 64 128 256] [--repeat 3] [--hnsw-m 32] [--ef-construction 200]
          [--target-recall 0.95] [--threads N]
        Seeded synthetic embeddings (a Gaussian mixture, L2-normalised), exact vs HNSW:
        build time, queries/s with one thread and with all threads (best of --repeat
        timings), recall@k per efSearch; exits 1 if no
        efSearch in the sweep reaches recall@k >= --target-recall.

Bad input (a missing file, shapes that disagree between text.npy, image.npy, ids.txt and
manifest.json, a dimension that differs between --db and --queries) is reported as one
line naming the file, with exit status 2.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import faiss
except ImportError:
    faiss = None


class InputError(Exception):
    """Bad input: printed as one line, exit status 2."""


def need_faiss():
    if faiss is None:
        print("faiss is not installed: run `make faiss`", file=sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------- reading an export


def load_matrix(path: Path, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: missing")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e.strerror})") from None
    if magic != b"\x93NUMPY":
        raise InputError(f"{path}: not a .npy file (no NumPy header)")
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # a truncated or non-.npy file, an object array, ...
        raise InputError(f"{path}: not a readable .npy matrix ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray) or a.ndim != 2:
        raise InputError(f"{path}: expected a 2-D matrix, found shape {getattr(a, 'shape', '?')}")
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"{path}: expected float32 values, found dtype {a.dtype}")
    return a


class Export:
    """One `tgcn embed` output folder, checked for consistency."""

    def __init__(self, root: Path, flag: str):
        self.root = root
        if not root.is_dir():
            raise InputError(f"{root}: no such export folder ({flag})")
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise InputError(f"{mpath}: missing")
        try:
            self.manifest = json.loads(mpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{mpath}: not valid JSON ({e})") from None
        if not isinstance(self.manifest, dict):
            raise InputError(f"{mpath}: expected a JSON object")
        bias = self.manifest.get("bias", 0.0)
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise InputError(f"{mpath}: \"bias\" must be a finite number, found {bias!r}")
        self.bias = float(bias)
        self.scorer = self.manifest.get("scorer")

        # Shapes of both sides are checked (memory-mapped, cheap) even if one is used.
        self.paths = {"text": root / "text.npy", "image": root / "image.npy"}
        shapes = {side: load_matrix(p, mmap=True).shape for side, p in self.paths.items()}
        (nt, dt), (ni, di) = shapes["text"], shapes["image"]
        if (nt, dt) != (ni, di):
            raise InputError(
                f"{self.paths['text']} is {nt}x{dt} but {self.paths['image']} is {ni}x{di} (must be equal)"
            )
        self.n, self.dim = nt, dt
        if self.n == 0 or self.dim == 0:
            raise InputError(f"{self.paths['text']}: empty matrix ({self.n}x{self.dim})")

        ipath = root / "ids.txt"
        if not ipath.is_file():
            raise InputError(f"{ipath}: missing")
        try:
            self.ids = ipath.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{ipath}: unreadable ({e})") from None
        if len(self.ids) != self.n:
            raise InputError(f"{ipath}: {len(self.ids)} ids, but text.npy/image.npy have {self.n} rows")

        lpath = root / "labels.npy"
        if lpath.exists():
            lshape = load_matrix(lpath, mmap=True).shape
            if lshape[0] != self.n:
                raise InputError(f"{lpath}: {lshape[0]} rows, but text.npy/image.npy have {self.n}")

        for key, actual in (("dim", self.dim), ("count", self.n)):
            if key in self.manifest and self.manifest[key] != actual:
                raise InputError(
                    f"{mpath}: \"{key}\" is {self.manifest[key]!r}, but text.npy/image.npy are {self.n}x{self.dim}"
                )

    def side(self, name: str) -> np.ndarray:
        a = np.ascontiguousarray(load_matrix(self.paths[name]), dtype=np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{self.paths[name]}: contains NaN or infinite values")
        return a


# ---------------------------------------------------------------- indexes and measures


def build_flat(xb: np.ndarray):
    t = time.perf_counter()
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    return index, time.perf_counter() - t


def build_hnsw(xb: np.ndarray, m: int, ef_construction: int):
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(xb.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(xb)
    return index, time.perf_counter() - t


def timed_search(index, xq: np.ndarray, k: int, threads: int | None = None, repeat: int = 1):
    """All queries in one `search` call, best of `repeat` timings (other processes on a
    shared machine only ever slow a run down); returns (scores, rows, queries per second)."""
    prev = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    try:
        best = math.inf
        for _ in range(repeat):
            t = time.perf_counter()
            scores, rows = index.search(xq, k)
            best = min(best, time.perf_counter() - t)
    finally:
        faiss.omp_set_num_threads(prev)
    return scores, rows, len(xq) / max(best, 1e-9)


def recall_at_k(xq: np.ndarray, xb: np.ndarray, exact_rows: np.ndarray, approx_rows: np.ndarray) -> float:
    """Mean fraction of the exact top-k that the approximate top-k finds, tie-aware.

    An approximate hit counts when its inner product is >= the exact k-th best one (both
    recomputed here the same way), so rows with equal scores (duplicate vectors) are not
    counted as misses. For distinct scores this equals |approx ∩ exact| / k."""
    k = exact_rows.shape[1]
    kth = np.einsum("qd,qd->q", xq, xb[exact_rows[:, -1]])
    valid = approx_rows >= 0
    got = np.einsum("qd,qkd->qk", xq, xb[np.where(valid, approx_rows, 0)])
    tol = 1e-6 * np.maximum(1.0, np.abs(kth))
    hits = ((got >= (kth - tol)[:, None]) & valid).sum(axis=1)
    return float(np.minimum(hits, k).mean() / k)


def md_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in rows])


def ef_schedule(start: int, stop: int):
    ef = start
    while True:
        yield ef
        if ef >= stop:
            return
        ef = min(ef * 2, stop)


# ---------------------------------------------------------------- query


def cmd_query(args) -> int:
    if args.k < 1:
        raise InputError(f"--k must be >= 1, found {args.k}")
    db = Export(args.db, "--db")
    qx = db if args.queries is None or args.queries.resolve() == args.db.resolve() else Export(args.queries, "--queries")
    db_side, q_side = ("image", "text") if args.direction == "t2i" else ("text", "image")
    if qx is not db:
        if qx.dim != db.dim:
            raise InputError(
                f"{qx.paths[q_side]}: dimension {qx.dim} differs from {db.paths[db_side]}'s {db.dim}"
            )
        for key in ("scorer", "bias"):
            a, b = db.manifest.get(key), qx.manifest.get(key)
            if a is not None and b is not None and a != b:
                raise InputError(
                    f"{qx.root / 'manifest.json'}: \"{key}\" is {b!r} but --db's is {a!r} (exports of different runs?)"
                )
    need_faiss()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    xb, xq = db.side(db_side), qx.side(q_side)
    k = min(args.k, db.n)
    if k < args.k:
        print(f"note: --k {args.k} > {db.n} database rows; using k = {k}", file=sys.stderr)

    rows, exact, approx = [], None, None
    if args.index in ("flat", "both"):
        index, build_s = build_flat(xb)
        s, r, qps = timed_search(index, xq, k)
        exact = (s, r)
        rows.append(["flat (exact IndexFlatIP)", "-", f"{build_s:.3f}", f"{qps:,.0f}", "1.000 (reference)"])
    if args.index in ("hnsw", "both"):
        index, build_s = build_hnsw(xb, args.hnsw_m, args.ef_construction)
        if args.ef_search == "auto" and exact is not None:
            for ef in ef_schedule(max(16, k), max(16, k, db.n)):
                index.hnsw.efSearch = ef
                s, r, qps = timed_search(index, xq, k)
                rec = recall_at_k(xq, xb, exact[1], r)
                if rec >= args.target_recall:
                    break
        else:
            ef = 128 if args.ef_search == "auto" else int(args.ef_search)
            index.hnsw.efSearch = ef
            s, r, qps = timed_search(index, xq, k)
            rec = recall_at_k(xq, xb, exact[1], r) if exact is not None else None
        approx = (s, r)
        rows.append([
            "hnsw (IndexHNSWFlat, inner product)",
            f"M={args.hnsw_m} efC={args.ef_construction} efS={ef}",
            f"{build_s:.3f}",
            f"{qps:,.0f}",
            "n/a (no exact index)" if rec is None else f"{rec:.3f}",
        ])

    print(
        f"{args.direction}: {len(xq)} queries ({qx.root}/{q_side}.npy) against {db.n} x {db.dim} "
        f"({db.root}/{db_side}.npy), k={k}, scorer={db.scorer}, bias={db.bias:g}, "
        f"{faiss.omp_get_max_threads()} thread(s); queries/s = all queries in one search call\n"
    )
    print(md_table([f"index", "params", "build s", "queries/s", f"recall@{k}"], rows))

    if args.json is not None:
        which, (s, r) = ("flat", exact) if exact is not None else ("hnsw", approx)
        results = []
        for qi in range(len(xq)):
            keep = r[qi] >= 0
            results.append({
                "query_id": qx.ids[qi],
                "ids": [db.ids[j] for j in r[qi][keep]],
                "scores": [float(v) + db.bias for v in s[qi][keep]],
            })
        out = {"direction": args.direction, "k": k, "index": which, "bias": db.bias, "results": results}
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out) + "\n")
        except OSError as e:
            raise InputError(f"{args.json}: cannot write ({e.strerror})") from None
        print(f"\nwrote {args.json} ({len(results)} queries, top-{k} of the {which} index)")
    return 0


# ---------------------------------------------------------------- bench


def synthetic(n: int, nq: int, dim: int, centres: int, seed: int):
    """Gaussian mixture: `centres` unit centres; per-point noise with a power-law spectrum
    (variance of the j-th of `dim` random orthogonal directions ∝ 1/j, total ≈ 0.6² of
    a centre's squared norm), so the clouds are anisotropic like learned embeddings; every
    row L2-normalised. Queries come from the same mixture, independently."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    rot, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scale = 1.0 / np.arange(1, dim + 1)
    scale = np.sqrt(scale / scale.sum()) * 0.6
    basis = (scale[:, None] * rot.T).astype(np.float32)  # row j: direction j, scaled

    def draw(m):
        x = c[rng.integers(0, centres, m)] + rng.standard_normal((m, dim), dtype=np.float32) @ basis
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    return draw(n), draw(nq)


def cmd_bench(args) -> int:
    for name in ("n", "dim", "queries", "k", "centres", "repeat"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1")
    if args.k > args.n:
        raise InputError(f"--k {args.k} > --n {args.n}")
    need_faiss()
    all_threads = args.threads or faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(all_threads)
    t0 = time.perf_counter()
    xb, xq = synthetic(args.n, args.queries, args.dim, args.centres, args.seed)
    gen_s = time.perf_counter() - t0
    k = args.k

    flat, flat_build = build_flat(xb)
    _, _, flat_qps1 = timed_search(flat, xq, k, threads=1, repeat=args.repeat)
    _, gt, flat_qps = timed_search(flat, xq, k, threads=all_threads, repeat=args.repeat)
    hnsw, hnsw_build = build_hnsw(xb, args.hnsw_m, args.ef_construction)

    rows = [["flat (exact IndexFlatIP)", "-", f"{flat_build:.2f}", f"{flat_qps1:,.0f}", f"{flat_qps:,.0f}", "1.000"]]
    chosen = None
    for ef in args.ef_sweep:
        hnsw.hnsw.efSearch = ef
        _, r1, qps1 = timed_search(hnsw, xq, k, threads=1, repeat=args.repeat)
        _, _, qps = timed_search(hnsw, xq, k, threads=all_threads, repeat=args.repeat)
        rec = recall_at_k(xq, xb, gt, r1)
        if chosen is None and rec >= args.target_recall:
            chosen = (ef, rec, qps1, qps)
        rows.append([
            "hnsw (IndexHNSWFlat, inner product)",
            f"M={args.hnsw_m} efC={args.ef_construction} efS={ef}",
            f"{hnsw_build:.2f}",
            f"{qps1:,.0f}",
            f"{qps:,.0f}",
            f"{rec:.3f}",
        ])

    print(
        f"synthetic: n={args.n:,} x dim={args.dim}, {args.queries:,} queries, k={k}, seed={args.seed}, "
        f"{args.centres}-centre Gaussian mixture, L2-normalised (generated in {gen_s:.1f} s); "
        f"faiss {faiss.__version__}, {os.cpu_count()} CPU(s), all threads = {all_threads}; "
        f"build times with all threads; queries/s = all queries in one search call, best of {args.repeat}\n"
    )
    print(md_table(
        ["index", "params", "build s", "queries/s (1 thread)", f"queries/s ({all_threads} threads)", f"recall@{k}"],
        rows,
    ))
    print()
    if chosen is None:
        print(f"recall@{k}: no efSearch in {args.ef_sweep} reached {args.target_recall} (FAIL)")
        return 1
    ef, rec, qps1, qps = chosen
    print(
        f"recall@{k} = {rec:.3f} >= {args.target_recall} with HNSW efSearch={ef}: "
        f"{qps1 / flat_qps1:.1f}x the exact index's queries/s on 1 thread, {qps / flat_qps:.1f}x on {all_threads}"
    )
    return 0


# ---------------------------------------------------------------- main


def ef_arg(v: str):
    if v == "auto":
        return v
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, found {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {n}")
    return n


def main() -> int:
    ap = argparse.ArgumentParser(
        description="FAISS indexes over `tgcn embed` exports (the module docstring and docs/serving.md explain serving)"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    def hnsw_opts(p):
        p.add_argument("--hnsw-m", type=int, default=32, metavar="M", help="HNSW graph degree (default 32)")
        p.add_argument("--ef-construction", type=int, default=200, metavar="N", help="HNSW efConstruction (default 200)")
        p.add_argument("--target-recall", type=float, default=0.95, metavar="R",
                       help="recall@k the HNSW must reach (default 0.95)")
        p.add_argument("--threads", type=int, default=0, metavar="N", help="FAISS threads (default 0: all cores)")

    q = sub.add_parser("query", help="exact + HNSW indexes over an export; recall, speed, --json top-k")
    q.add_argument("--db", type=Path, required=True, metavar="DIR", help="export folder whose database side is indexed")
    q.add_argument("--queries", type=Path, metavar="DIR", help="export folder whose query side is searched (default: --db)")
    q.add_argument("--direction", choices=["t2i", "i2t"], required=True,
                   help="t2i: index image.npy, query with text.npy; i2t: the reverse")
    q.add_argument("--k", type=int, default=10, help="results per query (default 10; capped at the database size)")
    q.add_argument("--index", choices=["flat", "hnsw", "both"], default="both",
                   help="indexes to build (default both; recall needs flat)")
    q.add_argument("--json", type=Path, metavar="OUT",
                   help="write every query's top-k ids and scores (inner product + bias), from the flat index if built")
    q.add_argument("--ef-search", type=ef_arg, default="auto", metavar="auto|N",
                   help="HNSW efSearch (default auto: doubled from max(16, k) until --target-recall; 128 without flat)")
    hnsw_opts(q)
    q.set_defaults(func=cmd_query)

    b = sub.add_parser("bench", help="exact vs HNSW on seeded synthetic embeddings")
    b.add_argument("--n", type=int, default=100_000, help="database rows (default 100000)")
    b.add_argument("--dim", type=int, default=256, help="dimension (default 256)")
    b.add_argument("--queries", type=int, default=2000, help="query rows (default 2000)")
    b.add_argument("--k", type=int, default=10, help="default 10")
    b.add_argument("--seed", type=int, default=0, help="default 0")
    b.add_argument("--centres", type=int, default=50, help="Gaussian mixture components (default 50)")
    b.add_argument("--repeat", type=int, default=3, help="time each search this many times, keep the best (default 3)")
    b.add_argument("--ef-sweep", type=int, nargs="+", default=[16, 32, 64, 128, 256], metavar="N",
                   help="HNSW efSearch values (default 16 32 64 128 256)")
    hnsw_opts(b)
    b.set_defaults(func=cmd_bench)

    args = ap.parse_args()
    if args.hnsw_m < 2 or args.ef_construction < 1 or args.threads < 0 or not 0 < args.target_recall <= 1:
        ap.error("need --hnsw-m >= 2, --ef-construction >= 1, --threads >= 0, 0 < --target-recall <= 1")
    if args.cmd == "bench" and min(args.ef_sweep) < 1:
        ap.error("--ef-sweep values must be >= 1")
    try:
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the output was cut short on purpose
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
