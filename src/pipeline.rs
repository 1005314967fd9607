//! Data preparation shared by `train`, `eval` and `export`: dataset → vocabulary → BoW
//! signals → word vectors → kNN graph → rescaled Laplacian, plus normalised image
//! features, all as tensors on the training device. Rebuilding from a run's saved
//! config gives the same vocabulary, graph and splits (everything is seeded).

use crate::config::{Config, DatasetKind, DeviceChoice, ImageNorm};
use crate::dataset::{Dataset, Split};
use crate::graph::{Graph, GraphStats};
use crate::knn::cosine_knn;
use crate::laplacian::{rescaled_laplacian, Coo};
use crate::synthetic;
use crate::vocab::Vocab;
use anyhow::{anyhow, bail, ensure, Result};
use tch::{Device, Kind, Tensor};

pub fn resolve_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda => {
            ensure!(
                tch::Cuda::is_available(),
                "`device: cuda` but libtorch reports no CUDA device (use `device: auto` or `cpu`)"
            );
            Ok(Device::Cuda(0))
        }
    }
}

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

/// Image feature normalisation fitted on the train split: x' = (x − shift) / scale, then
/// an optional row L2 normalisation.
#[derive(Debug)]
pub struct ImageNormalizer {
    pub kind: ImageNorm,
    pub shift: Tensor,
    pub scale: Tensor,
}

impl ImageNormalizer {
    pub fn fit(kind: ImageNorm, train: &Tensor) -> ImageNormalizer {
        let f = train.size()[1];
        let (shift, scale) = match kind {
            ImageNorm::Zscore => {
                let mean = train.mean_dim(0, false, Kind::Float);
                let std = train.std_dim(0, false, false);
                // A constant feature has std 0: leave it centred rather than divide by 0.
                let std = std.where_self(&std.gt(1e-12), &std.ones_like());
                (mean, std)
            }
            ImageNorm::L2 | ImageNorm::None => {
                (Tensor::zeros([f], (Kind::Float, train.device())), Tensor::ones([f], (Kind::Float, train.device())))
            }
        };
        ImageNormalizer { kind, shift, scale }
    }

    /// `x: [n, F] -> [n, F]`
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let y = (x - &self.shift) / &self.scale;
        match self.kind {
            ImageNorm::L2 => &y / y.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12),
            _ => y,
        }
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
    pub graph: GraphStats,
    pub laplacian: Coo,
    pub lambda_max: f64,
    pub image_dim: usize,
    pub image_norm: ImageNormalizer,
    pub train: SplitTensors,
    pub val: SplitTensors,
    pub test: SplitTensors,
}

impl Prepared {
    pub fn split(&self, s: Split) -> &SplitTensors {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
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
            "  vocabulary {} words ({} dropped without a vector)\n  graph {} undirected edges, {} self-loops, degree min {} / mean {:.1} / max {}, {} isolated; λmax {:.4}, L̃ nnz {}",
            self.vocab.len(),
            self.dropped_no_vector,
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

pub fn tokenizer(cfg: &Config) -> crate::tokenize::Tokenizer {
    crate::tokenize::Tokenizer::new(cfg.text.language, cfg.text.stop_words, cfg.text.stem)
}

pub fn load_dataset(cfg: &Config) -> Result<Dataset> {
    let ds = match cfg.data.dataset {
        DatasetKind::Synthetic => {
            let s = cfg.data.synthetic.as_ref().ok_or_else(|| anyhow!("`data.synthetic` is missing"))?;
            synthetic::generate(s, cfg.seed)
        }
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            let l = cfg.data.listed.as_ref().ok_or_else(|| anyhow!("`data.listed` is missing"))?;
            crate::listed::load(cfg.data.dataset.name(), l, &tokenizer(cfg), cfg.seed)?
        }
        DatasetKind::Pascal => {
            let p = cfg.data.pascal.as_ref().ok_or_else(|| anyhow!("`data.pascal` is missing"))?;
            crate::pascal::load(p, &tokenizer(cfg), cfg.seed)?
        }
        DatasetKind::NusWide => {
            let n = cfg.data.nus_wide.as_ref().ok_or_else(|| anyhow!("`data.nus_wide` is missing"))?;
            crate::nus_wide::load(n, cfg.seed)?
        }
    };
    ds.validate()?;
    Ok(ds)
}

pub fn prepare(cfg: &Config, device: Device) -> Result<Prepared> {
    let ds = load_dataset(cfg)?;
    let train_texts = ds.train.iter().map(|&i| ds.items[i].tokens.as_slice());
    let vocab = Vocab::fit(train_texts, cfg.text.min_freq, cfg.text.max_vocab);
    ensure!(
        !vocab.is_empty(),
        "the vocabulary is empty: no train word occurs `text.min_freq` = {} times",
        cfg.text.min_freq
    );

    // Keep the words that have a vector; the graph needs one per vertex.
    let wv = ds.word_vectors.as_ref().ok_or_else(|| anyhow!("dataset {} ships no word vectors", ds.name))?;
    let wv_index = wv.index();
    let keep: Vec<bool> = vocab.words.iter().map(|w| wv_index.contains_key(w.as_str())).collect();
    let dropped = keep.iter().filter(|&&k| !k).count();
    let vocab = if dropped > 0 { vocab.retain(&keep) } else { vocab };
    let v = vocab.len();
    let mut vectors = Vec::with_capacity(v * wv.dim);
    for w in &vocab.words {
        vectors.extend_from_slice(wv.row(wv_index[w.as_str()]));
    }
    if cfg.graph.k >= v {
        bail!("`graph.k` = {} must be below the vocabulary size {v}", cfg.graph.k);
    }
    let knn = cosine_knn(&vectors, v, wv.dim, cfg.graph.k, cfg.graph.knn_chunk, device)?;
    let graph = Graph::from_knn(&knn, cfg.graph.weighting, cfg.graph.self_loops);
    let (laplacian, lambda_max) = rescaled_laplacian(&graph, cfg.graph.lambda_max)?;

    let split_tensors = |s: Split| -> SplitTensors {
        let idx = ds.split(s);
        let (bow, oov, total) = vocab.bow_matrix(idx.iter().map(|&i| ds.items[i].tokens.as_slice()));
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
            oov_tokens: oov,
            tokens: total,
        }
    };
    let (mut train, mut val, mut test) =
        (split_tensors(Split::Train), split_tensors(Split::Val), split_tensors(Split::Test));
    let norm = ImageNormalizer::fit(cfg.data.image_norm, &train.images_raw);
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
        graph: graph.stats(),
        laplacian,
        lambda_max,
        image_dim: ds.image_dim,
        image_norm: norm,
        train,
        val,
        test,
    })
}
