"""Plots of finished (or running) tgcn runs, as PNG files you can look at.

    .venv/bin/python notebooks/plot_runs.py runs/eng-wiki/2026*   # or: make plots RUNS="runs/eng-wiki/*"

For each run folder it writes RUN/plots/training.png (loss, score gap, learning rate,
validation MAP against epochs) and RUN/plots/retrieval.png (11-point interpolated
precision-recall and precision@k, both directions, both protocols). With several runs it
also writes plots/compare.png in the current folder: validation mean MAP@all per run.
The same functions serve notebooks/explore_runs.ipynb.
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run: Path):
    """{metric: [(epoch, step, value), ...]} from RUN/metrics.csv."""
    series = defaultdict(list)
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            series[row["metric"]].append((int(row["epoch"]), int(row["step"]), float(row["value"])))
    return series


def read_curve(path: Path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[float(x) for x in r] for r in rows[1:]]


def plot_training(run: Path, out: Path):
    m = read_metrics(run)
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        (ax[0, 0], ["train/loss"], "loss"),
        (ax[0, 1], ["train/mean_pos", "train/mean_neg", "train/gap"], "scores (gap = mean S+ - mean S-)"),
        (ax[1, 0], ["val/map_i2t", "val/map_t2i", "val/map_mean"], "validation MAP@all"),
        (ax[1, 1], ["train/lr"], "learning rate"),
    ]
    for a, keys, title in panels:
        for k in keys:
            if k in m:
                e = [p[0] for p in m[k]]
                a.plot(e, [p[2] for p in m[k]], marker="o", ms=3, label=k)
        a.set_title(title)
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    plt.close(fig)


def plot_retrieval(run: Path, out: Path):
    curves = sorted((run / "curves").glob("*.csv"))
    if not curves:
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.5))
    for c in curves:
        header, rows = read_curve(c)
        kind, protocol = ("pr", c.stem[len("pr11_"):]) if c.stem.startswith("pr11_") else ("scope", c.stem[len("precision_scope_"):])
        a = ax[0] if kind == "pr" else ax[1]
        x = [r[0] for r in rows]
        for j, name in ((1, "i2t"), (2, "t2i")):
            a.plot(x, [r[j] for r in rows], marker="o", ms=3, label=f"{name} {protocol}")
    ax[0].set(title="11-point interpolated precision-recall", xlabel="recall", ylabel="precision")
    ax[1].set(title="precision@k", xlabel="k", ylabel="precision", xscale="log")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(out / "retrieval.png", dpi=110)
    plt.close(fig)


def plot_compare(runs, out: Path):
    fig, a = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        m = read_metrics(run)
        if "val/map_mean" in m:
            a.plot([p[0] for p in m["val/map_mean"]], [p[2] for p in m["val/map_mean"]], marker="o", ms=3, label=run.name)
    a.set(title="validation mean MAP@all", xlabel="epoch")
    a.grid(alpha=0.3)
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(paths):
    runs = [Path(p) for p in paths if (Path(p) / "metrics.csv").exists()]
    if not runs:
        sys.exit("no run folders with metrics.csv given")
    for run in runs:
        out = run / "plots"
        out.mkdir(exist_ok=True)
        plot_training(run, out)
        plot_retrieval(run, out)
        print(f"wrote {out}/training.png and retrieval.png")
    if len(runs) > 1:
        Path("plots").mkdir(exist_ok=True)
        plot_compare(runs, Path("plots/compare.png"))
        print("wrote plots/compare.png")


if __name__ == "__main__":
    main(sys.argv[1:])
