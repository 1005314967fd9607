//! The built-in synthetic dataset: a seeded generator whose word graph carries meaning.
//!
//! Each class owns a cluster of topic words (vectors = class centre + noise), and a pool
//! of filler words has unclustered vectors. A text draws `topic_prob` of its tokens from
//! its labels' topic words (Zipf-weighted within a topic) and the rest from the filler.
//! An image is the mean of its labels' prototypes plus Gaussian noise. With
//! `max_labels > 1` items carry 1..=max_labels distinct labels (multi-label relevance).
//! Results on it are labelled synthetic wherever they are printed.

use crate::data::{Dataset, Item, WordVectors};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, WeightedIndex};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    pub classes: usize,
    /// Topic words per class; their vectors cluster around the class centre.
    pub words_per_class: usize,
    /// Class-independent filler words with unclustered vectors.
    pub shared_words: usize,
    pub vector_dim: usize,
    /// Std of a word vector around its topic centre (centres have unit-variance entries).
    pub vector_noise: f64,
    pub text_len_min: usize,
    pub text_len_max: usize,
    /// Probability that a token comes from one of the item's topics rather than filler.
    pub topic_prob: f64,
    pub image_dim: usize,
    /// Std of the image noise around the class prototype.
    pub image_noise: f64,
    /// Labels per item: 1 for single-label, up to this many for multi-label.
    pub max_labels: usize,
    pub train: usize,
    pub val: usize,
    pub test: usize,
}

/// A letters-only word name for index `i` ("wa", "wb", …), so any alphabetic tokenizer keeps it.
pub fn word_name(i: usize) -> String {
    let mut s = String::from("w");
    let mut n = i;
    let mut letters = Vec::new();
    loop {
        letters.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s.extend(letters.iter().rev());
    s
}

pub fn generate(cfg: &SyntheticConfig, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5157_0000_0001);
    let std = Normal::new(0.0f64, 1.0).expect("unit normal");
    let c = cfg.classes;
    let n_topic = c * cfg.words_per_class;
    let n_words = n_topic + cfg.shared_words;

    // Word vectors: topic words cluster around their class centre.
    let centres: Vec<Vec<f64>> = (0..c).map(|_| (0..cfg.vector_dim).map(|_| std.sample(&mut rng)).collect()).collect();
    let mut vec_data = Vec::with_capacity(n_words * cfg.vector_dim);
    for w in 0..n_words {
        if w < n_topic {
            for &c in &centres[w / cfg.words_per_class] {
                vec_data.push((c + cfg.vector_noise * std.sample(&mut rng)) as f32);
            }
        } else {
            vec_data.extend((0..cfg.vector_dim).map(|_| std.sample(&mut rng) as f32));
        }
    }
    let words: Vec<String> = (0..n_words).map(word_name).collect();

    let zipf = WeightedIndex::new((0..cfg.words_per_class).map(|j| 1.0 / (j as f64 + 1.0).powf(0.8)))
        .expect("positive Zipf weights");
    let prototypes: Vec<Vec<f64>> =
        (0..c).map(|_| (0..cfg.image_dim).map(|_| std.sample(&mut rng)).collect()).collect();

    let n = cfg.train + cfg.val + cfg.test;
    let classes_idx: Vec<usize> = (0..c).collect();
    let mut items = Vec::with_capacity(n);
    let mut images = Vec::with_capacity(n * cfg.image_dim);
    for i in 0..n {
        let n_labels = rng.gen_range(1..=cfg.max_labels);
        let mut labels: Vec<usize> = classes_idx.choose_multiple(&mut rng, n_labels).copied().collect();
        labels.sort_unstable();
        let len = rng.gen_range(cfg.text_len_min..=cfg.text_len_max);
        let tokens: Vec<String> = (0..len)
            .map(|_| {
                let w = if rng.gen_bool(cfg.topic_prob) {
                    let l = labels[rng.gen_range(0..labels.len())];
                    l * cfg.words_per_class + zipf.sample(&mut rng)
                } else {
                    n_topic + rng.gen_range(0..cfg.shared_words)
                };
                words[w].clone()
            })
            .collect();
        let mean: Vec<f64> = (0..cfg.image_dim)
            .map(|d| labels.iter().map(|&l| prototypes[l][d]).sum::<f64>() / labels.len() as f64)
            .collect();
        images.extend(mean.iter().map(|m| (m + cfg.image_noise * std.sample(&mut rng)) as f32));
        items.push(Item { id: format!("syn-{i:06}"), tokens, labels });
    }
    let train = (0..cfg.train).collect();
    let val = (cfg.train..cfg.train + cfg.val).collect();
    let test = (cfg.train + cfg.val..n).collect();
    Dataset {
        name: if cfg.max_labels > 1 { "synthetic (multi-label)" } else { "synthetic" }.to_string(),
        classes: (0..c).map(|k| format!("class{k}")).collect(),
        multi_label: cfg.max_labels > 1,
        items,
        images,
        image_dim: cfg.image_dim,
        train,
        val,
        test,
        word_vectors: Some(WordVectors { words, dim: cfg.vector_dim, data: vec_data }),
    }
}
