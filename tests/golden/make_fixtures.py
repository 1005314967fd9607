"""Golden fixtures for the Laplacian and the Chebyshev layer, computed independently
with numpy (float64) and dense torch ops. Run: `make fixtures` (writes tests/golden/*.json).

The 6-word graph is small enough to check by hand: a path 0-1-2-3 plus a triangle
3-4-5, one weighted edge, so degrees differ and the normalisation matters.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
rng = np.random.default_rng(20180205)

n = 6
edges = [(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0), (3, 4, 1.0), (4, 5, 0.5), (3, 5, 1.0)]
A = np.zeros((n, n))
for i, j, w in edges:
    A[i, j] = A[j, i] = w
d = A.sum(1)
Dm = np.diag(1.0 / np.sqrt(d))
L = np.eye(n) - Dm @ A @ Dm
lmax = float(np.linalg.eigvalsh(L).max())
Lt_fixed = 2.0 * L / 2.0 - np.eye(n)
Lt_eig = 2.0 * L / lmax - np.eye(n)

def cheb_dense(Lt, x, weights, bias):
    """x: [B, V, Fin]; weights: K x [Fout, Fin]; bias: [Fout] -> [B, V, Fout]."""
    Lt = torch.tensor(Lt, dtype=torch.float64)
    x = torch.tensor(x, dtype=torch.float64)
    Ts = [x]
    if len(weights) > 1:
        Ts.append(torch.einsum("uv,bvf->buf", Lt, x))
    for _ in range(2, len(weights)):
        Ts.append(2 * torch.einsum("uv,bvf->buf", Lt, Ts[-1]) - Ts[-2])
    y = sum(T @ torch.tensor(W, dtype=torch.float64).T for T, W in zip(Ts, weights))
    return (y + torch.tensor(bias, dtype=torch.float64)).numpy()

B, fin, fout = 2, 2, 3
x = rng.normal(size=(B, n, fin))
cheb = []
for K in (1, 2, 3):
    weights = [rng.normal(size=(fout, fin)) * 0.5 for _ in range(K)]
    bias = rng.normal(size=(fout,))
    y = cheb_dense(Lt_fixed, x, weights, bias)
    cheb.append({"K": K, "weights": [w.ravel().tolist() for w in weights], "bias": bias.tolist(),
                 "out": y.ravel().tolist()})

fixture = {
    "n": n, "edges": edges, "L": L.ravel().tolist(), "lambda_max": lmax,
    "Lt_fixed": Lt_fixed.ravel().tolist(), "Lt_eig": Lt_eig.ravel().tolist(),
    "x": x.ravel().tolist(), "x_shape": [B, n, fin], "f_out": fout, "cheb": cheb,
}
(out / "cheb6.json").write_text(json.dumps(fixture, indent=1) + "\n")

# The global loss on fixed scores, computed with numpy (population variance).
pos = np.array([0.9, 0.4, 0.7, 0.2])
neg = np.array([0.3, -0.1, 0.5])
lam, m = 0.35, 0.8
loss = pos.var() + neg.var() + lam * max(0.0, m - (pos.mean() - neg.mean()))
(out / "loss.json").write_text(json.dumps({"pos": pos.tolist(), "neg": neg.tolist(), "lambda": lam,
                                          "margin": m, "loss": loss}, indent=1) + "\n")
print(f"wrote {out}/cheb6.json and loss.json (lambda_max={lmax:.6f})")

# The in-batch multi-positive InfoNCE (both directions) on fixed scores, with torch
# autograd for the gradient. Multi-label: items 0 and 2 share label 1 with item 4.
S = torch.tensor(rng.normal(size=(5, 5)), dtype=torch.float64, requires_grad=True)
labels = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=torch.float64)
P = (labels @ labels.T > 0.5).double()
tau = 0.5
def infonce(logits, p):
    return (-(torch.log_softmax(logits, dim=1) * p).sum(1) / p.sum(1)).mean()
c = (infonce(S / tau, P) + infonce(S.T / tau, P.T)) / 2
c.backward()
(out / "contrastive.json").write_text(json.dumps({
    "scores": S.detach().numpy().ravel().tolist(), "labels": labels.numpy().ravel().tolist(), "n": 5, "c": 3,
    "temperature": tau, "loss": c.item(), "grad": S.grad.numpy().ravel().tolist()}, indent=1) + "\n")
print(f"wrote {out}/contrastive.json")

# AdamW (torch.optim.AdamW, decoupled weight decay) on fixed gradients: the loss of step t
# is sum(p * g_t), so its gradient is exactly g_t.
p0 = rng.normal(size=(3, 2))
grads = [rng.normal(size=(3, 2)) for _ in range(4)]
p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
for g in grads:
    opt.zero_grad()
    (p * torch.tensor(g)).sum().backward()
    opt.step()
(out / "adamw.json").write_text(json.dumps({
    "p0": p0.ravel().tolist(), "grads": [g.ravel().tolist() for g in grads], "shape": [3, 2], "lr": 0.1,
    "weight_decay": 0.05, "p": p.detach().numpy().ravel().tolist()}, indent=1) + "\n")
print(f"wrote {out}/adamw.json")

# The label loss: softmax cross-entropy on single-label rows, binary cross-entropy (mean
# over rows and classes) on multi-label rows; value and gradient with respect to the logits.
label = {}
for kind in ["single", "multi"]:
    z = torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float64, requires_grad=True)
    if kind == "single":
        y = torch.zeros(6, 4, dtype=torch.float64)
        y[torch.arange(6), torch.tensor(rng.integers(0, 4, size=6))] = 1.0
        loss = torch.nn.functional.cross_entropy(z, y.argmax(1))
    else:
        y = torch.tensor(rng.random(size=(6, 4)) < 0.4, dtype=torch.float64)
        y[0] = 0.0  # a row without labels
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    loss.backward()
    label[kind] = {"logits": z.detach().numpy().ravel().tolist(), "labels": y.numpy().ravel().tolist(),
                   "n": 6, "c": 4, "loss": loss.item(), "grad": z.grad.numpy().ravel().tolist()}
# The invariance term: mean over rows of the squared distance between paired embeddings.
t = torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float64, requires_grad=True)
i = torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float64, requires_grad=True)
inv = ((t - i) ** 2).sum(1).mean()
inv.backward()
label["invariance"] = {"t": t.detach().numpy().ravel().tolist(), "i": i.detach().numpy().ravel().tolist(),
                       "n": 5, "d": 3, "loss": inv.item(), "grad_t": t.grad.numpy().ravel().tolist(),
                       "grad_i": i.grad.numpy().ravel().tolist()}
(out / "label.json").write_text(json.dumps(label, indent=1) + "\n")
print(f"wrote {out}/label.json")

# Plain Adam (torch.optim.Adam) on two parameters of different shapes, with a learning rate
# that changes every step (a schedule): the loss of step t is sum(p * g_t) + sum(q * h_t).
arng = np.random.default_rng(7)
a0, b0 = arng.normal(size=(4, 3)), arng.normal(size=(5,))
ga = [arng.normal(size=(4, 3)) for _ in range(5)]
gb = [arng.normal(size=(5,)) for _ in range(5)]
lrs = [0.1, 0.05, 0.02, 0.08, 0.01]
pa = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
pb = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
opt = torch.optim.Adam([pa, pb], lr=lrs[0])
for g, h, lr in zip(ga, gb, lrs):
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad()
    ((pa * torch.tensor(g)).sum() + (pb * torch.tensor(h)).sum()).backward()
    opt.step()
(out / "adam.json").write_text(json.dumps({
    "a0": a0.ravel().tolist(), "b0": b0.tolist(), "ga": [g.ravel().tolist() for g in ga],
    "gb": [h.tolist() for h in gb], "lrs": lrs, "a": pa.detach().numpy().ravel().tolist(),
    "b": pb.detach().numpy().tolist()}, indent=1) + "\n")
print(f"wrote {out}/adam.json")
