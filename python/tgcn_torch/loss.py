"""The training objectives of src/train/loss.rs, for fine-tuning in PyTorch."""
from __future__ import annotations

import torch
from torch import Tensor


def contrastive_loss(scores: Tensor, positive: Tensor, temperature: float | Tensor) -> Tensor:
    """Multi-positive InfoNCE over an in-batch score matrix, in both directions:
    L_t2i = mean_i [ -(1/|P_i|) Σ_{j in P_i} log softmax_j(S_i. / τ) ], L_i2t the same over
    the columns, L = (L_t2i + L_i2t) / 2. `scores: [B, B]` (text i vs image j), `positive:
    [B, B]` bool (items sharing a label; the diagonal always) -> a scalar."""
    logits = scores / temperature
    pos = positive.to(logits.dtype)

    def direction(l: Tensor, p: Tensor) -> Tensor:
        per_row = -(l.log_softmax(1) * p).sum(1) / p.sum(1).clamp_min(1.0)
        return per_row.mean()

    return (direction(logits, pos) + direction(logits.t(), pos.t())) / 2.0


def global_loss(pos: Tensor, neg: Tensor, lam: float, margin: float) -> Tensor:
    """The authors' global loss: var(S+) + var(S-) + λ max(0, m - (mean(S+) - mean(S-))),
    population variances; a side without scores drops its terms."""
    loss = pos.new_zeros(())
    if pos.numel():
        loss = loss + pos.var(unbiased=False)
    if neg.numel():
        loss = loss + neg.var(unbiased=False)
    if pos.numel() and neg.numel():
        loss = loss + lam * (margin - (pos.mean() - neg.mean())).clamp_min(0.0)
    return loss


def positives(labels: Tensor) -> Tensor:
    """Multi-hot labels [B, C] -> [B, B] bool: items sharing a label, the diagonal always."""
    l = labels.float()
    return (l.mm(l.t()) > 0) | torch.eye(l.shape[0], dtype=torch.bool, device=l.device)
