"""Parity of the PyTorch side with Rust: the tgcn_torch modules (load_run), the .pt2 files
(torch.export.load) and the .onnx files (ONNX Runtime) each reproduce the Rust outputs in
RUN/export/example/ within TOL, at batch sizes 1, n and n + 3 (n = the example rows); the
ONNX inputs are named bow / features / text, image; wrong-shaped inputs give errors that
name the expected shape. Prints one JSON line of the max abs differences.
Usage: check_pytorch.py RUN [TOL]"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from tgcn_torch import load_run

run_dir = Path(sys.argv[1])
tol = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-5
d = run_dir / "export"
ex = {p: torch.from_numpy(np.load(d / "example" / f"{p}.npy")) for p in
      ["text_input", "text_output", "image_input", "image_output", "score_output"]}
n = ex["text_input"].shape[0]


def batches(x):
    """Inputs at three batch sizes: the first row, all n, and n + 3 (rows repeated)."""
    return {"1": x[:1], str(n): x, str(n + 3): torch.cat([x, x[: min(3, n)].repeat(3, 1)[:3]])}


def expected(y):
    return batches(y)


def diff(a, b):
    a = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs Rust's {tuple(b.shape)}"
    return float((a.float() - b.float()).abs().max())


run = load_run(run_dir)
pt2 = {k: torch.export.load(str(d / f"{k}.pt2")).module() for k in ["text_encoder", "image_encoder", "scorer"]}
sess = {k: ort.InferenceSession(str(d / f"{k}.onnx"), providers=["CPUExecutionProvider"])
        for k in ["text_encoder", "image_encoder", "scorer"]}
names = {k: [i.name for i in s.get_inputs()] for k, s in sess.items()}
assert names == {"text_encoder": ["bow"], "image_encoder": ["features"], "scorer": ["text", "image"]}, names
for k, s in sess.items():
    shape0 = s.get_inputs()[0].shape[0]
    assert isinstance(shape0, str), f"{k}.onnx has a fixed batch axis {shape0}"

backends = {
    "module": (lambda b: run.encode_text(bow=b), lambda f: run.encode_image(features=f), lambda t, i: run.score(t, i)),
    "pt2": (pt2["text_encoder"], pt2["image_encoder"], pt2["scorer"]),
    "onnx": (
        lambda b: sess["text_encoder"].run(None, {"bow": b.numpy()})[0],
        lambda f: sess["image_encoder"].run(None, {"features": f.numpy()})[0],
        lambda t, i: sess["scorer"].run(None, {"text": t.numpy(), "image": i.numpy()})[0],
    ),
}
report = {}
with torch.no_grad():
    for name, (text, image, score) in backends.items():
        worst = {"text": 0.0, "image": 0.0, "score": 0.0}
        for size, bow in batches(ex["text_input"]).items():
            feats = batches(ex["image_input"])[size]
            t = torch.as_tensor(np.asarray(text(bow)))
            i = torch.as_tensor(np.asarray(image(feats)))
            worst["text"] = max(worst["text"], diff(t, expected(ex["text_output"])[size]))
            worst["image"] = max(worst["image"], diff(i, expected(ex["image_output"])[size]))
            # Scores of the batch's texts against the n example images (Rust's score rows).
            s = score(t.float().contiguous(), ex["image_output"])
            worst["score"] = max(worst["score"], diff(s, expected(ex["score_output"])[size]))
        for k, v in worst.items():
            report[f"{name}_{k}_max_abs_diff"] = v

# Wrong shapes: the module raises ValueError naming [batch, V]; the .pt2 and the .onnx
# refuse the input with a message that names the expected width.
v = ex["text_input"].shape[1]
errors = {}
for bad, label in [(ex["text_input"][0], "1-D"), (ex["text_input"][:, :-1], "narrow")]:
    try:
        run.encode_text(bow=bad)
        raise AssertionError(f"a {label} bow was accepted")
    except ValueError as e:
        assert f"[batch, {v}]" in str(e), str(e)
        errors[f"module_{label}"] = str(e)
    for kind, call in [("pt2", lambda b: pt2["text_encoder"](b)),
                       ("onnx", lambda b: sess["text_encoder"].run(None, {"bow": b.numpy()}))]:
        try:
            call(bad)
            accepted = True
        except Exception as e:  # noqa: BLE001 - each runtime has its own error type
            accepted, msg = False, str(e)
        assert not accepted, f"{kind}: a {label} bow was accepted"
        if True:
            if label == "narrow":
                assert str(v) in msg, f"{kind}: the error does not name the width {v}: {msg}"
            errors[f"{kind}_{label}"] = msg.strip().splitlines()[0][:200]

print(json.dumps({**report, "errors": errors}))
bad = {k: x for k, x in report.items() if not x <= tol}
assert not bad, f"outputs differ from Rust's beyond {tol}: {bad}"
