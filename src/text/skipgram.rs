//! Skip-gram word2vec with negative sampling (Mikolov et al. 2013, "Distributed
//! Representations of Words and Phrases and their Compositionality"), trained on tch.
//!
//! Each word w has an input vector u_w (the one returned) and an output vector v_w. For a
//! (center c, context o) pair and K negatives n_1..n_K drawn from the unigram
//! distribution raised to 3/4, the loss is
//!
//! ```text
//! ℓ = −log σ(v_o·u_c) − Σ_k log σ(−v_{n_k}·u_c)
//! ∂ℓ/∂s_j = σ(s_j) − y_j,   s_j = v_j·u_c,   y = (1, 0, …, 0)
//! ```
//!
//! As in word2vec.c: contexts come from a dynamic window (b ~ U{1..window} words on each
//! side, so near words count more), frequent words are subsampled (kept with probability
//! (√(f/t) + 1)·t/f, f the word's share of the corpus, t = `sample`), u starts uniform in
//! ±0.5/dim and v at zero, and plain SGD runs with a learning rate that decays linearly to
//! lr·1e-4 over all epochs.
//!
//! Unlike word2vec.c it is batched: each epoch's pairs are shuffled and cut into batches
//! of `batch` pairs; a batch is one gather, one score product and one `index_add_` per
//! table with the gradients written out by hand (no autograd graph, no optimizer state).
//! Gradients of a word that occurs several times in a batch add up, which is what
//! sequential SGD does to first order.
//!
//! Reproducibility: every random choice (initial vectors, subsampling, windows, shuffling,
//! negatives) comes from one ChaCha8 stream seeded with `seed`, so the sampled pairs are
//! the same on every device, and nothing touches libtorch's global RNG. Two CPU runs with
//! the same seed and thread count give bit-identical vectors.
//!
//! ```yaml
//! skipgram:
//!   dim: 50
//!   window: 5
//!   negatives: 5
//!   epochs: 5
//!   lr: 0.025
//!   min_count: 1
//!   sample: 1.0e-3
//!   batch: 4096
//! ```

use crate::data::WordVectors;
use anyhow::{ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, WeightedAliasIndex};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SkipgramConfig {
    /// Vector dimension.
    pub dim: usize,
    /// Largest context distance; each center draws its own window in 1..=window.
    pub window: usize,
    /// Negative samples per (center, context) pair.
    pub negatives: usize,
    /// Passes over the training texts.
    pub epochs: usize,
    /// Initial SGD learning rate, decayed linearly to lr·1e-4.
    pub lr: f64,
    /// Words seen fewer times are removed from the texts before windowing.
    pub min_count: usize,
    /// Subsampling threshold t for frequent words; 0 disables subsampling.
    pub sample: f64,
    /// (center, context) pairs per SGD step.
    pub batch: usize,
}

impl Default for SkipgramConfig {
    /// The paper authors' settings (50-d, window 5) with word2vec.c's other defaults.
    fn default() -> Self {
        SkipgramConfig {
            dim: 50,
            window: 5,
            negatives: 5,
            epochs: 5,
            lr: 0.025,
            min_count: 1,
            sample: 1e-3,
            batch: 4096,
        }
    }
}

impl SkipgramConfig {
    /// Range checks; messages name the `vectors.skipgram` key.
    pub fn validate(&self) -> Result<()> {
        let k = "vectors.skipgram";
        ensure!(self.dim > 0, "`{k}.dim` must be positive, got {}", self.dim);
        ensure!(self.window > 0, "`{k}.window` must be positive, got {}", self.window);
        ensure!(self.negatives > 0, "`{k}.negatives` must be positive, got {}", self.negatives);
        ensure!(self.epochs > 0, "`{k}.epochs` must be positive, got {}", self.epochs);
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "`{k}.lr` must be positive, got {}", self.lr);
        ensure!(self.min_count > 0, "`{k}.min_count` must be at least 1, got {}", self.min_count);
        ensure!((0.0..1.0).contains(&self.sample), "`{k}.sample` must be in [0, 1), got {}", self.sample);
        ensure!(self.batch > 0, "`{k}.batch` must be positive, got {}", self.batch);
        Ok(())
    }
}

/// The training vocabulary: words with at least `min_count` occurrences, most frequent
/// first, ties alphabetical (so the row order never depends on hash order).
fn count_words(texts: &[&[String]], min_count: usize) -> (Vec<String>, Vec<u64>) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for t in texts {
        for w in t.iter() {
            *counts.entry(w.as_str()).or_insert(0) += 1;
        }
    }
    let mut v: Vec<(&str, u64)> = counts.into_iter().filter(|&(_, c)| c >= min_count as u64).collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    (v.iter().map(|p| p.0.to_string()).collect(), v.iter().map(|p| p.1).collect())
}

/// One epoch's (center, context) pairs: subsampled texts, dynamic windows, shuffled.
fn epoch_pairs(corpus: &[Vec<u32>], keep_prob: &[f64], window: usize, rng: &mut ChaCha8Rng) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    let mut kept: Vec<u32> = Vec::new();
    for doc in corpus {
        kept.clear();
        kept.extend(doc.iter().copied().filter(|&w| {
            let p = keep_prob[w as usize];
            p >= 1.0 || rng.gen::<f64>() < p
        }));
        for (i, &c) in kept.iter().enumerate() {
            let b = rng.gen_range(1..=window);
            let lo = i.saturating_sub(b);
            let hi = (i + b).min(kept.len() - 1);
            for (j, &o) in kept.iter().enumerate().take(hi + 1).skip(lo) {
                if j != i {
                    pairs.push((c, o));
                }
            }
        }
    }
    pairs.shuffle(rng);
    pairs
}

/// Sets libtorch's intra-op thread count and restores the previous one on drop.
struct ThreadsGuard(i32);

impl ThreadsGuard {
    fn set(n: i32) -> ThreadsGuard {
        let old = tch::get_num_threads();
        tch::set_num_threads(n);
        ThreadsGuard(old)
    }
}

impl Drop for ThreadsGuard {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

/// Trains skip-gram vectors on `texts` (token lists). Returns the input vectors of every
/// word seen at least `min_count` times, most frequent first.
pub fn train_skipgram(texts: &[&[String]], cfg: &SkipgramConfig, seed: u64, device: Device) -> Result<WordVectors> {
    cfg.validate()?;
    // On CPU every op here is small ([B·(1+K), d]) and `index_add_` is serial anyway, so
    // libtorch's intra-op fork/join costs more than it saves: on Eng-Wiki on a busy
    // 2-core machine one thread ran an epoch in 8.5 s, two threads in 25.9 s, with
    // identical vectors. OpenMP keeps the setting per thread; libtorch also hands it to
    // threads that start meanwhile, so it is restored on return.
    let _threads = (device == Device::Cpu).then(|| ThreadsGuard::set(1));
    let (words, counts) = count_words(texts, cfg.min_count);
    let n_words = words.len();
    ensure!(
        n_words >= 2,
        "skip-gram needs at least 2 distinct words seen `min_count` = {} times, found {n_words}",
        cfg.min_count
    );
    let index: HashMap<&str, u32> = words.iter().enumerate().map(|(i, w)| (w.as_str(), i as u32)).collect();
    let corpus: Vec<Vec<u32>> =
        texts.iter().map(|t| t.iter().filter_map(|w| index.get(w.as_str()).copied()).collect()).collect();
    let total: u64 = counts.iter().sum();

    let keep_prob: Vec<f64> = counts
        .iter()
        .map(|&c| {
            if cfg.sample <= 0.0 {
                1.0
            } else {
                let (f, t) = (c as f64 / total as f64, cfg.sample);
                ((f / t).sqrt() + 1.0) * t / f
            }
        })
        .collect();
    let noise = WeightedAliasIndex::new(counts.iter().map(|&c| (c as f64).powf(0.75)).collect())
        .map_err(|e| anyhow::anyhow!("skip-gram noise distribution: {e}"))?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (v, d, k) = (n_words as i64, cfg.dim as i64, cfg.negatives);
    let half = 0.5 / cfg.dim as f32;
    let init: Vec<f32> = (0..n_words * cfg.dim).map(|_| rng.gen_range(-half..half)).collect();
    let mut w_in = Tensor::from_slice(&init).view([v, d]).to_device(device);
    let mut w_out = Tensor::zeros([v, d], (Kind::Float, device));
    // Score signs: +1 for the true context, −1 for the negatives, so ℓ = Σ −log σ(sign·s).
    let mut sign_row = vec![-1f32; 1 + k];
    sign_row[0] = 1.0;
    let sign = Tensor::from_slice(&sign_row).view([1, 1 + k as i64]).to_device(device);
    let label = sign.clamp_min(0.0);

    let tokens_per_epoch: u64 = corpus.iter().map(|d| d.len() as u64).sum();
    let total_tokens = tokens_per_epoch * cfg.epochs as u64;
    let bar = ProgressBar::new(total_tokens);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} tokens {msg} [{elapsed}<{eta}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let mut centers: Vec<i64> = Vec::with_capacity(cfg.batch);
    let mut outputs: Vec<i64> = Vec::with_capacity(cfg.batch * (1 + k));
    let mut loss_sum = 0.0f64;
    let mut loss_steps = 0usize;
    for epoch in 0..cfg.epochs {
        bar.set_prefix(format!("skip-gram {}/{}", epoch + 1, cfg.epochs));
        let pairs = epoch_pairs(&corpus, &keep_prob, cfg.window, &mut rng);
        ensure!(
            !pairs.is_empty(),
            "skip-gram: no (center, context) pairs in epoch {}: the texts need 2 or more words after subsampling (`vectors.skipgram.sample` = {})",
            epoch + 1,
            cfg.sample
        );
        let n_pairs = pairs.len();
        loss_sum = 0.0;
        loss_steps = 0;
        for (b, chunk) in pairs.chunks(cfg.batch).enumerate() {
            // Progress in corpus tokens, so lr decay and tokens/s do not depend on window draws.
            let done_pairs = b * cfg.batch;
            let done = epoch as u64 * tokens_per_epoch + (done_pairs as u64 * tokens_per_epoch) / n_pairs as u64;
            let lr = cfg.lr * (1.0 - done as f64 / total_tokens as f64).max(1e-4);

            centers.clear();
            outputs.clear();
            for &(c, o) in chunk {
                centers.push(c as i64);
                outputs.push(o as i64);
                for _ in 0..k {
                    // word2vec.c skips a negative equal to the target; redrawing keeps K.
                    let n = loop {
                        let n = noise.sample(&mut rng) as u32;
                        if n != o {
                            break n;
                        }
                    };
                    outputs.push(n as i64);
                }
            }
            let bsz = chunk.len() as i64;
            let c_idx = Tensor::from_slice(&centers).to_device(device);
            let o_idx = Tensor::from_slice(&outputs).to_device(device);
            let u = w_in.index_select(0, &c_idx); // [B, d]
            let vo = w_out.index_select(0, &o_idx).view([bsz, 1 + k as i64, d]); // [B, 1+K, d]
            let s = vo.bmm(&u.unsqueeze(2)).squeeze_dim(2); // [B, 1+K]
                                                            // −lr·∂ℓ/∂s, [B, 1+K]: scaling here rather than the [B, 1+K, d] gradients saves
                                                            // two full passes over them.
            let g = (s.sigmoid() - &label) * -lr;
            let step_u = g.unsqueeze(1).bmm(&vo).squeeze_dim(1); // [B, 1, 1+K] × [B, 1+K, d] -> [B, d]
            let step_v = g.unsqueeze(2) * u.unsqueeze(1); // [B, 1+K, d]
                                                          // Summed per-row updates (`index_add_`), as the sequential SGD of word2vec.c
                                                          // would apply them. Averaging a word's gradients within the batch instead was
                                                          // tried: it starves frequent words (one small step per batch) and did not learn.
            let _ = w_in.index_add_(0, &c_idx, &step_u);
            let _ = w_out.index_add_(0, &o_idx, &step_v.view([-1, d]));

            // Reading the loss syncs a GPU, so it is sampled, not read every step.
            if b % 16 == 0 {
                let loss = (&s * &sign).log_sigmoid().sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float);
                let loss = -loss.double_value(&[]);
                ensure!(
                    loss.is_finite(),
                    "skip-gram diverged at epoch {}, step {b}: loss {loss} (lower `vectors.skipgram.lr`)",
                    epoch + 1
                );
                loss_sum += loss;
                loss_steps += 1;
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {:.0} tokens/s", done as f64 / secs));
            }
            bar.set_position(done);
        }
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "skip-gram: {n_words} words, {tokens_per_epoch} tokens × {} epochs in {secs:.1}s ({:.0} tokens/s), \
         last epoch's sampled loss {:.4}",
        cfg.epochs,
        total_tokens as f64 / secs.max(1e-9),
        loss_sum / loss_steps.max(1) as f64
    );
    let data = Vec::<f32>::try_from(w_in.to_device(Device::Cpu).flatten(0, -1))?;
    Ok(WordVectors { words, dim: cfg.dim, data })
}
