"""`make bench-compare`: the same workloads in Rust (`tgcn bench-side`) and in PyTorch
(this file), alternated in one run, with one table of both medians and their ratio.

Driver (default): writes the shared workload with `tgcn bench-side --case workload`
(Eng-Wiki from ../shared/data where present, else synthetic data of Eng-Wiki's shape),
then for each case and each of `--rounds` rounds runs the two sides one after the other
in fresh processes (the order flips every round), each side warming up before it times.
A case's median pools every timed call of all rounds of that side.

Side (`--side python --case C`): times one PyTorch workload on the workload folder and
prints one JSON line, like `tgcn bench-side`. The PyTorch side is written as the
reference re-implementation of ../shared/REFERENCE-NOTES.md is: a hand-written
`torch.sparse.mm` Chebyshev recurrence, `nn.Linear`, `torch.optim.Adam` (AdamW for the
in-batch configuration), gensim for skip-gram. Both sides use the same threads.

Run it with the project venv's python; gensim is installed into it on first use.
"""

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "tgcn"
GENSIM = "gensim==4.4.0"

# Eng-Wiki's prepared shapes (V = 6362 words, 1956 train / 693 test items, 128-d SIFT,
# 10 classes, ~190 tokens a text), used where ../shared/data/eng-wiki is absent.
SYNTHETIC_SETS = [
    "data.dataset=synthetic",
    "data.synthetic={classes: 10, words_per_class: 606, shared_words: 300, vector_dim: 50, vector_noise: 0.6, "
    "text_len_min: 120, text_len_max: 260, topic_prob: 0.5, image_dim: 128, image_noise: 3.0, max_labels: 1, "
    "train: 1956, val: 217, test: 693}",
    "vectors.source=dataset",
    "text.min_freq=1",
]

# (label, extra Rust config args, workload name, case, warmup, repeats per round)
CASES = [
    ("TGCN step, 256 sampled pairs (recipe)", [], "recipe", "step", 5, 20),
    ("BoW-MLP step, 256 sampled pairs", ["--set", "model.text.kind=mlp", "--set", "name=mlp"], "mlp", "step", 5, 20),
    ("TGCN in-batch step, 128 items (best config)", ["--config", "configs/eng-wiki-best.yaml"], "best", "step", 5, 20),
    ("skip-gram, 5 epochs (gensim)", [], "recipe", "skipgram", 0, 1),
    ("kNN graph k=8 + rescaled Laplacian", [], "recipe", "knn", 1, 5),
    ("rank + MAP, test vs test, both directions", [], "recipe", "rank", 1, 5),
    ("rank + MAP, 20,000 x 20,000, both directions", [], "recipe", "rank-large", 0, 1),
]


def load(d, name):
    import numpy as np
    import torch

    return torch.from_numpy(np.load(d / f"{name}.npy"))


def timed(warmup, repeats, f):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


# ---------------------------------------------------------------- the PyTorch side


def laplacian(d, csr=False):
    import torch

    meta = json.loads((d / "meta.json").read_text())
    v = meta["vocabulary"]
    lap = torch.sparse_coo_tensor(load(d, "lap_indices"), load(d, "lap_values"), (v, v)).coalesce()
    return (lap.to_sparse_csr() if csr else lap), v


def cheb_layers(k, filters):
    """Chebyshev layers as the reference wrote them: T0 = X, T1 = L̃X, Tk = 2L̃T(k-1) - T(k-2)
    with torch.sparse.mm on vertex-major [V, B*F] signals, the K terms mixed by one matrix."""
    import torch
    from torch import nn

    class Cheb(nn.Module):
        def __init__(self, k, f_in, f_out):
            super().__init__()
            bound = math.sqrt(6.0 / (f_in + f_out))
            self.w = nn.Parameter(torch.empty(k * f_in, f_out).uniform_(-bound, bound))
            self.b = nn.Parameter(torch.zeros(f_out))
            self.k, self.f_in = k, f_in

        def forward(self, lap, x):  # x: [V, B, F_in] -> [V, B, F_out]
            v = x.shape[0]
            x0 = x.reshape(v, -1).contiguous()  # the sparse product is slower on strided input
            terms = [x0]
            if self.k > 1:
                x1 = torch.sparse.mm(lap, x0)
                terms.append(x1)
                for _ in range(2, self.k):
                    x2 = 2 * torch.sparse.mm(lap, x1) - x0
                    terms.append(x2)
                    x0, x1 = x1, x2
            t = torch.cat([t.reshape(v, -1, self.f_in) for t in terms], 2)  # [V, B, K*F_in]
            return t @ self.w + self.b

    dims = [1] + [filters] * 2
    return nn.ModuleList([Cheb(k, dims[i], dims[i + 1]) for i in range(2)])


def step_case(d, name, warmup, repeats, tuned):
    """`tuned`: what a careful PyTorch user would switch on beyond the reference: L̃ in CSR
    layout and the fused Adam/AdamW kernel (`fused=True`)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    lap, v = laplacian(d, csr=tuned)
    bow, img, lab = load(d, "train_bow"), load(d, "train_images"), load(d, "train_labels")
    rows = load(d, f"step-{name}")
    torch.manual_seed(1)
    f_img = img.shape[1]

    if name in ("recipe", "mlp"):
        cheb = cheb_layers(3, 1) if name == "recipe" else None
        text_fc, image_fc, score_fc = nn.Linear(v, 1024), nn.Linear(f_img, 1024), nn.Linear(1024, 1)
        mods = nn.ModuleList([m for m in (cheb, text_fc, image_fc, score_fc) if m is not None])
        opt = torch.optim.Adam(mods.parameters(), lr=1e-3, fused=tuned)

        def text(b):  # [B, V] -> [B, 1024]
            if cheb is None:
                return text_fc(b)
            h = b.t().unsqueeze(-1)  # [V, B, 1]
            for layer in cheb:
                h = torch.relu(layer(lap, h))
            return text_fc(h.squeeze(-1).t())

        def step(r):
            t, i = text(bow[r[:, 0]]), image_fc(img[r[:, 1]])
            s = score_fc(F.dropout(t * i, 0.2, True)).squeeze(-1)
            half = r.shape[0] // 2
            pos, neg = s[:half], s[half:]
            loss = pos.var(unbiased=False) + neg.var(unbiased=False)
            loss = loss + 0.35 * torch.clamp(0.8 - (pos.mean() - neg.mean()), min=0)
            loss = loss + 5e-3 * (text_fc.weight.square().sum() + image_fc.weight.square().sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

    elif name == "best":
        cheb = cheb_layers(3, 1)
        text_mlp = nn.Sequential(nn.Linear(v, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 256))
        image_mlp = nn.Sequential(nn.Linear(f_img, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 256))
        classifier = nn.Linear(256, lab.shape[1])
        mods = nn.ModuleList([cheb, text_mlp, image_mlp, classifier]).train()
        opt = torch.optim.AdamW(mods.parameters(), lr=1e-3, weight_decay=1e-4, fused=tuned)

        def contrastive(logits, pos):
            def direction(lg, p):
                return (-(lg.log_softmax(1) * p).sum(1) / p.sum(1).clamp_min(1)).mean()

            return (direction(logits, pos) + direction(logits.t(), pos.t())) / 2

        def step(r):
            b, y = bow[r], lab[r]
            x = torch.log1p(b)
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
            h = x.t().unsqueeze(-1)
            h = torch.relu(cheb[0](lap, h))
            h = cheb[1](lap, h)  # last graph layer: no activation
            t = text_mlp(h.squeeze(-1).t())
            i = image_mlp(img[r])
            s = F.normalize(t, dim=1, eps=1e-8) @ F.normalize(i, dim=1, eps=1e-8).t()
            pos = (y @ y.t() > 0.5).float()
            ce = lambda z: -(z.log_softmax(1) * y).sum(1).mean()  # noqa: E731
            loss = contrastive(s / 0.1, pos) + 0.25 * (ce(classifier(t)) + ce(classifier(i)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

    else:
        raise SystemExit(f"no PyTorch step for workload `{name}`")

    k = [0]

    def one():
        loss = step(rows[k[0] % rows.shape[0]])
        assert math.isfinite(loss), f"loss {loss} at bench step {k[0]}"
        k[0] += 1

    times = timed(warmup, repeats, one)
    b = rows.shape[1]
    pairs = b if rows.dim() == 3 else b * b
    n_par = sum(p.numel() for p in mods.parameters())
    layout = "CSR L̃, fused Adam" if tuned else "COO L̃, for-loop Adam"
    return times, f"{layout}, V = {v}, B = {b}, {n_par} parameters: {pairs / sorted(times)[len(times) // 2]:.0f} pairs/s"


def skipgram_case(d, warmup, repeats, threads):
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise SystemExit(f"gensim is not installed: run `{sys.executable} -m pip install {GENSIM}`")
    docs = [line.split() for line in (d / "corpus.txt").read_text().splitlines()]
    tokens = sum(map(len, docs))

    def one():
        Word2Vec(docs, vector_size=50, window=5, negative=5, epochs=5, min_count=1, sample=1e-3, alpha=0.025,
                 sg=1, hs=0, workers=threads, seed=1)

    times = timed(warmup, repeats, one)
    med = sorted(times)[len(times) // 2]
    return times, f"gensim {__import__('gensim').__version__}, {threads} workers: {tokens * 5 / med:.0f} tokens/s"


def knn_case(d, warmup, repeats, k=8):
    import torch

    chunk = json.loads((d / "meta.json").read_text())["knn_chunk"]  # the Rust config's `graph.knn_chunk`
    x = load(d, "vectors").float()
    n = x.shape[0]

    def one():
        xn = torch.nn.functional.normalize(x, dim=1)
        nbrs = []
        for s in range(0, n, chunk):
            sim = xn[s:s + chunk] @ xn.t()
            sim[torch.arange(sim.shape[0]), torch.arange(s, s + sim.shape[0])] = -float("inf")  # no self
            nbrs.append(sim.topk(k, dim=1).indices)
        cols = torch.cat(nbrs).reshape(-1)
        rows = torch.arange(n).repeat_interleave(k)
        idx = torch.cat([torch.stack([rows, cols]), torch.stack([cols, rows])], 1)
        a = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (n, n)).coalesce()
        ai, av = a.indices(), torch.ones(a.values().shape[0])  # binary, symmetric
        deg = torch.zeros(n).index_add_(0, ai[0], av)
        dinv = deg.clamp_min(1e-12).rsqrt()
        # L̃ = 2L/λmax − I with λmax = 2: −D^−1/2 A D^−1/2
        return torch.sparse_coo_tensor(ai, -av * dinv[ai[0]] * dinv[ai[1]], (n, n)).coalesce()

    return timed(warmup, repeats, one), f"{n} words x {x.shape[1]}-d, k = {k}, chunks of {chunk} rows"


def rank_case(d, warmup, repeats, prefix="test", chunk=256, k=100, scope=(1, 5, 10, 20, 50, 100, 200, 500)):
    import torch

    t, i, lab = load(d, f"{prefix}_text"), load(d, f"{prefix}_image"), load(d, f"{prefix}_labels")
    n = t.shape[0]

    def direction(q, db):
        ap_all, ap_k, prec = [], [], []
        for s in range(0, n, chunk):
            sc = q[s:s + chunk] @ db.t()
            order = sc.argsort(dim=1, descending=True, stable=True)
            rel = (lab[s:s + chunk] @ lab.t() > 0.5).gather(1, order).float()
            hits = rel.cumsum(1)
            p = hits / torch.arange(1, n + 1)
            ap_all.append((p * rel).sum(1) / rel.sum(1).clamp_min(1))
            ap_k.append((p[:, :k] * rel[:, :k]).sum(1) / rel[:, :k].sum(1).clamp_min(1))
            prec.append(torch.stack([hits[:, min(c, n) - 1] / c for c in scope], 1))
        return torch.cat(ap_all).mean().item(), torch.cat(ap_k).mean().item(), torch.cat(prec).mean(0)

    def one():
        with torch.no_grad():
            direction(t, i)
            direction(i, t)

    return timed(warmup, repeats, one), f"{n} x {n}, {t.shape[1]}-d, both directions, chunk {chunk}"


def python_side(a):
    import torch

    torch.set_num_threads(a.threads)
    d = Path(a.workload)
    if a.case == "step":
        times, detail = step_case(d, a.name, a.warmup, a.repeats, a.tuned)
    elif a.case == "skipgram":
        times, detail = skipgram_case(d, a.warmup, a.repeats, a.threads)
    elif a.case == "knn":
        times, detail = knn_case(d, a.warmup, a.repeats)
    elif a.case == "rank":
        times, detail = rank_case(d, a.warmup, a.repeats)
    elif a.case == "rank-large":
        times, detail = rank_case(d, a.warmup, a.repeats, prefix="large")
    else:
        raise SystemExit(f"unknown --case {a.case}")
    med = sorted(times)[len(times) // 2]
    print(json.dumps({"case": a.case, "name": a.name, "times_s": times, "median_s": med, "detail": detail}))


# ---------------------------------------------------------------- the driver


def json_line(out, what):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"{what} printed no JSON result line:\n{out[-2000:]}")


def run(cmd, what):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return json_line(p.stdout, what)


def fmt(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def ensure_gensim():
    try:
        import gensim  # noqa: F401
    except ImportError:
        print(f"installing {GENSIM} into {sys.prefix} (first use)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", GENSIM],
                       check=True)


def driver(a):
    if not BIN.exists():
        raise SystemExit(f"{BIN} is absent: run `make build` first")
    ensure_gensim()
    eng_wiki = (ROOT / "../shared/data/eng-wiki").resolve()
    base = ["--dataset", "eng-wiki"]
    if eng_wiki.is_dir():
        source = f"Eng-Wiki from {eng_wiki}"
    else:
        base += [x for s in SYNTHETIC_SETS for x in ("--set", s)]
        source = "synthetic data of Eng-Wiki's shape (../shared/data/eng-wiki is absent)"
    d = Path(a.workload)
    threads = ["--threads", str(a.threads)]
    print(f"workload: {source} -> {d}", file=sys.stderr)
    run([BIN, "bench-side", *base, "--case", "workload", "--workload", d], "tgcn bench-side --case workload")
    meta = json.loads((d / "meta.json").read_text())
    rows = []
    for label, extra, name, case, warmup, repeats in CASES:
        if a.cases and case not in a.cases and name not in a.cases:
            continue
        if a.quick:
            repeats = max(1, repeats // 4)
        side_args = ["--case", case, "--workload", d, "--warmup", str(warmup), "--repeats", str(repeats), *threads]
        rust_cmd = [BIN, "bench-side", *base, *extra, *side_args]
        py_cmd = [sys.executable, __file__, "--side", "python", "--name", name, *side_args]
        order = [("rust", rust_cmd), ("python", py_cmd)]
        if case == "step":
            order.append(("tuned", py_cmd + ["--tuned"]))
        got = {side: [] for side, _ in order}
        details = {}
        for r in range(a.rounds):
            for side, cmd in order if r % 2 == 0 else order[::-1]:
                res = run(cmd, f"{side} side of `{label}`")
                got[side] += res["times_s"]
                details[side] = res["detail"]
                print(f"  {label} [{side}, round {r + 1}]: {fmt(res['median_s'])}", file=sys.stderr)
        med = {s: sorted(t)[len(t) // 2] for s, t in got.items()}
        rows.append((label, med, len(got["rust"]), details))
    table = [
        f"Rust (tgcn bench-side) vs PyTorch {torch_version()} on {source}: V = {meta['vocabulary']}, "
        f"{meta['train']} train / {meta['test']} test items; {a.threads} threads each, {a.rounds} alternated rounds; "
        f"median of all timed calls.",
        "",
        "| workload | Rust | PyTorch (reference) | Rust / PyTorch | PyTorch tuned | Rust / tuned | timed calls per side |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, med, n, _ in rows:
        r, p, t = med["rust"], med["python"], med.get("tuned")
        tuned = f"{fmt(t)} | {r / t:.2f}×" if t else "– | –"
        table.append(f"| {label} | {fmt(r)} | {fmt(p)} | **{r / p:.2f}×** | {tuned} | {n} |")
    table += ["", "PyTorch (reference): as ../shared/REFERENCE-NOTES.md describes it (COO `torch.sparse.mm`, "
              "for-loop `torch.optim.Adam`; gensim for skip-gram). PyTorch tuned: CSR L̃ and `fused=True`.", "",
              "Details (each side's last round):"]
    for label, *_, det in rows:
        table.append(f"- {label}: " + "; ".join(f"{s}: {d}" for s, d in det.items()))
    text = "\n".join(table) + "\n"
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
        print(f"written to {a.out}", file=sys.stderr)


def torch_version():
    import torch

    return torch.__version__.split("+")[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["python"], help="run one side (internal)")
    ap.add_argument("--case", help="step | skipgram | knn | rank | rank-large (with --side)")
    ap.add_argument("--name", default="recipe", help="the step workload: recipe | mlp | best (with --side)")
    ap.add_argument("--workload", default=str(ROOT / "runs" / "bench-compare"), help="shared inputs folder")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tuned", action="store_true", help="step cases: CSR L̃ and fused Adam (with --side)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds per case (driver)")
    ap.add_argument("--cases", nargs="*", help="only these cases or workloads, e.g. step skipgram best")
    ap.add_argument("--quick", action="store_true", help="a quarter of the repeats")
    ap.add_argument("--out", help="also write the table here (Markdown)")
    a = ap.parse_args()
    if a.side:
        python_side(a)
    else:
        driver(a)


if __name__ == "__main__":
    main()
