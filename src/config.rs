//! Typed run configuration, read in two stages.
//!
//! Stage one merges raw YAML layers: `configs/<dataset>.yaml`, then each
//! `--config extra.yaml`, then each `--set a.b=value`. Stage two deserializes the merged
//! tree into strict structs (`deny_unknown_fields`) and validates ranges. Nothing is
//! silently fixed: a bad key, type or value is an error that names the key and the layer
//! it came from. The resolved [`Config`] is what a run saves as `config.yaml`.

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

use crate::data::synthetic::SyntheticConfig;
use crate::graph::GraphConfig;
use crate::model::{ModelConfig, TextKind};
use crate::text::TextConfig;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// One seed drives libtorch and the Rust RNG (ChaCha8).
    pub seed: u64,
    /// Suffix of the run folder name.
    pub name: String,
    pub device: DeviceChoice,
    pub data: DataConfig,
    pub text: TextConfig,
    /// Word vectors for the graph: shipped by the dataset, a file, GloVe 6B 50-d, or skip-gram.
    pub vectors: crate::text::wordvec::VectorsConfig,
    pub graph: GraphConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub export: ExportConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetKind,
    /// How image features are standardised, with train-split statistics.
    pub image_norm: ImageNorm,
    /// Applied to the raw features before `image_norm`: `sqrt` is the Hellinger map of
    /// histogram features such as bags of visual words (x ↦ √x; negative values are an error).
    #[serde(default, skip_serializing_if = "ImageTransform::is_none")]
    pub image_transform: ImageTransform,
    /// Generator settings; required when `dataset: synthetic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticConfig>,
    /// The list-file layout of Eng-Wiki, TVGraz and Ch-Wiki; required for those datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<crate::data::listed::ListedConfig>,
    /// Pascal Sentences layout; required when `dataset: pascal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pascal: Option<crate::data::pascal::PascalConfig>,
    /// Image features made from raw images by a TorchScript backbone (`tgcn featurize`),
    /// cached in `runs/cache`; they replace the dataset block's own feature source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_images: Option<FromImages>,
    /// NUS-WIDE layout and subset; required when `dataset: nus-wide`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nus_wide: Option<crate::data::nus_wide::NusWideConfig>,
    /// Your own pairs, one CSV or JSONL file; required when `dataset: pairs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<crate::data::pairs::PairsConfig>,
}

/// The active dataset's block of `data`: the one place that maps `data.dataset` to the
/// block holding its layout's settings. Eng-Wiki, TVGraz and Ch-Wiki share `listed`.
#[derive(Debug, Clone, Copy)]
pub enum DatasetBlock<'a> {
    Synthetic(&'a SyntheticConfig),
    Listed(&'a crate::data::listed::ListedConfig),
    Pascal(&'a crate::data::pascal::PascalConfig),
    NusWide(&'a crate::data::nus_wide::NusWideConfig),
    Pairs(&'a crate::data::pairs::PairsConfig),
}

impl DataConfig {
    /// The key of the block that `data.dataset` needs (`listed` for the list-file layouts).
    pub fn block_key(&self) -> &'static str {
        match self.dataset {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => "listed",
            DatasetKind::Pascal => "pascal",
            DatasetKind::NusWide => "nus_wide",
            DatasetKind::Pairs => "pairs",
        }
    }

    /// The active dataset's block; an error naming the key when it is absent.
    pub fn block(&self) -> Result<DatasetBlock<'_>> {
        let block = match self.dataset {
            DatasetKind::Synthetic => self.synthetic.as_ref().map(DatasetBlock::Synthetic),
            DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
                self.listed.as_ref().map(DatasetBlock::Listed)
            }
            DatasetKind::Pascal => self.pascal.as_ref().map(DatasetBlock::Pascal),
            DatasetKind::NusWide => self.nus_wide.as_ref().map(DatasetBlock::NusWide),
            DatasetKind::Pairs => self.pairs.as_ref().map(DatasetBlock::Pairs),
        };
        block.ok_or_else(|| {
            anyhow!("`data.{}` is required when `data.dataset` is {}", self.block_key(), self.dataset.name())
        })
    }

    /// The root folder of the active dataset block, if it has one.
    pub fn root(&self) -> Option<&Path> {
        match self.block().ok()? {
            DatasetBlock::Synthetic(_) => None,
            DatasetBlock::Listed(l) => Some(&l.root),
            DatasetBlock::Pascal(p) => Some(&p.root),
            DatasetBlock::NusWide(n) => Some(&n.root),
            DatasetBlock::Pairs(p) => Some(&p.root),
        }
    }

    /// Points the active dataset block at another root folder.
    pub fn set_root(&mut self, root: PathBuf) -> Result<()> {
        self.block()?;
        match self.dataset {
            DatasetKind::Synthetic => bail!("the synthetic dataset has no source folder"),
            DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
                self.listed.as_mut().expect("checked by block()").root = root
            }
            DatasetKind::Pascal => self.pascal.as_mut().expect("checked by block()").root = root,
            DatasetKind::NusWide => self.nus_wide.as_mut().expect("checked by block()").root = root,
            DatasetKind::Pairs => self.pairs.as_mut().expect("checked by block()").root = root,
        }
        Ok(())
    }

    /// Rewrites each path of the data config that is read relative to the working
    /// directory (the root, the raw-image folder and the backbone) with `f`; the list files
    /// and feature files inside the root follow it.
    pub fn map_paths(&mut self, f: &dyn Fn(&Path) -> PathBuf) -> Result<()> {
        if let Some(root) = self.root().map(f) {
            self.set_root(root)?;
        }
        if let Some(fi) = self.from_images.as_mut() {
            if !fi.images.as_os_str().is_empty() {
                fi.images = f(&fi.images);
            }
            fi.featurize.backbone = f(&fi.featurize.backbone);
        }
        Ok(())
    }

    /// Points the active dataset block's image features at `path` (a `.npy` keyed by id),
    /// as `data.from_images` does once it has featurized the images.
    pub fn set_image_features(&mut self, path: PathBuf) -> Result<()> {
        self.block()?;
        match self.dataset {
            DatasetKind::Synthetic => bail!("`data.from_images` does not apply to the synthetic dataset"),
            DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
                self.listed.as_mut().expect("checked by block()").image_features =
                    crate::data::listed::ImageSource::File { path }
            }
            DatasetKind::Pascal => self.pascal.as_mut().expect("checked by block()").image_features = path,
            DatasetKind::NusWide => {
                self.nus_wide.as_mut().expect("checked by block()").image_features =
                    crate::data::nus_wide::NusFeatures::Npy { path }
            }
            DatasetKind::Pairs => self.pairs.as_mut().expect("checked by block()").image_features = path,
        }
        Ok(())
    }
}

/// `data.from_images`: raw images → features, keyed by file stem, surrounding spaces
/// trimmed (`<id>.jpg`, `<id> .jpg` → `<id>`); files that share a stem are told apart by
/// the dataset lists' categories (`prepare::resolve_image_ids`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FromImages {
    /// Folder of images, searched recursively (e.g. Eng-Wiki's `images/<category>/<id>.jpg`).
    /// Omitted: `<dataset root>/images`, so that it follows the root (`--source`).
    #[serde(default, skip_serializing_if = "crate::config::is_empty_path")]
    pub images: PathBuf,
    /// Backbone and preprocessing (`backbone: models/efficientnet_lite0.pt` from `make backbone`).
    #[serde(default)]
    pub featurize: crate::image::featurize::FeaturizeConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Synthetic,
    EngWiki,
    NusWide,
    Pascal,
    Tvgraz,
    ChWiki,
    Pairs,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::EngWiki => "eng-wiki",
            DatasetKind::NusWide => "nus-wide",
            DatasetKind::Pascal => "pascal",
            DatasetKind::Tvgraz => "tvgraz",
            DatasetKind::ChWiki => "ch-wiki",
            DatasetKind::Pairs => "pairs",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImageNorm {
    Zscore,
    L2,
    None,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImageTransform {
    #[default]
    None,
    Sqrt,
}

impl ImageTransform {
    fn is_none(&self) -> bool {
        *self == ImageTransform::None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// λ weighting the margin term.
    pub lambda: f64,
    /// m, the wanted gap between mean positive and mean negative score.
    pub margin: f64,
    /// L2 coefficient on the fully connected weights (sum of squares). TF's
    /// `c · l2_loss(p)` is `c · Σ p² / 2`: the same term with `l2` = c / 2.
    pub l2: f64,
    /// Put the FC biases in the L2 term too (as the authors' TF code does).
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub l2_biases: bool,
    /// Weight of the global loss (the authors' objective) in the total.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub global: f64,
    /// Weight of the in-batch multi-positive InfoNCE term (`train.pairs: in_batch` only).
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub contrastive: f64,
    /// Temperature τ of the contrastive term (scores / τ).
    #[serde(default = "default_temperature", skip_serializing_if = "is_default_temperature")]
    pub temperature: f64,
    /// Learn τ (as log τ, starting from `temperature`) with the rest of the model.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub learn_temperature: bool,
    /// Weight of the label loss: one linear classifier shared by both towers' embeddings,
    /// softmax cross-entropy on single-label data, binary cross-entropy on multi-label data.
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub label: f64,
    /// Weight of the modality-invariance term: mean ‖t − i‖² between an item's text and
    /// image embedding, as the scorer compares them (`train.pairs: in_batch` only).
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub invariance: f64,
    /// Which in-batch pairs are positives (the global and contrastive terms): items that
    /// share a label (`label`), or only each item's own text and image, the diagonal of the
    /// batch (`pair`, CLIP-style, no labels needed).
    #[serde(default, skip_serializing_if = "Positives::is_label")]
    pub positives: Positives,
}

/// `loss.positives`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Positives {
    #[default]
    Label,
    Pair,
}

impl Positives {
    fn is_label(&self) -> bool {
        *self == Positives::Label
    }
}

// Defaults that are left out of the saved YAML, so that configs written before these keys
// existed keep their hash (and their runs' checkpoints stay loadable).
fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn default_temperature() -> f64 {
    0.1
}
fn is_default_temperature(v: &f64) -> bool {
    *v == 0.1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Learning rate multiplier applied after every epoch.
    pub lr_decay: f64,
    pub pairs: PairMode,
    /// `sampled` mode: positive pairs drawn per epoch (as many negatives again).
    pub pairs_per_epoch: usize,
    /// Evaluate on the validation split every this many epochs (and after the last).
    pub eval_every: usize,
    /// Learning rate per epoch: `exp` (lr · lr_decay^(e−1), the authors') or `cosine`
    /// (from lr down to 0 over the epochs after the warm-up).
    #[serde(default, skip_serializing_if = "Schedule::is_exp")]
    pub schedule: Schedule,
    /// Epochs of linear warm-up (lr · e / warmup_epochs) before the schedule.
    #[serde(default, skip_serializing_if = "crate::files::is_zero_usize")]
    pub warmup_epochs: usize,
    /// Decoupled weight decay (AdamW: θ ← θ · (1 − lr · wd) before each Adam step); 0 is Adam.
    #[serde(default, skip_serializing_if = "crate::files::is_zero")]
    pub weight_decay: f64,
    /// Early stopping: stop when validation mean MAP@all has not improved for this many
    /// evaluations in a row; the best checkpoint (or its refit) is then tested. Absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// `in_batch` mode: optimizer steps per epoch, drawn from as many reshuffles of the train
    /// split as needed (absent: one pass, ⌈n / batch⌉ steps). A budget that counts steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<usize>,
    /// After selection on validation, train once more on train ∪ validation, from a fresh
    /// initialisation with the run's seed, for the selected number of epochs under the same
    /// schedule; the test figures, the class means and the export then come from that model
    /// (checkpoint `refit`). Validation-only runs (`tgcn sweep`) stop before it.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub refit: bool,
    /// An exponential moving average of the weights with this decay per optimizer step
    /// (see [`crate::train::optim`]); validation, the `best` and `refit` checkpoints, the
    /// test and the export then use the averaged weights. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// The validation figure that selects the best epoch, stops early and ranks sweep
    /// settings: mean MAP@all (`map`), or Recall@1, @5, @10 averaged over both directions
    /// (`r1`, `r5`, `r10`). Absent: `map`.
    #[serde(default, skip_serializing_if = "SelectOn::is_map")]
    pub select_on: SelectOn,
}

/// `train.select_on`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelectOn {
    #[default]
    Map,
    R1,
    R5,
    R10,
}

impl SelectOn {
    pub fn is_map(&self) -> bool {
        *self == SelectOn::Map
    }

    /// The figure in words (`mean MAP@all`, `mean R@1`).
    pub fn label(self) -> &'static str {
        match self {
            SelectOn::Map => "mean MAP@all",
            SelectOn::R1 => "mean R@1",
            SelectOn::R5 => "mean R@5",
            SelectOn::R10 => "mean R@10",
        }
    }

    /// The metrics-file tags of its two directions (`val/map_i2t`, `val/r1_i2t`).
    pub fn direction_tags(self) -> [&'static str; 2] {
        match self {
            SelectOn::Map => ["val/map_i2t", "val/map_t2i"],
            SelectOn::R1 => ["val/r1_i2t", "val/r1_t2i"],
            SelectOn::R5 => ["val/r5_i2t", "val/r5_t2i"],
            SelectOn::R10 => ["val/r10_i2t", "val/r10_t2i"],
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Exp,
    Cosine,
}

impl Schedule {
    fn is_exp(&self) -> bool {
        *self == Schedule::Exp
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PairMode {
    Sampled,
    InBatch,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub protocol: Protocol,
    /// Evaluate the untrained model on the test split before training (the table's
    /// "untrained" baseline); at NUS-WIDE's size it is about a quarter of a short run.
    #[serde(default = "crate::files::yes", skip_serializing_if = "crate::files::is_true")]
    pub untrained: bool,
    /// k of MAP@k.
    pub k: usize,
    /// Cut-offs of the precision-scope curve.
    pub scope: Vec<usize>,
    /// Queries scored at once; bounds memory at chunk × database.
    pub chunk: usize,
    /// What items are ranked by: the trained scorer, or class posteriors from class means
    /// or from the label classifier (see [`crate::eval::posterior`]). Absent: the scorer.
    #[serde(default, skip_serializing_if = "Ranking::is_scorer")]
    pub ranking: Ranking,
    /// τ of the class posteriors, softmax(cos(e, μ_c) / τ); only with `ranking: class_posterior`.
    #[serde(default = "default_posterior_temperature", skip_serializing_if = "is_default_posterior_temperature")]
    pub posterior_temperature: f64,
    /// What a query finds relevant: items sharing a label (`label`, class-level), or only
    /// its own pair (`pair`, instance-level). Absent: `label` where the dataset has labels,
    /// `pair` where it has none. MAP, precision, Recall@K and the median rank all follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevance: Option<RelevanceMode>,
}

/// `eval.relevance`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RelevanceMode {
    /// Database items that share a label with the query.
    Label,
    /// The query's own pair only (the item at the query's index in the same split).
    Pair,
}

impl RelevanceMode {
    pub fn name(self) -> &'static str {
        match self {
            RelevanceMode::Label => "label",
            RelevanceMode::Pair => "pair",
        }
    }
}

impl EvalConfig {
    /// `eval.relevance`, or its default for a dataset with `classes` labels.
    pub fn relevance_for(&self, classes: usize) -> RelevanceMode {
        self.relevance.unwrap_or(if classes == 0 { RelevanceMode::Pair } else { RelevanceMode::Label })
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// The scores of the trained scorer (cosine or product).
    #[default]
    Scorer,
    /// The inner product of the two items' class posteriors, each from its own
    /// modality's train-split class means of the embeddings.
    ClassPosterior,
    /// The inner product of the two items' class posteriors from the label classifier
    /// that training shared by both towers (`loss.label` > 0): softmax of its logits for
    /// single-label data, sigmoid per class for multi-label data.
    Classifier,
}

impl Ranking {
    fn is_scorer(&self) -> bool {
        *self == Ranking::Scorer
    }
}

const DEFAULT_POSTERIOR_TEMPERATURE: f64 = 0.1;

fn default_posterior_temperature() -> f64 {
    DEFAULT_POSTERIOR_TEMPERATURE
}

fn is_default_posterior_temperature(t: &f64) -> bool {
    *t == DEFAULT_POSTERIOR_TEMPERATURE
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Test queries against the test set of the other modality.
    TestVsTest,
    /// Test queries against the train set of the other modality (the authors' protocol).
    TestVsTrain,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TestVsTest => "test_vs_test",
            Protocol::TestVsTrain => "test_vs_train",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Write TorchScript modules at the end of training.
    pub enabled: bool,
    /// Beside them, `.pt2` (torch.export) and `.onnx` modules with named inputs, written by
    /// the project's Python package (`python -m tgcn_torch.export RUN`); without the
    /// package the export says how to get it and goes on.
    #[serde(default = "crate::files::yes", skip_serializing_if = "crate::files::is_true")]
    pub onnx: bool,
}

fn pos(key: &str, v: usize) -> Result<()> {
    ensure!(v >= 1, "`{key}` must be at least 1, got {v}");
    Ok(())
}

fn in_range(key: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    ensure!(v.is_finite() && v >= lo && v <= hi, "`{key}` must be {}, got {v}", range_text(lo, hi));
    Ok(())
}

impl DataConfig {
    /// The active dataset's block is present and valid (the others are not read).
    fn validate(&self) -> Result<()> {
        match self.block()? {
            DatasetBlock::Synthetic(s) => validate_synthetic(s),
            DatasetBlock::Listed(l) => l.validate().context("`data.listed`"),
            DatasetBlock::Pascal(p) => p.validate("data.pascal"),
            DatasetBlock::NusWide(n) => n.validate("data.nus_wide"),
            DatasetBlock::Pairs(p) => p.validate("data.pairs"),
        }
    }
}

fn validate_synthetic(s: &SyntheticConfig) -> Result<()> {
    ensure!(s.classes >= 2, "`data.synthetic.classes` must be at least 2, got {}", s.classes);
    pos("data.synthetic.words_per_class", s.words_per_class)?;
    pos("data.synthetic.vector_dim", s.vector_dim)?;
    pos("data.synthetic.image_dim", s.image_dim)?;
    pos("data.synthetic.text_len_min", s.text_len_min)?;
    ensure!(
        s.text_len_max >= s.text_len_min,
        "`data.synthetic.text_len_max` ({}) is below `text_len_min` ({})",
        s.text_len_max,
        s.text_len_min
    );
    in_range("data.synthetic.topic_prob", s.topic_prob, 0.0, 1.0)?;
    in_range("data.synthetic.vector_noise", s.vector_noise, 0.0, f64::MAX)?;
    in_range("data.synthetic.image_noise", s.image_noise, 0.0, f64::MAX)?;
    ensure!(
        (1..=s.classes).contains(&s.max_labels),
        "`data.synthetic.max_labels` must lie in [1, {}], got {}",
        s.classes,
        s.max_labels
    );
    ensure!(
        s.topic_prob == 1.0 || s.shared_words > 0,
        "`data.synthetic.shared_words` must be at least 1 when `topic_prob` < 1"
    );
    pos("data.synthetic.train", s.train)?;
    pos("data.synthetic.val", s.val)?;
    pos("data.synthetic.test", s.test)
}

fn validate_text(t: &TextConfig) -> Result<()> {
    pos("text.min_freq", t.min_freq)?;
    if let Some(m) = t.max_vocab {
        pos("text.max_vocab", m)?;
    }
    if let Some(m) = t.max_tokens {
        pos("text.max_tokens", m)?;
    }
    Ok(())
}

fn validate_graph(g: &GraphConfig) -> Result<()> {
    pos("graph.k", g.k)?;
    pos("graph.knn_chunk", g.knn_chunk)?;
    ensure!(!g.relations.is_empty(), "`graph.relations` is empty: name at least one of knn, pmi, wordnet");
    for (i, r) in g.relations.iter().enumerate() {
        ensure!(!g.relations[..i].contains(r), "`graph.relations` names {} twice", r.name());
    }
    ensure!(g.pmi.window >= 2, "`graph.pmi.window` is {}; a window must hold at least 2 tokens", g.pmi.window);
    ensure!(
        g.combine == crate::graph::Combine::Union || g.relations.len() >= 2,
        "`graph.combine: separate` gives each relation its own Chebyshev stack; `graph.relations` names only one"
    );
    pos("graph.pmi.k", g.pmi.k)?;
    pos("graph.pmi.min_count", g.pmi.min_count)
}

fn validate_model(m: &ModelConfig) -> Result<()> {
    if m.text.kind == TextKind::Gcn {
        ensure!(!m.text.cheb.is_empty(), "`model.text.cheb` needs at least one layer");
    }
    for (i, l) in m.text.cheb.iter().enumerate() {
        pos(&format!("model.text.cheb[{i}].k"), l.k)?;
        pos(&format!("model.text.cheb[{i}].filters"), l.filters)?;
    }
    for (i, &h) in m.text.fc.iter().enumerate() {
        pos(&format!("model.text.fc[{i}]"), h)?;
    }
    for (i, &h) in m.image.hidden.iter().enumerate() {
        pos(&format!("model.image.hidden[{i}]"), h)?;
    }
    pos("model.embed_dim", m.embed_dim)?;
    for (key, p) in [
        ("model.dropout", m.dropout),
        ("model.text.input_dropout", m.text.input_dropout),
        ("model.text.dropout", m.text.dropout),
        ("model.image.dropout", m.image.dropout),
    ] {
        ensure!((0.0..1.0).contains(&p), "`{key}` must lie in [0, 1), got {p}");
    }
    Ok(())
}

impl LossConfig {
    fn validate(&self) -> Result<()> {
        in_range("loss.lambda", self.lambda, 0.0, f64::MAX)?;
        in_range("loss.margin", self.margin, 0.0, f64::MAX)?;
        in_range("loss.l2", self.l2, 0.0, f64::MAX)?;
        in_range("loss.global", self.global, 0.0, f64::MAX)?;
        in_range("loss.contrastive", self.contrastive, 0.0, f64::MAX)?;
        in_range("loss.temperature", self.temperature, f64::MIN_POSITIVE, f64::MAX)?;
        in_range("loss.label", self.label, 0.0, f64::MAX)?;
        in_range("loss.invariance", self.invariance, 0.0, f64::MAX)?;
        ensure!(
            self.global + self.contrastive + self.label > 0.0,
            "`loss.global`, `loss.contrastive` and `loss.label` are all 0: nothing to train on"
        );
        ensure!(
            !self.learn_temperature || self.contrastive > 0.0,
            "`loss.learn_temperature` needs `loss.contrastive` > 0 (τ only enters the contrastive term)"
        );
        Ok(())
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<()> {
        pos("train.epochs", self.epochs)?;
        pos("train.batch_size", self.batch_size)?;
        ensure!(self.lr.is_finite() && self.lr > 0.0, "`train.lr` must be positive, got {}", self.lr);
        in_range("train.lr_decay", self.lr_decay, f64::MIN_POSITIVE, 1.0)?;
        in_range("train.weight_decay", self.weight_decay, 0.0, f64::MAX)?;
        ensure!(
            self.warmup_epochs < self.epochs,
            "`train.warmup_epochs` = {} must be below `train.epochs` = {}",
            self.warmup_epochs,
            self.epochs
        );
        if let Some(p) = self.patience {
            pos("train.patience", p)?;
        }
        if let Some(d) = self.ema {
            ensure!(d > 0.0 && d < 1.0, "`train.ema` is a decay per optimizer step and must lie in (0, 1), got {d}");
        }
        if let Some(n) = self.steps_per_epoch {
            pos("train.steps_per_epoch", n)?;
            ensure!(
                self.pairs == PairMode::InBatch,
                "`train.steps_per_epoch` is for `train.pairs: in_batch`; sampled mode sets its steps with \
                 `train.pairs_per_epoch`"
            );
        }
        ensure!(
            self.pairs != PairMode::InBatch || self.batch_size >= 2,
            "`train.batch_size` must be at least 2 with `train.pairs: in_batch` (a batch contrasts its items \
             with each other; one item has nothing to contrast), got {}",
            self.batch_size
        );
        if self.pairs == PairMode::Sampled {
            pos("train.pairs_per_epoch", self.pairs_per_epoch)?;
            ensure!(
                self.batch_size >= 2,
                "`train.batch_size` must be at least 2 in sampled mode (half positives, half negatives), got {}",
                self.batch_size
            );
        }
        pos("train.eval_every", self.eval_every)
    }
}

impl EvalConfig {
    fn validate(&self) -> Result<()> {
        pos("eval.k", self.k)?;
        pos("eval.chunk", self.chunk)?;
        in_range("eval.posterior_temperature", self.posterior_temperature, f64::MIN_POSITIVE, f64::MAX)?;
        for (i, &k) in self.scope.iter().enumerate() {
            pos(&format!("eval.scope[{i}]"), k)?;
        }
        Ok(())
    }
}

pub fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

/// A range for humans: `[0, 1]`, `(0, 1]` for a positive lower bound of f64::MIN_POSITIVE,
/// `≥ 0` when there is no upper bound.
fn range_text(lo: f64, hi: f64) -> String {
    match (lo == f64::MIN_POSITIVE, hi == f64::MAX) {
        (true, true) => "a positive, finite number".to_string(),
        (true, false) => format!("in (0, {hi}]"),
        (false, true) => format!("≥ {lo}"),
        (false, false) => format!("in [{lo}, {hi}]"),
    }
}

/// Where a raw YAML layer came from, for error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: String,
    pub value: Value,
}

impl Layer {
    pub fn from_file(path: &Path) -> Result<Layer> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let value: Value =
            serde_yaml::from_str(&text).with_context(|| format!("config file {} is not valid YAML", path.display()))?;
        ensure!(value.is_mapping(), "config file {} must hold a mapping at the top level", path.display());
        Ok(Layer { source: path.display().to_string(), value })
    }

    /// Parses `a.b.c=value`; the value is read as a YAML scalar or flow collection.
    pub fn from_set(assignment: &str) -> Result<Layer> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {assignment:?}: expected KEY=VALUE, e.g. train.lr=1e-4"))?;
        let key = key.trim();
        ensure!(!key.is_empty(), "--set {assignment:?}: empty key");
        let leaf: Value =
            serde_yaml::from_str(raw).with_context(|| format!("--set {key}: cannot parse value {raw:?}"))?;
        let mut value = leaf;
        for part in key.split('.').rev() {
            ensure!(!part.is_empty(), "--set {assignment:?}: empty key segment");
            if let Some((list, _)) = part.split_once('[') {
                bail!(
                    "--set {key}: `{part}` indexes a list, but lists are set whole: \
                     --set '{}={}' (the whole list, in YAML flow style)",
                    key.split_once('[').map_or(key, |(k, _)| k),
                    if list == "cheb" { "[{k: 3, filters: 1}, {k: 3, filters: 1}]" } else { "[...]" }
                );
            }
            let mut m = Mapping::new();
            m.insert(Value::String(part.to_string()), value);
            value = Value::Mapping(m);
        }
        Ok(Layer { source: format!("--set {key}"), value })
    }
}

/// Deep-merges `over` into `base`: mappings merge key by key, anything else replaces.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn has_path(value: &Value, path: &[&str]) -> bool {
    let mut cur = value;
    for p in path {
        match cur.get(*p) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    true
}

/// The config file for a dataset name: `<dir>/<name>.yaml`.
pub fn dataset_config_path(dir: &Path, dataset: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{dataset}.yaml"));
    if !path.exists() {
        let mut known: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter_map(|n| n.strip_suffix(".yaml").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        known.sort();
        bail!("no config for dataset {dataset:?}: {} does not exist (known: {})", path.display(), known.join(", "));
    }
    Ok(path)
}

impl Config {
    /// Merges the layers in order, deserializes strictly and validates.
    pub fn from_layers(layers: &[Layer]) -> Result<Config> {
        ensure!(!layers.is_empty(), "no config layers given");
        let mut merged = Value::Mapping(Mapping::new());
        for l in layers {
            merge(&mut merged, &l.value);
        }
        let sources: Vec<&str> = layers.iter().map(|l| l.source.as_str()).collect();
        let cfg: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            let path = e.path().to_string();
            let segs: Vec<&str> = path.split('.').filter(|s| !s.is_empty() && *s != "?").collect();
            // Name the last layer that set the offending key (or its parent, for unknown keys).
            let origin = (0..=segs.len())
                .rev()
                .find_map(|n| layers.iter().rev().find(|l| has_path(&l.value, &segs[..n])).filter(|_| n > 0))
                .map(|l| l.source.clone())
                .unwrap_or_else(|| sources.join(" + "));
            anyhow!("config key `{path}` in {origin}: {}", e.inner())
        })?;
        cfg.validate().with_context(|| format!("invalid config ({})", sources.join(" + ")))?;
        Ok(cfg)
    }

    pub fn from_yaml_str(text: &str, source: &str) -> Result<Config> {
        let value: Value = serde_yaml::from_str(text).with_context(|| format!("config {source} is not valid YAML"))?;
        Config::from_layers(&[Layer { source: source.to_string(), value }])
    }

    pub fn to_yaml(&self) -> Result<String> {
        Ok(serde_yaml::to_string(self)?)
    }

    /// Range checks that need no data, one block at a time, then the rules that tie
    /// blocks together. Data-dependent checks (k < vocabulary size, batch ≤ split size)
    /// run when the data is prepared.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.name.is_empty()
                && !self.name.starts_with('.')
                && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "`name` {:?} must be a plain folder name: letters, digits, `.`, `_` or `-`, not starting with `.` \
             (it becomes part of the run folder's name)",
            self.name
        );
        self.data.validate()?;
        validate_text(&self.text)?;
        self.vectors.validate()?;
        validate_graph(&self.graph)?;
        validate_model(&self.model)?;
        self.loss.validate()?;
        self.train.validate()?;
        self.eval.validate()?;
        self.validate_across_blocks()
    }

    /// The rules between blocks: a loss term and the pairs it needs, a ranking and the
    /// head it ranks by, the text input and the tower kind.
    fn validate_across_blocks(&self) -> Result<()> {
        ensure!(
            !self.model.text.concat_bow || self.model.text.kind == TextKind::Gcn,
            "`model.text.concat_bow` adds the bag of words beside the graph features; with \
             `model.text.kind: mlp` the input is the bag of words already"
        );
        ensure!(
            !self.model.text.smooth || self.model.text.kind == TextKind::Mlp,
            "`model.text.smooth` gives the `mlp` tower the graph as fixed smoothing; the `gcn` tower \
             has its own Chebyshev filters (drop the key, or add `--set model.text.kind=mlp`)"
        );
        ensure!(
            self.loss.invariance == 0.0 || self.train.pairs == PairMode::InBatch,
            "`loss.invariance` = {} needs `train.pairs: in_batch` (it compares an item's own text and image)",
            self.loss.invariance
        );
        ensure!(
            self.loss.contrastive == 0.0 || self.train.pairs == PairMode::InBatch,
            "`loss.contrastive` = {} needs `train.pairs: in_batch` (it contrasts every pair of a batch)",
            self.loss.contrastive
        );
        ensure!(
            self.loss.positives == Positives::Label || self.train.pairs == PairMode::InBatch,
            "`loss.positives: pair` needs `train.pairs: in_batch` (sampled pairs are drawn by label)"
        );
        ensure!(
            self.eval.relevance != Some(RelevanceMode::Pair) || self.eval.protocol == Protocol::TestVsTest,
            "`eval.relevance: pair` needs `eval.protocol: test_vs_test` (a test item's own pair is not in the \
             train split)"
        );
        ensure!(
            self.eval.ranking != Ranking::Classifier || self.loss.label > 0.0,
            "`eval.ranking: classifier` ranks by the label classifier, which only exists with `loss.label` > 0 (got {})",
            self.loss.label
        );
        Ok(())
    }

    /// The settings that need class labels, refused for a dataset without them (`classes`
    /// = 0), each with the key to change.
    pub fn check_labels(&self, classes: usize) -> Result<()> {
        if classes > 0 {
            return Ok(());
        }
        let why = "the dataset has no class labels";
        ensure!(
            self.train.pairs == PairMode::InBatch,
            "`train.pairs: sampled` draws pairs by class label, and {why}; use `train.pairs: in_batch` with \
             `loss.positives: pair`"
        );
        ensure!(
            self.loss.positives == Positives::Pair,
            "`loss.positives: label` makes items that share a label positives, and {why}; set \
             `loss.positives: pair` (each item's own text and image)"
        );
        ensure!(
            self.loss.label == 0.0,
            "`loss.label` = {} trains a label classifier, and {why}; set it to 0",
            self.loss.label
        );
        ensure!(
            self.eval.ranking == Ranking::Scorer,
            "`eval.ranking: {}` ranks by class posteriors, and {why}; use `eval.ranking: scorer`",
            match self.eval.ranking {
                Ranking::ClassPosterior => "class_posterior",
                _ => "classifier",
            }
        );
        ensure!(
            self.eval.relevance != Some(RelevanceMode::Label),
            "`eval.relevance: label` finds items that share a label, and {why}; use `eval.relevance: pair`"
        );
        ensure!(
            self.eval.protocol == Protocol::TestVsTest,
            "`eval.protocol: test_vs_train` cannot score pairs (a test item's pair is not in the train split), \
             and {why}; use `eval.protocol: test_vs_test`"
        );
        Ok(())
    }

    /// A short stable hash of the resolved config, stored beside checkpoints.
    pub fn hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.to_yaml()?.as_bytes());
        Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }
}
