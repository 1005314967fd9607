"""`make bench-sparse`: the two layout choices behind the text tower, timed in libtorch
(PyTorch, the same build `tch` links), alternated in rounds in one process.

1. The L̃ product of the Chebyshev recurrence, forward + backward, with L̃ in COO against
   CSR (the project builds CSR: `graph::laplacian::sparse_tensor`).
2. The first FC layer of the BoW-MLP (6362 → 1024), forward + backward, with a dense,
   CSR or COO bag-of-words input (the project keeps it dense).

Inputs come from `make bench-compare`'s workload folder (Eng-Wiki's prepared graph and
bags of words: run `make bench-compare` once first). Prints one Markdown table of medians.
"""

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default=str(ROOT / "runs" / "bench-compare"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per variant per round")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    d = Path(a.workload)
    if not (d / "meta.json").is_file():
        raise SystemExit(f"{d}/meta.json is absent: run `make bench-compare` first (it writes the workload)")
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", message="Sparse (invariant checks|CSR tensor support)")
    torch.manual_seed(0)
    meta = json.loads((d / "meta.json").read_text())
    v = meta["vocabulary"]
    idx = torch.from_numpy(np.load(d / "lap_indices.npy"))
    val = torch.from_numpy(np.load(d / "lap_values.npy"))
    coo = torch.sparse_coo_tensor(idx, val, (v, v)).coalesce()
    csr = coo.to_sparse_csr()
    bow = torch.from_numpy(np.load(d / "train_bow.npy"))[: a.batch].contiguous()
    x = torch.randn(v, a.batch, requires_grad=True)  # a vertex-major signal [V, B]
    fc = torch.nn.Linear(v, 1024)

    def lap_product(lap):
        def f():
            lap.mm(x).sum().backward()
            x.grad = None

        return f

    def fc_layer(inp):
        def f():
            if inp.layout == torch.strided:
                y = fc(inp)
            else:
                y = torch.sparse.mm(inp, fc.weight.t()) + fc.bias
            y.square().sum().backward()
            fc.zero_grad(set_to_none=True)

        return f

    variants = [
        ("L̃ product fwd+bwd, V×V · V×B", "COO L̃", lap_product(coo)),
        ("L̃ product fwd+bwd, V×V · V×B", "CSR L̃", lap_product(csr)),
        ("BoW-MLP first layer fwd+bwd, B×V · V×1024", "dense BoW", fc_layer(bow)),
        ("BoW-MLP first layer fwd+bwd, B×V · V×1024", "CSR BoW", fc_layer(bow.to_sparse_csr())),
        ("BoW-MLP first layer fwd+bwd, B×V · V×1024", "COO BoW", fc_layer(bow.to_sparse())),
    ]
    times = {name: [] for _, name, _ in variants}
    for _, _, f in variants:  # warm-up
        f()
        f()
    for r in range(a.rounds):
        for _, name, f in variants if r % 2 == 0 else variants[::-1]:
            for _ in range(a.repeats):
                t = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t)
    print(f"libtorch {torch.__version__}, {a.threads} threads, V = {v}, B = {a.batch}, nnz(L̃) = {coo._nnz()}, "
          f"{a.rounds} alternated rounds × {a.repeats} calls")
    print("\n| product | layout | median | vs first row of its product |\n|---|---|---|---|")
    first = {}
    for what, name, _ in variants:
        m = statistics.median(times[name])
        first.setdefault(what, m)
        print(f"| {what} | {name} | {m * 1e3:.1f} ms | {m / first[what]:.2f}× |")


if __name__ == "__main__":
    main()
