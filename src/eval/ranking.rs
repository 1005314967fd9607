//! Retrieval evaluation in both directions (image→text, text→image), scored in query
//! chunks so that memory stays at chunk × database: a 100k × 200k evaluation never holds
//! the full score matrix. Each chunk is ranked on the device with a stable descending
//! sort (ties keep database order); relevance (sharing a label) is gathered in rank order
//! and handed to the pure-Rust [`RankAccumulator`](crate::eval::map::RankAccumulator).

use crate::config::{EvalConfig, Protocol};
use crate::eval::map::{RankAccumulator, RankStats};
use crate::model::Model;
use crate::pipeline::{Prepared, SplitTensors};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Embeddings of a split: `text: [n, D]`, `image: [n, D]`, `labels: [n, C]`.
pub struct Embedded {
    pub text: Tensor,
    pub image: Tensor,
    pub labels: Tensor,
}

/// Encodes a whole split in eval mode, `batch` rows at a time, without gradients.
pub fn embed(model: &Model, split: &SplitTensors, batch: usize) -> Embedded {
    tch::no_grad(|| {
        let n = split.len() as i64;
        let b = batch.max(1) as i64;
        let mut texts = Vec::new();
        let mut images = Vec::new();
        let mut start = 0;
        while start < n {
            let len = b.min(n - start);
            texts.push(model.text.forward(&split.bow.narrow(0, start, len)));
            images.push(tch::nn::Module::forward(&model.image, &split.images.narrow(0, start, len)));
            start += len;
        }
        Embedded { text: Tensor::cat(&texts, 0), image: Tensor::cat(&images, 0), labels: split.labels.shallow_clone() }
    })
}

/// The database order of each query row of `scores: [n, n_db] -> [n, n_db]` (indices),
/// best first; ties keep database order (a stable sort). Evaluation and `tgcn search`
/// both rank through this, so a search result is a row of what MAP was computed on.
pub fn ranking_order(scores: &Tensor) -> Tensor {
    scores.sort_stable(true, 1, true).1
}

/// Ranks `db` for every query. `score(q_chunk) -> [chunk, n_db]`.
pub fn rank<F>(score: F, n_queries: usize, q_labels: &Tensor, db_labels: &Tensor, cfg: &EvalConfig) -> Result<RankStats>
where
    F: Fn(&Tensor) -> Tensor,
{
    let mut acc = RankAccumulator::new(cfg.k, &cfg.scope);
    let db_lab_t = db_labels.tr();
    let mut start = 0usize;
    tch::no_grad(|| -> Result<()> {
        while start < n_queries {
            let len = cfg.chunk.min(n_queries - start);
            let idx = Tensor::arange_start(start as i64, (start + len) as i64, (Kind::Int64, q_labels.device()));
            let s = score(&idx); // [len, n_db]
            let order = ranking_order(&s);
            let rel = q_labels.index_select(0, &idx).mm(&db_lab_t).gt(0.5).gather(1, &order, false);
            let n_db = rel.size()[1] as usize;
            let rel: Vec<u8> = Vec::try_from(rel.to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1))?;
            let rel: Vec<bool> = rel.into_iter().map(|r| r != 0).collect();
            for row in rel.chunks(n_db) {
                acc.push(row);
            }
            start += len;
        }
        Ok(())
    })?;
    Ok(acc.finish())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retrieval {
    pub protocol: String,
    pub i2t: RankStats,
    pub t2i: RankStats,
}

impl Retrieval {
    pub fn map_all_mean(&self) -> f64 {
        (self.i2t.map_all + self.t2i.map_all) / 2.0
    }
    pub fn map_k_mean(&self) -> f64 {
        (self.i2t.map_k + self.t2i.map_k) / 2.0
    }
}

/// Queries of `q` against the database `db`, both directions.
pub fn retrieval(
    model: &Model,
    q: &Embedded,
    db: &Embedded,
    cfg: &EvalConfig,
    protocol: &'static str,
) -> Result<Retrieval> {
    let i2t = rank(
        |idx| model.scorer.matrix(&db.text, &q.image.index_select(0, idx), false).tr(),
        q.image.size()[0] as usize,
        &q.labels,
        &db.labels,
        cfg,
    )?;
    let t2i = rank(
        |idx| model.scorer.matrix(&q.text.index_select(0, idx), &db.image, false),
        q.text.size()[0] as usize,
        &q.labels,
        &db.labels,
        cfg,
    )?;
    Ok(Retrieval { protocol: protocol.to_string(), i2t, t2i })
}

/// Test queries under `protocol`: against the test set or against the train set.
pub fn evaluate_test(
    model: &Model,
    data: &Prepared,
    cfg: &EvalConfig,
    protocol: Protocol,
    batch: usize,
) -> Result<Retrieval> {
    anyhow::ensure!(!data.test_withheld, "the test split is withheld: this is a validation-only run");
    let q = embed(model, &data.test, batch);
    let db = match protocol {
        Protocol::TestVsTest => None,
        Protocol::TestVsTrain => Some(embed(model, &data.train, batch)),
    };
    retrieval(model, &q, db.as_ref().unwrap_or(&q), cfg, protocol.name())
}

/// Validation queries against the validation set (model selection).
pub fn evaluate_val(model: &Model, data: &Prepared, cfg: &EvalConfig, batch: usize) -> Result<Retrieval> {
    let q = embed(model, &data.val, batch);
    retrieval(model, &q, &q, cfg, "val_vs_val")
}
