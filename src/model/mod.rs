//! Model stage: the two towers and the scorer of the dual-path model (`cheb` is the
//! Chebyshev layer).
//!
//! Input: bag-of-words signals `[B, V]`, the sparse L̃ (from the graph stage) and image
//! features `[B, F_img]`. Output: embeddings `[B, D]` per modality and their scores.
//!
//! Text (`gcn`): bow `[B, V]` → input transform (counts | log1p | binary, optional row L2,
//! dropout) → `[B, V, 1]` → Chebyshev stack → `[B, V, F]` → flatten `[B, V·F]` (with
//! `concat_bow`, the input beside it: `[B, V·F + V]`) → FC layers → `[B, D]`. Text (`mlp`,
//! the ablation): the transformed bow `[B, V]` → FC layers → `[B, D]`. Image: features
//! `[B, F_img]` → MLP → `[B, D]`. Hidden FC layers use ReLU then dropout, the embedding
//! layer is linear. Training may add a label classifier `[B, D] → [B, C]` shared by both
//! towers, and a learned log τ.
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
    /// Initialisation of the fully connected layers: `default` (tch's Kaiming-uniform
    /// weights, uniform ±1/√fan_in biases) or `glorot` (Glorot-uniform weights, zero biases,
    /// as the authors' Keras code). The Chebyshev layers keep their own.
    #[serde(default, skip_serializing_if = "FcInit::is_default")]
    pub init: FcInit,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum FcInit {
    #[default]
    Default,
    Glorot,
}

impl FcInit {
    fn is_default(&self) -> bool {
        *self == FcInit::Default
    }

    /// A linear layer `f_in -> f_out` under `p` with this initialisation.
    fn linear(self, p: nn::Path, f_in: usize, f_out: usize) -> nn::Linear {
        let c = match self {
            FcInit::Default => Default::default(),
            FcInit::Glorot => {
                let bound = (6.0 / (f_in + f_out) as f64).sqrt();
                nn::LinearConfig {
                    ws_init: nn::Init::Uniform { lo: -bound, up: bound },
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                }
            }
        };
        nn::linear(p, f_in as i64, f_out as i64, c)
    }
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
    /// The bag of words as the tower sees it: `counts`, `log1p` (log(1 + count)) or `binary`.
    #[serde(default, skip_serializing_if = "BowInput::is_counts")]
    pub input: BowInput,
    /// Row L2 normalisation of the transformed bag of words.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub input_l2: bool,
    /// Dropout on the (transformed) word inputs, while training.
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub input_dropout: f64,
    /// Dropout after each hidden FC layer, while training.
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub dropout: f64,
    /// `gcn` only: feed the FC layers the graph features and the bag of words side by side
    /// (`[B, V·F + V]`), so that the graph adds to the bag of words rather than replacing it.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub concat_bow: bool,
    /// Words seen fewer than this many times in the train split reach the FC layers only
    /// through their graph neighbours: their own vertex features (`gcn`), their own input
    /// (`mlp`, and the bag of words beside the graph features) are left out of the FC
    /// input. 0 (the default) keeps every word's own input.
    #[serde(default, skip_serializing_if = "crate::files::is_zero_usize")]
    pub own_input_min_count: usize,
    /// `mlp` only: beside the bag of words, its fixed graph smoothing −L̃x (with the default
    /// λmax = 2 that is D^−1/2 A D^−1/2 x, each word's neighbours' inputs averaged by degree),
    /// `[B, V_own + V]`: the twin that sees the graph without learned filters.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub smooth: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BowInput {
    #[default]
    Counts,
    Log1p,
    Binary,
}

impl BowInput {
    fn is_counts(&self) -> bool {
        *self == BowInput::Counts
    }
}

// Defaults are left out of the saved YAML, so configs from before these keys keep their hash.

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
    /// Dropout after each hidden layer, while training.
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub dropout: f64,
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

/// Hidden ReLU layers (each followed by dropout while training) then a linear output
/// layer, named `fc/{i}` and `out`.
#[derive(Debug)]
pub struct Mlp {
    pub hidden: Vec<nn::Linear>,
    pub out: nn::Linear,
    pub dropout: f64,
}

pub fn mlp(p: nn::Path, f_in: usize, hidden: &[usize], f_out: usize, dropout: f64, init: FcInit) -> Mlp {
    let mut dims = vec![f_in];
    dims.extend_from_slice(hidden);
    let hidden = dims.windows(2).enumerate().map(|(i, w)| init.linear(&p / "fc" / i, w[0], w[1])).collect();
    let out = init.linear(&p / "out", *dims.last().unwrap(), f_out);
    Mlp { hidden, out, dropout }
}

impl Module for Mlp {
    /// `xs: [B, F_in] -> [B, F_out]`, in evaluation mode.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }
}

impl Mlp {
    /// `xs: [B, F_in] -> [B, F_out]`; `train` turns dropout on.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = self.hidden.iter().fold(xs.shallow_clone(), |h, l| {
            let h = l.forward(&h).relu();
            if self.dropout > 0.0 {
                h.dropout(self.dropout, train)
            } else {
                h
            }
        });
        self.out.forward(&h)
    }

    pub fn weights(&self) -> Vec<&Tensor> {
        self.hidden.iter().chain(std::iter::once(&self.out)).map(|l| &l.ws).collect()
    }

    pub fn biases(&self) -> Vec<&Tensor> {
        self.hidden.iter().chain(std::iter::once(&self.out)).filter_map(|l| l.bs.as_ref()).collect()
    }
}

/// One Chebyshev stack and the L̃ it filters on, as dense `[2, nnz]` indices and `[nnz]`
/// values (the sparse tensor is built per forward).
#[derive(Debug)]
pub struct GraphStack {
    pub cheb: Vec<ChebConv>,
    pub lap_indices: Tensor,
    pub lap_values: Tensor,
}

/// What the text tower takes from the prepared graph.
pub struct GraphInputs {
    /// L̃ of the word graph (the union of the relations): indices `[2, nnz]`, values `[nnz]`.
    pub lap: (Tensor, Tensor),
    /// `graph.combine: separate`: each relation's name and L̃; empty otherwise.
    pub relations: Vec<(String, (Tensor, Tensor))>,
    /// The vertices whose own inputs reach the FC layers ([`own_input_vertices`]); None: all.
    pub own: Option<Vec<i64>>,
}

impl GraphInputs {
    /// One graph, every word's own input kept.
    pub fn union(lap: (Tensor, Tensor)) -> GraphInputs {
        GraphInputs { lap, relations: Vec::new(), own: None }
    }
}

#[derive(Debug)]
pub struct TextTower {
    pub kind: TextKind,
    /// `gcn`: one stack on the word graph, or one per relation (`graph.combine: separate`),
    /// their output features side by side; empty for `mlp`.
    pub stacks: Vec<GraphStack>,
    pub activation: Activation,
    pub last_activation: Activation,
    pub fc: Mlp,
    pub input: BowInput,
    pub input_l2: bool,
    pub input_dropout: f64,
    pub concat_bow: bool,
    pub smooth: bool,
    /// The vertices whose own inputs reach the FC layers (`own_input_min_count`); None: all.
    pub own: Option<Tensor>,
    pub n_vertices: usize,
    /// L̃ of the word graph as dense `[2, nnz]` indices and `[nnz]` values (the smoothing's).
    pub lap_indices: Tensor,
    pub lap_values: Tensor,
}

impl TextTower {
    /// `bow: [B, V] -> [B, D]` (word counts), in evaluation mode.
    pub fn forward(&self, bow: &Tensor) -> Tensor {
        self.forward_t(bow, false)
    }

    /// `bow: [B, V] -> [B, D]`; `train` turns dropout on.
    pub fn forward_t(&self, bow: &Tensor, train: bool) -> Tensor {
        let x = self.input_signal(bow);
        let x = if self.input_dropout > 0.0 { x.dropout(self.input_dropout, train) } else { x };
        let h = match self.graph_layers(&x) {
            Some(g) if self.concat_bow => Tensor::cat(&[self.own(&g).flatten(1, 2), self.own(&x)], 1), // [B, V*F + V]
            Some(g) => self.own(&g).flatten(1, 2), // [B, V, F] -> [B, V*F]
            None if self.smooth => Tensor::cat(&[self.own(&x), self.smoothed(&x)], 1), // [B, V_own + V]
            None => self.own(&x),
        };
        self.fc.forward_t(&h, train)
    }

    /// The vertices of `x: [B, V, …]` whose own inputs reach the FC layers.
    fn own(&self, x: &Tensor) -> Tensor {
        match &self.own {
            Some(ix) => x.index_select(1, ix),
            None => x.shallow_clone(),
        }
    }

    /// The fixed smoothing −L̃x of an input signal `[B, V] -> [B, V]`.
    pub fn smoothed(&self, x: &Tensor) -> Tensor {
        let lap = sparse_tensor(&self.lap_indices, &self.lap_values, self.n_vertices);
        -lap.mm(&x.tr().contiguous()).tr()
    }

    /// The bag of words as the tower sees it: `bow: [B, V] -> [B, V]` (counts, log(1 + counts)
    /// or binary, then an optional row L2 normalisation).
    pub fn input_signal(&self, bow: &Tensor) -> Tensor {
        let x = match self.input {
            BowInput::Counts => bow.shallow_clone(),
            BowInput::Log1p => bow.log1p(),
            BowInput::Binary => bow.gt(0.0).to_kind(bow.kind()),
        };
        if self.input_l2 {
            &x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
        } else {
            x
        }
    }

    /// Output of the graph layers `[B, V, F]` for word counts `[B, V]` in evaluation mode
    /// (for dead-unit diagnostics); None for `mlp`.
    pub fn graph_features(&self, bow: &Tensor) -> Option<Tensor> {
        self.graph_layers(&self.input_signal(bow))
    }

    /// The Chebyshev stacks on an input signal `[B, V] -> [B, V, F]` (F summed over the
    /// stacks); None for `mlp`.
    fn graph_layers(&self, x: &Tensor) -> Option<Tensor> {
        if self.kind == TextKind::Mlp {
            return None;
        }
        let x = x.tr().contiguous().unsqueeze(-1); // [V, B, 1], vertex-major for the sparse products
        let outs: Vec<Tensor> = self
            .stacks
            .iter()
            .map(|s| {
                let lap = sparse_tensor(&s.lap_indices, &s.lap_values, self.n_vertices);
                let last = s.cheb.len() - 1;
                s.cheb.iter().enumerate().fold(x.shallow_clone(), |h, (i, layer)| {
                    let a = if i == last { self.last_activation } else { self.activation };
                    activate(layer.forward_vertex_major(&lap, &h), a) // [V, B, F_i]
                })
            })
            .collect();
        let h = if outs.len() == 1 { outs.into_iter().next().expect("one stack") } else { Tensor::cat(&outs, 2) };
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
    /// The label classifier shared by both towers (`classifier`), when the label loss is on.
    pub classifier: Option<nn::Linear>,
    /// log τ of the contrastive term (`loss/log_temperature`), when τ is learned.
    pub log_temperature: Option<Tensor>,
}

/// What training adds beside the two towers and the scorer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainingHeads {
    /// Classes of the shared label classifier.
    pub classes: Option<usize>,
    /// Initial τ of a learned temperature.
    pub temperature: Option<f64>,
}

/// The vertices whose own inputs reach the FC layers under `own_input_min_count`, from the
/// vocabulary's train counts: None when every word's does.
pub fn own_input_vertices(cfg: &TextTowerConfig, train_counts: &[usize]) -> Option<Vec<i64>> {
    let min = cfg.own_input_min_count;
    (min > 0).then(|| (0..train_counts.len()).filter(|&i| train_counts[i] >= min).map(|i| i as i64).collect())
}

/// Builds the model under `p` (`text/…`, `image/…`, `scorer/…`, and the training heads
/// `classifier`, `loss/log_temperature` when asked for) over `vocab` vertices. The stack on
/// the word graph is `text/cheb/{layer}`; with separate relations, `text/cheb_{relation}/{layer}`.
pub fn model(
    p: &nn::Path,
    cfg: &ModelConfig,
    vocab: usize,
    image_dim: usize,
    graph: GraphInputs,
    heads: TrainingHeads,
) -> Model {
    let tc = &cfg.text;
    let tp = p / "text";
    let n_own = graph.own.as_ref().map_or(vocab, Vec::len);
    let laps: Vec<(String, (Tensor, Tensor))> = if graph.relations.is_empty() {
        vec![("cheb".to_string(), (graph.lap.0.shallow_clone(), graph.lap.1.shallow_clone()))]
    } else {
        graph.relations.into_iter().map(|(n, l)| (format!("cheb_{n}"), l)).collect()
    };
    let (stacks, flat) = match tc.kind {
        TextKind::Gcn => {
            let f_out = tc.cheb.last().map_or(1, |l| l.filters);
            let stacks: Vec<GraphStack> = laps
                .into_iter()
                .map(|(name, (lap_indices, lap_values))| {
                    let mut f_in = 1;
                    let mut cheb = Vec::new();
                    for (i, l) in tc.cheb.iter().enumerate() {
                        cheb.push(cheb_conv(&tp / name.as_str() / i, l.k, f_in, l.filters, tc.bias, vocab));
                        f_in = l.filters;
                    }
                    GraphStack { cheb, lap_indices, lap_values }
                })
                .collect();
            let f = f_out * stacks.len();
            (stacks, n_own * f + if tc.concat_bow { n_own } else { 0 })
        }
        TextKind::Mlp => (Vec::new(), n_own + if tc.smooth { vocab } else { 0 }),
    };
    let device = graph.lap.0.device();
    let own = graph.own;
    let lap = graph.lap;
    let text = TextTower {
        kind: tc.kind,
        stacks,
        activation: tc.activation,
        last_activation: tc.last_activation,
        fc: mlp(&tp / "mlp", flat, &tc.fc, cfg.embed_dim, tc.dropout, cfg.init),
        input: tc.input,
        input_l2: tc.input_l2,
        input_dropout: tc.input_dropout,
        concat_bow: tc.concat_bow,
        smooth: tc.smooth,
        own: own.map(|o| Tensor::from_slice(&o).to_device(device)),
        n_vertices: vocab,
        lap_indices: lap.0,
        lap_values: lap.1,
    };
    let image = mlp(p / "image", image_dim, &cfg.image.hidden, cfg.embed_dim, cfg.image.dropout, cfg.init);
    let fc = match cfg.scorer {
        ScorerKind::Product => Some(cfg.init.linear(p / "scorer", cfg.embed_dim, 1)),
        ScorerKind::Cosine => None,
    };
    let classifier = heads.classes.map(|c| cfg.init.linear(p / "classifier", cfg.embed_dim, c));
    let log_temperature = heads.temperature.map(|t| (p / "loss").var("log_temperature", &[], nn::Init::Const(t.ln())));
    Model { text, image, scorer: Scorer { kind: cfg.scorer, fc, dropout: cfg.dropout }, classifier, log_temperature }
}

impl Model {
    /// The parameters that the L2 term penalises: both towers' FC weights, and with
    /// `biases` their biases too (as TF's `l2_loss` over all FC parameters).
    pub fn l2_weights(&self, biases: bool) -> Vec<&Tensor> {
        let mut w = self.text.fc.weights();
        w.extend(self.image.weights());
        if biases {
            w.extend(self.text.fc.biases());
            w.extend(self.image.biases());
        }
        w
    }
}
