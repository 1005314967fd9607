//! One training step's forward half: the batches of an epoch (`sampled` pairs or all B×B
//! `in_batch` pairs), the towers on a batch, and the weighted loss terms, read back in one
//! device-to-host copy. `Adam::backward_step` on the total completes the step.

use crate::config::{Config, PairMode, Positives};
use crate::model::{Model, ScorerKind};
use crate::prepare::Prepared;
use crate::train::loss::{contrastive_loss_logits, global_loss, invariance_loss, l2_value, label_loss};
use crate::train::pairs::sample_pairs;
use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::nn::Module;
use tch::{Kind, Tensor};

/// The loss terms, as logged (`train/loss_<term>`).
pub(crate) const TERMS: [&str; 5] = ["global", "contrastive", "label", "invariance", "l2"];

/// A batch as (text rows, image rows) into the train split, plus the positive mask source.
pub enum Batch {
    /// First `n_pos` pairs are positives, the rest negatives.
    Pairs { texts: Vec<i64>, images: Vec<i64>, n_pos: usize },
    /// All B×B pairs of these items.
    Items(Vec<i64>),
}

pub fn epoch_batches(cfg: &Config, data: &Prepared, rng: &mut ChaCha8Rng) -> Result<Vec<Batch>> {
    let b = cfg.train.batch_size;
    Ok(match cfg.train.pairs {
        PairMode::Sampled => {
            let (mut pos, mut neg) =
                sample_pairs(&data.train.label_lists, data.classes.len(), cfg.train.pairs_per_epoch, rng)?;
            pos.shuffle(rng);
            neg.shuffle(rng);
            // Every batch holds half positives and half negatives, so both loss terms exist.
            let half = (b / 2).max(1);
            pos.chunks(half)
                .zip(neg.chunks(b - half))
                .map(|(p, n)| {
                    let all = p.iter().chain(n);
                    Batch::Pairs {
                        texts: all.clone().map(|x| x.0 as i64).collect(),
                        images: all.map(|x| x.1 as i64).collect(),
                        n_pos: p.len(),
                    }
                })
                .collect()
        }
        PairMode::InBatch => {
            // One pass over a shuffled train split, or, with `steps_per_epoch`, as many
            // reshuffled passes as that many steps need.
            let n = data.train.len() as i64;
            let mut out = Vec::new();
            loop {
                let mut perm: Vec<i64> = (0..n).collect();
                perm.shuffle(rng);
                // A last batch smaller than half a batch is dropped for this pass only (it is
                // reshuffled next time), to keep the batch statistics of the loss stable.
                for c in perm.chunks(b).filter(|c| c.len() * 2 >= b && c.len() >= 2) {
                    if cfg.train.steps_per_epoch.is_some_and(|s| out.len() >= s) {
                        break;
                    }
                    out.push(Batch::Items(c.to_vec()));
                }
                if cfg.train.steps_per_epoch.is_none_or(|s| out.len() >= s) {
                    break;
                }
            }
            out
        }
    })
}

/// One batch's forward pass in training mode.
struct BatchOut {
    /// Positive and negative scores.
    pos: Tensor,
    neg: Tensor,
    pairs: usize,
    /// In-batch batches: the `[B, B]` score matrix and its shares-a-label mask.
    matrix: Option<(Tensor, Tensor)>,
    /// Text and image embeddings `[B, D]` with their multi-hot labels `[B, C]`.
    t: Tensor,
    t_labels: Tensor,
    i: Tensor,
    i_labels: Tensor,
}

fn batch_forward(m: &Model, data: &Prepared, batch: &Batch, positives: Positives) -> BatchOut {
    let dev = data.device;
    let tr = &data.train;
    match batch {
        Batch::Pairs { texts, images, n_pos } => {
            let ti = Tensor::from_slice(texts).to_device(dev);
            let ii = Tensor::from_slice(images).to_device(dev);
            let t = m.text.forward_t(&tr.bow.index_select(0, &ti), true); // [B, D]
            let i = m.image.forward_t(&tr.images.index_select(0, &ii), true); // [B, D]
            let s = m.scorer.pairs(&t, &i, true); // [B]
            let n = texts.len() as i64;
            let p = *n_pos as i64;
            BatchOut {
                pos: s.narrow(0, 0, p),
                neg: s.narrow(0, p, n - p),
                pairs: texts.len(),
                matrix: None,
                t_labels: tr.labels.index_select(0, &ti),
                i_labels: tr.labels.index_select(0, &ii),
                t,
                i,
            }
        }
        Batch::Items(items) => {
            let idx = Tensor::from_slice(items).to_device(dev);
            let t = m.text.forward_t(&tr.bow.index_select(0, &idx), true);
            let i = m.image.forward_t(&tr.images.index_select(0, &idx), true);
            let s = m.scorer.matrix(&t, &i, true); // [B, B]
            let lab = tr.labels.index_select(0, &idx);
            let mask = match positives {
                Positives::Label => lab.mm(&lab.tr()).gt(0.5), // [B, B] shares a label
                Positives::Pair => Tensor::eye(items.len() as i64, (Kind::Bool, dev)), // [B, B] own pair
            };
            BatchOut {
                pos: s.masked_select(&mask),
                neg: s.masked_select(&mask.logical_not()),
                pairs: items.len() * items.len(),
                matrix: Some((s, mask)),
                t_labels: lab.shallow_clone(),
                i_labels: lab,
                t,
                i,
            }
        }
    }
}

/// The weighted loss terms of one batch (in the order of [`TERMS`]; None where a term is
/// off) and the global loss's statistics.
fn batch_loss(cfg: &Config, m: &Model, data: &Prepared, b: &BatchOut) -> Result<(Vec<Option<Tensor>>, GlobalStats)> {
    let l = &cfg.loss;
    let g = global_loss(&b.pos, &b.neg, l.lambda, l.margin);
    let stats = GlobalStats { mean_pos: g.mean_pos, mean_neg: g.mean_neg, var_pos: g.var_pos, var_neg: g.var_neg };
    // Weights of 1 and 0 add no op, so the authors' recipe trains bit for bit as before.
    let global = (l.global > 0.0).then(|| if l.global == 1.0 { g.loss.shallow_clone() } else { &g.loss * l.global });
    let contrastive = if l.contrastive > 0.0 {
        let (s, mask) = b.matrix.as_ref().context("the contrastive loss needs in-batch pairs")?;
        let logits = match &m.log_temperature {
            Some(log_tau) => s * (-log_tau).exp(),
            None => s / l.temperature,
        };
        Some(contrastive_loss_logits(&logits, mask) * l.contrastive)
    } else {
        None
    };
    let label = if l.label > 0.0 {
        let c = m.classifier.as_ref().context("the label loss needs the model's classifier")?;
        let (lt, li) = (
            label_loss(&c.forward(&b.t), &b.t_labels, data.multi_label),
            label_loss(&c.forward(&b.i), &b.i_labels, data.multi_label),
        );
        Some((lt + li) * (l.label / 2.0))
    } else {
        None
    };
    let invariance = if l.invariance > 0.0 {
        ensure!(b.matrix.is_some(), "the invariance term needs in-batch pairs");
        let v = match cfg.model.scorer {
            ScorerKind::Cosine => {
                let unit = |x: &Tensor| x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-8);
                invariance_loss(&unit(&b.t), &unit(&b.i))
            }
            ScorerKind::Product => invariance_loss(&b.t, &b.i),
        };
        Some(v * l.invariance)
    } else {
        None
    };
    // The value only: the optimizer adds the term's gradient (`Adam::set_l2`).
    let l2 = (l.l2 > 0.0).then(|| l2_value(&m.l2_weights(l.l2_biases)) * l.l2);
    Ok((vec![global, contrastive, label, invariance, l2], stats))
}

/// The forward half of one training step: the batch's loss, with the total and every
/// term that is on read back in one device-to-host copy. `Adam::backward_step` on
/// `total` completes the step (the training loop and `tgcn bench-side` both do this).
pub struct StepLoss {
    pub total: Tensor,
    /// The total, then each term that is on (in the order of `on`).
    pub values: Vec<f64>,
    /// Indices into [`TERMS`] of the terms that are on.
    pub on: Vec<usize>,
    pub(crate) stats: GlobalStats,
    pub pairs: usize,
}

pub fn step_loss(cfg: &Config, m: &Model, data: &Prepared, batch: &Batch) -> Result<StepLoss> {
    let out = batch_forward(m, data, batch, cfg.loss.positives);
    let (terms, stats) = batch_loss(cfg, m, data, &out)?;
    let on: Vec<(usize, &Tensor)> = terms.iter().enumerate().filter_map(|(j, t)| Some((j, t.as_ref()?))).collect();
    let total = on.iter().map(|(_, t)| t.shallow_clone()).reduce(|a, b| a + b).context("no loss term is on")?;
    let scalars: Vec<Tensor> = std::iter::once(&total).chain(on.iter().map(|(_, t)| *t)).map(Tensor::detach).collect();
    let values: Vec<f64> = Vec::try_from(Tensor::stack(&scalars, 0).to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    Ok(StepLoss { total, values, on: on.iter().map(|(j, _)| *j).collect(), stats, pairs: out.pairs })
}

pub(crate) struct GlobalStats {
    pub(crate) mean_pos: Option<f64>,
    pub(crate) mean_neg: Option<f64>,
    pub(crate) var_pos: Option<f64>,
    pub(crate) var_neg: Option<f64>,
}
