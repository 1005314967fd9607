//! Pascal Sentences (Rashtchian et al. 2010): 1000 PASCAL VOC 2008 images in 20
//! categories, 50 each, each described by about five crowd-sourced sentences.
//!
//! Two layouts under `root`, chosen by `layout`:
//! - `json`: `root/pascal_sentences.json`, one object keyed by image file name,
//!   `{"2008_000716.jpg": {"category": "aeroplane", "captions": ["One jet lands ...", ...]}, ...}`.
//!   Items keep the file's order. A duplicate key, an unknown field or a missing field is an
//!   error with its line and column.
//! - `folders`: the original distribution, `root/sentence/<category>/<stem>.txt` with one
//!   caption a line (LF or CRLF; blank lines are not captions) and, optionally,
//!   `root/image/<category>/<stem>.jpg`. Items are ordered by category, then file name. The
//!   images are never decoded (features come from a file), but when `image/` exists an image
//!   without a sentence file is an item with missing text.
//!
//! The item id is the image file name as in the JSON (`2008_000716.jpg`; `<stem>.jpg` in the
//! folder layout). The class is the category; classes are sorted by name. An item's captions
//! are joined into one text and tokenized with the [`Tokenizer`] passed in.
//!
//! Image features: Pascal ships none, so they come from a `.npy` + `.ids.txt` pair (see
//! [`crate::data::features`]) made by the featurizer. A feature id may be the image file name
//! (`2008_000716.jpg`) or its stem (`2008_000716`); the exact name is tried first. Feature
//! rows whose id names no item are ignored (one file may cover several datasets).
//!
//! Split: seeded and stratified by class ([`stratified_split`]), in the proportions
//! `split = [train, val, test]`. The default 800/100/100 (most papers) gives exactly 40/5/5
//! images of each class; when items are skipped the parts shrink in proportion.
//!
//! Missing data: an image with no caption (missing text) or with no feature row (missing
//! features) stops the load under `on_missing: error` and is skipped, counted and printed
//! under `on_missing: skip`. A text that tokenizes to nothing (only stop words, say) is
//! always skipped, counted and printed, since it has no bag of words to embed.
//!
//! ```yaml
//! data:
//!   dataset: pascal-sentences
//!   pascal:
//!     root: ../shared/data/pascal-sentences   # relative to the working directory
//!     layout: json                            # json | folders
//!     image_features: features/pascal-vgg19.npy   # and features/pascal-vgg19.ids.txt
//!     split: [800, 100, 100]                  # train, val, test (proportions)
//!     on_missing: error                       # error | skip
//! ```

use crate::data::features::{ids_path, read_features};
use crate::data::tokenize::Tokenizer;
use crate::data::{stratified_split, Dataset, Item};
use anyhow::{bail, ensure, Context, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::data::OnMissing;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PascalLayout {
    /// `root/pascal_sentences.json`.
    Json,
    /// `root/sentence/<category>/<stem>.txt` (+ optional `root/image/<category>/<stem>.jpg`).
    Folders,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PascalConfig {
    /// The folder that holds `pascal_sentences.json` or `sentence/` (and `image/`).
    pub root: PathBuf,
    pub layout: PascalLayout,
    /// A `.npy` image feature matrix beside its `.ids.txt` (ids: file names or stems).
    pub image_features: PathBuf,
    /// Train, val and test proportions (800/100/100 as in most papers).
    pub split: [usize; 3],
    pub on_missing: OnMissing,
}

impl PascalConfig {
    /// Range checks that need no data; `key` is where the block sits (`data.pascal`).
    pub fn validate(&self, key: &str) -> Result<()> {
        for (name, &v) in ["train", "val", "test"].iter().zip(&self.split) {
            ensure!(v >= 1, "`{key}.split` must give every part at least 1, got {v} for {name} in {:?}", self.split);
        }
        ensure!(!self.root.as_os_str().is_empty(), "`{key}.root` is empty");
        ensure!(
            self.image_features.extension().is_some_and(|e| e == "npy"),
            "`{key}.image_features` must name a .npy file (with its .ids.txt beside it), got {}",
            self.image_features.display()
        );
        Ok(())
    }
}

/// One image's entry in either layout, before tokenizing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PascalEntry {
    /// The image file name (`2008_000716.jpg`).
    pub id: String,
    pub category: String,
    /// The captions as written, line ends removed; empty when the image has no text.
    pub captions: Vec<String>,
}

/// The name of the JSON file under `root` in the `json` layout.
pub const JSON_FILE: &str = "pascal_sentences.json";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    category: String,
    captions: Vec<String>,
}

/// The JSON object in file order; a repeated key is an error, not a silent overwrite.
struct RawEntries(Vec<(String, RawEntry)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object keyed by image file name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawEntries, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::new();
                while let Some(id) = map.next_key::<String>()? {
                    if !seen.insert(id.clone()) {
                        // serde_json appends the line and column to this message.
                        return Err(serde::de::Error::custom(format!("duplicate image id {id:?}")));
                    }
                    out.push((id, map.next_value::<RawEntry>()?));
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads `pascal_sentences.json` (the file itself, not its folder) in file order.
pub fn read_pascal_json(path: &Path) -> Result<Vec<PascalEntry>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!("cannot read {} (the Pascal Sentences JSON; is `root` the folder that holds it?)", path.display())
    })?;
    let raw: RawEntries = serde_json::from_slice(&bytes).with_context(|| format!("{}: bad JSON", path.display()))?;
    let mut out = Vec::with_capacity(raw.0.len());
    for (id, e) in raw.0 {
        ensure!(!id.trim().is_empty(), "{}: an entry has an empty image id", path.display());
        ensure!(!e.category.trim().is_empty(), "{}: image {id} has an empty category", path.display());
        let captions = e.captions.into_iter().filter(|c| !c.trim().is_empty()).collect();
        out.push(PascalEntry { id, category: e.category, captions });
    }
    ensure!(!out.is_empty(), "{}: no entries", path.display());
    Ok(out)
}

/// The sorted entries of a folder, split into sub-folders and files (hidden names left out).
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// The `dir/<category>/<file>` pairs whose extension passes `keep`, in listing order;
/// stray top-level files, sub-folders and other extensions go to `ignored`.
fn category_files(
    dir: &Path,
    keep: impl Fn(&std::ffi::OsStr) -> bool,
    ignored: &mut Vec<PathBuf>,
) -> Result<Vec<(String, PathBuf)>> {
    let (cats, stray) = list_dir(dir)?;
    ignored.extend(stray);
    let mut out = Vec::new();
    for cat_dir in &cats {
        let category = utf8_name(cat_dir)?;
        let (sub, files) = list_dir(cat_dir)?;
        ignored.extend(sub);
        for f in files {
            if f.extension().is_some_and(&keep) {
                out.push((category.clone(), f));
            } else {
                ignored.push(f);
            }
        }
    }
    Ok(out)
}

fn utf8_name(p: &Path) -> Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{}: the name is not UTF-8", p.display()))
}

/// Decodes a text file as UTF-8; the error names the file and the line of the first bad byte.
fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("{}: line {line} is not UTF-8 (byte offset {at})", path.display())
    })
}

/// Reads the original layout: `root/sentence/<category>/<stem>.txt`, one caption a line, and,
/// when `root/image/` exists, `root/image/<category>/<stem>.jpg` (an image without a sentence
/// file becomes an entry with no captions). Files that are not `.txt` / `.jpg` are listed on
/// stderr and left out.
pub fn read_pascal_folders(root: &Path) -> Result<Vec<PascalEntry>> {
    let sentence_dir = root.join("sentence");
    ensure!(
        sentence_dir.is_dir(),
        "{} is not a folder (the `folders` layout needs sentence/<category>/<image>.txt; use `layout: json` for {JSON_FILE})",
        sentence_dir.display()
    );
    let mut out: Vec<PascalEntry> = Vec::new();
    let mut where_: HashMap<String, PathBuf> = HashMap::new();
    let mut ignored = Vec::new();
    for (category, f) in category_files(&sentence_dir, |e| e == "txt", &mut ignored)? {
        let stem = f.file_stem().and_then(|s| s.to_str()).map(str::to_string);
        let stem = stem.with_context(|| format!("{}: the name is not UTF-8", f.display()))?;
        let id = format!("{stem}.jpg");
        if let Some(prev) = where_.insert(id.clone(), f.clone()) {
            bail!("image {id} has two sentence files: {} and {}", prev.display(), f.display());
        }
        let text = read_utf8(&f)?;
        let captions = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        out.push(PascalEntry { id, category, captions });
    }
    let image_dir = root.join("image");
    if image_dir.is_dir() {
        let by_id: HashMap<String, usize> = out.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        for (category, f) in category_files(&image_dir, |e| e.eq_ignore_ascii_case("jpg"), &mut ignored)? {
            let id = format!("{}.jpg", f.file_stem().and_then(|s| s.to_str()).unwrap_or_default());
            match by_id.get(&id) {
                Some(&i) => ensure!(
                    out[i].category == category,
                    "{} is in category {category} but its sentences {} are in {}",
                    f.display(),
                    where_[&id].display(),
                    out[i].category
                ),
                None => {
                    if let Some(prev) = where_.insert(id.clone(), f.clone()) {
                        bail!("image {id} appears twice: {} and {}", prev.display(), f.display());
                    }
                    out.push(PascalEntry { id, category, captions: Vec::new() });
                }
            }
        }
    }
    if !ignored.is_empty() {
        let names: Vec<String> = ignored.iter().take(5).map(|p| p.display().to_string()).collect();
        eprintln!(
            "pascal-sentences: ignored {} entries that are not category folders or .txt/.jpg files: {}{}",
            ignored.len(),
            names.join(", "),
            if ignored.len() > 5 { ", ..." } else { "" }
        );
    }
    ensure!(!out.is_empty(), "{}: no sentence files", sentence_dir.display());
    Ok(out)
}

/// What the load kept and why it left items out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PascalStats {
    /// Images listed by the layout.
    pub entries: usize,
    /// Skipped (on_missing: skip) for having no caption.
    pub missing_text: usize,
    /// Skipped (on_missing: skip) for having no feature row.
    pub missing_features: usize,
    /// Skipped because the captions tokenize to nothing.
    pub empty_text: usize,
    /// Items in the dataset.
    pub items: usize,
}

impl fmt::Display for PascalStats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} images, {} items; skipped {} without text, {} without features, {} with an empty text after tokenizing",
            self.entries, self.items, self.missing_text, self.missing_features, self.empty_text
        )
    }
}

/// The feature row of an item: the exact id first, then its stem (`2008_000716`).
fn feature_row(index: &HashMap<&str, usize>, id: &str) -> Option<usize> {
    index.get(id).or_else(|| index.get(Path::new(id).file_stem()?.to_str()?)).copied()
}

/// Loads Pascal Sentences into the common [`Dataset`] (see the module docs).
pub fn load(cfg: &PascalConfig, tok: &Tokenizer, seed: u64) -> Result<Dataset> {
    let (ds, stats) = load_with_stats(cfg, tok, seed)?;
    eprintln!("pascal-sentences: {stats}");
    Ok(ds)
}

/// [`load`], also returning the counts of what was kept and skipped (not printed).
pub fn load_with_stats(cfg: &PascalConfig, tok: &Tokenizer, seed: u64) -> Result<(Dataset, PascalStats)> {
    cfg.validate("pascal")?;
    let (entries, source) = match cfg.layout {
        PascalLayout::Json => {
            let p = cfg.root.join(JSON_FILE);
            (read_pascal_json(&p)?, p)
        }
        PascalLayout::Folders => (read_pascal_folders(&cfg.root)?, cfg.root.join("sentence")),
    };
    let ids_file = ids_path(&cfg.image_features);
    let feats = if cfg.image_features.is_file() && ids_file.is_file() {
        read_features(&cfg.image_features)?
    } else {
        read_features(&cfg.image_features).with_context(|| {
            format!(
                "Pascal Sentences ships no image features: make {} (and its .ids.txt) with the featurizer first",
                cfg.image_features.display()
            )
        })?
    };
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(feats.ids.len());
    for (row, id) in feats.ids.iter().enumerate() {
        if let Some(prev) = index.insert(id.as_str(), row) {
            bail!("{}: id {id} is on two rows ({} and {})", ids_file.display(), prev + 1, row + 1);
        }
    }

    let classes: Vec<String> =
        entries.iter().map(|e| e.category.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let class_of: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut stats = PascalStats { entries: entries.len(), ..PascalStats::default() };
    let mut items = Vec::with_capacity(entries.len());
    let mut images = Vec::with_capacity(entries.len() * feats.dim);
    for e in &entries {
        if e.captions.is_empty() {
            match cfg.on_missing {
                OnMissing::Error => bail!(
                    "{}: image {} has no caption (set `on_missing: skip` to leave such images out)",
                    source.display(),
                    e.id
                ),
                OnMissing::Skip => {
                    stats.missing_text += 1;
                    continue;
                }
            }
        }
        let Some(row) = feature_row(&index, &e.id) else {
            match cfg.on_missing {
                OnMissing::Error => bail!(
                    "image {} (from {}) has no row in {} (looked up as the file name and its stem; \
                     set `on_missing: skip` to leave such images out)",
                    e.id,
                    source.display(),
                    ids_file.display()
                ),
                OnMissing::Skip => {
                    stats.missing_features += 1;
                    continue;
                }
            }
        };
        let tokens = tok.tokenize(&e.captions.join("\n"));
        if tokens.is_empty() {
            stats.empty_text += 1;
            continue;
        }
        items.push(Item { id: e.id.clone(), tokens, labels: vec![class_of[e.category.as_str()]] });
        images.extend_from_slice(&feats.data[row * feats.dim..(row + 1) * feats.dim]);
    }
    stats.items = items.len();
    ensure!(!items.is_empty(), "pascal-sentences: no item is left ({stats})");

    let total: usize = cfg.split.iter().sum();
    let fractions: Vec<f64> = cfg.split.iter().map(|&s| s as f64 / total as f64).collect();
    let first: Vec<usize> = items.iter().map(|it| it.labels[0]).collect();
    let mut parts = stratified_split(&first, &fractions, seed).into_iter();
    let (train, val, test) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let ds = Dataset {
        name: "pascal-sentences".into(),
        classes,
        multi_label: false,
        items,
        images,
        image_dim: feats.dim,
        train,
        val,
        test,
        word_vectors: None,
    };
    ds.validate().with_context(|| format!("pascal-sentences from {} ({stats})", source.display()))?;
    Ok((ds, stats))
}
