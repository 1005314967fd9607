"""Test fixture for `tests/featurize_tests.rs`: a tiny seeded CNN as TorchScript, and the
Python side of the Rust-vs-Python check.

  python scripts/make_tiny_cnn.py make OUT.pt
      writes a traced CNN mapping [N, 3, H, W] -> [N, 6] (any H, W >= 4: global pooling)
  python scripts/make_tiny_cnn.py forward MODEL.pt INPUTS.npy SIDE OUT.npy
      loads MODEL.pt with torch.jit.load, runs it on INPUTS.npy ([N, 3*SIDE*SIDE] float32,
      the tensors Rust preprocessed, reshaped to [N, 3, SIDE, SIDE]) and saves [N, D]
"""

import sys

import numpy as np
import torch
from torch import nn


class TinyCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 5, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(5, 6, kernel_size=3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = self.bn(self.conv2(x))
        # Mean and max pooling mixed, so that the output depends on where things are.
        return x.mean(dim=(2, 3)) + 0.5 * x.amax(dim=(2, 3))  # [N, 6]


def make(out: str) -> None:
    torch.manual_seed(1234)
    model = TinyCnn()
    with torch.no_grad():
        # Non-trivial BatchNorm statistics, so eval mode matters.
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    traced = torch.jit.trace(model, torch.randn(2, 3, 16, 16))
    traced.save(out)


def forward(model_path: str, inputs: str, side: int, out: str) -> None:
    model = torch.jit.load(model_path)
    model.eval()
    x = torch.from_numpy(np.load(inputs)).reshape(-1, 3, side, side)
    with torch.no_grad():
        y = model(x)
    np.save(out, y.numpy().astype(np.float32))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "forward":
        forward(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit(__doc__)
