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
//! ±0.5/dim and v at zero, and plain sequential SGD runs over the texts in order, one
//! (center, context) pair at a time, with a learning rate that decays linearly to lr·1e-4
//! over all epochs (updated every 10,000 tokens). σ comes from word2vec.c's table
//! (1000 steps on [−6, 6], saturated outside).
//!
//! It is plain Rust on one CPU thread, no libtorch: at 50 dimensions a pair is a few
//! hundred flops, far too little for a tensor op to pay for itself. One thread also keeps
//! it reproducible: every random choice (initial vectors, subsampling, windows,
//! negatives) comes from one ChaCha8 stream seeded with `seed`, so the same seed gives
//! bit-identical vectors on every machine. (Hogwild threads, as word2vec.c and gensim
//! run, race on the shared rows and give different vectors on every run.)
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
//! ```

use crate::data::WordVectors;
use anyhow::{ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, WeightedAliasIndex};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

/// A block that gives some keys takes the rest from [`SkipgramConfig::default`], so an
/// overlay can set `vectors.skipgram.epochs` over a config without the block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
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
}

impl Default for SkipgramConfig {
    /// The paper authors' settings (50-d, window 5) with word2vec.c's other defaults.
    fn default() -> Self {
        SkipgramConfig { dim: 50, window: 5, negatives: 5, epochs: 5, lr: 0.025, min_count: 1, sample: 1e-3 }
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

/// word2vec.c's σ table: σ(x) at 1000 points of [−MAX_EXP, MAX_EXP].
const MAX_EXP: f32 = 6.0;
const EXP_TABLE: usize = 1000;

fn sigmoid_table() -> Vec<f32> {
    (0..EXP_TABLE)
        .map(|i| {
            let x = ((i as f32 / EXP_TABLE as f32) * 2.0 - 1.0) * MAX_EXP;
            let e = x.exp();
            e / (e + 1.0)
        })
        .collect()
}

#[inline(always)]
/// u·v in eight interleaved partial sums (a fixed order, so still deterministic): a plain
/// running sum is one long dependency chain that the compiler may not reorder or vectorize.
fn dot(u: &[f32], v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (uc, vc) = (u.chunks_exact(8), v.chunks_exact(8));
    let tail: f32 = uc.remainder().iter().zip(vc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in uc.zip(vc) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One SGD step of one (center, context) pair, in place: `u` is the center's input
/// vector; `targets` are rows of `w_out` (`[words, dim]`, row-major): the context word,
/// then the negatives (label 1, then 0). For each target j in turn, s = v_j·u and
/// g = lr·(label − σ(s)) (σ from `table`, saturated outside ±6); then v_j += g·u, and
/// finally u += Σ_j g·v_j (each v_j as it was before its own update), as word2vec.c does.
/// `neu1e` is scratch of u's length. With `loss`, also returns the pair's loss
/// −log σ(s_o) − Σ log σ(−s_n) (exact, not from the table).
#[inline(always)]
pub fn sgd_pair(
    u: &mut [f32],
    w_out: &mut [f32],
    targets: &[u32],
    lr: f32,
    table: &[f32],
    neu1e: &mut [f32],
    loss: bool,
) -> Option<f64> {
    let d = u.len();
    neu1e.iter_mut().for_each(|x| *x = 0.0);
    let mut l = 0.0f64;
    for (j, &t) in targets.iter().enumerate() {
        let v = &mut w_out[t as usize * d..(t as usize + 1) * d];
        let label = if j == 0 { 1.0f32 } else { 0.0 };
        let s = dot(u, v);
        if loss {
            let z = if j == 0 { s as f64 } else { -s as f64 };
            l += (1.0 + (-z).exp()).ln(); // −log σ(z)
        }
        let sig = if s >= MAX_EXP {
            1.0
        } else if s <= -MAX_EXP {
            0.0
        } else {
            // Just below MAX_EXP the f32 index rounds up to EXP_TABLE (word2vec.c allocates
            // one spare cell for it); the last cell serves it.
            table[(((s + MAX_EXP) * (EXP_TABLE as f32 / MAX_EXP / 2.0)) as usize).min(EXP_TABLE - 1)]
        };
        let g = (label - sig) * lr;
        for ((e, b), a) in neu1e.iter_mut().zip(v.iter_mut()).zip(u.iter()) {
            *e += g * *b;
            *b += g * a;
        }
    }
    for (a, e) in u.iter_mut().zip(neu1e.iter()) {
        *a += e;
    }
    loss.then_some(l)
}

/// [`sgd_pair`] compiled for AVX2 (8 lanes instead of SSE2's 4), used where the CPU has
/// it. AVX2 brings no fused multiply-add, so every operation rounds as in the SSE2 build
/// and the vectors are bit-identical either way.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn sgd_pair_avx2(
    u: &mut [f32],
    w_out: &mut [f32],
    targets: &[u32],
    lr: f32,
    table: &[f32],
    neu1e: &mut [f32],
    loss: bool,
) -> Option<f64> {
    sgd_pair(u, w_out, targets, lr, table, neu1e, loss)
}

/// Trains skip-gram vectors on `texts` (token lists). Returns the input vectors of every
/// word seen at least `min_count` times, most frequent first.
pub fn train_skipgram(texts: &[&[String]], cfg: &SkipgramConfig, seed: u64) -> Result<WordVectors> {
    cfg.validate()?;
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
    let (d, k) = (cfg.dim, cfg.negatives);
    let half = 0.5 / cfg.dim as f32;
    let mut w_in: Vec<f32> = (0..n_words * d).map(|_| rng.gen_range(-half..half)).collect();
    let mut w_out = vec![0f32; n_words * d];
    let table = sigmoid_table();
    // The widest build of the step this CPU runs, chosen once.
    type Step = unsafe fn(&mut [f32], &mut [f32], &[u32], f32, &[f32], &mut [f32], bool) -> Option<f64>;
    #[cfg(target_arch = "x86_64")]
    let step: Step = if std::arch::is_x86_feature_detected!("avx2") { sgd_pair_avx2 } else { sgd_pair };
    #[cfg(not(target_arch = "x86_64"))]
    let step: Step = sgd_pair;
    let mut neu1e = vec![0f32; d];
    let mut targets: Vec<u32> = Vec::with_capacity(1 + k);
    let mut kept: Vec<u32> = Vec::new();

    let tokens_per_epoch: u64 = corpus.iter().map(|d| d.len() as u64).sum();
    ensure!(tokens_per_epoch > 0, "skip-gram: the texts hold no word");
    let total_tokens = tokens_per_epoch * cfg.epochs as u64;
    let bar = ProgressBar::new(total_tokens);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} tokens {msg} [{elapsed}<{eta}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let mut done = 0u64;
    let mut lr = cfg.lr as f32;
    let (mut loss_sum, mut loss_pairs) = (0.0f64, 0u64);
    for epoch in 0..cfg.epochs {
        bar.set_prefix(format!("skip-gram {}/{}", epoch + 1, cfg.epochs));
        let mut epoch_pairs = 0u64;
        (loss_sum, loss_pairs) = (0.0, 0);
        for doc in &corpus {
            kept.clear();
            kept.extend(doc.iter().copied().filter(|&w| {
                let p = keep_prob[w as usize];
                p >= 1.0 || rng.gen::<f64>() < p
            }));
            for (i, &c) in kept.iter().enumerate() {
                let b = rng.gen_range(1..=cfg.window);
                let (lo, hi) = (i.saturating_sub(b), (i + b).min(kept.len() - 1));
                for (j, &o) in kept.iter().enumerate().take(hi + 1).skip(lo) {
                    if j == i {
                        continue;
                    }
                    targets.clear();
                    targets.push(o);
                    for _ in 0..k {
                        // word2vec.c skips a negative equal to the target; redrawing keeps K.
                        let n = loop {
                            let n = noise.sample(&mut rng) as u32;
                            if n != o {
                                break n;
                            }
                        };
                        targets.push(n);
                    }
                    let c = c as usize;
                    let u = &mut w_in[c * d..(c + 1) * d];
                    let sample = epoch_pairs.is_multiple_of(64);
                    // SAFETY: `step` is the AVX2 build only where the CPU has AVX2.
                    let l = unsafe { step(u, &mut w_out, &targets, lr, &table, &mut neu1e, sample) };
                    if let Some(l) = l {
                        ensure!(
                            l.is_finite(),
                            "skip-gram diverged at epoch {}: loss {l} (lower `vectors.skipgram.lr`)",
                            epoch + 1
                        );
                        loss_sum += l;
                        loss_pairs += 1;
                    }
                    epoch_pairs += 1;
                }
            }
            let before = done;
            done += doc.len() as u64;
            // As word2vec.c: the rate follows the corpus position, refreshed every 10k tokens.
            if done / 10_000 > before / 10_000 {
                lr = (cfg.lr * (1.0 - done as f64 / total_tokens as f64).max(1e-4)) as f32;
                let secs = t0.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!(
                    "loss {:.4} lr {lr:.2e} {:.0} tokens/s",
                    loss_sum / loss_pairs.max(1) as f64,
                    done as f64 / secs
                ));
                bar.set_position(done);
            }
        }
        ensure!(
            epoch_pairs > 0,
            "skip-gram: no (center, context) pairs in epoch {}: the texts need 2 or more words after subsampling (`vectors.skipgram.sample` = {})",
            epoch + 1,
            cfg.sample
        );
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "skip-gram: {n_words} words, {tokens_per_epoch} tokens × {} epochs in {secs:.1}s ({:.0} tokens/s), \
         last epoch's sampled loss {:.4}",
        cfg.epochs,
        total_tokens as f64 / secs.max(1e-9),
        loss_sum / loss_pairs.max(1) as f64
    );
    Ok(WordVectors { words, dim: cfg.dim, data: w_in })
}
