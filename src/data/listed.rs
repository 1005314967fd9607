//! Loader for the list-file layout shared by Eng-Wiki (Rasiwasia et al., ACM MM 2010),
//! TVGraz and Ch-Wiki: it turns the official files into the common [`Dataset`].
//!
//! Under `root`:
//! - `trainset_txt_img_cat.list` and `testset_txt_img_cat.list`, the official split: one
//!   pair a line, `text_id<TAB>image_id<TAB>category`, categories numbered from 1, LF or
//!   CRLF line ends. Blank lines carry no pair and are passed over.
//! - `categories.list`: the class names in category order, one a line. When it is absent
//!   the classes are named `1` ..= the largest category in the lists.
//! - The texts, one file per text, found by the template `text_file` inside `root`
//!   (`{id}`: the text id, `{category}`: the category number, `{category_name}`: its name).
//!   - `texts: text_seqs`: already processed text, Eng-Wiki's `text_seqs/<id>.xml` (plain
//!     text despite the name): one sentence a line, a TAB, then category − 1. The tokens
//!     are the whitespace-separated words, kept as written (no lowercasing, no stemming:
//!     the authors already lemmatised them). The label must agree with the list.
//!   - `texts: raw`: the raw article (Eng-Wiki `texts/<id>.xml`, TVGraz HTML pages, Ch-Wiki
//!     Chinese text), UTF-8, markup stripped, then cut by the [`Tokenizer`] passed in.
//!     `markup: auto` picks by extension: `.xml` keeps the `<text>` elements (the whole
//!     document when there are none), `.html`/`.htm` drops scripts, styles and comments,
//!     anything else is plain text. Tags become spaces and character entities are decoded.
//!     The official XML is not always well-formed (bare `&`), so this is not an XML parser.
//! - The image features:
//!   - `kind: mat`: a MAT v5 file (Eng-Wiki's `raw_features.mat`) whose `train_var` and
//!     `test_var` (`I_tr` 2173×128 and `I_te` 693×128, SIFT bag-of-visual-words histograms)
//!     hold one row per list pair, in list order.
//!   - `kind: file`: a feature file keyed by image id ([`crate::data::features::read_features`]),
//!     for example one written by the image featurizer.
//!
//! The official split has no validation part: `val_fraction` of each class of the train
//! list is carved off with [`stratified_split`], seeded; the test list stays untouched.
//! Items are train-list pairs then test-list pairs, in list order. An item's id is its
//! text id; [`Loaded::image_ids`] keeps the image ids beside them.
//!
//! Bad input is an error that names the file and the line or row: a list line without
//! three fields, a category outside the classes, a text id listed twice, a non-UTF-8
//! text, a `text_seqs` label that disagrees with the list, a feature row count that does
//! not match the list, a non-finite feature, a truncated `.mat` or a missing variable.
//! A *missing* piece of an item (no text file, no features for its image id, no tokens
//! left after tokenizing) is an error under `on_missing: error`; under `on_missing: skip`
//! the item is dropped, and the drops are counted by reason and printed.
//!
//! Paths: `root` and `image_features.path` are relative to the working directory (the
//! repository root); the list, categories, text and `.mat` paths are relative to `root`.
//!
//! ```yaml
//! listed:
//!   root: ../shared/data/eng-wiki
//!   texts: text_seqs            # or raw (then text_file defaults to texts/{id}.xml)
//!   image_features:
//!     kind: mat                 # file: raw_features.mat, train_var: I_tr, test_var: I_te
//!   # image_features: {kind: file, path: features/eng-wiki-resnet.npy}
//!   val_fraction: 0.1
//!   on_missing: error           # or skip
//!   # optional, with these defaults:
//!   # train_list: trainset_txt_img_cat.list
//!   # test_list: testset_txt_img_cat.list
//!   # categories: categories.list
//!   # text_file: text_seqs/{id}.xml     (texts/{id}.xml for raw)
//!   # markup: auto                      # plain | xml | html, raw texts only
//! ```

use crate::data::tokenize::Tokenizer;
use crate::data::{stratified_split, Dataset, Item};
use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListedConfig {
    /// Folder with the `.list` files.
    pub root: PathBuf,
    #[serde(default = "default_train_list")]
    pub train_list: PathBuf,
    #[serde(default = "default_test_list")]
    pub test_list: PathBuf,
    /// Class names in category order; classes are named by number when the file is absent.
    #[serde(default = "default_categories")]
    pub categories: PathBuf,
    pub texts: TextSource,
    /// Where a text lives inside `root`; `{id}`, `{category}` and `{category_name}` are
    /// filled in. Defaults to `text_seqs/{id}.xml` or `texts/{id}.xml` by `texts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_file: Option<String>,
    /// How raw texts are stripped of markup.
    #[serde(default)]
    pub markup: Markup,
    pub image_features: ImageSource,
    /// Fraction of each train class carved off as the validation split, in (0, 1).
    pub val_fraction: f64,
    pub on_missing: OnMissing,
}

fn default_train_list() -> PathBuf {
    "trainset_txt_img_cat.list".into()
}
fn default_test_list() -> PathBuf {
    "testset_txt_img_cat.list".into()
}
fn default_categories() -> PathBuf {
    "categories.list".into()
}
fn default_mat_file() -> PathBuf {
    "raw_features.mat".into()
}
fn default_train_var() -> String {
    "I_tr".into()
}
fn default_test_var() -> String {
    "I_te".into()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// Processed sentences with labels (Eng-Wiki `text_seqs`): whitespace tokens as written.
    TextSeqs,
    /// Raw articles: markup stripped, then the tokenizer.
    Raw,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Markup {
    /// By the text file's extension: xml, html/htm, else plain.
    #[default]
    Auto,
    Plain,
    Xml,
    Html,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageSource {
    /// A MAT v5 file inside `root` with one row per list pair, in list order.
    Mat {
        #[serde(default = "default_mat_file")]
        file: PathBuf,
        #[serde(default = "default_train_var")]
        train_var: String,
        #[serde(default = "default_test_var")]
        test_var: String,
    },
    /// A `.npy` + `.ids.txt` feature file keyed by image id (relative to the working directory).
    File { path: PathBuf },
}

use crate::data::OnMissing;

/// Items dropped under `on_missing: skip`, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub no_text: usize,
    pub no_features: usize,
    pub no_tokens: usize,
}

impl Skipped {
    pub fn total(&self) -> usize {
        self.no_text + self.no_features + self.no_tokens
    }
}

/// The dataset with what the common type has no room for.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dataset: Dataset,
    /// The image id of each item, in item order.
    pub image_ids: Vec<String>,
    pub skipped: Skipped,
}

/// One pair of a `.list` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// 1-based line in the list file.
    pub line: usize,
    pub text_id: String,
    pub image_id: String,
    /// As written: 1-based.
    pub category: usize,
}

impl ListedConfig {
    pub fn text_template(&self) -> &str {
        match (&self.text_file, self.texts) {
            (Some(t), _) => t,
            (None, TextSource::TextSeqs) => "text_seqs/{id}.xml",
            (None, TextSource::Raw) => "texts/{id}.xml",
        }
    }

    /// Range and consistency checks that need no file.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "`val_fraction` = {} must lie in (0, 1): the official split has no validation part to fall back on",
            self.val_fraction
        );
        ensure!(
            self.texts == TextSource::Raw || self.markup == Markup::Auto,
            "`markup: {}` applies to `texts: raw` only; `text_seqs` files carry no markup",
            format!("{:?}", self.markup).to_lowercase()
        );
        let t = self.text_template();
        ensure!(t.contains("{id}"), "`text_file` = {t:?} must contain `{{id}}`, or every item reads one file");
        let probe = fill_template(t, "x", 1, "x");
        ensure!(
            !probe.contains('{') && !probe.contains('}'),
            "`text_file` = {t:?} has an unknown placeholder (known: {{id}}, {{category}}, {{category_name}})"
        );
        Ok(())
    }
}

fn fill_template(t: &str, id: &str, category: usize, category_name: &str) -> String {
    t.replace("{id}", id).replace("{category_name}", category_name).replace("{category}", &category.to_string())
}

/// Loads the dataset `name` and prints skip counts; see [`load_full`].
pub fn load(name: &str, cfg: &ListedConfig, tok: &Tokenizer, seed: u64) -> Result<Dataset> {
    Ok(load_full(name, cfg, tok, seed)?.dataset)
}

/// Reads one `.list` file; every non-blank line must be `text_id<TAB>image_id<TAB>category`.
pub fn read_list(path: &Path) -> Result<Vec<ListEntry>> {
    let text = read_utf8(path)?.with_context(|| format!("list file {} does not exist", path.display()))?;
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        ensure!(
            fields.len() == 3 && fields.iter().all(|f| !f.is_empty()),
            "{}: expected `text_id<TAB>image_id<TAB>category`, found {} non-empty TAB-separated field(s) in {line:?}",
            at(),
            fields.iter().filter(|f| !f.is_empty()).count()
        );
        for (what, id) in [("text", fields[0]), ("image", fields[1])] {
            ensure!(
                stays_under_root(id),
                "{}: {what} id {id:?} would name a file outside the dataset root (ids are names under the root: \
                 no `..`, no absolute path)",
                at()
            );
        }
        let category: usize =
            fields[2].parse().map_err(|_| anyhow!("{}: category {:?} is not a whole number", at(), fields[2]))?;
        ensure!(category >= 1, "{}: category {category}, but categories are numbered from 1", at());
        out.push(ListEntry { line: i + 1, text_id: fields[0].into(), image_id: fields[1].into(), category });
    }
    ensure!(!out.is_empty(), "list file {} holds no pairs", path.display());
    Ok(out)
}

/// The first five of `names`, comma-separated, and how many more there are.
pub fn first_few(names: &[String]) -> String {
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 5 => format!("{shown} and {} more", n - 5),
        _ => shown,
    }
}

/// Whether an id from a list file, used as (part of) a path under the dataset root, stays
/// there: relative, with no `..` component.
pub fn stays_under_root(id: &str) -> bool {
    use std::path::Component;
    Path::new(id).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Reads a file as UTF-8 (a leading BOM dropped); `None` when it does not exist.
fn read_utf8(path: &Path) -> Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match String::from_utf8(bytes) {
        Ok(mut s) => {
            if s.starts_with('\u{feff}') {
                s.drain(..3);
            }
            Ok(Some(s))
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!(
                "{}:{line}: not UTF-8 (byte {:#04x} at offset {at}); re-encode the file as UTF-8",
                path.display(),
                bytes[at]
            )
        }
    }
}

/// The class names (`categories.list`, or the numbers when it is absent: then a note).
fn read_categories(path: &Path, lists: &[(&Path, &[ListEntry])]) -> Result<Vec<String>> {
    let (names, absent) = category_names(path, lists)?;
    if absent {
        eprintln!("note: {} is absent; classes are named 1..={}", path.display(), names.len());
    }
    Ok(names)
}

/// The class names and whether `path` was absent, checked against the lists' categories.
fn category_names(path: &Path, lists: &[(&Path, &[ListEntry])]) -> Result<(Vec<String>, bool)> {
    let max = lists.iter().flat_map(|(_, l)| l.iter()).map(|e| e.category).max().unwrap_or(0);
    let mut absent = false;
    let names: Vec<String> = match read_utf8(path)? {
        Some(text) => {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            let n = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |p| p + 1);
            if let Some(p) = lines[..n].iter().position(|l| l.is_empty()) {
                bail!(
                    "{}:{}: blank class name (names are in category order, so a gap shifts them)",
                    path.display(),
                    p + 1
                );
            }
            lines[..n].iter().map(|s| s.to_string()).collect()
        }
        None => {
            absent = true;
            (1..=max).map(|c| c.to_string()).collect()
        }
    };
    for (list, entries) in lists {
        for e in entries.iter() {
            ensure!(
                e.category <= names.len(),
                "{}:{}: category {} but {} names {} classes",
                list.display(),
                e.line,
                e.category,
                path.display(),
                names.len()
            );
        }
    }
    Ok((names, absent))
}

/// Image id → the names of the classes the train and test lists give it. Raw images of
/// this layout sit in class folders (Eng-Wiki: `images/<class name>/<image id>.jpg`), so
/// these names tell apart two files that share an image id.
pub fn image_categories(cfg: &ListedConfig) -> Result<HashMap<String, BTreeSet<String>>> {
    let paths = [cfg.root.join(&cfg.train_list), cfg.root.join(&cfg.test_list)];
    let lists = [read_list(&paths[0])?, read_list(&paths[1])?];
    let tagged = [(paths[0].as_path(), lists[0].as_slice()), (paths[1].as_path(), lists[1].as_slice())];
    let (names, _) = category_names(&cfg.root.join(&cfg.categories), &tagged)?;
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for e in lists.iter().flatten() {
        out.entry(e.image_id.clone()).or_default().insert(names[e.category - 1].clone());
    }
    Ok(out)
}

/// Image features for the train and test lists, row-aligned to the entries.
struct ListFeatures {
    dim: usize,
    /// `rows[split][k]`: the row of entry k, or None when its image id has no features.
    rows: [Vec<Option<Vec<f32>>>; 2],
}

fn mat_features(path: &Path, vars: [&str; 2], lists: [(&Path, &[ListEntry]); 2]) -> Result<ListFeatures> {
    let mats = crate::data::mat5::read_matrices(path, &vars)?;
    ensure!(
        mats[0].cols == mats[1].cols,
        "{}: `{}` has {} columns but `{}` has {}",
        path.display(),
        vars[0],
        mats[0].cols,
        vars[1],
        mats[1].cols
    );
    let mut rows: [Vec<Option<Vec<f32>>>; 2] = [Vec::new(), Vec::new()];
    for (s, (m, (list, entries))) in mats.iter().zip(lists).enumerate() {
        ensure!(
            m.rows == entries.len(),
            "{}: `{}` has {} rows but {} lists {} pairs (rows must follow the list order)",
            path.display(),
            m.name,
            m.rows,
            list.display(),
            entries.len()
        );
        for (r, e) in entries.iter().enumerate() {
            let row = m.row(r);
            if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{}: `{}` row {} column {} is {} (list {} line {}, image {})",
                    path.display(),
                    m.name,
                    r + 1,
                    c + 1,
                    row[c],
                    list.display(),
                    e.line,
                    e.image_id
                );
            }
            rows[s].push(Some(row.iter().map(|&v| v as f32).collect()));
        }
    }
    Ok(ListFeatures { dim: mats[0].cols, rows })
}

fn keyed_features(path: &Path, lists: [&[ListEntry]; 2]) -> Result<ListFeatures> {
    let f = crate::data::features::read_features(path)?;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(f.ids.len());
    for (r, id) in f.ids.iter().enumerate() {
        if let Some(first) = index.insert(id, r) {
            bail!(
                "{}: image id {id} is on lines {} and {}",
                crate::data::features::ids_path(path).display(),
                first + 1,
                r + 1
            );
        }
    }
    let rows = lists.map(|entries| {
        entries
            .iter()
            .map(|e| index.get(e.image_id.as_str()).map(|&r| f.data[r * f.dim..(r + 1) * f.dim].to_vec()))
            .collect()
    });
    Ok(ListFeatures { dim: f.dim, rows })
}

/// Tokens of a `text_seqs` file: whitespace words of `sentence<TAB>label` lines.
fn text_seq_tokens(text: &str, path: &Path, category: usize) -> Result<Vec<String>> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let (sentence, label) =
            line.rsplit_once('\t').ok_or_else(|| anyhow!("{}: expected `sentence<TAB>label`, found no TAB", at()))?;
        let label: usize =
            label.trim().parse().map_err(|_| anyhow!("{}: label {:?} is not a whole number", at(), label.trim()))?;
        ensure!(
            label + 1 == category,
            "{}: label {label} (category {}) but the list gives category {category}",
            at(),
            label + 1
        );
        tokens.extend(sentence.split_whitespace().map(str::to_string));
    }
    Ok(tokens)
}

/// Loads the dataset `name` from the list layout; `seed` drives the validation carve.
pub fn load_full(name: &str, cfg: &ListedConfig, tok: &Tokenizer, seed: u64) -> Result<Loaded> {
    cfg.validate()?;
    let root = &cfg.root;
    ensure!(root.is_dir(), "dataset {name}: `root` {} is not a folder", root.display());
    let list_paths = [root.join(&cfg.train_list), root.join(&cfg.test_list)];
    let lists = [read_list(&list_paths[0])?, read_list(&list_paths[1])?];
    let tagged = [(list_paths[0].as_path(), lists[0].as_slice()), (list_paths[1].as_path(), lists[1].as_slice())];

    let mut first_seen: HashMap<&str, (&Path, usize)> = HashMap::new();
    for (list, entries) in tagged {
        for e in entries {
            if let Some((l0, n0)) = first_seen.insert(&e.text_id, (list, e.line)) {
                bail!("{}:{}: text id {} is already on {}:{n0}", list.display(), e.line, e.text_id, l0.display());
            }
        }
    }
    let classes = read_categories(&root.join(&cfg.categories), &tagged)?;

    let features = match &cfg.image_features {
        ImageSource::Mat { file, train_var, test_var } => {
            mat_features(&root.join(file), [train_var.as_str(), test_var.as_str()], tagged)?
        }
        ImageSource::File { path } => keyed_features(path, [&lists[0], &lists[1]])?,
    };

    let template = cfg.text_template();
    let mut skipped = Skipped::default();
    let mut items = Vec::new();
    let mut image_ids = Vec::new();
    let mut images = Vec::new();
    let mut split_items: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    let hint = "set `on_missing: skip` to drop such items";
    // Text files that are symlinks to outside the root are read, and named.
    let canonical_root = root.canonicalize().ok();
    let mut outside: Vec<String> = Vec::new();
    for (s, (list, entries)) in tagged.into_iter().enumerate() {
        for (k, e) in entries.iter().enumerate() {
            let at = format!("{}:{}", list.display(), e.line);
            let miss = |what: String, count: &mut usize| -> Result<()> {
                match cfg.on_missing {
                    OnMissing::Error => bail!("{at}: {what} ({hint})"),
                    OnMissing::Skip => {
                        *count += 1;
                        Ok(())
                    }
                }
            };
            let Some(row) = &features.rows[s][k] else {
                miss(format!("image {} has no features", e.image_id), &mut skipped.no_features)?;
                continue;
            };
            let class_name = &classes[e.category - 1];
            let rel = fill_template(template, &e.text_id, e.category, class_name);
            ensure!(
                !stays_under_root(template) || stays_under_root(&rel),
                "{at}: the text path {rel:?} (from `text_template` with class name {class_name:?}) would be \
                 outside the dataset root"
            );
            let text_path = root.join(rel);
            if canonical_root.as_ref().is_some_and(|r| text_path.canonicalize().is_ok_and(|p| !p.starts_with(r))) {
                outside.push(text_path.display().to_string());
            }
            let Some(text) = read_utf8(&text_path)? else {
                miss(format!("text {} has no file {}", e.text_id, text_path.display()), &mut skipped.no_text)?;
                continue;
            };
            let tokens = match cfg.texts {
                TextSource::TextSeqs => text_seq_tokens(&text, &text_path, e.category)?,
                TextSource::Raw => tok.tokenize(&extract_text(&text, resolve_markup(cfg.markup, &text_path))),
            };
            if tokens.is_empty() {
                miss(format!("text {} has no tokens ({})", e.text_id, text_path.display()), &mut skipped.no_tokens)?;
                continue;
            }
            split_items[s].push(items.len());
            items.push(Item { id: e.text_id.clone(), tokens, labels: vec![e.category - 1] });
            image_ids.push(e.image_id.clone());
            images.extend_from_slice(row);
        }
    }
    if skipped.total() > 0 {
        eprintln!(
            "{name}: skipped {} of {} list pairs (on_missing: skip): {} without a text file, \
             {} without image features, {} with no tokens",
            skipped.total(),
            lists[0].len() + lists[1].len(),
            skipped.no_text,
            skipped.no_features,
            skipped.no_tokens
        );
    }

    if !outside.is_empty() {
        eprintln!(
            "{name}: {} text file(s) resolve to outside {} through symlinks (read as linked): {}",
            outside.len(),
            root.display(),
            first_few(&outside)
        );
    }
    let [train_all, test] = split_items;
    let first_labels: Vec<usize> = train_all.iter().map(|&i| items[i].labels[0]).collect();
    let parts = stratified_split(&first_labels, &[cfg.val_fraction, 1.0 - cfg.val_fraction], seed);
    let val = parts[0].iter().map(|&p| train_all[p]).collect();
    let train = parts[1].iter().map(|&p| train_all[p]).collect();
    let dataset = Dataset {
        name: name.to_string(),
        classes,
        multi_label: false,
        items,
        images,
        image_dim: features.dim,
        train,
        val,
        test,
        word_vectors: None,
    };
    dataset.validate().with_context(|| format!("dataset {name} from {}", root.display()))?;
    Ok(Loaded { dataset, image_ids, skipped })
}

fn resolve_markup(m: Markup, path: &Path) -> Markup {
    if m != Markup::Auto {
        return m;
    }
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("xml") => Markup::Xml,
        Some("html" | "htm" | "xhtml") => Markup::Html,
        _ => Markup::Plain,
    }
}

/// The readable text of a raw document under resolved (not `Auto`) markup.
pub fn extract_text(doc: &str, markup: Markup) -> String {
    match markup {
        Markup::Plain | Markup::Auto => doc.to_string(),
        Markup::Xml => {
            let inner = element_contents(doc, "text");
            let body = if inner.is_empty() { doc.to_string() } else { inner.join("\n") };
            strip_tags(&body)
        }
        Markup::Html => {
            let mut s = doc.to_string();
            for tag in ["script", "style"] {
                s = drop_elements(&s, tag);
            }
            strip_tags(&s)
        }
    }
}

/// Byte offset of the next `<tag` (followed by `>`, `/` or whitespace) at or after `from`,
/// searched case-insensitively; ASCII lowercasing keeps byte offsets.
fn find_open(lower: &str, tag: &str, from: usize) -> Option<usize> {
    let pat = format!("<{tag}");
    let mut at = from;
    while let Some(p) = lower[at..].find(&pat) {
        let start = at + p;
        match lower[start + pat.len()..].chars().next() {
            Some(c) if c == '>' || c == '/' || c.is_whitespace() => return Some(start),
            _ => at = start + pat.len(),
        }
    }
    None
}

/// Contents of every `<tag ...>…</tag>` element.
fn element_contents<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let lower = doc.to_ascii_lowercase();
    let close = format!("</{tag}");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = find_open(&lower, tag, at) {
        let Some(gt) = lower[open..].find('>') else { break };
        let body = open + gt + 1;
        if lower[..body].ends_with("/>") {
            at = body;
            continue;
        }
        let end = lower[body..].find(&close).map_or(doc.len(), |p| body + p);
        out.push(&doc[body..end]);
        at = end;
    }
    out
}

/// Removes `<tag ...>…</tag>` elements (to the end when unclosed).
fn drop_elements(doc: &str, tag: &str) -> String {
    let lower = doc.to_ascii_lowercase();
    let close = format!("</{tag}");
    let mut out = String::with_capacity(doc.len());
    let mut at = 0;
    while let Some(open) = find_open(&lower, tag, at) {
        out.push_str(&doc[at..open]);
        out.push(' ');
        at = match lower[open..].find(&close) {
            Some(p) => lower[open + p..].find('>').map_or(doc.len(), |q| open + p + q + 1),
            None => doc.len(),
        };
    }
    out.push_str(&doc[at..]);
    out
}

/// Tags and comments become spaces (so words on either side stay apart), CDATA is kept,
/// entities are decoded. A `<` with no `>` after it is text.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..p]));
        let tail = &rest[p..];
        if let Some(body) = tail.strip_prefix("<![CDATA[") {
            let end = body.find("]]>").unwrap_or(body.len());
            out.push_str(&body[..end]);
            rest = body.get(end + 3..).unwrap_or("");
        } else if tail.starts_with("<!--") {
            rest = tail.find("-->").map_or("", |e| &tail[e + 3..]);
            out.push(' ');
        } else if let Some(e) = tail.find('>') {
            out.push(' ');
            rest = &tail[e + 1..];
        } else {
            out.push_str(&decode_entities(tail));
            rest = "";
        }
    }
    out.push_str(&decode_entities(rest));
    out
}

/// Decodes `&amp;`-style named entities (the XML five and `&nbsp;`) and numeric ones;
/// anything else, such as a bare `&`, stays as written.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        let decoded = tail[1..].find(';').filter(|&e| e <= 10).and_then(|e| {
            let name = &tail[1..1 + e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let n = name.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
