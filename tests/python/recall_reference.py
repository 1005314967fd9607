"""Instance-level retrieval figures, written independently of the Rust evaluator.

Usage: recall_reference.py SCORES.csv QUERY_LABELS.csv DB_LABELS.csv
SCORES is [n_queries, n_db]; the label files are multi-hot rows, or the word `pair`
as their only content for pair relevance (query i's relevant item is database item i).
Prints JSON: per-query ranks (1-based first relevant item, n_db + 1 when none),
recall at 1, 5 and 10 (a query with nothing relevant is a miss at every K), the median rank, and MAP@all, from a stable descending sort
(ties keep database order), as torch.sort(descending=True, stable=True) ranks them.
"""
import json
import sys

import numpy as np


def main():
    scores = np.loadtxt(sys.argv[1], delimiter=",", ndmin=2)
    nq, ndb = scores.shape
    if open(sys.argv[2]).read().strip() == "pair":
        rel = np.eye(nq, ndb, dtype=bool)
    else:
        ql = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2)
        dl = np.loadtxt(sys.argv[3], delimiter=",", ndmin=2)
        rel = (ql @ dl.T) > 0.5
    ranks, aps = [], []
    for i in range(nq):
        order = np.argsort(-scores[i], kind="stable")
        r = rel[i][order]
        hits = np.flatnonzero(r)
        ranks.append(int(hits[0]) + 1 if hits.size else ndb + 1)
        aps.append(float(np.mean(np.arange(1, hits.size + 1) / (hits + 1))) if hits.size else 0.0)
    ranks = np.array(ranks)
    found = rel.any(axis=1)
    out = {
        "ranks": ranks.tolist(),
        "recall": [[k, float(np.mean(found & (ranks <= k)))] for k in (1, 5, 10)],
        "median_rank": float(np.median(ranks)),
        "map_all": float(np.mean(aps)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
