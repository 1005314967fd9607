"""Loads a run's TorchScript export with torch.jit.load, runs it on the example inputs
that Rust wrote, and checks the outputs against Rust's within a tolerance. Also runs a
different batch size, to show the traced graphs keep the batch dimension free.
Usage: check_export.py RUN/export [TOL]"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

d = Path(sys.argv[1])
tol = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5
manifest = json.loads((d / "manifest.json").read_text())
ex = {p: torch.from_numpy(np.load(d / "example" / f"{p}.npy")) for p in
      ["text_input", "text_output", "image_input", "image_output", "score_output"]}
text = torch.jit.load(str(d / "text_encoder.pt"))
image = torch.jit.load(str(d / "image_encoder.pt"))
scorer = torch.jit.load(str(d / "scorer.pt"))
vocab = (d / "vocab.txt").read_text().split("\n")[:-1]
assert len(vocab) == manifest["vocabulary_size"] == ex["text_input"].shape[1], "vocabulary size"

with torch.no_grad():
    t = text(ex["text_input"])
    i = image(ex["image_input"])
    s = scorer(t, i)
    report = {
        "text_max_abs_diff": float((t - ex["text_output"]).abs().max()),
        "image_max_abs_diff": float((i - ex["image_output"]).abs().max()),
        "score_max_abs_diff": float((s - ex["score_output"]).abs().max()),
    }
    # Another batch size: rows must equal the full-batch rows.
    t1 = text(ex["text_input"][:1])
    i3 = image(torch.cat([ex["image_input"], ex["image_input"][:1]]))
    report["batch1_text_diff"] = float((t1 - t[:1]).abs().max())
    report["batch_plus1_image_diff"] = float((i3[:-1] - i).abs().max())
    report["scorer_shape"] = list(scorer(t1, i3).shape)

print(json.dumps(report))
bad = {k: v for k, v in report.items() if k.endswith("diff") and not v <= tol}
assert not bad, f"outputs differ beyond {tol}: {bad}"
assert report["scorer_shape"] == [1, i3.shape[0]], report["scorer_shape"]
