//! Your own image–text pairs: one CSV or JSONL file, one row per pair, with or without
//! class labels.
//!
//! Columns (CSV header, or JSONL keys), any order; an unknown column is an error:
//! - `id` (required): unique; a repeated id is an error naming both rows;
//! - `image`: the image file, relative to the image folder (`data.from_images.images`,
//!   default `<root>/images`). Its features are found by its file stem, as the featurizer
//!   keys them. Without an `image` column the features file is keyed by `id` (a row of a
//!   features file, `data.pairs.image_features`, made elsewhere);
//! - `text` (inline) or `text_file` (a UTF-8 file, relative to `root`), one of them per row;
//! - `labels` (optional): one or more class names, `;`-separated in CSV, a list of strings
//!   in JSONL. A file with labels must label every row; without a `labels` column the
//!   dataset is unlabelled and evaluation defaults to `eval.relevance: pair`;
//! - `split` (optional): `train`, `val` or `test` on every row. Without it a seeded split in
//!   the proportions `split` is made, stratified by first label where there are labels.
//!
//! CSV: RFC 4180 quoting (commas and line breaks inside quotes), LF or CRLF, an optional
//! UTF-8 byte-order mark. JSONL: one object a line, blank lines ignored.
//!
//! Bad rows: a malformed quote (a row with the wrong number of fields), invalid UTF-8, a
//! bad JSON line, an unknown column, a duplicate id, a bad split name or a row without a
//! label in a labelled file stop the load with an error naming the file and the row (the
//! CSV row counts the header as row 1; a JSONL row is its line). A missing image (no
//! features for it) or an empty text stops the load under `on_missing: error` and is
//! skipped, counted and printed under `on_missing: skip`. A text that tokenizes to
//! nothing is always skipped and counted, as in the other layouts.
//!
//! ```yaml
//! data:
//!   dataset: pairs
//!   pairs:
//!     root: examples/pairs           # relative to the working directory
//!     file: pairs.csv                # relative to root; .csv or .jsonl
//!     split: [8, 1, 1]               # train, val, test proportions, when there is no split column
//!     on_missing: error              # error | skip
//!   from_images: {featurize: {backbone: models/efficientnet_lite0.pt}}
//! ```

use crate::data::features::read_features;
use crate::data::tokenize::Tokenizer;
use crate::data::{stratified_split, Dataset, Item, OnMissing};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PairsConfig {
    /// The folder holding the pairs file, the text files and (by default) `images/`.
    pub root: PathBuf,
    /// The pairs file, relative to `root`: `.csv` or `.jsonl`.
    pub file: PathBuf,
    /// A `.npy` image feature matrix beside its `.ids.txt`, keyed by image file stem (or by
    /// `id` when there is no `image` column); set for you by `data.from_images`.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub image_features: PathBuf,
    /// Train, val and test proportions of the seeded split (when there is no `split` column).
    #[serde(default = "default_split")]
    pub split: [usize; 3],
    pub on_missing: OnMissing,
}

fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_split() -> [usize; 3] {
    [8, 1, 1]
}

impl PairsConfig {
    /// Range checks that need no data; `key` is where the block sits (`data.pairs`).
    pub fn validate(&self, key: &str) -> Result<()> {
        ensure!(!self.root.as_os_str().is_empty(), "`{key}.root` is empty");
        for (name, &v) in ["train", "val", "test"].iter().zip(&self.split) {
            ensure!(v >= 1, "`{key}.split` must give every part at least 1, got {v} for {name} in {:?}", self.split);
        }
        ensure!(
            format_of(&self.file).is_some(),
            "`{key}.file` must end in .csv or .jsonl, got {}",
            self.file.display()
        );
        ensure!(
            self.image_features.as_os_str().is_empty() || self.image_features.extension().is_some_and(|e| e == "npy"),
            "`{key}.image_features` must name a .npy file (with its .ids.txt beside it), got {}",
            self.image_features.display()
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
}

fn format_of(file: &Path) -> Option<Format> {
    match file.extension()?.to_str()? {
        "csv" => Some(Format::Csv),
        "jsonl" => Some(Format::Jsonl),
        _ => None,
    }
}

const COLUMNS: [&str; 6] = ["id", "image", "text", "text_file", "labels", "split"];

/// One row of the pairs file, before features and tokens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairRow {
    /// The row as the error messages name it (`row 3`, `line 3`).
    pub at: String,
    pub id: String,
    pub image: Option<String>,
    pub text: Option<String>,
    pub text_file: Option<String>,
    /// None: the file has no `labels` column.
    pub labels: Option<Vec<String>>,
    pub split: Option<String>,
}

/// Reads the rows of `path` (CSV or JSONL, by extension).
pub fn read_rows(path: &Path) -> Result<Vec<PairRow>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read pairs file {}", path.display()))?;
    match format_of(path) {
        Some(Format::Csv) => read_csv(&bytes, path),
        Some(Format::Jsonl) => read_jsonl(&bytes, path),
        None => bail!("pairs file {} must end in .csv or .jsonl", path.display()),
    }
}

/// The row (1-based, the header is row 1) where a quote opens that is never closed; the
/// CSV reader would otherwise read the rest of the file into that field.
fn unclosed_quote(bytes: &[u8]) -> Option<usize> {
    let (mut in_quote, mut row, mut opened) = (false, 1, 0);
    for &b in bytes {
        match b {
            b'"' => {
                in_quote = !in_quote;
                if in_quote {
                    opened = row;
                }
            }
            b'\n' if !in_quote => row += 1,
            _ => {}
        }
    }
    in_quote.then_some(opened)
}

fn read_csv(bytes: &[u8], path: &Path) -> Result<Vec<PairRow>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(row) = unclosed_quote(bytes) {
        bail!("pairs file {} row {row}: a quote opens here and is never closed (a malformed quote)", path.display());
    }
    let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let header = r.byte_headers().with_context(|| format!("pairs file {}: cannot read the header", path.display()))?;
    let mut cols: HashMap<&str, usize> = HashMap::new();
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, f)| {
            std::str::from_utf8(f)
                .map(|s| s.trim().to_string())
                .with_context(|| format!("pairs file {}: column {} of the header is not UTF-8", path.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    for (i, name) in names.iter().enumerate() {
        let Some(known) = COLUMNS.iter().find(|c| *c == name) else {
            bail!("pairs file {}: unknown column {name:?} (known: {})", path.display(), COLUMNS.join(", "));
        };
        ensure!(cols.insert(known, i).is_none(), "pairs file {}: column {name:?} appears twice", path.display());
    }
    ensure!(cols.contains_key("id"), "pairs file {}: the header has no `id` column", path.display());
    ensure!(
        cols.contains_key("text") || cols.contains_key("text_file"),
        "pairs file {}: the header has neither a `text` nor a `text_file` column",
        path.display()
    );
    let mut rows = Vec::new();
    for (i, rec) in r.byte_records().enumerate() {
        let at = format!("row {}", i + 2);
        let rec = rec.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => anyhow::anyhow!(
                "pairs file {} {at}: {len} fields where the header has {expected_len} (a malformed quote, or \
                 a comma outside quotes?)",
                path.display()
            ),
            _ => anyhow::anyhow!("pairs file {} {at}: {e}", path.display()),
        })?;
        let field = |c: &str| -> Result<Option<String>> {
            let Some(&j) = cols.get(c) else { return Ok(None) };
            let raw = rec.get(j).unwrap_or_default();
            let s = std::str::from_utf8(raw)
                .with_context(|| format!("pairs file {} {at}: column `{c}` is not valid UTF-8", path.display()))?;
            Ok(Some(s.to_string()))
        };
        let labels = field("labels")?
            .map(|l| l.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>());
        rows.push(PairRow {
            id: field("id")?.unwrap_or_default().trim().to_string(),
            image: field("image")?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            text: field("text")?.filter(|s| !s.trim().is_empty()),
            text_file: field("text_file")?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            labels,
            split: field("split")?.map(|s| s.trim().to_string()),
            at,
        });
    }
    Ok(rows)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    id: serde_json::Value,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    text_file: Option<String>,
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default)]
    split: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Labels {
    Many(Vec<String>),
    One(String),
}

fn read_jsonl(bytes: &[u8], path: &Path) -> Result<Vec<PairRow>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rows = Vec::new();
    let mut labelled = None;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let at = format!("line {}", i + 1);
        let line = std::str::from_utf8(line)
            .with_context(|| format!("pairs file {} {at}: not valid UTF-8", path.display()))?
            .trim();
        if line.is_empty() {
            continue;
        }
        let r: JsonRow = serde_json::from_str(line)
            .with_context(|| format!("pairs file {} {at}: not a pair object", path.display()))?;
        let id = match r.id {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => bail!("pairs file {} {at}: `id` must be a string or a number, got {other}", path.display()),
        };
        let labels = r.labels.map(|l| match l {
            Labels::Many(v) => v.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            Labels::One(s) => vec![s.trim().to_string()].into_iter().filter(|s| !s.is_empty()).collect(),
        });
        // A labelled file labels every row: a row without the key is a row without labels.
        let has = labels.is_some();
        if *labelled.get_or_insert(has) != has {
            bail!(
                "pairs file {} {at}: some rows have `labels` and some do not; label every row or none",
                path.display()
            );
        }
        rows.push(PairRow {
            at,
            id,
            image: r.image.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            text: r.text.filter(|s| !s.trim().is_empty()),
            text_file: r.text_file.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            labels,
            split: r.split.map(|s| s.trim().to_string()),
        });
    }
    Ok(rows)
}

/// What a load left out, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub missing_image: Vec<String>,
    pub empty_text: Vec<String>,
    pub no_tokens: Vec<String>,
}

/// Loads the pairs dataset. Image features come from `cfg.image_features` (the featurizer's
/// output under `data.from_images`).
pub fn load(cfg: &PairsConfig, tok: &Tokenizer, seed: u64) -> Result<Dataset> {
    Ok(load_counted(cfg, tok, seed)?.0)
}

/// [`load`], with what was skipped.
pub fn load_counted(cfg: &PairsConfig, tok: &Tokenizer, seed: u64) -> Result<(Dataset, Skipped)> {
    let path = cfg.root.join(&cfg.file);
    ensure!(
        !cfg.image_features.as_os_str().is_empty(),
        "dataset pairs: no image features: set `data.from_images` (raw images under <root>/images, by the \
         `image` column) or `data.pairs.image_features` (a .npy + .ids.txt keyed by image file stem or id)"
    );
    let rows = read_rows(&path)?;
    ensure!(!rows.is_empty(), "pairs file {} has no rows", path.display());
    let feats = read_features(&cfg.image_features)?;
    let feat_row: HashMap<&str, usize> = feats.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();

    let mut seen: HashMap<String, String> = HashMap::new();
    let labelled = rows[0].labels.is_some();
    let has_split = rows[0].split.is_some();
    let mut skipped = Skipped::default();
    let mut kept: Vec<(PairRow, Vec<String>, usize)> = Vec::new(); // row, tokens, feature row
    for row in rows {
        let where_ = || format!("pairs file {} {} (id {:?})", path.display(), row.at, row.id);
        ensure!(!row.id.is_empty(), "pairs file {} {}: empty `id`", path.display(), row.at);
        if let Some(first) = seen.insert(row.id.clone(), row.at.clone()) {
            bail!("pairs file {}: id {:?} appears twice ({first} and {})", path.display(), row.id, row.at);
        }
        if labelled {
            ensure!(
                row.labels.as_ref().is_some_and(|l| !l.is_empty()),
                "{}: no label, in a file whose other rows have labels",
                where_()
            );
        }
        if let Some(s) = &row.split {
            ensure!(
                ["train", "val", "test"].contains(&s.as_str()),
                "{}: split {s:?} is not train, val or test",
                where_()
            );
        }
        // The image's features: by the image's file stem, or by the id without an image column.
        let key = row.image.as_deref().map_or_else(|| row.id.clone(), crate::data::features::image_stem);
        let Some(&f) = feat_row.get(key.as_str()) else {
            let what = match &row.image {
                Some(img) => format!("image {img} has no features (the file is missing or could not be read)"),
                None => format!("no `image` column, and the features have no row with id {key:?}"),
            };
            match cfg.on_missing {
                OnMissing::Error => bail!("{}: {what} (on_missing: skip leaves such rows out)", where_()),
                OnMissing::Skip => {
                    skipped.missing_image.push(row.id.clone());
                    continue;
                }
            }
        };
        let text = match (&row.text, &row.text_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(file)) => {
                anyhow::ensure!(
                    crate::data::listed::stays_under_root(file),
                    "{}: text_file {file:?} would name a file outside the root {} (no `..`, no absolute path)",
                    where_(),
                    cfg.root.display()
                );
                let p = cfg.root.join(file);
                let t = std::fs::read(&p)
                    .with_context(|| format!("{}: cannot read text file {}", where_(), p.display()))?;
                let t = String::from_utf8(t)
                    .map_err(|_| anyhow::anyhow!("{}: text file {} is not valid UTF-8", where_(), p.display()))?;
                Some(t).filter(|t| !t.trim().is_empty())
            }
            (None, None) => None,
        };
        let Some(text) = text else {
            match cfg.on_missing {
                OnMissing::Error => bail!("{}: empty text (on_missing: skip leaves such rows out)", where_()),
                OnMissing::Skip => {
                    skipped.empty_text.push(row.id.clone());
                    continue;
                }
            }
        };
        let tokens = tok.tokenize(&text);
        if tokens.is_empty() {
            skipped.no_tokens.push(row.id.clone());
            continue;
        }
        kept.push((row, tokens, f));
    }
    for (n, why) in [
        (skipped.missing_image.len(), "a missing image"),
        (skipped.empty_text.len(), "an empty text"),
        (skipped.no_tokens.len(), "a text with no words once tokenized"),
    ] {
        if n > 0 {
            let ids = match why {
                "a missing image" => &skipped.missing_image,
                "an empty text" => &skipped.empty_text,
                _ => &skipped.no_tokens,
            };
            let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            eprintln!("pairs: skipped {n} row(s) with {why}: {}{}", shown.join(", "), if n > 5 { ", …" } else { "" });
        }
    }
    ensure!(!kept.is_empty(), "pairs file {}: no usable rows left", path.display());

    let classes: Vec<String> = if labelled {
        kept.iter()
            .flat_map(|(r, _, _)| r.labels.iter().flatten().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let class_of: BTreeMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut items = Vec::with_capacity(kept.len());
    let mut images = Vec::with_capacity(kept.len() * feats.dim);
    let mut multi_label = false;
    for (row, tokens, f) in &kept {
        let mut labels: Vec<usize> =
            row.labels.iter().flatten().map(|l| class_of[l.as_str()]).collect::<BTreeSet<_>>().into_iter().collect();
        labels.sort_unstable();
        multi_label |= labels.len() > 1;
        items.push(Item { id: row.id.clone(), tokens: tokens.clone(), labels });
        images.extend_from_slice(&feats.data[f * feats.dim..(f + 1) * feats.dim]);
    }
    let (train, val, test) = if has_split {
        let mut parts = [Vec::new(), Vec::new(), Vec::new()];
        for (i, (row, _, _)) in kept.iter().enumerate() {
            let p = match row.split.as_deref() {
                Some("train") => 0,
                Some("val") => 1,
                _ => 2,
            };
            parts[p].push(i);
        }
        let [a, b, c] = parts;
        (a, b, c)
    } else {
        let total: usize = cfg.split.iter().sum();
        let fractions: Vec<f64> = cfg.split.iter().map(|&s| s as f64 / total as f64).collect();
        let first: Vec<usize> = items.iter().map(|it| it.labels.first().copied().unwrap_or(0)).collect();
        let mut parts = stratified_split(&first, &fractions, seed).into_iter();
        let (a, b, c) =
            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        (a, b, c)
    };
    let name = "pairs".to_string();
    let ds = Dataset {
        name,
        classes,
        multi_label,
        items,
        images,
        image_dim: feats.dim,
        train,
        val,
        test,
        word_vectors: None,
    };
    Ok((ds, skipped))
}
