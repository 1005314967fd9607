"""Fine-tuning a loaded run's text tower in PyTorch. Checks that tgcn_torch's contrastive
loss equals Rust's on DATA/scores.npy and DATA/positive.npy (RUST_LOSS, temperature TAU),
then trains the text tower (image tower frozen) on the run's train split (DATA/bow.npy,
features.npy, labels.npy) with that loss over in-batch pairs, and checks that the loss
over the whole split went down.
Usage: finetune_text.py RUN DATA RUST_LOSS TAU"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgcn_torch import contrastive_loss, load_run, positives

run_dir, data = sys.argv[1], Path(sys.argv[2])
rust_loss, tau = float(sys.argv[3]), float(sys.argv[4])
scores = torch.from_numpy(np.load(data / "scores.npy"))
positive = torch.from_numpy(np.load(data / "positive.npy")).bool()
py_loss = float(contrastive_loss(scores, positive, tau))
assert abs(py_loss - rust_loss) <= 1e-5, f"contrastive loss: Python {py_loss} vs Rust {rust_loss}"

torch.manual_seed(0)
run = load_run(run_dir)
m = run.model
bow = torch.from_numpy(np.load(data / "bow.npy")).float()
feats = torch.from_numpy(np.load(data / "features.npy")).float()
labels = torch.from_numpy(np.load(data / "labels.npy")).float()
with torch.no_grad():
    image = m.encode_image(feats)  # the image tower stays fixed


def split_loss():
    m.eval()
    with torch.no_grad():
        s = m.scorer.matrix(m.encode_text(bow), image)
        return float(contrastive_loss(s, positives(labels), tau))


for p in m.parameters():
    p.requires_grad_(False)
for p in m.text.parameters():
    p.requires_grad_(True)
opt = torch.optim.Adam([p for p in m.text.parameters()], lr=3e-3)
before = split_loss()
n, batch = bow.shape[0], 32
for step in range(30):
    m.train()
    idx = torch.randperm(n)[:batch]
    s = m.scorer.matrix(m.encode_text(bow[idx]), image[idx])
    loss = contrastive_loss(s, positives(labels[idx]), tau)
    opt.zero_grad()
    loss.backward()
    opt.step()
after = split_loss()
print(json.dumps({"contrastive_python": py_loss, "contrastive_rust": rust_loss, "split_loss_before": before,
                  "split_loss_after": after}))
assert after < before - 1e-3, f"fine-tuning did not lower the loss: {before} -> {after}"
