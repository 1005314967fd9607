//! Data stage: dataset files in their official layouts → one common in-memory
//! [`Dataset`]. Nothing downstream knows which dataset it came from: items carry tokens
//! and labels, images are a dense feature matrix in item order, and the split lists item
//! indices.
//!
//! Input: files (`listed`: Eng-Wiki, TVGraz, Ch-Wiki; `pascal`; `nus_wide`), read with
//! `mat5` (MATLAB v5) and `features` (`.npy` + ids) and tokenized by `tokenize` (English
//! or Chinese), or the seeded `synthetic` generator.
//! Output: [`Dataset`] (and [`WordVectors`] where a dataset ships them). This module holds
//! the types every loader shares, [`OnMissing`] among them.

pub mod synthetic;
pub mod mat5;
pub mod features;
pub mod tokenize;
pub mod listed;
pub mod pascal;
pub mod nus_wide;
pub mod pairs;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What a loader does with an item whose text or image features are missing (or whose
/// text is empty after tokenizing).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Stop with an error that names the item and the file that lacks it.
    Error,
    /// Leave the item out; the loader counts and prints how many, by reason.
    Skip,
}

/// One text–image pair: the text's tokens, the item's labels (one or more classes).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub tokens: Vec<String>,
    pub labels: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Word vectors keyed by word, row-major `[words, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVectors {
    pub words: Vec<String>,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl WordVectors {
    pub fn index(&self) -> HashMap<&str, usize> {
        self.words.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// Class names; empty for an unlabelled dataset (then every item's `labels` is empty).
    pub classes: Vec<String>,
    /// True when an item may carry several labels (relevance = sharing one).
    pub multi_label: bool,
    pub items: Vec<Item>,
    /// Image features, row-major `[items, image_dim]`, in item order.
    pub images: Vec<f32>,
    pub image_dim: usize,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    /// Vectors shipped with the dataset (the synthetic generator has its own).
    pub word_vectors: Option<WordVectors>,
}

impl Dataset {
    pub fn split(&self, s: Split) -> &[usize] {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.image_dim..(i + 1) * self.image_dim]
    }

    /// Checks the invariants downstream code relies on; messages name the item.
    pub fn validate(&self) -> Result<()> {
        let n = self.items.len();
        ensure!(
            self.image_dim > 0,
            "dataset {}: image features have 0 dimensions; the image tower needs at least one",
            self.name
        );
        ensure!(
            self.images.len() == n * self.image_dim,
            "dataset {}: {} image values for {} items × {} dims",
            self.name,
            self.images.len(),
            n,
            self.image_dim
        );
        if let Some(pos) = self.images.iter().position(|v| !v.is_finite()) {
            let item = &self.items[pos / self.image_dim];
            anyhow::bail!("dataset {}: item {} has a non-finite image feature", self.name, item.id);
        }
        for it in &self.items {
            // An unlabelled dataset (no classes: your own pairs) has no labels at all.
            ensure!(
                !it.labels.is_empty() || self.classes.is_empty(),
                "dataset {}: item {} has no label",
                self.name,
                it.id
            );
            for &l in &it.labels {
                ensure!(
                    l < self.classes.len(),
                    "dataset {}: item {} has label {} but there are {} classes",
                    self.name,
                    it.id,
                    l,
                    self.classes.len()
                );
            }
            ensure!(
                self.multi_label || it.labels.len() == 1 || self.classes.is_empty(),
                "dataset {}: item {} has {} labels in a single-label dataset",
                self.name,
                it.id,
                it.labels.len()
            );
        }
        let mut seen = HashSet::new();
        for s in [Split::Train, Split::Val, Split::Test] {
            ensure!(!self.split(s).is_empty(), "dataset {}: the {} split is empty", self.name, s.name());
            for &i in self.split(s) {
                ensure!(i < n, "dataset {}: {} split names item {i} of {n}", self.name, s.name());
                ensure!(seen.insert(i), "dataset {}: item {} is in two splits", self.name, self.items[i].id);
            }
        }
        Ok(())
    }

    /// Items per class in a split (a multi-label item counts once per label).
    pub fn class_counts(&self, s: Split) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &i in self.split(s) {
            for &l in &self.items[i].labels {
                c[l] += 1;
            }
        }
        c
    }
}

/// A seeded, class-stratified split of `items` (positions 0..n) by their first label:
/// within each class the items are shuffled and cut by `fractions` (the last part takes
/// the rest), so every part sees each class in proportion. Returns the parts sorted.
pub fn stratified_split(first_labels: &[usize], fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n_classes = first_labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class = vec![Vec::new(); n_classes];
    for (i, &c) in first_labels.iter().enumerate() {
        by_class[c].push(i);
    }
    let mut parts = vec![Vec::new(); fractions.len()];
    for members in &mut by_class {
        members.shuffle(&mut rng);
        let n = members.len();
        let mut start = 0;
        for (p, &f) in fractions.iter().enumerate() {
            let end = if p + 1 == fractions.len() { n } else { (start + (f * n as f64).round() as usize).min(n) };
            parts[p].extend_from_slice(&members[start..end]);
            start = end;
        }
    }
    parts.iter_mut().for_each(|p| p.sort_unstable());
    parts
}
