//! Model stage: the two towers and the scorer of the dual-path model (`cheb` is the
//! Chebyshev layer).
//!
//! Input: bag-of-words signals `[B, V]`, the sparse L̃ (from the graph stage) and image
//! features `[B, F_img]`. Output: embeddings `[B, D]` per modality and their scores.
//!
//! Text (`gcn`): bow `[B, V]` → `[B, V, 1]` → Chebyshev stack → `[B, V, F]` → flatten
//! `[B, V·F]` → FC layers → `[B, D]`. Text (`mlp`, the ablation): bow `[B, V]` → FC layers
//! → `[B, D]`. Image: features `[B, F_img]` → MLP → `[B, D]`. Hidden FC layers use ReLU,
//! the embedding layer is linear.
//!
//! Scorers: `product` (the authors'): s(t, i) = w·dropout(t ⊙ i) + b. At evaluation it is
//! the bilinear form S = (T ⊙ w) Iᵀ + b, one matrix product for a whole score matrix.
//! `cosine`: s(t, i) = t·i / (|t||i|).

pub mod cheb;

use crate::graph::laplacian::sparse_tensor;
use cheb::{cheb_conv, ChebBias, ChebConv, ChebLayerConfig};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub text: TextTowerConfig,
    pub image: ImageTowerConfig,
    /// Dimension of both towers' output.
    pub embed_dim: usize,
    pub scorer: ScorerKind,
    /// Dropout on t ⊙ i in the product scorer.
    pub dropout: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextTowerConfig {
    /// `gcn`: Chebyshev stack over the word graph; `mlp`: the ablation without a graph.
    pub kind: TextKind,
    pub cheb: Vec<ChebLayerConfig>,
    pub bias: ChebBias,
    pub activation: Activation,
    /// Activation after the last Chebyshev layer (the notes saw dead ReLU units there).
    pub last_activation: Activation,
    /// Hidden fully connected sizes between the flattened graph signal and the embedding.
    pub fc: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    Gcn,
    Mlp,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    LeakyRelu,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageTowerConfig {
    /// Hidden sizes of the image MLP before the embedding layer.
    pub hidden: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScorerKind {
    Product,
    Cosine,
}

fn activate(x: Tensor, a: Activation) -> Tensor {
    match a {
        Activation::Relu => x.relu(),
        Activation::LeakyRelu => x.leaky_relu(),
        Activation::None => x,
    }
}

/// Hidden ReLU layers then a linear output layer, named `fc/{i}` and `out`.
#[derive(Debug)]
pub struct Mlp {
    pub hidden: Vec<nn::Linear>,
    pub out: nn::Linear,
}

pub fn mlp(p: nn::Path, f_in: usize, hidden: &[usize], f_out: usize) -> Mlp {
    let mut dims = vec![f_in];
    dims.extend_from_slice(hidden);
    let hidden = dims
        .windows(2)
        .enumerate()
        .map(|(i, w)| nn::linear(&p / "fc" / i, w[0] as i64, w[1] as i64, Default::default()))
        .collect();
    let out = nn::linear(&p / "out", *dims.last().unwrap() as i64, f_out as i64, Default::default());
    Mlp { hidden, out }
}

impl Module for Mlp {
    /// `xs: [B, F_in] -> [B, F_out]`
    fn forward(&self, xs: &Tensor) -> Tensor {
        let h = self.hidden.iter().fold(xs.shallow_clone(), |h, l| l.forward(&h).relu());
        self.out.forward(&h)
    }
}

impl Mlp {
    pub fn weights(&self) -> Vec<&Tensor> {
        self.hidden.iter().chain(std::iter::once(&self.out)).map(|l| &l.ws).collect()
    }
}

#[derive(Debug)]
pub struct TextTower {
    pub kind: TextKind,
    pub cheb: Vec<ChebConv>,
    pub activation: Activation,
    pub last_activation: Activation,
    pub fc: Mlp,
    pub n_vertices: usize,
    /// L̃ as dense `[2, nnz]` indices and `[nnz]` values; the sparse tensor is built per forward.
    pub lap_indices: Tensor,
    pub lap_values: Tensor,
}

impl TextTower {
    /// `bow: [B, V] -> [B, D]`
    pub fn forward(&self, bow: &Tensor) -> Tensor {
        let h = match self.graph_features(bow) {
            Some(h) => h.flatten(1, 2), // [B, V, F] -> [B, V*F]
            None => bow.shallow_clone(),
        };
        self.fc.forward(&h)
    }

    /// Output of the graph layers `[B, V, F]` (for dead-unit diagnostics); None for `mlp`.
    pub fn graph_features(&self, bow: &Tensor) -> Option<Tensor> {
        if self.kind == TextKind::Mlp {
            return None;
        }
        let lap = sparse_tensor(&self.lap_indices, &self.lap_values, self.n_vertices);
        let mut h = bow.tr().contiguous().unsqueeze(-1); // [V, B, 1], vertex-major for the sparse products
        let last = self.cheb.len() - 1;
        for (i, layer) in self.cheb.iter().enumerate() {
            let a = if i == last { self.last_activation } else { self.activation };
            h = activate(layer.forward_vertex_major(&lap, &h), a); // [V, B, F_i]
        }
        Some(h.transpose(0, 1)) // [B, V, F]
    }
}

#[derive(Debug)]
pub struct Scorer {
    pub kind: ScorerKind,
    pub fc: Option<nn::Linear>,
    pub dropout: f64,
}

impl Scorer {
    /// Scores of aligned pairs: `t: [N, D], i: [N, D] -> [N]`.
    pub fn pairs(&self, t: &Tensor, i: &Tensor, train: bool) -> Tensor {
        match (self.kind, &self.fc) {
            (ScorerKind::Product, Some(fc)) => fc.forward(&(t * i).dropout(self.dropout, train)).squeeze_dim(-1),
            _ => Tensor::cosine_similarity(t, i, 1, 1e-8),
        }
    }

    /// Score matrix `t: [Nt, D], i: [Ni, D] -> [Nt, Ni]`; with `train`, the product
    /// scorer applies dropout to the text side (a per-pair mask would need Nt×Ni×D).
    pub fn matrix(&self, t: &Tensor, i: &Tensor, train: bool) -> Tensor {
        let t = match self.kind {
            ScorerKind::Product => t.dropout(self.dropout, train),
            ScorerKind::Cosine => t.shallow_clone(),
        };
        let (ts, is, bias) = self.inner_product_sides(&t, i);
        let s = ts.mm(&is.tr()); // [Nt, Ni]
        match bias {
            Some(b) => s + b,
            None => s,
        }
    }

    /// The two sides whose inner product (plus the bias) is the score, as a vector index
    /// stores them: `t: [Nt, D], i: [Ni, D] -> ([Nt, D], [Ni, D], bias [1])`. Product:
    /// (t ⊙ w, i, b), since w·(t ⊙ i) + b = ⟨t ⊙ w, i⟩ + b. Cosine: both rows L2-normalised, no bias.
    pub fn inner_product_sides(&self, t: &Tensor, i: &Tensor) -> (Tensor, Tensor, Option<Tensor>) {
        match (self.kind, &self.fc) {
            (ScorerKind::Product, Some(fc)) => {
                let w = fc.ws.squeeze_dim(0); // [D]
                (t * w, i.shallow_clone(), fc.bs.as_ref().map(Tensor::shallow_clone))
            }
            _ => {
                let tn = t / t.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
                let inn = i / i.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
                (tn, inn, None)
            }
        }
    }
}

#[derive(Debug)]
pub struct Model {
    pub text: TextTower,
    pub image: Mlp,
    pub scorer: Scorer,
}

/// Builds the model under `p` (`text/…`, `image/…`, `scorer/…`). `lap` is L̃ as
/// (indices `[2, nnz]`, values `[nnz]`) over `vocab` vertices.
pub fn model(p: &nn::Path, cfg: &ModelConfig, vocab: usize, image_dim: usize, lap: (Tensor, Tensor)) -> Model {
    let tc = &cfg.text;
    let tp = p / "text";
    let (cheb, flat) = match tc.kind {
        TextKind::Gcn => {
            let mut f_in = 1;
            let mut layers = Vec::new();
            for (i, l) in tc.cheb.iter().enumerate() {
                layers.push(cheb_conv(&tp / "cheb" / i, l.k, f_in, l.filters, tc.bias, vocab));
                f_in = l.filters;
            }
            (layers, vocab * f_in)
        }
        TextKind::Mlp => (Vec::new(), vocab),
    };
    let text = TextTower {
        kind: tc.kind,
        cheb,
        activation: tc.activation,
        last_activation: tc.last_activation,
        fc: mlp(&tp / "mlp", flat, &tc.fc, cfg.embed_dim),
        n_vertices: vocab,
        lap_indices: lap.0,
        lap_values: lap.1,
    };
    let image = mlp(p / "image", image_dim, &cfg.image.hidden, cfg.embed_dim);
    let fc = match cfg.scorer {
        ScorerKind::Product => Some(nn::linear(p / "scorer", cfg.embed_dim as i64, 1, Default::default())),
        ScorerKind::Cosine => None,
    };
    Model { text, image, scorer: Scorer { kind: cfg.scorer, fc, dropout: cfg.dropout } }
}

impl Model {
    /// The fully connected weights that the L2 term penalises (both towers' FC layers).
    pub fn l2_weights(&self) -> Vec<&Tensor> {
        let mut w = self.text.fc.weights();
        w.extend(self.image.weights());
        w
    }
}
