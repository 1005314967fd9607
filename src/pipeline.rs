//! Data preparation shared by `train`, `eval` and `export`: dataset → vocabulary → BoW
//! signals → word vectors → kNN graph → rescaled Laplacian, plus normalised image
//! features, all as tensors on the training device. Rebuilding from a run's saved
//! config gives the same vocabulary, graph and splits (everything is seeded).

use crate::config::{Config, DatasetKind, DeviceChoice, ImageNorm, ImageTransform};
use crate::data::synthetic;
use crate::data::{Dataset, Split};
use crate::graph::knn::cosine_knn;
use crate::graph::laplacian::{rescaled_laplacian, Coo};
use crate::graph::word_graph::{Graph, GraphStats};
use crate::graph::MissingVectors;
use crate::image::featurize::ImageList;
use crate::text::vocab::Vocab;
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
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

/// Image feature normalisation fitted on the train split: an optional √x (Hellinger map),
/// then x' = (x − shift) / scale, then an optional row L2 normalisation.
#[derive(Debug)]
pub struct ImageNormalizer {
    pub kind: ImageNorm,
    pub sqrt: bool,
    pub shift: Tensor,
    pub scale: Tensor,
}

impl ImageNormalizer {
    /// Fits on the raw train features `train: [n, F]`.
    pub fn fit(kind: ImageNorm, transform: ImageTransform, train: &Tensor) -> ImageNormalizer {
        let sqrt = transform == ImageTransform::Sqrt;
        let train = if sqrt { train.clamp_min(0.0).sqrt() } else { train.shallow_clone() };
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
        ImageNormalizer { kind, sqrt, shift, scale }
    }

    /// `x: [n, F] -> [n, F]` (raw features; negative ones were refused at load under `sqrt`).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let x = if self.sqrt { x.clamp_min(0.0).sqrt() } else { x.shallow_clone() };
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
    /// Vocabulary words kept as isolated vertices because they had no vector.
    pub isolated_no_vector: usize,
    pub graph: GraphStats,
    pub laplacian: Coo,
    pub lambda_max: f64,
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

pub fn tokenizer(cfg: &Config) -> crate::data::tokenize::Tokenizer {
    crate::data::tokenize::Tokenizer::new(cfg.text.language, cfg.text.stop_words, cfg.text.stem)
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

/// A free-text query cut into tokens exactly as the dataset's texts were: whitespace for
/// pre-tokenized texts (synthetic words, Eng-Wiki `text_seqs`, NUS-WIDE tags), the
/// configured tokenizer for raw texts (Pascal captions, raw articles).
pub fn tokenize_query(cfg: &Config, text: &str) -> Vec<String> {
    let pre_tokenized = match cfg.data.dataset {
        DatasetKind::Synthetic | DatasetKind::NusWide => true,
        DatasetKind::Pascal => false,
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            cfg.data.listed.as_ref().is_some_and(|l| l.texts == crate::data::listed::TextSource::TextSeqs)
        }
    };
    let mut tokens = if pre_tokenized {
        text.split_whitespace().map(str::to_string).collect()
    } else {
        tokenizer(cfg).tokenize(text)
    };
    if cfg.text.lowercase {
        lowercase(&mut tokens);
    }
    if let Some(n) = cfg.text.max_tokens {
        tokens.truncate(n);
    }
    tokens
}

/// `text.lowercase`: every token in lower case.
fn lowercase(tokens: &mut [String]) {
    for t in tokens {
        if t.chars().any(char::is_uppercase) {
            *t = t.to_lowercase();
        }
    }
}

/// `data.from_images` with its folder resolved: as given, or `<dataset root>/images` when
/// omitted (so that it follows `--source` and the root like every other dataset path).
pub fn from_images(cfg: &Config) -> Result<Option<crate::config::FromImages>> {
    let Some(fi) = &cfg.data.from_images else { return Ok(None) };
    let mut fi = fi.clone();
    if fi.images.as_os_str().is_empty() {
        let root =
            dataset_root(cfg).context("`data.from_images.images` is omitted but the dataset has no root folder")?;
        fi.images = root.join("images");
    }
    Ok(Some(fi))
}

/// The dataset id of an image file: its file stem, surrounding spaces trimmed
/// (`art/22 .jpg` → `22`: some downloads put a space before the extension).
pub fn image_stem(id: &str) -> String {
    Path::new(id).file_stem().map_or_else(|| id.to_string(), |s| s.to_string_lossy().into_owned()).trim().to_string()
}

/// Image id → class names, from the dataset lists where the layout has them (Eng-Wiki,
/// TVGraz, Ch-Wiki); None for the other layouts.
pub fn image_categories(cfg: &Config) -> Result<Option<HashMap<String, BTreeSet<String>>>> {
    match (cfg.data.dataset, &cfg.data.listed) {
        (DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki, Some(l)) => {
            Ok(Some(crate::data::listed::image_categories(l)?))
        }
        _ => Ok(None),
    }
}

/// Tells apart image files that share an id ([`image_stem`]): of such files, the one in a
/// folder named after a class the dataset lists give that id is kept and the others are
/// left out. Where that does not leave exactly one (no class information, an id the lists
/// do not name, none or several files in such a folder) it is an error. Returns the kept
/// files, in order, and the ids of those left out.
pub fn resolve_image_ids(
    images: ImageList,
    dir: &Path,
    categories: Option<&HashMap<String, BTreeSet<String>>>,
) -> Result<(ImageList, Vec<String>)> {
    let mut by_stem: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (id, _)) in images.iter().enumerate() {
        by_stem.entry(image_stem(id)).or_default().push(i);
    }
    let folder = |i: usize| Path::new(&images[i].0).parent().and_then(|p| p.file_name()).map(|f| f.to_string_lossy());
    let mut keep = vec![true; images.len()];
    for (stem, files) in by_stem.iter().filter(|(_, f)| f.len() > 1) {
        let classes = categories.and_then(|c| c.get(stem));
        let in_class: Vec<usize> = files
            .iter()
            .copied()
            .filter(|&i| folder(i).is_some_and(|f| classes.is_some_and(|c| c.contains(&*f))))
            .collect();
        if let [winner] = in_class[..] {
            files.iter().for_each(|&i| keep[i] = i == winner);
            continue;
        }
        let why = match (categories, classes) {
            (None, _) => "the dataset has no class lists to tell them apart".to_string(),
            (Some(_), None) => format!("the dataset lists do not name image {stem}"),
            (Some(_), Some(c)) => format!(
                "the lists give it class {}; {} of these files are in a folder of that name",
                c.iter().cloned().collect::<Vec<_>>().join(" or "),
                in_class.len()
            ),
        };
        let names: Vec<&str> = files.iter().map(|&i| images[i].0.as_str()).collect();
        bail!("images {} under {} share the id {stem} ({why})", names.join(" and "), dir.display());
    }
    let mut kept = Vec::with_capacity(images.len());
    let mut left_out = Vec::new();
    for (item, k) in images.into_iter().zip(keep) {
        if k {
            kept.push(item);
        } else {
            left_out.push(item.0);
        }
    }
    Ok((kept, left_out))
}

/// The image files of `data.from_images` the dataset uses: every image under the folder
/// ([`crate::image::featurize::scan_images`]), less the files [`resolve_image_ids`] leaves
/// out. With `notes`, one line on stderr each for the files that are not images by
/// extension and for the files left out.
pub fn dataset_images(cfg: &Config, fi: &crate::config::FromImages, notes: bool) -> Result<ImageList> {
    let listing = crate::image::featurize::scan_images(&fi.images)?;
    if let Some(note) = listing.note(&fi.images).filter(|_| notes) {
        eprintln!("{note}");
    }
    let (kept, left_out) = resolve_image_ids(listing.images, &fi.images, image_categories(cfg)?.as_ref())?;
    if notes && !left_out.is_empty() {
        eprintln!(
            "featurize: {} file(s) under {} share an image id with a file in the class folder the dataset \
             lists give it, and are left out: {}",
            left_out.len(),
            fi.images.display(),
            left_out.join(", ")
        );
    }
    Ok(kept)
}

/// Runs the featurizer over `data.from_images` (resumable, cached by its inputs) and
/// returns a feature file keyed by [`image_stem`], the id the dataset lists use.
pub fn featurize_images(cfg: &Config, cache: &Path, device: Device) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let fi = cfg.data.from_images.as_ref().context("`data.from_images` is not set")?;
    let key: String = Sha256::digest(format!("{}\n{}", fi.images.display(), serde_yaml::to_string(&fi.featurize)?))
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create cache folder {}", cache.display()))?;
    let out = cache.join(format!("images-{key}.npy"));
    let list = dataset_images(cfg, fi, true)?;
    crate::image::featurize::featurize(&list, &out, &fi.featurize, device)?;
    let f = crate::data::features::read_features(&out)?;
    let mut seen: HashMap<String, &str> = HashMap::new();
    let stems: Vec<String> = f
        .ids
        .iter()
        .map(|id| {
            let stem = image_stem(id);
            if let Some(other) = seen.insert(stem.clone(), id) {
                bail!("images {other} and {id} under {} share the id {stem}", fi.images.display());
            }
            Ok(stem)
        })
        .collect::<Result<_>>()?;
    let by_stem = cache.join(format!("images-{key}.by-stem.npy"));
    crate::data::features::write_features(
        &by_stem,
        &crate::data::features::Features { ids: stems, dim: f.dim, data: f.data },
    )?;
    Ok(by_stem)
}

/// The config with the dataset block's image features pointed at `path` (a `.npy` keyed by id).
fn with_image_features(cfg: &Config, path: PathBuf) -> Result<Config> {
    let mut c = cfg.clone();
    match c.data.dataset {
        DatasetKind::Synthetic => bail!("`data.from_images` does not apply to the synthetic dataset"),
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            if let Some(l) = c.data.listed.as_mut() {
                l.image_features = crate::data::listed::ImageSource::File { path };
            }
        }
        DatasetKind::Pascal => {
            if let Some(p) = c.data.pascal.as_mut() {
                p.image_features = path;
            }
        }
        DatasetKind::NusWide => {
            if let Some(n) = c.data.nus_wide.as_mut() {
                n.image_features = crate::data::nus_wide::NusFeatures::Npy { path };
            }
        }
    }
    Ok(c)
}

/// Where a dataset's files go, for the error when its root folder is missing.
pub fn expected_layout(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Synthetic => "nothing: the synthetic dataset is generated",
        DatasetKind::EngWiki => {
            "Eng-Wiki (http://www.svcl.ucsd.edu/projects/crossmodal/): ROOT/trainset_txt_img_cat.list, \
             ROOT/testset_txt_img_cat.list, ROOT/categories.list, ROOT/raw_features.mat, and the texts as \
             ROOT/texts/<text_id>.xml (raw articles) or ROOT/text_seqs/<text_id>.xml (processed)"
        }
        DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            "ROOT/trainset_txt_img_cat.list, ROOT/testset_txt_img_cat.list (text_id<TAB>image_id<TAB>category), \
             optional ROOT/categories.list, the texts at ROOT/<data.listed.text_file>, and image features \
             (data.listed.image_features) or raw images (data.from_images)"
        }
        DatasetKind::Pascal => {
            "ROOT/pascal_sentences.json (or ROOT/sentence/<class>/<image>.txt), and image features \
             (data.pascal.image_features, a .npy + .ids.txt) or raw images (data.from_images)"
        }
        DatasetKind::NusWide => {
            "NUS-WIDE (https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html): \
             ROOT/NUS_WID_Tags/AllTags1k.txt, ROOT/NUS_WID_Tags/TagList1k.txt, ROOT/Concepts81.txt, \
             ROOT/Groundtruth/AllLabels/Labels_<concept>.txt, ROOT/ImageList/{Imagelist,TrainImagelist,TestImagelist}.txt, \
             ROOT/Low_Level_Features/BoW_int.dat"
        }
    }
}

/// The root folder of the active dataset block, if it has one.
pub fn dataset_root(cfg: &Config) -> Option<&Path> {
    match cfg.data.dataset {
        DatasetKind::Synthetic => None,
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            cfg.data.listed.as_ref().map(|l| l.root.as_path())
        }
        DatasetKind::Pascal => cfg.data.pascal.as_ref().map(|p| p.root.as_path()),
        DatasetKind::NusWide => cfg.data.nus_wide.as_ref().map(|n| n.root.as_path()),
    }
}

/// Points the active dataset block at another root folder (`make data SOURCE=DIR`).
pub fn set_dataset_root(cfg: &mut Config, root: PathBuf) -> Result<()> {
    ensure!(!root.is_file(), "--source {} is a file; name the dataset's root folder", root.display());
    match cfg.data.dataset {
        DatasetKind::Synthetic => bail!("the synthetic dataset has no source folder"),
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            cfg.data.listed.as_mut().context("`data.listed` is missing")?.root = root
        }
        DatasetKind::Pascal => cfg.data.pascal.as_mut().context("`data.pascal` is missing")?.root = root,
        DatasetKind::NusWide => cfg.data.nus_wide.as_mut().context("`data.nus_wide` is missing")?.root = root,
    }
    Ok(())
}

/// Loads the configured dataset (features from raw images first, when configured).
pub fn load_dataset(cfg: &Config, cache: Option<&Path>, device: Device) -> Result<Dataset> {
    if let Some(root) = dataset_root(cfg) {
        ensure!(
            root.is_dir(),
            "dataset {} not found: {} does not exist. Put there {} (or set the root: \
             `make data DATASET={} SOURCE=DIR`)",
            cfg.data.dataset.name(),
            root.display(),
            expected_layout(cfg.data.dataset).replace("ROOT", &root.display().to_string()),
            cfg.data.dataset.name()
        );
    }
    if let Some(fi) = from_images(cfg)? {
        // The featurizer sees the resolved folder (`<root>/images` when omitted).
        let mut resolved = cfg.clone();
        resolved.data.from_images = Some(fi);
        let path = featurize_images(&resolved, cache.unwrap_or(Path::new("runs/cache")), device)?;
        let mut c = with_image_features(cfg, path)?;
        c.data.from_images = None;
        return load_dataset(&c, cache, device);
    }
    let mut ds = match cfg.data.dataset {
        DatasetKind::Synthetic => {
            let s = cfg.data.synthetic.as_ref().ok_or_else(|| anyhow!("`data.synthetic` is missing"))?;
            synthetic::generate(s, cfg.seed)
        }
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            let l = cfg.data.listed.as_ref().ok_or_else(|| anyhow!("`data.listed` is missing"))?;
            crate::data::listed::load(cfg.data.dataset.name(), l, &tokenizer(cfg), cfg.seed)?
        }
        DatasetKind::Pascal => {
            let p = cfg.data.pascal.as_ref().ok_or_else(|| anyhow!("`data.pascal` is missing"))?;
            crate::data::pascal::load(p, &tokenizer(cfg), cfg.seed)?
        }
        DatasetKind::NusWide => {
            let n = cfg.data.nus_wide.as_ref().ok_or_else(|| anyhow!("`data.nus_wide` is missing"))?;
            crate::data::nus_wide::load(n, cfg.seed)?
        }
    };
    if cfg.text.lowercase {
        for item in &mut ds.items {
            lowercase(&mut item.tokens);
        }
    }
    ds.validate()?;
    Ok(ds)
}

/// The cached part of preparation: vocabulary and word graph (their inputs are the train
/// tokens and the text/vectors/graph settings; word vectors and kNN are the slow steps).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextGraph {
    pub words: Vec<String>,
    pub counts: Vec<usize>,
    /// Graph entries (i, j, w) over vocabulary indices, symmetric.
    pub entries: Vec<(usize, usize, f32)>,
    /// Vocabulary words without a vector: dropped, or kept as isolated vertices.
    pub without_vector: usize,
    pub vector_dim: usize,
}

impl TextGraph {
    /// What the rest of preparation relies on, checked on whatever a cache file yields:
    /// a non-empty vocabulary of distinct words with one count each, graph entries
    /// between vocabulary words, and finite, non-negative weights. `what` names the source.
    pub fn validate(&self, what: &str) -> Result<()> {
        let v = self.words.len();
        ensure!(v > 0, "{what}: the vocabulary is empty");
        ensure!(self.counts.len() == v, "{what}: {} counts for {v} words", self.counts.len());
        let mut seen = std::collections::HashSet::with_capacity(v);
        if let Some(w) = self.words.iter().find(|w| !seen.insert(w.as_str())) {
            bail!("{what}: the word {w:?} is in the vocabulary twice");
        }
        for (k, &(i, j, w)) in self.entries.iter().enumerate() {
            ensure!(i < v && j < v, "{what}: graph entry {k} is ({i}, {j}) but the vocabulary has {v} words");
            ensure!(w.is_finite() && w >= 0.0, "{what}: graph entry {k} ({i}, {j}) has weight {w}");
        }
        Ok(())
    }
}

/// Reads a text-graph cache file: `Ok(None)` when there is none, an error when it cannot
/// be read, is not a [`TextGraph`] in JSON or fails [`TextGraph::validate`].
pub fn read_text_graph_cache(path: &Path) -> Result<Option<TextGraph>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read cache {}", path.display())),
    };
    let tg: TextGraph =
        serde_json::from_str(&text).with_context(|| format!("{} is not a text-graph cache", path.display()))?;
    tg.validate(&path.display().to_string())?;
    Ok(Some(tg))
}

/// A hex key over everything the text graph depends on.
fn cache_key(cfg: &Config, ds: &Dataset) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tgcn-text-graph-v1\0");
    h.update(serde_yaml::to_string(&(&cfg.text, &cfg.vectors, &cfg.graph, cfg.seed))?.as_bytes());
    for &i in &ds.train {
        for t in &ds.items[i].tokens {
            h.update(t.as_bytes());
            h.update(b" ");
        }
        h.update(b"\n");
    }
    if let Some(wv) = &ds.word_vectors {
        h.update(wv.words.join(" ").as_bytes());
        h.update(wv.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    Ok(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

fn build_text_graph(cfg: &Config, ds: &Dataset, device: Device) -> Result<TextGraph> {
    let train_texts: Vec<&[String]> = ds.train.iter().map(|&i| ds.items[i].tokens.as_slice()).collect();
    let vocab = Vocab::fit(train_texts.iter().copied(), cfg.text.min_freq, cfg.text.max_vocab);
    ensure!(
        !vocab.is_empty(),
        "the vocabulary is empty: no train word occurs `text.min_freq` = {} times",
        cfg.text.min_freq
    );
    let wv = crate::text::wordvec::vectors_for(
        &cfg.vectors,
        &vocab.words,
        &train_texts,
        ds.word_vectors.as_ref(),
        cfg.seed,
    )?;
    let coverage = crate::text::wordvec::Coverage::of(&vocab.words, &wv);
    eprintln!("word vectors ({}): {coverage}", cfg.vectors.source.name());
    let idx = wv.index();
    let has: Vec<bool> = vocab.words.iter().map(|w| idx.contains_key(w.as_str())).collect();
    let without = has.iter().filter(|&&h| !h).count();
    let vocab = match cfg.graph.missing_vectors {
        MissingVectors::Drop if without > 0 => vocab.retain(&has),
        _ => vocab,
    };
    // Vertices with a vector take part in the kNN search; the rest stay isolated.
    let with: Vec<usize> = (0..vocab.len()).filter(|&i| idx.contains_key(vocab.words[i].as_str())).collect();
    ensure!(!with.is_empty(), "no vocabulary word has a word vector ({})", cfg.vectors.source.name());
    if cfg.graph.k >= with.len() {
        bail!("`graph.k` = {} must be below the number of words with a vector ({})", cfg.graph.k, with.len());
    }
    let mut vectors = Vec::with_capacity(with.len() * wv.dim);
    for &i in &with {
        vectors.extend_from_slice(wv.row(idx[vocab.words[i].as_str()]));
    }
    let knn = cosine_knn(&vectors, with.len(), wv.dim, cfg.graph.k, cfg.graph.knn_chunk, device)?;
    let sub = Graph::from_knn(&knn, cfg.graph.weighting, cfg.graph.self_loops);
    let mut entries: Vec<(usize, usize, f32)> = sub.entries.iter().map(|&(i, j, w)| (with[i], with[j], w)).collect();
    if cfg.graph.self_loops {
        let isolated = (0..vocab.len()).filter(|i| !idx.contains_key(vocab.words[*i].as_str()));
        entries.extend(isolated.map(|i| (i, i, 1.0)));
    }
    entries.sort_by_key(|e| (e.0, e.1));
    Ok(TextGraph {
        words: vocab.words.clone(),
        counts: vocab.counts.clone(),
        entries,
        without_vector: without,
        vector_dim: wv.dim,
    })
}

/// The text graph from `cache/<key>.json` when present, else built and stored there.
fn text_graph(cfg: &Config, ds: &Dataset, device: Device, cache: Option<&Path>) -> Result<TextGraph> {
    let Some(dir) = cache else {
        return build_text_graph(cfg, ds, device);
    };
    let path = dir.join(format!("text-graph-{}.json", cache_key(cfg, ds)?));
    match read_text_graph_cache(&path) {
        Ok(Some(tg)) => {
            eprintln!("vocabulary and word graph from cache {}", path.display());
            return Ok(tg);
        }
        Ok(None) => {}
        Err(e) => eprintln!("ignoring unusable cache ({e:#}); rebuilding it"),
    }
    let tg = build_text_graph(cfg, ds, device)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create cache folder {}", dir.display()))?;
    crate::files::write_atomic(&path, serde_json::to_string(&tg)?.as_bytes())?;
    Ok(tg)
}

/// Where a config's image features come from, for messages.
pub fn image_source(cfg: &Config) -> String {
    if let Ok(Some(fi)) = from_images(cfg) {
        return format!("the features of {} (data.from_images)", fi.images.display());
    }
    let root = |p: &Path| dataset_root(cfg).map_or(p.to_path_buf(), |r| r.join(p));
    match cfg.data.dataset {
        DatasetKind::Synthetic => "the synthetic generator".to_string(),
        DatasetKind::EngWiki | DatasetKind::Tvgraz | DatasetKind::ChWiki => {
            match cfg.data.listed.as_ref().map(|l| &l.image_features) {
                Some(crate::data::listed::ImageSource::Mat { file, .. }) => root(file).display().to_string(),
                Some(crate::data::listed::ImageSource::File { path }) => path.display().to_string(),
                None => "data.listed.image_features".to_string(),
            }
        }
        DatasetKind::Pascal => cfg
            .data
            .pascal
            .as_ref()
            .map_or("data.pascal.image_features".into(), |p| p.image_features.display().to_string()),
        DatasetKind::NusWide => match cfg.data.nus_wide.as_ref().map(|n| &n.image_features) {
            Some(crate::data::nus_wide::NusFeatures::Dat { file }) => {
                root(&Path::new("Low_Level_Features").join(file)).display().to_string()
            }
            Some(crate::data::nus_wide::NusFeatures::Npy { path }) => path.display().to_string(),
            None => "data.nus_wide.image_features".to_string(),
        },
    }
}

/// Largest |value| accepted in image features: far above CNN activations or visual-word
/// counts, far below where squares overflow f32 in the z-score.
pub const MAX_FEATURE_MAGNITUDE: f32 = 1e8;

/// Refuses image features that cannot train (no columns, all zero, all rows identical,
/// absurd magnitudes) and warns about constant columns, naming `source`.
pub fn check_image_features(ds: &Dataset, source: &str) -> Result<()> {
    let (n, d) = (ds.items.len(), ds.image_dim);
    ensure!(d > 0, "the image features in {source} have 0 columns ({n} rows): nothing to train the image tower on");
    if n == 0 {
        return Ok(());
    }
    let x = &ds.images;
    let big = x.iter().enumerate().find(|(_, v)| v.abs() > MAX_FEATURE_MAGNITUDE);
    if let Some((i, v)) = big {
        bail!(
            "the image features in {source} hold absurd magnitudes: {v:e} at row {}, column {} (|x| > {MAX_FEATURE_MAGNITUDE:e}); \
             rescale them (they train as O(1)–O(1e3) values)",
            i / d,
            i % d
        );
    }
    ensure!(
        x.iter().any(|&v| v != 0.0),
        "the image features in {source} are all zero ({n} × {d}): MAP would be at chance"
    );
    // One pass over the rows marks the columns that vary; rows are all identical exactly
    // when no column does.
    let first = &x[..d];
    let mut varies = vec![false; d];
    for row in x.chunks(d).skip(1) {
        for ((v, a), b) in varies.iter_mut().zip(row).zip(first) {
            *v |= a != b;
        }
    }
    let constant = varies.iter().filter(|&&v| !v).count();
    ensure!(n < 2 || constant < d, "all {n} image feature rows in {source} are identical: images cannot be told apart");
    if constant > 0 {
        eprintln!(
            "warning: {constant} of {d} image feature columns in {source} are constant over all {n} items \
             (z-scoring leaves them at 0; they carry no information)"
        );
    }
    Ok(())
}

/// Digests of what a run was trained on, compared on resume and eval so that a changed
/// dataset is caught before it meets a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataFingerprint {
    /// Vocabulary words in vertex order (and their number).
    pub vocab: String,
    pub vocab_size: usize,
    /// L̃ entries.
    pub graph: String,
    /// Item ids of train, val and test, in order.
    pub splits: String,
    /// Raw image features and labels of every split.
    pub features: String,
}

impl DataFingerprint {
    /// The parts that differ from `other`, by name.
    pub fn differences(&self, other: &DataFingerprint) -> Vec<String> {
        let mut d = Vec::new();
        if self.vocab != other.vocab {
            d.push(format!("vocabulary ({} words, now {})", self.vocab_size, other.vocab_size));
        }
        for (name, a, b) in [
            ("word graph", &self.graph, &other.graph),
            ("splits", &self.splits, &other.splits),
            ("image features or labels", &self.features, &other.features),
        ] {
            if a != b {
                d.push(name.to_string());
            }
        }
        d
    }
}

impl Prepared {
    pub fn fingerprint(&self) -> DataFingerprint {
        use sha2::{Digest, Sha256};
        let hex = |h: Sha256| h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect::<String>();
        let mut v = Sha256::new();
        for w in &self.vocab.words {
            v.update(w.as_bytes());
            v.update(b"\n");
        }
        let mut g = Sha256::new();
        g.update(self.laplacian.n.to_le_bytes());
        for ((r, c), x) in self.laplacian.rows.iter().zip(&self.laplacian.cols).zip(&self.laplacian.vals) {
            g.update(r.to_le_bytes());
            g.update(c.to_le_bytes());
            g.update(x.to_le_bytes());
        }
        let (mut s, mut f) = (Sha256::new(), Sha256::new());
        for t in [&self.train, &self.val, &self.test] {
            for id in &t.ids {
                s.update(id.as_bytes());
                s.update(b"\n");
            }
            s.update(b"--\n");
            for x in [&t.images_raw, &t.labels] {
                let x = x.to_device(Device::Cpu).contiguous();
                let vals: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap_or_default();
                f.update(vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
            }
        }
        DataFingerprint { vocab: hex(v), vocab_size: self.vocab.len(), graph: hex(g), splits: hex(s), features: hex(f) }
    }
}

/// Loads the dataset and prepares every model input on `device`. `cache` is the folder for
/// the prepared vocabulary and graph (`runs/cache`); None always rebuilds.
pub fn prepare(cfg: &Config, device: Device, cache: Option<&Path>) -> Result<Prepared> {
    let ds = load_dataset(cfg, cache, device)?;
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
        image_dim: ds.image_dim,
        image_norm: norm,
        train,
        val,
        test,
        test_withheld: false,
        val_in_train: false,
    })
}
