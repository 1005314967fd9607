"""python -m tgcn_torch.export RUN: writes RUN/export/{text_encoder,image_encoder,scorer}
.pt2 (torch.export) and .onnx (input names `bow`, `features`, `text`/`image`; a dynamic
batch axis), and lists them in RUN/export/manifest.json. `tgcn train` (export on) and
`tgcn export --run RUN` call it after the TorchScript export."""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

MISSING = 3  # exit status: a package is missing


def _replace(tmp: Path, dst: Path) -> None:
    os.replace(tmp, dst)


def export_run(run_path, quiet: bool = False) -> dict:
    import numpy as np
    import torch

    from .model import ImageEncoder, ScoreModule, TextEncoder
    from .run import load_run

    import logging

    # The exporters log notes (optional torchvision ops, archive names) at WARNING.
    for name in ["torch.export", "torch.onnx", "torch._export", "torch.fx", "torch._dynamo"]:
        logging.getLogger(name).setLevel(logging.ERROR)
    run = load_run(run_path)
    m = run.model
    d = Path(run_path) / "export"
    ex = d / "example"
    # Example inputs of the export (the Rust outputs on them are beside), else zeros.
    def example(name, width):
        p = ex / f"{name}.npy"
        x = torch.from_numpy(np.load(p)) if p.is_file() else torch.zeros(4, width)
        return x if x.shape[0] >= 2 else x.repeat(2, 1)

    bow, feats = example("text_input", m.vocab_size), example("image_input", m.image_dim)
    with torch.no_grad():
        t, i = m.encode_text(bow), m.encode_image(feats)
    batch = torch.export.Dim("batch", min=1)
    nt, ni = torch.export.Dim("texts", min=1), torch.export.Dim("images", min=1)
    specs = [
        ("text_encoder", TextEncoder(m), (bow,), ["bow"], {"bow": {0: batch}}),
        ("image_encoder", ImageEncoder(m), (feats,), ["features"], {"features": {0: batch}}),
        ("scorer", ScoreModule(m), (t, i), ["text", "image"], {"text": {0: nt}, "image": {0: ni}}),
    ]
    written = {}
    for name, module, args, names, dyn in specs:
        module.eval()
        with torch.no_grad():
            ep = torch.export.export(module, args, dynamic_shapes=dyn)
        pt2 = d / f"{name}.pt2"
        tmp = d / f"{name}.partial.pt2"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.export.save(ep, str(tmp))
        _replace(tmp, pt2)
        onnx = d / f"{name}.onnx"
        tmp = d / f"{name}.partial.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(ep, args, input_names=names, output_names=["scores" if name == "scorer" else "embedding"],
                                     dynamo=True, verbose=False, optimize=True)
        prog.save(str(tmp), external_data=False)
        _replace(tmp, onnx)
        written[name] = names
    manifest_path = d / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    dims = {"text_encoder": [["B", m.vocab_size]], "image_encoder": [["B", m.image_dim]],
            "scorer": [["Nt", m.embed_dim], ["Ni", m.embed_dim]]}
    manifest["pytorch"] = {
        "note": "the same modules with named inputs and a dynamic batch axis: .pt2 for torch.export.load, "
                ".onnx for ONNX Runtime; python/tgcn_torch (load_run) is the model as torch.nn modules",
        "modules": {
            f"{name}{ext}": {"inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in zip(names, dims[name])]}
            for name, names in written.items() for ext in (".pt2", ".onnx")
        },
    }
    tmp = d / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    _replace(tmp, manifest_path)
    if not quiet:
        print(f"exported torch.export (.pt2) and ONNX modules to {d}", file=sys.stderr)
    return manifest["pytorch"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tgcn_torch.export RUN", file=sys.stderr)
        return 2
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
        import safetensors  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        print(f"missing Python package {e.name!r}: `make setup` installs python/requirements.txt", file=sys.stderr)
        return MISSING
    try:
        export_run(argv[0])
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
