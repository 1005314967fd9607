//! NUS-WIDE (Chua et al., CIVR 2009): 269,648 Flickr images, their tags over a 1000-word
//! vocabulary and 81 hand-labelled concepts. The text of an image is its tag set (the tokens
//! are the tag words themselves), so the word graph is over the 1000 tags.
//!
//! The official layout under `root` (every per-image file has one row per image, in
//! `Imagelist.txt` order; lines may end in LF or CRLF; blank lines may only close a file):
//! - `ImageList/Imagelist.txt`: one image path a line, `C:\ImageData\Flickr\actor\0001_2124494179.jpg`.
//!   The item id is the path after `Flickr\`, with `/` separators: `actor/0001_2124494179.jpg`.
//! - `ImageList/TrainImagelist.txt`, `ImageList/TestImagelist.txt`: the official split, as paths
//!   in either form (with or without the `...\Flickr\` prefix, matched without regard to ASCII case).
//! - `NUS_WID_Tags/TagList1k.txt` (or `root/TagList1k.txt`): the 1000 tags, one a line.
//! - `NUS_WID_Tags/AllTags1k.txt`: one row per image, one whitespace-separated 0/1 column per tag.
//! - `ConceptsList/Concepts81.txt` (or `root/Concepts81.txt`): the 81 concept names.
//! - `Groundtruth/AllLabels/Labels_<concept>.txt`: one 0/1 a line per image, for each concept.
//! - `Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt` (optional): one 0/1 a line
//!   per image of `TrainImagelist.txt` (`TestImagelist.txt`), in that list's order.
//! - `Low_Level_Features/<file>.dat` (e.g. the 500-d SIFT bag of words `BoW_int.dat`):
//!   whitespace-separated numbers, one row per image.
//!
//! The subset: the `top_concepts` concepts with the most positive images over the whole set
//! (ties by `Concepts81.txt` order) become the classes, in `Concepts81.txt` order. An image is
//! kept when it has at least one of those labels and at least one tag (an image without tags
//! is skipped, counted and printed). `single_label: true` then keeps only the images with
//! exactly one kept label, and `per_concept: n` draws (seeded) at most n images per class,
//! grouping a multi-label image under its first class; the usual "NUS-WIDE-10k" is
//! `top_concepts: 10, single_label: true, per_concept: 1000`. Relevance is multi-label (two
//! items match when they share a label) unless `single_label` is set.
//!
//! Split: test = the selected images of the official test list; validation = a seeded,
//! class-stratified (first label) `val_fraction` of the selected official train images (each
//! class gives round(val_fraction · n) of its n);
//! train = the rest.
//!
//! Image features come either from a `.dat` file under `Low_Level_Features/` (`kind: dat`) or
//! from a `.npy` + `.ids.txt` pair keyed by image id (`kind: npy`, see [`crate::data::features`]),
//! whose ids may be the item id (`actor/0001_2124494179.jpg`), the file name
//! (`0001_2124494179.jpg`) or its stem (`0001_2124494179`), tried in that order. An image
//! without a feature row stops the load under `on_missing: error`; under `on_missing: skip`
//! it is skipped, counted and printed. A `.dat` file has a row for every image.
//!
//! TrainTestLabels: when `Groundtruth/TrainTestLabels/` exists, the Train and Test files of
//! every kept concept are read and checked against the split lists and `AllLabels`. A file
//! must have one line per image of its list (else an error, under either `on_missing`), and
//! line k must equal the `AllLabels` value of the k-th image of the list (else an error
//! naming both files: they disagree about the split or its order). A line that is not 0 or
//! 1 is an error naming the file, the line and the value under `on_missing: error`; under
//! `on_missing: skip` it is skipped (the image keeps its `AllLabels` value), counted and
//! printed. The official `Labels_lake_Train.txt` has one such line (`-1130179`, line
//! 78,373), and lake is one of the 10 largest concepts, so the full official set loads only
//! under `on_missing: skip`. The files of concepts that are not kept are not read (they
//! cannot change the dataset). Without the folder the labels come from `AllLabels` alone
//! and the split from the image lists, as before.
//!
//! Memory stays bounded on the full set: the large text files are streamed line by line,
//! labels are kept as one bit mask per image, tag sets only for images with a kept label,
//! and feature values only for the selected rows. Every row of every file is still checked
//! (row counts, column counts, 0/1 cells of tags and labels); `.dat` feature values are
//! parsed, and checked for NaN, on the selected rows only.
//!
//! ```yaml
//! data:
//!   dataset: nus-wide
//!   nus_wide:
//!     root: ../data/NUS-WIDE          # relative to the working directory
//!     top_concepts: 10
//!     single_label: false             # true: keep images with exactly one kept label
//!     per_concept: null               # or 1000 for NUS-WIDE-10k (with single_label: true)
//!     image_features: {kind: dat, file: BoW_int.dat}
//!     # image_features: {kind: npy, path: features/nus-wide-vgg19.npy}
//!     val_fraction: 0.1
//!     on_missing: error               # error | skip
//! ```

use crate::data::features::{ids_path, read_features};
use crate::data::OnMissing;
use crate::data::{stratified_split, Dataset, Item};
use anyhow::{anyhow, bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NusFeatures {
    /// `root/Low_Level_Features/<file>`, one whitespace-separated row per image.
    Dat { file: PathBuf },
    /// A `.npy` matrix beside its `.ids.txt`, keyed by image id.
    Npy { path: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NusWideConfig {
    /// The folder that holds `ImageList/`, `NUS_WID_Tags/`, `Groundtruth/`, ...
    pub root: PathBuf,
    /// Keep the concepts with the most positive images (10 in most papers).
    pub top_concepts: usize,
    /// Keep only images with exactly one kept label.
    pub single_label: bool,
    /// Draw at most this many images per class (seeded); null keeps all.
    pub per_concept: Option<usize>,
    pub image_features: NusFeatures,
    /// Share of the selected official train images held out for validation.
    pub val_fraction: f64,
    pub on_missing: OnMissing,
}

/// Labels are one bit per kept concept.
const MAX_TOP_CONCEPTS: usize = 128;

impl NusWideConfig {
    /// Range checks that need no data; `key` is where the block sits (`data.nus_wide`).
    pub fn validate(&self, key: &str) -> Result<()> {
        ensure!(!self.root.as_os_str().is_empty(), "`{key}.root` is empty");
        ensure!(
            (1..=MAX_TOP_CONCEPTS).contains(&self.top_concepts),
            "`{key}.top_concepts` must lie in [1, {MAX_TOP_CONCEPTS}], got {}",
            self.top_concepts
        );
        if let Some(n) = self.per_concept {
            ensure!(n >= 1, "`{key}.per_concept` must be at least 1 (or null), got {n}");
        }
        ensure!(
            self.val_fraction.is_finite() && self.val_fraction > 0.0 && self.val_fraction < 1.0,
            "`{key}.val_fraction` must lie in (0, 1), got {}",
            self.val_fraction
        );
        match &self.image_features {
            NusFeatures::Dat { file } => {
                ensure!(!file.as_os_str().is_empty(), "`{key}.image_features.file` is empty")
            }
            NusFeatures::Npy { path } => ensure!(
                path.extension().is_some_and(|e| e == "npy"),
                "`{key}.image_features.path` must name a .npy file (with its .ids.txt beside it), got {}",
                path.display()
            ),
        }
        Ok(())
    }
}

const HINT: &str = "NUS-WIDE's per-image files come from its official archives (ImageList.zip, NUS_WID_Tags.zip, \
                    Groundtruth.zip, ConceptsList.zip, NUS_WID_Low_Level_Features.rar) unpacked under `root`";

/// Streams a text file row by row without holding it whole: `f(row, line)` gets the 0-based
/// row and the line without its LF/CRLF. Errors name the file and the 1-based line: a line
/// that is not UTF-8, a blank line with rows after it, or whatever `f` reports. Returns the
/// number of rows.
pub fn for_each_row(path: &Path, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<usize> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let (mut line_no, mut rows, mut blank_at) = (0usize, 0usize, None);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(rows);
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|e| anyhow!("{}: line {line_no} is not UTF-8 (at byte {})", path.display(), e.valid_up_to()))?;
        if line.trim().is_empty() {
            blank_at.get_or_insert(line_no);
            continue;
        }
        if let Some(b) = blank_at {
            bail!("{}: line {b} is blank but rows follow it (every line is one image)", path.display());
        }
        f(rows, line).with_context(|| format!("{}: line {line_no}", path.display()))?;
        rows += 1;
    }
}

/// The first of `candidates` (relative to `root`) that is a file.
fn locate(root: &Path, candidates: &[&str]) -> Result<PathBuf> {
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("none of {} exists under {} ({HINT})", candidates.join(", "), root.display()))
}

/// A list of unique names, one a line (TagList1k.txt, Concepts81.txt).
fn read_names(path: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut seen = HashMap::new();
    for_each_row(path, |row, line| {
        let name = line.trim();
        ensure!(!name.contains(char::is_whitespace), "{name:?} is not one word");
        if let Some(prev) = seen.insert(name.to_string(), row) {
            bail!("{name:?} repeats line {}", prev + 1);
        }
        names.push(name.to_string());
        Ok(())
    })?;
    ensure!(!names.is_empty(), "{} is empty", path.display());
    Ok(names)
}

/// The 1000 tags: `root/NUS_WID_Tags/TagList1k.txt`, else `root/TagList1k.txt`.
pub fn read_tag_list(root: &Path) -> Result<Vec<String>> {
    read_names(&locate(root, &["NUS_WID_Tags/TagList1k.txt", "TagList1k.txt"])?)
}

/// The 81 concepts: `root/ConceptsList/Concepts81.txt`, else `root/Concepts81.txt`.
pub fn read_concepts(root: &Path) -> Result<Vec<String>> {
    read_names(&locate(root, &["ConceptsList/Concepts81.txt", "Concepts81.txt"])?)
}

/// `C:\ImageData\Flickr\actor\0001_2124494179.jpg` or `actor\0001_2124494179.jpg` →
/// `actor/0001_2124494179.jpg`.
pub fn image_id(path_line: &str) -> String {
    let p = path_line.trim().replace('\\', "/");
    match p.find("Flickr/") {
        Some(i) => p[i + "Flickr/".len()..].to_string(),
        None => p.trim_start_matches('/').to_string(),
    }
}

/// Parses a 0/1 cell; anything else is an error naming the column (1-based).
fn bit(cell: &str, col: usize) -> Result<bool> {
    match cell {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => bail!("column {col} is {cell:?}, expected 0 or 1"),
    }
}

/// What the load kept and why it left images out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NusStats {
    /// Rows of `Imagelist.txt`.
    pub images: usize,
    /// The kept concepts and their positive images over the whole set, in class order.
    pub concepts: Vec<(String, usize)>,
    /// Images with at least one kept label.
    pub with_label: usize,
    /// Of those, skipped for having no tag.
    pub no_tag: usize,
    /// Left out by `single_label` for having several kept labels.
    pub multi_label: usize,
    /// Skipped (on_missing: skip) for having no feature row.
    pub missing_features: usize,
    /// `TrainTestLabels` files read and checked (0 when the folder is absent).
    pub split_label_files: usize,
    /// `TrainTestLabels` lines skipped (on_missing: skip) for not being 0 or 1.
    pub bad_split_labels: usize,
    /// The first few of those, as `file line N is "value"`.
    pub bad_split_examples: Vec<String>,
    /// Left out by `per_concept` sampling.
    pub sampled_out: usize,
    /// Items in the dataset.
    pub items: usize,
}

impl fmt::Display for NusStats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let concepts: Vec<String> = self.concepts.iter().map(|(c, n)| format!("{c} {n}")).collect();
        write!(
            f,
            "{} images; concepts [{}]; {} with a kept label; skipped {} without tags, {} without features; \
             left out {} multi-label, {} by sampling; {} items; ",
            self.images,
            concepts.join(", "),
            self.with_label,
            self.no_tag,
            self.missing_features,
            self.multi_label,
            self.sampled_out,
            self.items
        )?;
        if self.split_label_files == 0 {
            return write!(f, "no TrainTestLabels/ (split from the image lists, labels from AllLabels)");
        }
        write!(
            f,
            "{} TrainTestLabels files checked, {} bad lines skipped",
            self.split_label_files, self.bad_split_labels
        )?;
        if !self.bad_split_examples.is_empty() {
            let more = self.bad_split_labels - self.bad_split_examples.len();
            write!(
                f,
                " ({}{})",
                self.bad_split_examples.join(", "),
                if more > 0 { format!(", {more} more") } else { String::new() }
            )?;
        }
        Ok(())
    }
}

/// Loads the configured NUS-WIDE subset into the common [`Dataset`] (see the module docs).
pub fn load(cfg: &NusWideConfig, seed: u64) -> Result<Dataset> {
    let (ds, stats) = load_with_stats(cfg, seed)?;
    eprintln!("nus-wide: {stats}");
    Ok(ds)
}

/// [`load`], also returning the counts of what was kept and left out (not printed).
pub fn load_with_stats(cfg: &NusWideConfig, seed: u64) -> Result<(Dataset, NusStats)> {
    cfg.validate("nus_wide")?;
    let root = &cfg.root;
    let mut stats = NusStats::default();

    // Image ids, and their official split.
    let list_path = root.join("ImageList/Imagelist.txt");
    ensure!(list_path.is_file(), "{} does not exist ({HINT})", list_path.display());
    let mut ids: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, u32> = HashMap::new();
    for_each_row(&list_path, |row, line| {
        let id = image_id(line);
        if let Some(prev) = by_key.insert(id.to_ascii_lowercase(), row as u32) {
            bail!("image {id} repeats line {}", prev + 1);
        }
        ids.push(id);
        Ok(())
    })?;
    let n = ids.len();
    ensure!(n > 0, "{} lists no image", list_path.display());
    stats.images = n;
    // 0 = in neither official list, 1 = train, 2 = test.
    let mut official = vec![0u8; n];
    // The image rows of each split list, in the list's order (TrainTestLabels follow it).
    let mut split_rows: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    for (code, name) in [(1u8, "TrainImagelist.txt"), (2u8, "TestImagelist.txt")] {
        let p = root.join("ImageList").join(name);
        let order = &mut split_rows[code as usize - 1];
        for_each_row(&p, |_, line| {
            let id = image_id(line);
            let &row = by_key
                .get(&id.to_ascii_lowercase())
                .ok_or_else(|| anyhow!("image {id} is not in {}", list_path.display()))?;
            ensure!(
                official[row as usize] == 0,
                "image {id} is listed twice (TrainImagelist.txt and TestImagelist.txt, or twice in one)"
            );
            official[row as usize] = code;
            order.push(row);
            Ok(())
        })?;
    }
    drop(by_key);

    // Labels: count every concept, then keep the largest as one bit per image.
    let concepts = read_concepts(root)?;
    ensure!(
        cfg.top_concepts <= concepts.len(),
        "`nus_wide.top_concepts` is {} but there are {} concepts",
        cfg.top_concepts,
        concepts.len()
    );
    let label_dir = root.join("Groundtruth/AllLabels");
    let mut positives: Vec<Vec<u32>> = Vec::with_capacity(concepts.len());
    for c in &concepts {
        let p = label_dir.join(format!("Labels_{c}.txt"));
        ensure!(p.is_file(), "{} does not exist (one label file per concept of Concepts81.txt; {HINT})", p.display());
        let mut pos = Vec::new();
        let rows = for_each_row(&p, |row, line| {
            ensure!(row < n, "more rows than the {n} images of {}", list_path.display());
            if bit(line.trim(), 1)? {
                pos.push(row as u32);
            }
            Ok(())
        })?;
        ensure!(rows == n, "{} has {rows} rows but {} lists {n} images", p.display(), list_path.display());
        positives.push(pos);
    }
    let mut by_size: Vec<usize> = (0..concepts.len()).collect();
    by_size.sort_by_key(|&c| (std::cmp::Reverse(positives[c].len()), c));
    let mut kept: Vec<usize> = by_size[..cfg.top_concepts].to_vec();
    kept.sort_unstable();
    let classes: Vec<String> = kept.iter().map(|&c| concepts[c].clone()).collect();
    stats.concepts = kept.iter().map(|&c| (concepts[c].clone(), positives[c].len())).collect();
    let mut mask = vec![0u128; n];
    for (class, &c) in kept.iter().enumerate() {
        for &r in &positives[c] {
            mask[r as usize] |= 1 << class;
        }
    }
    drop(positives);
    stats.with_label = mask.iter().filter(|&&m| m != 0).count();

    let split_dir = root.join("Groundtruth/TrainTestLabels");
    if split_dir.is_dir() {
        let lists = ["TrainImagelist.txt", "TestImagelist.txt"];
        for (class, name) in classes.iter().enumerate() {
            for (part, (suffix, list)) in ["Train", "Test"].iter().zip(lists).enumerate() {
                let p = split_dir.join(format!("Labels_{name}_{suffix}.txt"));
                let all = label_dir.join(format!("Labels_{name}.txt"));
                check_split_labels(&p, &all, list, &split_rows[part], &mask, class, &ids, cfg.on_missing, &mut stats)?;
            }
        }
    }
    drop(split_rows);

    // Tags, kept for the images with a kept label only.
    let tags = read_tag_list(root)?;
    ensure!(tags.len() <= u16::MAX as usize, "{} tags do not fit the u16 tag indices", tags.len());
    let tags_path = root.join("NUS_WID_Tags/AllTags1k.txt");
    ensure!(tags_path.is_file(), "{} does not exist ({HINT})", tags_path.display());
    let mut tag_sets: Vec<Vec<u16>> = vec![Vec::new(); n];
    let rows = for_each_row(&tags_path, |row, line| {
        ensure!(row < n, "more rows than the {n} images of {}", list_path.display());
        let keep = mask[row] != 0;
        let mut cols = 0;
        for (j, cell) in line.split_whitespace().enumerate() {
            if bit(cell, j + 1)? && keep && j < tags.len() {
                tag_sets[row].push(j as u16);
            }
            cols += 1;
        }
        ensure!(cols == tags.len(), "{cols} columns, expected {} (one per tag of TagList1k.txt)", tags.len());
        Ok(())
    })?;
    ensure!(rows == n, "{} has {rows} rows but {} lists {n} images", tags_path.display(), list_path.display());

    // The candidate pool, in Imagelist order.
    let mut pool: Vec<usize> = Vec::new();
    for r in 0..n {
        if mask[r] == 0 {
            continue;
        }
        if tag_sets[r].is_empty() {
            stats.no_tag += 1;
        } else if cfg.single_label && mask[r].count_ones() > 1 {
            stats.multi_label += 1;
        } else {
            pool.push(r);
        }
    }

    // Features keyed by id are checked before sampling, so that a skipped image does not
    // leave a class short of its `per_concept` draw.
    let npy = match &cfg.image_features {
        NusFeatures::Npy { path } => {
            let feats = read_features(path)?;
            let ids_file = ids_path(path);
            let mut index: HashMap<&str, usize> = HashMap::with_capacity(feats.ids.len());
            for (row, id) in feats.ids.iter().enumerate() {
                if let Some(prev) = index.insert(id.as_str(), row) {
                    bail!("{}: id {id} is on two rows ({} and {})", ids_file.display(), prev + 1, row + 1);
                }
            }
            let mut rows = vec![usize::MAX; n];
            let mut keep = Vec::with_capacity(pool.len());
            for &r in &pool {
                let id = ids[r].as_str();
                let file = id.rsplit('/').next().unwrap_or(id);
                let stem = file.rsplit_once('.').map_or(file, |s| s.0);
                match [id, file, stem].iter().find_map(|k| index.get(k)) {
                    Some(&fr) => {
                        rows[r] = fr;
                        keep.push(r);
                    }
                    None => match cfg.on_missing {
                        OnMissing::Error => bail!(
                            "image {id} ({} line {}) has no row in {} (looked up as {id}, {file} and {stem}; \
                             set `on_missing: skip` to leave such images out)",
                            list_path.display(),
                            r + 1,
                            ids_file.display()
                        ),
                        OnMissing::Skip => stats.missing_features += 1,
                    },
                }
            }
            drop(index);
            pool = keep;
            Some((feats, rows))
        }
        NusFeatures::Dat { .. } => None,
    };

    let first_class = |r: usize| mask[r].trailing_zeros() as usize;
    if let Some(k) = cfg.per_concept {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut groups = vec![Vec::new(); classes.len()];
        for &r in &pool {
            groups[first_class(r)].push(r);
        }
        let mut chosen = Vec::new();
        for (c, g) in groups.iter_mut().enumerate() {
            if g.len() < k {
                eprintln!(
                    "nus-wide: concept {} has {} images, fewer than per_concept = {k}; all kept",
                    classes[c],
                    g.len()
                );
            }
            g.shuffle(&mut rng);
            chosen.extend_from_slice(&g[..g.len().min(k)]);
        }
        chosen.sort_unstable();
        stats.sampled_out = pool.len() - chosen.len();
        pool = chosen;
    }
    ensure!(!pool.is_empty(), "nus-wide: no image is left ({stats})");

    // Features of the selected rows, in item order.
    let (images, image_dim) = match (&cfg.image_features, npy) {
        (_, Some((feats, rows))) => {
            let mut out = Vec::with_capacity(pool.len() * feats.dim);
            for &r in &pool {
                out.extend_from_slice(&feats.data[rows[r] * feats.dim..(rows[r] + 1) * feats.dim]);
            }
            (out, feats.dim)
        }
        (NusFeatures::Dat { file }, None) => {
            read_dat_rows(&root.join("Low_Level_Features").join(file), &pool, &ids, &list_path)?
        }
        (NusFeatures::Npy { .. }, None) => unreachable!("npy features are read above"),
    };

    let mut items = Vec::with_capacity(pool.len());
    let (mut train_all, mut test) = (Vec::new(), Vec::new());
    for (i, &r) in pool.iter().enumerate() {
        match official[r] {
            1 => train_all.push(i),
            2 => test.push(i),
            _ => bail!(
                "image {} ({} line {}) is in neither TrainImagelist.txt nor TestImagelist.txt",
                ids[r],
                list_path.display(),
                r + 1
            ),
        }
        let labels = (0..classes.len()).filter(|&c| (mask[r] >> c) & 1 == 1).collect();
        let tokens = tag_sets[r].iter().map(|&t| tags[t as usize].clone()).collect();
        items.push(Item { id: ids[r].clone(), tokens, labels });
    }
    let first: Vec<usize> = train_all.iter().map(|&i| first_class(pool[i])).collect();
    // Val first: each class gives round(val_fraction · n) of its train images, train the rest.
    let parts = stratified_split(&first, &[cfg.val_fraction, 1.0 - cfg.val_fraction], seed);
    let val: Vec<usize> = parts[0].iter().map(|&p| train_all[p]).collect();
    let train: Vec<usize> = parts[1].iter().map(|&p| train_all[p]).collect();
    stats.items = items.len();

    let ds = Dataset {
        name: "nus-wide".into(),
        classes,
        multi_label: !cfg.single_label,
        items,
        images,
        image_dim,
        train,
        val,
        test,
        word_vectors: None,
    };
    ds.validate().with_context(|| format!("nus-wide from {} ({stats})", root.display()))?;
    Ok((ds, stats))
}

/// How many skipped TrainTestLabels lines [`NusStats`] names.
const BAD_SPLIT_EXAMPLES: usize = 5;

/// Checks one TrainTestLabels file: line k is the label of image `rows[k]` (the k-th image of
/// `list`) for `class`, which must equal its `AllLabels` bit in `mask`. See the module docs.
#[allow(clippy::too_many_arguments)]
fn check_split_labels(
    path: &Path,
    all_labels: &Path,
    list: &str,
    rows: &[u32],
    mask: &[u128],
    class: usize,
    ids: &[String],
    on_missing: OnMissing,
    stats: &mut NusStats,
) -> Result<()> {
    ensure!(
        path.is_file(),
        "{} does not exist (Groundtruth/TrainTestLabels/ is present, so it needs a Train and a Test file \
         for every kept concept; {HINT})",
        path.display()
    );
    let file = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
    let lines = for_each_row(path, |k, line| {
        ensure!(k < rows.len(), "more rows than the {} images of {list}", rows.len());
        let r = rows[k] as usize;
        let want = (mask[r] >> class) & 1 == 1;
        let got = match line.trim() {
            "0" => false,
            "1" => true,
            v => {
                return match on_missing {
                    OnMissing::Error => bail!(
                        "{v:?} is not 0 or 1 (the label of image {}, {list} row {}; set \
                         `data.nus_wide.on_missing: skip` to skip such lines and keep the AllLabels value)",
                        ids[r],
                        k + 1
                    ),
                    OnMissing::Skip => {
                        stats.bad_split_labels += 1;
                        if stats.bad_split_examples.len() < BAD_SPLIT_EXAMPLES {
                            stats.bad_split_examples.push(format!("{file} line {} is {v:?}", k + 1));
                        }
                        Ok(())
                    }
                };
            }
        };
        ensure!(
            got == want,
            "{} but {} line {} says {} for image {} ({list} row {}): the two files disagree \
             about the split or its order",
            got as u8,
            all_labels.display(),
            r + 1,
            want as u8,
            ids[r],
            k + 1
        );
        Ok(())
    })?;
    ensure!(lines == rows.len(), "{} has {lines} rows but {list} lists {} images", path.display(), rows.len());
    stats.split_label_files += 1;
    Ok(())
}

/// Streams a `.dat` feature file: every row must have the first row's column count and
/// there must be one row per image; only the rows in `selected` (sorted) are parsed, and
/// their values must be finite. Returns them row-major in `selected` order.
fn read_dat_rows(path: &Path, selected: &[usize], ids: &[String], list_path: &Path) -> Result<(Vec<f32>, usize)> {
    ensure!(path.is_file(), "{} does not exist (a file of Low_Level_Features; {HINT})", path.display());
    let n = ids.len();
    let mut dim = 0;
    let mut out = Vec::new();
    let mut next = 0;
    let rows = for_each_row(path, |row, line| {
        ensure!(row < n, "more rows than the {n} images of {}", list_path.display());
        let cols = line.split_whitespace().count();
        if row == 0 {
            dim = cols;
            out.reserve(selected.len() * dim);
        }
        ensure!(cols == dim, "{cols} columns but row 1 has {dim}");
        if selected.get(next) == Some(&row) {
            for (j, cell) in line.split_whitespace().enumerate() {
                let v: f32 = cell.parse().map_err(|_| anyhow!("column {} is {cell:?}, not a number", j + 1))?;
                ensure!(v.is_finite(), "column {} is {cell} (image {})", j + 1, ids[row]);
                out.push(v);
            }
            next += 1;
        }
        Ok(())
    })?;
    ensure!(rows == n, "{} has {rows} rows but {} lists {n} images", path.display(), list_path.display());
    Ok((out, dim))
}
