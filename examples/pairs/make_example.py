"""Writes the tiny `pairs` example: 72 generated images with one caption each, no labels.

Usage: .venv/bin/python examples/pairs/make_example.py [OUT_DIR]   (default: examples/pairs)

Each image is a 32x32 PNG of one coloured shape (4 colours x 3 shapes x 3 positions x 2
sizes) on a light background; its caption names the size, colour, shape and place. `pairs.csv`
lists id, image and text (no labels, no split column), quoted where a caption holds a comma.
`backbone.pt` is a TorchScript featurizer with no weights: the mean colour of each cell of a
4x4 grid (48 numbers), which is enough to tell colours and positions apart.
"""
import csv
import os
import sys

import torch
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 60, 220), "yellow": (230, 200, 20)}
SHAPES = ["circle", "square", "triangle"]
PLACES = {"left": 8, "centre": 16, "right": 24}
SIZES = {"small": 4, "large": 7}
PHRASES = [
    "a {z} {c} {s} on the {p}",
    "{z} {c} {s}, {p} side of the picture",
    "the picture shows a {z} {c} {s} at the {p}",
]


class GridColour(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, 3, H, W] -> [N, 3, 4, 4] -> [N, 48]
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def draw(colour, shape, x, r):
    img = Image.new("RGB", (32, 32), (245, 245, 240))
    d = ImageDraw.Draw(img)
    box = (x - r, 16 - r, x + r, 16 + r)
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    else:
        d.polygon([(x, 16 - r), (x - r, 16 + r), (x + r, 16 + r)], fill=colour)
    return img


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rows = []
    n = 0
    for c, rgb in COLOURS.items():
        for s in SHAPES:
            for p, x in PLACES.items():
                for z, r in SIZES.items():
                    pid = f"p{n:02d}"
                    draw(rgb, s, x, r).save(os.path.join(out, "images", f"{pid}.png"))
                    text = PHRASES[n % len(PHRASES)].format(z=z, c=c, s=s, p=p)
                    rows.append({"id": pid, "image": f"{pid}.png", "text": text})
                    n += 1
    with open(os.path.join(out, "pairs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "image", "text"])
        w.writeheader()
        w.writerows(rows)
    torch.jit.script(GridColour()).save(os.path.join(out, "backbone.pt"))
    print(f"wrote {n} pairs, their images and backbone.pt to {out}")


if __name__ == "__main__":
    main()
