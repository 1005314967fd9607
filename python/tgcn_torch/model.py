"""The tgcn model as plain torch.nn modules, mirroring the Rust model (src/model/) layer by
layer, with the same parameter names, so that a run's safetensors checkpoint loads as is.

Text tower (`gcn`): bow [B, V] -> input transform (counts | log1p | binary, optional row
L2, dropout) -> [V, B, 1] vertex-major -> Chebyshev stack -> [B, V, F] -> flatten [B, V*F]
(with concat_bow, the input beside it: [B, V*F + V]) -> FC layers -> [B, D].
Text tower (`mlp`): the transformed bow [B, V] (with smooth, its fixed smoothing -L~x
beside it: [B, 2V]) -> FC layers -> [B, D]. With own_input_min_count, only the vertices
in `own_vertices` (words seen often enough in training) keep their own features and
inputs in the FC input; the others reach it through their graph neighbours. With
graph.combine: separate, one Chebyshev stack per relation (`cheb_<relation>`), each on its
own L~, their features side by side: [B, V, F * relations].
Image tower: raw features [B, F] -> train-split normalisation -> MLP -> [B, D].
Scorers: product s(t, i) = w.(t * i) + b, or cosine. Rankers: the scorer, or the inner
product of class posteriors (train-split class means, or the label classifier).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def check_matrix(x, width: int, name: str, what: str) -> Tensor:
    """`x` as a float32 [batch, width] tensor, or a ValueError naming the expected shape."""
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x)
    if x.dim() != 2 or x.shape[1] != width:
        raise ValueError(
            f"`{name}` must be a 2-D [batch, {width}] tensor ({what}), got shape {list(x.shape)}"
            + ("; add a batch axis with x.unsqueeze(0)" if x.dim() == 1 and x.shape[0] == width else "")
        )
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x.to(torch.float32)


class SparseLaplacian(nn.Module):
    """L~ as CSR (`cols`, `values` per entry, rows sorted; `rowptr` [V+1]) and the product
    L~ x for x: [V, C] -> [V, C].

    The product gathers x at the column of every entry, scales by its value, and sums each
    row's segment as the difference of a running sum at the row's ends. It uses only
    index_select, mul, cumsum and sub, so torch.export and the ONNX exporter translate it
    exactly (no sparse tensors, no index_add/scatter with repeated indices). The running sum
    is kept in float64, so the differences lose nothing against a float32 row sum.
    """

    def __init__(self, indices: Tensor, values: Tensor, n: int):
        super().__init__()
        rows, cols = indices[0].long(), indices[1].long()
        if rows.numel() > 1 and bool((rows[1:] < rows[:-1]).any()):
            raise ValueError("L~ entries must be sorted by row (the export writes them so)")
        counts = torch.bincount(rows, minlength=n)
        rowptr = torch.zeros(n + 1, dtype=torch.long)
        rowptr[1:] = torch.cumsum(counts, 0)
        self.n = n
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("values", values.to(torch.float64), persistent=False)
        self.register_buffer("row_start", rowptr[:-1].clone(), persistent=False)
        self.register_buffer("row_end", rowptr[1:].clone(), persistent=False)

    def to_dense(self) -> Tensor:
        """L~ as a dense [V, V] float32 matrix (for inspection)."""
        rows = torch.repeat_interleave(torch.arange(self.n), self.row_end - self.row_start)
        d = torch.zeros(self.n, self.n, dtype=torch.float64)
        d[rows, self.cols] = self.values
        return d.float()

    def forward(self, x: Tensor) -> Tensor:  # [V, C] -> [V, C]
        contrib = x.index_select(0, self.cols).to(torch.float64) * self.values.unsqueeze(1)  # [nnz, C]
        run = torch.cat([contrib.new_zeros(1, contrib.shape[1]), torch.cumsum(contrib, 0)], 0)  # [nnz+1, C]
        return (run.index_select(0, self.row_end) - run.index_select(0, self.row_start)).to(x.dtype)


class ChebConv(nn.Module):
    """K Chebyshev terms mapping F_in to F_out features per vertex (PyG's names: `lins.{k}.weight`
    [F_out, F_in], `bias` [F_out] per filter or [V, F_out] per vertex)."""

    def __init__(self, k: int, f_in: int, f_out: int, per_vertex_bias: bool, n_vertices: int):
        super().__init__()
        self.f_in, self.f_out = f_in, f_out
        self.lins = nn.ModuleList(nn.Linear(f_in, f_out, bias=False) for _ in range(k))
        self.bias = nn.Parameter(torch.zeros(n_vertices, f_out) if per_vertex_bias else torch.zeros(f_out))

    def forward_vertex_major(self, lap: SparseLaplacian, xs: Tensor) -> Tensor:
        """xs: [V, B, F_in] -> [V, B, F_out]."""
        f_in = self.f_in
        terms = [xs]
        if len(self.lins) > 1:
            prev = xs.flatten(1, 2)  # [V, B*F_in]
            cur = lap(prev)
            terms.append(cur.unflatten(1, (-1, f_in)))
            for _ in range(2, len(self.lins)):
                nxt = lap(cur) * 2.0 - prev
                terms.append(nxt.unflatten(1, (-1, f_in)))
                prev, cur = cur, nxt
        if f_in == 1:
            # Σ_k T_k Θ_k as broadcast products [V, B, 1] x [1, F_out], in order (as Rust).
            out = terms[0] * self.lins[0].weight.t()
            for t, lin in zip(terms[1:], self.lins[1:]):
                out = out + t * lin.weight.t()
        else:
            w = torch.cat([lin.weight.t() for lin in self.lins], 0)  # [K*F_in, F_out]
            out = torch.cat(terms, 2).matmul(w)  # [V, B, F_out]
        return out + (self.bias.unsqueeze(1) if self.bias.dim() == 2 else self.bias)


def activate(x: Tensor, kind: str) -> Tensor:
    if kind == "relu":
        return torch.relu(x)
    if kind == "leaky_relu":
        return nn.functional.leaky_relu(x, 0.01)
    return x


class Mlp(nn.Module):
    """Hidden ReLU layers `fc.{i}` (each followed by dropout while training), then the
    linear output layer `out`: [B, F_in] -> [B, F_out]."""

    def __init__(self, f_in: int, hidden: list[int], f_out: int, dropout: float):
        super().__init__()
        dims = [f_in, *hidden]
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out = nn.Linear(dims[-1], f_out)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        for lin in self.fc:
            x = torch.relu(lin(x))
            if self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout, self.training)
        return self.out(x)


class TextTower(nn.Module):
    """bow: [B, V] word counts (vertex order = vocab.txt) -> [B, D]."""

    def __init__(self, cfg: dict, vocab: int, embed_dim: int, laplacian: SparseLaplacian | None,
                 own_vertices: Tensor | None = None, relations: list[tuple[str, SparseLaplacian]] | None = None):
        super().__init__()
        self.kind = cfg["kind"]
        self.input = cfg.get("input", "counts")
        self.input_l2 = bool(cfg.get("input_l2", False))
        self.input_dropout = float(cfg.get("input_dropout", 0.0))
        self.concat_bow = bool(cfg.get("concat_bow", False))
        self.smooth = bool(cfg.get("smooth", False))
        if int(cfg.get("own_input_min_count", 0)) > 0 and own_vertices is None:
            raise ValueError("own_input_min_count is set but the export has no own_vertices")
        self.register_buffer("own_vertices", None if own_vertices is None else own_vertices.long(), persistent=False)
        n_own = vocab if own_vertices is None else int(own_vertices.numel())
        self.activation = cfg["activation"]
        self.last_activation = cfg["last_activation"]
        self.n_vertices = vocab
        self.cheb = nn.ModuleList()
        flat = n_own + (vocab if self.smooth else 0)
        if self.smooth or self.kind == "gcn":
            if laplacian is None:
                raise ValueError("a gcn text tower, or smooth, needs L~")
            self.laplacian = laplacian
        # (stack attribute, its L~): `cheb` on the word graph, or `cheb_<relation>` on each
        # relation's own L~ (graph.combine: separate).
        self.stacks = [("cheb", laplacian)]
        if relations:
            self.stacks = [(f"cheb_{n}", lap) for n, lap in relations]
            for n, lap in relations:
                setattr(self, f"cheb_{n}", nn.ModuleList())
                self.add_module(f"laplacian_{n}", lap)
        if self.kind == "gcn":
            for name, _ in self.stacks:
                f_in = 1
                for layer in cfg["cheb"]:
                    getattr(self, name).append(ChebConv(layer["k"], f_in, layer["filters"], cfg["bias"] == "per_vertex", vocab))
                    f_in = layer["filters"]
            f = f_in * len(self.stacks)
            flat = n_own * f + (n_own if self.concat_bow else 0)
        self.mlp = Mlp(flat, list(cfg.get("fc", [])), embed_dim, float(cfg.get("dropout", 0.0)))

    def input_signal(self, bow: Tensor) -> Tensor:
        """The bag of words as the tower sees it: [B, V] -> [B, V]."""
        if self.input == "log1p":
            x = torch.log1p(bow)
        elif self.input == "binary":
            x = (bow > 0).to(bow.dtype)
        else:
            x = bow
        if self.input_l2:
            x = x / x.norm(2, dim=1, keepdim=True).clamp_min(1e-12)
        return x

    def graph_layers(self, x: Tensor) -> Tensor:
        """The Chebyshev stack on an input signal [B, V] -> [B, V, F]."""
        x = x.t().contiguous().unsqueeze(-1)  # [V, B, 1], vertex-major
        outs = []
        for name, lap in self.stacks:
            h, layers = x, getattr(self, name)
            for i, layer in enumerate(layers):
                h = activate(layer.forward_vertex_major(lap, h), self.last_activation if i == len(layers) - 1 else self.activation)
            outs.append(h)
        h = outs[0] if len(outs) == 1 else torch.cat(outs, 2)
        return h.transpose(0, 1)  # [B, V, F]

    def forward(self, bow: Tensor) -> Tensor:
        x = self.input_signal(bow)
        if self.input_dropout > 0:
            x = nn.functional.dropout(x, self.input_dropout, self.training)
        if self.kind == "gcn":
            g = self.own(self.graph_layers(x)).flatten(1, 2)  # [B, V*F]
            h = torch.cat([g, self.own(x)], 1) if self.concat_bow else g
        elif self.smooth:
            h = torch.cat([self.own(x), -self.laplacian(x.t().contiguous()).t()], 1)  # [B, V_own + V]
        else:
            h = self.own(x)
        return self.mlp(h)

    def own(self, x: Tensor) -> Tensor:
        """The vertices of x [B, V, ...] whose own inputs reach the FC layers."""
        return x if self.own_vertices is None else x.index_select(1, self.own_vertices)


class ImageNormalizer(nn.Module):
    """Raw features [B, F] -> the train-split normalisation the image tower was trained on:
    optional √x, then (x - shift) / scale, then an optional row L2 (`data.image_norm: l2`)."""

    def __init__(self, shift: Tensor, scale: Tensor, kind: str, sqrt: bool):
        super().__init__()
        self.kind, self.sqrt = kind, sqrt
        self.register_buffer("shift", shift.float(), persistent=False)
        self.register_buffer("scale", scale.float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.sqrt:
            x = x.clamp_min(0.0).sqrt()
        y = (x - self.shift) / self.scale
        if self.kind == "l2":
            y = y / y.norm(2, dim=1, keepdim=True).clamp_min(1e-12)
        return y


class ImageTower(nn.Module):
    """features: [B, F] raw image features -> [B, D]; the normalisation is inside."""

    def __init__(self, image_dim: int, hidden: list[int], embed_dim: int, dropout: float, norm: ImageNormalizer):
        super().__init__()
        self.norm = norm
        self.mlp = Mlp(image_dim, hidden, embed_dim, dropout)

    def forward(self, features: Tensor) -> Tensor:
        return self.mlp(self.norm(features))


class Scorer(nn.Module):
    """The trained scorer. `product`: s(t, i) = w.(t * i) + b (parameters `weight` [1, D],
    `bias` [1]); `cosine`: t.i / (|t||i|)."""

    def __init__(self, kind: str, embed_dim: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.dropout = dropout
        if kind == "product":
            self.weight = nn.Parameter(torch.zeros(1, embed_dim))
            self.bias = nn.Parameter(torch.zeros(1))

    def pairs(self, t: Tensor, i: Tensor) -> Tensor:
        """Scores of aligned pairs: t, i: [N, D] -> [N] (dropout on t * i while training)."""
        if self.kind == "product":
            x = nn.functional.dropout(t * i, self.dropout, self.training)
            return nn.functional.linear(x, self.weight, self.bias).squeeze(-1)
        return nn.functional.cosine_similarity(t, i, 1, 1e-8)

    def matrix(self, t: Tensor, i: Tensor) -> Tensor:
        """Score matrix t: [Nt, D], i: [Ni, D] -> [Nt, Ni] (dropout on the text side while training)."""
        if self.kind == "product":
            t = nn.functional.dropout(t, self.dropout, self.training)
            return (t * self.weight.squeeze(0)).mm(i.t()) + self.bias
        tn = t / t.norm(2, dim=1, keepdim=True).clamp_min(1e-8)
        inn = i / i.norm(2, dim=1, keepdim=True).clamp_min(1e-8)
        return tn.mm(inn.t())


class Ranker(nn.Module):
    """What the evaluation ranks by (`eval.ranking`), as scores [Nt, Ni] of embeddings.

    `scorer`: the trained scorer. `class_posterior`: Σ_c p(c|t) p(c|i) with
    p = softmax(cos(e, train-split class mean of its modality) / τ) over the classes with
    train items. `classifier`: the same with p from the label classifier (softmax, or a
    sigmoid per class for multi-label data).
    """

    def __init__(self, kind: str, tensors: dict[str, Tensor] | None = None,
                 temperature: float = 1.0, multi_label: bool = False):
        super().__init__()
        self.kind = kind
        self.temperature, self.multi_label = float(temperature), bool(multi_label)
        tensors = tensors or {}
        for name, t in tensors.items():
            self.register_buffer(name, t, persistent=False)

    def posterior(self, e: Tensor, means: Tensor) -> Tensor:
        unit = e / e.norm(2, dim=1, keepdim=True).clamp_min(1e-12)
        logits = unit.mm(means.t()) / self.temperature
        return logits.masked_fill(self.present.logical_not().unsqueeze(0), float("-inf")).softmax(1)

    def represent_text(self, t: Tensor) -> Tensor:
        if self.kind == "class_posterior":
            return self.posterior(t, self.text_means)
        if self.kind == "classifier":
            return self.classify(t)
        return t

    def represent_image(self, i: Tensor) -> Tensor:
        if self.kind == "class_posterior":
            return self.posterior(i, self.image_means)
        if self.kind == "classifier":
            return self.classify(i)
        return i

    def classify(self, e: Tensor) -> Tensor:
        logits = nn.functional.linear(e, self.weight, self.bias)
        return logits.sigmoid() if self.multi_label else logits.softmax(1)

    def forward(self, text: Tensor, image: Tensor, scorer: Scorer) -> Tensor:
        t, i = self.represent_text(text), self.represent_image(image)
        if self.kind == "scorer":
            return scorer.matrix(t, i)
        return t.mm(i.t())


class Model(nn.Module):
    """The whole trained model. Parameter names match the Rust checkpoint (`text.*`,
    `image.*`, `scorer.*`, `classifier.*`)."""

    def __init__(self, model_cfg: dict, vocab: int, image_dim: int, laplacian: SparseLaplacian | None,
                 image_norm: ImageNormalizer, classes: int | None = None, own_vertices: Tensor | None = None,
                 relations: list[tuple[str, SparseLaplacian]] | None = None):
        super().__init__()
        d = int(model_cfg["embed_dim"])
        self.embed_dim, self.vocab_size, self.image_dim = d, vocab, image_dim
        self.text = TextTower(model_cfg["text"], vocab, d, laplacian, own_vertices, relations)
        img = model_cfg["image"]
        self.image = ImageTower(image_dim, list(img.get("hidden", [])), d, float(img.get("dropout", 0.0)), image_norm)
        self.scorer = Scorer(model_cfg["scorer"], d, float(model_cfg.get("dropout", 0.0)))
        self.classifier = nn.Linear(d, classes) if classes else None
        self.ranker: Ranker | None = None

    # The Rust checkpoint names the text MLP `text.mlp.*` and the image MLP `image.*`.
    def load_rust_state(self, state: dict[str, Tensor]) -> None:
        mapped = {}
        for k, v in state.items():
            if k.startswith("loss."):
                continue
            if k.startswith("image."):
                k = "image.mlp." + k[len("image."):]
            mapped[k] = v
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        if missing or unexpected:
            raise ValueError(f"the checkpoint does not fit the model of config.yaml: missing {missing}, unexpected {unexpected}")

    def encode_text(self, bow) -> Tensor:
        """bow: [B, V] float32 word counts (vertex order = vocab.txt) -> [B, D]."""
        return self.text(check_matrix(bow, self.vocab_size, "bow", "word counts in vocab.txt order"))

    def encode_image(self, features) -> Tensor:
        """features: [B, F] raw image features -> [B, D] (the normalisation is inside)."""
        return self.image(check_matrix(features, self.image_dim, "features", "raw image features"))

    def score(self, text, image) -> Tensor:
        """text: [Nt, D], image: [Ni, D] embeddings -> [Nt, Ni], the scores the evaluation ranks by."""
        t = check_matrix(text, self.embed_dim, "text", "text embeddings")
        i = check_matrix(image, self.embed_dim, "image", "image embeddings")
        return self.ranker(t, i, self.scorer)


class TextEncoder(nn.Module):
    """Export wrapper: `bow` [B, V] -> [B, D]."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(self, bow: Tensor) -> Tensor:
        return self.model.encode_text(bow)


class ImageEncoder(nn.Module):
    """Export wrapper: `features` [B, F] -> [B, D]."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(self, features: Tensor) -> Tensor:
        return self.model.encode_image(features)


class ScoreModule(nn.Module):
    """Export wrapper: (`text` [Nt, D], `image` [Ni, D]) -> [Nt, Ni]."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(self, text: Tensor, image: Tensor) -> Tensor:
        return self.model.score(text, image)
