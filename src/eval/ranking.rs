//! Retrieval evaluation in both directions (image→text, text→image), scored in query
//! chunks so that memory stays at chunk × database: a 100k × 200k evaluation never holds
//! the full score matrix. Each chunk is ranked on the device with a stable descending
//! sort (ties keep database order); relevance (sharing a label) is gathered in rank order
//! and handed to the pure-Rust [`RankAccumulator`](crate::eval::map::RankAccumulator).

use crate::config::{EvalConfig, Protocol, Ranking, RelevanceMode};
use crate::eval::map::{QueryTerms, RankAccumulator, RankStats};
use crate::eval::positions::{masks, positions_of, Relevance, RowRanker};
use crate::eval::posterior::{ClassMeans, ClassifierPosterior};
use crate::model::Model;
use crate::prepare::{Prepared, SplitTensors};
use anyhow::{Context, Result};
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

/// What items are ranked by (`eval.ranking`). Evaluation, `tgcn search`, `tgcn embed`,
/// the report and the exported `scorer.pt` all rank through one of these.
#[derive(Debug)]
pub enum Ranker {
    /// The trained scorer on the embeddings.
    Scorer,
    /// Inner products of class posteriors ([`ClassMeans`] of the train split).
    Posterior(ClassMeans),
    /// Inner products of the label classifier's posteriors.
    Classifier(ClassifierPosterior),
}

impl Ranker {
    /// The ranker `cfg` asks for; class posteriors embed `data.train` with `model`.
    pub fn new(model: &Model, data: &Prepared, cfg: &EvalConfig, batch: usize) -> Result<Ranker> {
        Ok(match cfg.ranking {
            Ranking::Scorer => Ranker::Scorer,
            Ranking::ClassPosterior => {
                let train = embed(model, &data.train, batch);
                Ranker::Posterior(ClassMeans::fit(&train.text, &train.image, &train.labels, cfg.posterior_temperature)?)
            }
            Ranking::Classifier => {
                let c = model
                    .classifier
                    .as_ref()
                    .context("`eval.ranking: classifier` needs the label classifier, which `loss.label` > 0 trains")?;
                let copy = |t: &Tensor| tch::no_grad(|| t.detach().copy());
                let bias = c.bs.as_ref().context("the label classifier has no bias")?;
                Ranker::Classifier(ClassifierPosterior {
                    weight: copy(&c.ws),
                    bias: copy(bias),
                    multi_label: data.multi_label,
                })
            }
        })
    }

    /// What is ranked, from the embeddings: the embeddings themselves for the scorer,
    /// each side's class posteriors `[n, C]` otherwise.
    pub fn represent(&self, e: Embedded) -> Embedded {
        tch::no_grad(|| Embedded {
            text: self.represent_text(&e.text),
            image: self.represent_image(&e.image),
            labels: e.labels,
        })
    }

    /// One side's rows `[n, D]` as [`Ranker::represent`] gives them.
    pub fn represent_text(&self, t: &Tensor) -> Tensor {
        match self {
            Ranker::Scorer => t.shallow_clone(),
            Ranker::Posterior(c) => c.text_posterior(t),
            Ranker::Classifier(c) => c.posterior(t),
        }
    }

    /// One side's rows `[n, D]` as [`Ranker::represent`] gives them.
    pub fn represent_image(&self, i: &Tensor) -> Tensor {
        match self {
            Ranker::Scorer => i.shallow_clone(),
            Ranker::Posterior(c) => c.image_posterior(i),
            Ranker::Classifier(c) => c.posterior(i),
        }
    }

    /// Scores `[nt, ni]` of represented text rows against represented image rows.
    pub fn matrix(&self, model: &Model, text: &Tensor, image: &Tensor) -> Tensor {
        match self {
            Ranker::Scorer => model.scorer.matrix(text, image, false),
            Ranker::Posterior(_) | Ranker::Classifier(_) => text.mm(&image.tr()),
        }
    }

    /// Two sides whose inner product (plus the bias) is [`Ranker::matrix`], for a vector
    /// index: the scorer's [`crate::model::Scorer::inner_product_sides`], or the posteriors.
    pub fn inner_product_sides(
        &self,
        model: &Model,
        text: &Tensor,
        image: &Tensor,
    ) -> (Tensor, Tensor, Option<Tensor>) {
        match self {
            Ranker::Scorer => model.scorer.inner_product_sides(text, image),
            Ranker::Posterior(_) | Ranker::Classifier(_) => (text.shallow_clone(), image.shallow_clone(), None),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Ranker::Scorer => "scorer",
            Ranker::Posterior(_) => "class_posterior",
            Ranker::Classifier(_) => "classifier",
        }
    }

    /// What the scores are, in words (the report, the export's manifest).
    pub fn describe(&self) -> String {
        match self {
            Ranker::Scorer => "the trained scorer's scores".to_string(),
            Ranker::Posterior(c) => format!(
                "sum_c p(c|text) p(c|image), p = softmax(cos(embedding, train-split class mean of its modality) / {})",
                c.temperature
            ),
            Ranker::Classifier(c) => format!(
                "sum_c p(c|text) p(c|image), p = {} of the shared label classifier's logits (W embedding + b)",
                if c.multi_label { "the sigmoid per class" } else { "the softmax" }
            ),
        }
    }

    pub fn to_device(&self, device: tch::Device) -> Ranker {
        match self {
            Ranker::Scorer => Ranker::Scorer,
            Ranker::Posterior(c) => Ranker::Posterior(c.to_device(device)),
            Ranker::Classifier(c) => Ranker::Classifier(c.to_device(device)),
        }
    }
}

/// The database order of each query row of `scores: [n, n_db] -> [n, n_db]` (indices),
/// best first; ties keep database order (a stable sort). Evaluation and `tgcn search`
/// both rank through this, so a search result is a row of what MAP was computed on.
pub fn ranking_order(scores: &Tensor) -> Tensor {
    scores.sort_stable(true, 1, true).1
}

/// Calls `f(start, len, scores)` for each block of `chunk` queries, `scores = score(idx)`
/// `[len, n_db]` for the query rows `idx` = start..start + len, without gradients.
fn for_each_chunk<F, G>(score: F, n_queries: usize, chunk: usize, device: Device, mut f: G) -> Result<()>
where
    F: Fn(&Tensor) -> Tensor,
    G: FnMut(usize, &Tensor, Tensor) -> Result<()>,
{
    tch::no_grad(|| {
        let mut start = 0usize;
        while start < n_queries {
            let len = chunk.min(n_queries - start);
            let idx = Tensor::arange_start(start as i64, (start + len) as i64, (Kind::Int64, device));
            let s = score(&idx); // [len, n_db]
            f(start, &idx, s)?;
            start += len;
        }
        Ok(())
    })
}

/// Relevance of the query rows `idx` against the database, in the stable descending order
/// of their `scores`, row after row: `[len × n_db]`. Sharing a label, or under
/// `pair` relevance (`db_lab_t` None) being the database item at the query's own index.
fn relevance_in_rank_order(
    q_labels: &Tensor,
    idx: &Tensor,
    db_lab_t: Option<&Tensor>,
    scores: &Tensor,
) -> Result<Vec<bool>> {
    let order = ranking_order(scores);
    let rel = match db_lab_t {
        Some(db_lab_t) => q_labels.index_select(0, idx).mm(db_lab_t).gt(0.5).gather(1, &order, false),
        None => order.eq_tensor(&idx.unsqueeze(1)), // [len, n_db]
    };
    let rel: Vec<u8> = Vec::try_from(rel.to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1))?;
    Ok(rel.into_iter().map(|r| r != 0).collect())
}

/// Which relevance `rank` applies (`eval.relevance`, resolved for the database's classes),
/// checked against what the data allows: `label` needs labels, `pair` a database that is
/// the queries' own split.
fn resolve_relevance(cfg: &EvalConfig, classes: usize, n_queries: usize, n_db: usize) -> Result<RelevanceMode> {
    let mode = cfg.relevance_for(classes);
    match mode {
        RelevanceMode::Label => anyhow::ensure!(
            classes > 0,
            "`eval.relevance: label` needs class labels, and this dataset has none; use `eval.relevance: pair` \
             (a query's own pair is its one relevant item)"
        ),
        RelevanceMode::Pair => anyhow::ensure!(
            n_queries == n_db,
            "`eval.relevance: pair` ranks each query's own pair, so the database must be the queries' split; \
             got {n_queries} queries against {n_db} items (the test_vs_train protocol has no pairs to find)"
        ),
    }
    Ok(mode)
}

/// Ranks `db` for every query. `score(q_chunk) -> [chunk, n_db]`, `cfg.chunk` queries
/// at a time, so memory stays at chunk × database. Relevance is `eval.relevance`
/// ([`EvalConfig::relevance_for`]): sharing a label, or the query's own pair (query i and
/// database item i), where the database is the queries' own split.
///
/// On the CPU the rows of a chunk are split over the cores; each row yields the positions
/// of its relevant items ([`RowRanker`]) without a sort of the whole row, and relevance
/// comes from label masks ([`Relevance`]) instead of a chunk × database product. On CUDA
/// the chunk is sorted on the device (a segmented sort there is fast, and only the
/// relevance in rank order crosses to the host). Either way each query's terms are added
/// in query order, so the figures are bit-identical to [`rank_reference`] on any number
/// of threads.
pub fn rank<F>(score: F, n_queries: usize, q_labels: &Tensor, db_labels: &Tensor, cfg: &EvalConfig) -> Result<RankStats>
where
    F: Fn(&Tensor) -> Tensor,
{
    let mut acc = RankAccumulator::new(cfg.k, &cfg.scope);
    let classes = db_labels.size().get(1).copied().unwrap_or(0) as usize;
    let n_db = db_labels.size().first().copied().unwrap_or(0) as usize;
    let pair = resolve_relevance(cfg, classes, n_queries, n_db)? == RelevanceMode::Pair;
    let host = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().flatten(0, -1))?)
    };
    let on_cpu = q_labels.device() == Device::Cpu;
    let mut relevance = match on_cpu && !pair {
        true => Relevance::new(&host(db_labels)?, classes),
        false => None,
    };
    let q_masks = match relevance {
        Some(_) => masks(&host(q_labels)?, classes),
        None => Vec::new(),
    };
    let db_lab_t = (!pair).then(|| db_labels.tr());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for_each_chunk(score, n_queries, cfg.chunk, q_labels.device(), |start, idx, s| {
        let (len, n_db) = (s.size()[0] as usize, s.size()[1] as usize);
        let terms = match relevance.as_mut() {
            _ if pair && on_cpu => {
                let s = s.to_kind(Kind::Float).contiguous();
                // SAFETY: as below.
                let scores = unsafe { std::slice::from_raw_parts(s.data_ptr() as *const f32, len * n_db) };
                rows_in_parallel(len, threads, |row, ranker, positions, scratch| {
                    let own = [(start + row) as u32];
                    ranker.relevant_positions(&scores[row * n_db..(row + 1) * n_db], &own, positions);
                    acc.terms(positions, n_db, scratch)
                })
            }
            Some(rel) => {
                let s = s.to_kind(Kind::Float).contiguous();
                // SAFETY: `s` is a contiguous f32 CPU tensor of len × n_db elements that
                // outlives the slice (dropped at the end of this arm), and nothing writes it.
                let scores = unsafe { std::slice::from_raw_parts(s.data_ptr() as *const f32, len * n_db) };
                // Build every list this chunk needs, then borrow them all.
                let chunk_masks = &q_masks[start..start + len];
                for &m in chunk_masks {
                    rel.of(m);
                }
                let lists: Vec<&[u32]> = chunk_masks.iter().map(|&m| rel.cached(m)).collect();
                rows_in_parallel(len, threads, |row, ranker, positions, scratch| {
                    ranker.relevant_positions(&scores[row * n_db..(row + 1) * n_db], lists[row], positions);
                    acc.terms(positions, n_db, scratch)
                })
            }
            None => {
                // Sorted on the device (or with more than 128 classes): relevance in rank order.
                let rel = relevance_in_rank_order(q_labels, idx, db_lab_t.as_ref(), &s)?;
                rows_in_parallel(len, threads, |row, _, positions, scratch| {
                    positions_of(&rel[row * n_db..(row + 1) * n_db], positions);
                    acc.terms(positions, n_db, scratch)
                })
            }
        };
        for t in &terms {
            acc.add(t);
        }
        Ok(())
    })?;
    Ok(acc.finish())
}

/// `f(row, …)` for rows 0..n, in contiguous blocks on up to `threads` threads, each with
/// its own scratch; the results in row order.
fn rows_in_parallel<F>(n: usize, threads: usize, f: F) -> Vec<QueryTerms>
where
    F: Fn(usize, &mut RowRanker, &mut Vec<usize>, &mut Vec<f64>) -> QueryTerms + Sync,
{
    let work = |rows: std::ops::Range<usize>| {
        let (mut ranker, mut positions, mut scratch) = (RowRanker::default(), Vec::new(), Vec::new());
        rows.map(|r| f(r, &mut ranker, &mut positions, &mut scratch)).collect::<Vec<_>>()
    };
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return work(0..n);
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|sc| {
        let handles: Vec<_> =
            (0..threads).map(|t| (t * per).min(n)..((t + 1) * per).min(n)).map(|r| sc.spawn(|| work(r))).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a ranking thread panicked")).collect()
    })
}

/// The evaluator this crate had first, kept as the reference the fast [`rank`] is tested
/// against: a stable sort of every row on the device, the relevance gathered in rank
/// order, and one pass over each whole row.
pub fn rank_reference<F>(
    score: F,
    n_queries: usize,
    q_labels: &Tensor,
    db_labels: &Tensor,
    cfg: &EvalConfig,
) -> Result<RankStats>
where
    F: Fn(&Tensor) -> Tensor,
{
    let mut acc = RankAccumulator::new(cfg.k, &cfg.scope);
    let classes = db_labels.size().get(1).copied().unwrap_or(0) as usize;
    let n_db = db_labels.size().first().copied().unwrap_or(0) as usize;
    let pair = resolve_relevance(cfg, classes, n_queries, n_db)? == RelevanceMode::Pair;
    let db_lab_t = (!pair).then(|| db_labels.tr());
    for_each_chunk(score, n_queries, cfg.chunk, q_labels.device(), |_, idx, s| {
        let n_db = s.size()[1] as usize;
        for row in relevance_in_rank_order(q_labels, idx, db_lab_t.as_ref(), &s)?.chunks(n_db) {
            acc.push(row);
        }
        Ok(())
    })?;
    Ok(acc.finish())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retrieval {
    pub protocol: String,
    /// `eval.relevance` as applied (`label` or `pair`); summaries written before it existed
    /// were all `label`.
    #[serde(default = "label_relevance")]
    pub relevance: String,
    pub i2t: RankStats,
    pub t2i: RankStats,
}

fn label_relevance() -> String {
    RelevanceMode::Label.name().to_string()
}

impl Retrieval {
    /// Recall@`k` averaged over both directions (0 where it was not computed).
    pub fn recall_mean(&self, k: usize) -> f64 {
        (self.i2t.recall_at(k).unwrap_or(0.0) + self.t2i.recall_at(k).unwrap_or(0.0)) / 2.0
    }
    /// The figure `train.select_on` selects on (higher is better).
    pub fn select_score(&self, on: crate::config::SelectOn) -> f64 {
        use crate::config::SelectOn;
        match on {
            SelectOn::Map => self.map_all_mean(),
            SelectOn::R1 => self.recall_mean(1),
            SelectOn::R5 => self.recall_mean(5),
            SelectOn::R10 => self.recall_mean(10),
        }
    }
    /// Median rank averaged over both directions.
    pub fn median_rank_mean(&self) -> f64 {
        (self.i2t.median_rank + self.t2i.median_rank) / 2.0
    }
    pub fn map_all_mean(&self) -> f64 {
        (self.i2t.map_all + self.t2i.map_all) / 2.0
    }
    pub fn map_k_mean(&self) -> f64 {
        (self.i2t.map_k + self.t2i.map_k) / 2.0
    }
}

/// Queries of `q` against the database `db`, both directions, ranked by `ranker`.
pub fn retrieval(
    model: &Model,
    ranker: &Ranker,
    q: &Embedded,
    db: &Embedded,
    cfg: &EvalConfig,
    protocol: &'static str,
) -> Result<Retrieval> {
    let i2t = rank(
        |idx| ranker.matrix(model, &db.text, &q.image.index_select(0, idx)).tr(),
        q.image.size()[0] as usize,
        &q.labels,
        &db.labels,
        cfg,
    )?;
    let t2i = rank(
        |idx| ranker.matrix(model, &q.text.index_select(0, idx), &db.image),
        q.text.size()[0] as usize,
        &q.labels,
        &db.labels,
        cfg,
    )?;
    let classes = db.labels.size().get(1).copied().unwrap_or(0) as usize;
    let relevance = cfg.relevance_for(classes).name().to_string();
    Ok(Retrieval { protocol: protocol.to_string(), relevance, i2t, t2i })
}

/// Test queries under `protocol`: against the test set or against the train set, ranked
/// by `ranker` ([`Ranker::new`] of the same model).
pub fn evaluate_test(
    model: &Model,
    ranker: &Ranker,
    data: &Prepared,
    cfg: &EvalConfig,
    protocol: Protocol,
    batch: usize,
) -> Result<Retrieval> {
    anyhow::ensure!(!data.test_withheld, "the test split is withheld: this is a validation-only run");
    let q = ranker.represent(embed(model, &data.test, batch));
    let db = match protocol {
        Protocol::TestVsTest => None,
        Protocol::TestVsTrain => Some(ranker.represent(embed(model, &data.train, batch))),
    };
    retrieval(model, ranker, &q, db.as_ref().unwrap_or(&q), cfg, protocol.name())
}

/// Validation queries against the validation set (model selection).
pub fn evaluate_val(model: &Model, data: &Prepared, cfg: &EvalConfig, batch: usize) -> Result<Retrieval> {
    let ranker = Ranker::new(model, data, cfg, batch)?;
    let q = ranker.represent(embed(model, &data.val, batch));
    retrieval(model, &ranker, &q, &q, cfg, "val_vs_val")
}
