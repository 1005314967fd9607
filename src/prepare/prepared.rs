//! Every model input as tensors on the training device: BoW signals per split, the
//! rescaled Laplacian, normalised image features, labels and ids.

use crate::config::{Config, ImageTransform};
use crate::data::Split;
use crate::graph::laplacian::{rescaled_laplacian, Coo};
use crate::graph::word_graph::{Graph, GraphStats};
use crate::graph::MissingVectors;
use crate::text::vocab::Vocab;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

use super::dataset::{image_source, load_dataset};
use super::image_features::{check_image_features, ImageNormalizer};
use super::text_graph::text_graph;

/// One split's model inputs.
pub struct SplitTensors {
    /// `[n, V]` word counts.
    pub bow: Tensor,
    /// `[n, F_img]` normalised image features.
    pub images: Tensor,
    /// `[n, F_img]` image features as loaded (what an exported image encoder takes).
    pub images_raw: Tensor,
    /// `[n, C]` multi-hot labels (f32).
    pub labels: Tensor,
    pub label_lists: Vec<Vec<usize>>,
    pub ids: Vec<String>,
    /// The first tokens of each text, for showing retrieved texts (`tgcn search`, reports).
    pub snippets: Vec<String>,
    pub oov_tokens: usize,
    pub tokens: usize,
}

impl SplitTensors {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

pub struct Prepared {
    pub dataset_name: String,
    pub classes: Vec<String>,
    pub multi_label: bool,
    pub device: Device,
    pub vocab: Vocab,
    /// Vocabulary words dropped because they had no vector.
    pub dropped_no_vector: usize,
    /// Vocabulary words kept as isolated vertices because they had no vector.
    pub isolated_no_vector: usize,
    pub graph: GraphStats,
    pub laplacian: Coo,
    pub lambda_max: f64,
    /// With `graph.combine: separate`: each relation's name and rescaled Laplacian, in
    /// `graph.relations` order; empty otherwise.
    pub relation_laplacians: Vec<(String, Coo)>,
    pub image_dim: usize,
    pub image_norm: ImageNormalizer,
    pub train: SplitTensors,
    pub val: SplitTensors,
    pub test: SplitTensors,
    /// Set by [`Prepared::withhold_test`]: `test` is then empty.
    pub test_withheld: bool,
    /// Set by [`Prepared::include_val_in_train`]: `train` then holds the validation items too.
    pub val_in_train: bool,
}

impl Prepared {
    /// Drops the test split (validation-only training, `tgcn sweep`): its tensors become
    /// undefined and its ids, labels and texts empty, so nothing after this point can rank,
    /// score or count test items; `eval::evaluate_test` refuses a withheld split.
    pub fn withhold_test(&mut self) {
        self.test = SplitTensors {
            bow: Tensor::new(),
            images: Tensor::new(),
            images_raw: Tensor::new(),
            labels: Tensor::new(),
            label_lists: Vec::new(),
            ids: Vec::new(),
            snippets: Vec::new(),
            oov_tokens: 0,
            tokens: 0,
        };
        self.test_withheld = true;
    }

    /// The data of a refit (`train.refit`): the validation items are appended to the train
    /// split, which the refit trains on, the class means are fitted to and the test-vs-train
    /// protocol searches. The vocabulary, word graph and image normalisation stay as fitted
    /// on the train split alone, so the model's inputs are unchanged. `val` keeps its items,
    /// but a model trained on them is not selected on them: nothing evaluates it any more.
    pub fn include_val_in_train(&mut self) {
        if self.val_in_train {
            return;
        }
        let (t, v) = (&self.train, &self.val);
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 0);
        let join = |a: &[String], b: &[String]| a.iter().chain(b).cloned().collect::<Vec<_>>();
        self.train = SplitTensors {
            bow: cat(&t.bow, &v.bow),
            images: cat(&t.images, &v.images),
            images_raw: cat(&t.images_raw, &v.images_raw),
            labels: cat(&t.labels, &v.labels),
            label_lists: t.label_lists.iter().chain(&v.label_lists).cloned().collect(),
            ids: join(&t.ids, &v.ids),
            snippets: join(&t.snippets, &v.snippets),
            oov_tokens: t.oov_tokens + v.oov_tokens,
            tokens: t.tokens + v.tokens,
        };
        self.val_in_train = true;
    }

    /// Rows of `train` that are train items proper: all of them, or, after
    /// [`Prepared::include_val_in_train`], those before the validation items.
    pub fn train_items(&self) -> usize {
        self.train.len() - if self.val_in_train { self.val.len() } else { 0 }
    }

    pub fn split(&self, s: Split) -> &SplitTensors {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    /// What the text tower takes from the graph under `cfg`, on `device`.
    pub fn graph_inputs(&self, cfg: &crate::model::TextTowerConfig, device: Device) -> crate::model::GraphInputs {
        crate::model::GraphInputs {
            lap: self.laplacian.to_tensors(device),
            relations: self.relation_laplacians.iter().map(|(n, l)| (n.clone(), l.to_tensors(device))).collect(),
            own: crate::model::own_input_vertices(cfg, &self.vocab.counts),
        }
    }

    /// A human-readable summary (counts per split and class, vocabulary, graph, OOV).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "dataset {} ({} classes, {}-label)\n",
            self.dataset_name,
            self.classes.len(),
            if self.multi_label { "multi" } else { "single" }
        );
        for sp in [Split::Train, Split::Val, Split::Test] {
            if sp == Split::Test && self.test_withheld {
                s += "  test  withheld (validation only)\n";
                continue;
            }
            let t = self.split(sp);
            let counts: Vec<i64> =
                Vec::try_from(t.labels.sum_dim_intlist(0, false, Kind::Float).to_kind(Kind::Int64)).unwrap_or_default();
            s += &format!(
                "  {:5} {:6} items, per class {:?}, OOV {:.2}% of {} tokens\n",
                sp.name(),
                t.len(),
                counts,
                100.0 * t.oov_tokens as f64 / t.tokens.max(1) as f64,
                t.tokens
            );
        }
        let g = &self.graph;
        s += &format!(
            "  vocabulary {} words ({} dropped, {} isolated for lack of a vector)\n  graph {} undirected edges, {} self-loops, degree min {} / mean {:.1} / max {}, {} isolated; λmax {:.4}, L̃ nnz {}",
            self.vocab.len(),
            self.dropped_no_vector,
            self.isolated_no_vector,
            g.undirected_edges,
            g.self_loops,
            g.degree_min,
            g.degree_mean,
            g.degree_max,
            g.isolated,
            self.lambda_max,
            self.laplacian.nnz()
        );
        s
    }
}

/// Tokens shown for a text: the first [`SNIPPET_TOKENS`], then `…` when cut.
pub const SNIPPET_TOKENS: usize = 24;

fn snippet(tokens: &[String]) -> String {
    let mut s = tokens.iter().take(SNIPPET_TOKENS).cloned().collect::<Vec<_>>().join(" ");
    if tokens.len() > SNIPPET_TOKENS {
        s += " …";
    }
    s
}

/// Loads the dataset and prepares every model input on `device`. `cache` is the folder for
/// the prepared vocabulary and graph (`runs/cache`); None always rebuilds.
pub fn prepare(cfg: &Config, device: Device, cache: Option<&Path>) -> Result<Prepared> {
    let ds = load_dataset(cfg, cache, device)?;
    cfg.check_labels(ds.classes.len()).with_context(|| format!("dataset {}", ds.name))?;
    check_image_features(&ds, &image_source(cfg))?;
    if cfg.data.image_transform == ImageTransform::Sqrt {
        if let Some((i, v)) = ds.images.iter().enumerate().find(|(_, v)| **v < 0.0) {
            let d = ds.image_dim;
            bail!(
                "`data.image_transform: sqrt` needs non-negative image features (histograms), but {} holds {v} \
                 at row {}, column {}",
                image_source(cfg),
                i / d,
                i % d
            );
        }
    }
    let tg = text_graph(cfg, &ds, device, cache)?;
    let vocab = Vocab::from_words(tg.words.clone(), tg.counts.clone());
    let v = vocab.len();
    let graph = Graph { n: v, entries: tg.entries.clone() };
    let (laplacian, lambda_max) = rescaled_laplacian(&graph, cfg.graph.lambda_max)?;
    let mut relation_laplacians = Vec::new();
    for (r, entries) in cfg.graph.relations.iter().zip(&tg.relation_entries) {
        let (l, _) = rescaled_laplacian(&Graph { n: v, entries: entries.clone() }, cfg.graph.lambda_max)?;
        relation_laplacians.push((r.name().to_string(), l));
    }
    let dropped = if cfg.graph.missing_vectors == MissingVectors::Drop { tg.without_vector } else { 0 };

    let split_tensors = |s: Split| -> SplitTensors {
        let idx = ds.split(s);
        let max = cfg.text.max_tokens.unwrap_or(usize::MAX);
        let (bow, oov, total) = vocab.bow_matrix(idx.iter().map(|&i| {
            let t = &ds.items[i].tokens;
            &t[..t.len().min(max)]
        }));
        let n = idx.len() as i64;
        let mut img = Vec::with_capacity(idx.len() * ds.image_dim);
        let mut lab = vec![0f32; idx.len() * ds.classes.len()];
        for (r, &i) in idx.iter().enumerate() {
            img.extend_from_slice(ds.image(i));
            for &l in &ds.items[i].labels {
                lab[r * ds.classes.len() + l] = 1.0;
            }
        }
        SplitTensors {
            bow: Tensor::from_slice(&bow).view([n, v as i64]).to_device(device),
            images: Tensor::new(),
            images_raw: Tensor::from_slice(&img).view([n, ds.image_dim as i64]).to_device(device),
            labels: Tensor::from_slice(&lab).view([n, ds.classes.len() as i64]).to_device(device),
            label_lists: idx.iter().map(|&i| ds.items[i].labels.clone()).collect(),
            ids: idx.iter().map(|&i| ds.items[i].id.clone()).collect(),
            snippets: idx.iter().map(|&i| snippet(&ds.items[i].tokens)).collect(),
            oov_tokens: oov,
            tokens: total,
        }
    };
    let (mut train, mut val, mut test) =
        (split_tensors(Split::Train), split_tensors(Split::Val), split_tensors(Split::Test));
    let norm = ImageNormalizer::fit(cfg.data.image_norm, cfg.data.image_transform, &train.images_raw);
    for t in [&mut train, &mut val, &mut test] {
        t.images = norm.apply(&t.images_raw);
    }
    ensure!(
        cfg.train.batch_size <= train.len(),
        "`train.batch_size` = {} is larger than the train split ({} items)",
        cfg.train.batch_size,
        train.len()
    );
    Ok(Prepared {
        dataset_name: ds.name.clone(),
        classes: ds.classes.clone(),
        multi_label: ds.multi_label,
        device,
        vocab,
        dropped_no_vector: dropped,
        isolated_no_vector: tg.without_vector - dropped,
        graph: graph.stats(),
        laplacian,
        lambda_max,
        relation_laplacians,
        image_dim: ds.image_dim,
        image_norm: norm,
        train,
        val,
        test,
        test_withheld: false,
        val_in_train: false,
    })
}
