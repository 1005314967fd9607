"""load_run(RUN): a trained tgcn run as PyTorch modules.

Reads RUN/config.yaml (the model's shape and the text settings), the checkpoint the run
was tested with (checkpoints/best or refit .safetensors, verified against its sidecar's
SHA-256), and from RUN/export/ (written by `tgcn train` with export on, or
`tgcn export --run RUN`): vocab.txt, L~ (laplacian.safetensors), the image normalisation
(image_norm.safetensors), the ranker's constants (ranker.safetensors) and pytorch.json
naming them.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from .model import ImageNormalizer, Model, Ranker, SparseLaplacian, check_matrix
from .tokenize import Tokenizer


class Run:
    """A loaded run: `model` (a `Model`, in eval mode), `vocab` (list of words, index =
    vertex), `config` (config.yaml as a dict), `classes`, and the helpers below."""

    def __init__(self, path: Path, config: dict, info: dict, model: Model, vocab: list[str]):
        self.path, self.config, self.info, self.model, self.vocab = path, config, info, model, vocab
        self.word_index = {w: i for i, w in enumerate(vocab)}
        self.classes: list[str] = info.get("classes", [])
        text = config.get("text", {})
        self.pre_tokenized = bool(info.get("pre_tokenized", False))
        self.lowercase = bool(text.get("lowercase", False))
        self.max_tokens = text.get("max_tokens")
        self._text = text

    def __repr__(self) -> str:
        m = self.model
        return (f"Run({str(self.path)!r}: vocabulary {m.vocab_size}, image features {m.image_dim}, "
                f"embedding {m.embed_dim}, ranking {m.ranker.kind})")

    # The three modules' entry points, with named inputs.
    def encode_text(self, bow) -> torch.Tensor:
        """bow: [B, V] word counts (vocab.txt order) -> [B, D]."""
        return self.model.encode_text(bow)

    def encode_image(self, features) -> torch.Tensor:
        """features: [B, F] raw image features -> [B, D]."""
        return self.model.encode_image(features)

    def score(self, text, image) -> torch.Tensor:
        """text: [Nt, D], image: [Ni, D] -> [Nt, Ni], the scores the evaluation ranks by."""
        return self.model.score(text, image)

    def tokenize(self, text: str) -> list[str]:
        """Raw text -> tokens, as the run's dataset texts were cut (whitespace for
        pre-tokenized datasets such as synthetic, the English tokenizer for raw text)."""
        if self.pre_tokenized:
            tokens = text.split()
        else:
            t = self._text
            tokens = Tokenizer(t.get("language", "en"), t.get("stop_words", True), t.get("stem", False)).tokenize(text)
        if self.lowercase:
            tokens = [w.lower() for w in tokens]
        if self.max_tokens is not None:
            tokens = tokens[: int(self.max_tokens)]
        return tokens

    def bow(self, tokens) -> torch.Tensor:
        """Word counts [B, V] float32 for a list of token lists (or one token list -> [1, V]);
        out-of-vocabulary tokens are ignored. A string is tokenized first (`tokenize`)."""
        if isinstance(tokens, str):
            tokens = [self.tokenize(tokens)]
        elif tokens and all(isinstance(t, str) for t in tokens):
            tokens = [tokens]
        out = torch.zeros(len(tokens), len(self.vocab))
        for r, toks in enumerate(tokens):
            if isinstance(toks, str):
                toks = self.tokenize(toks)
            for w, c in Counter(toks).items():
                i = self.word_index.get(w)
                if i is not None:
                    out[r, i] = c
        return out


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is absent: is {path.parent} a tgcn run folder?") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_run(run, device: str | torch.device = "cpu") -> Run:
    """The run folder `run` (a `tgcn train` output) as a `Run`: `.encode_text(bow=...)`,
    `.encode_image(features=...)`, `.score(text, image)`, `.bow(tokens)`, `.model` (the
    `torch.nn.Module`, in eval mode)."""
    path = Path(run)
    config = _read_yaml(path / "config.yaml")
    export = path / "export"
    info_path = export / "pytorch.json"
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} is absent: run `tgcn export --run {path}` (it writes L~, the image "
            "normalisation and the ranker's constants there)"
        )
    info = json.loads(info_path.read_text())
    vocab = (export / info["vocabulary_file"]).read_text(encoding="utf-8").split("\n")[:-1]
    v, f = int(info["vocabulary_size"]), int(info["image_dim"])
    if len(vocab) != v:
        raise ValueError(f"{export / info['vocabulary_file']} has {len(vocab)} words, pytorch.json says {v}")

    model_cfg = config["model"]
    t = load_file(str(export / info["laplacian"]["file"]))
    lap = SparseLaplacian(t["indices"], t["values"], v)
    own_vertices = t.get("own_vertices")
    relations = [(n, SparseLaplacian(t[f"indices_{n}"], t[f"values_{n}"], v)) for n in info["laplacian"].get("relations", [])]
    norm_t = load_file(str(export / info["image_norm"]["file"]))
    norm = ImageNormalizer(norm_t["shift"], norm_t["scale"], info["image_norm"]["kind"], bool(info["image_norm"]["sqrt"]))

    weights = path / info["checkpoint"]
    sidecar = json.loads((path / info["checkpoint_sidecar"]).read_text())
    sha = _sha256(weights)
    if sha != sidecar["weights_sha256"]:
        raise ValueError(f"{weights} does not match the SHA-256 in {path / info['checkpoint_sidecar']}: "
                         "the checkpoint is damaged or being written")
    if info.get("weights_sha256") and sha != info["weights_sha256"]:
        raise ValueError(f"{export} was written for another {weights.name} than the run holds now: "
                         f"run `tgcn export --run {path}` to bring it up to date")
    state = load_file(str(weights))
    classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else None
    model = Model(model_cfg, v, f, lap, norm, classes, own_vertices, relations)
    model.load_rust_state(state)

    r = info["ranking"]
    tensors = load_file(str(export / r["file"])) if r.get("file") else {}
    if "present" in tensors:
        tensors["present"] = tensors["present"].bool()
    model.ranker = Ranker(r["kind"], tensors, r.get("temperature", 1.0), r.get("multi_label", False))
    model.eval()
    model.to(device)
    return Run(path, config, info, model, vocab)


__all__ = ["load_run", "Run", "check_matrix"]
