"""tgcn_torch: a trained tgcn run (the Rust trainer's output folder) as PyTorch modules.

    from tgcn_torch import load_run
    run = load_run("runs/synthetic/<run>")
    t = run.encode_text(bow=run.bow([["w1", "w2"], ["w3"]]))     # [2, D]
    i = run.encode_image(features=torch.randn(5, run.model.image_dim))
    s = run.score(t, i)                                          # [2, 5]

`run.model` is a plain torch.nn.Module (parameters named as in the Rust checkpoint), for
fine-tuning; `python -m tgcn_torch.export RUN` writes the .pt2 (torch.export) and .onnx
modules into RUN/export/.
"""
from .loss import contrastive_loss, global_loss, positives
from .model import Model
from .run import Run, load_run
from .tokenize import Tokenizer

__all__ = ["load_run", "Run", "Model", "Tokenizer", "contrastive_loss", "global_loss", "positives"]
