//! Evaluation stage: a model and prepared splits → embeddings → rankings in both
//! directions → MAP@k, MAP@all, precision@k and 11-point PR (`map`, pure Rust), scored
//! in query chunks (`ranking`), by the trained scorer or by class posteriors (`posterior`).
//!
//! Input: [`crate::model::Model`] and [`crate::prepare::Prepared`]. Output: [`Retrieval`]
//! (one protocol's [`map::RankStats`] for i2t and t2i).

pub mod map;
pub mod positions;
pub mod posterior;
pub mod ranking;

/// Rows encoded at once when a model embeds a split for evaluation, search or export.
pub const EVAL_BATCH: usize = 512;

pub use ranking::{embed, evaluate_test, evaluate_val, rank, ranking_order, retrieval, Embedded, Ranker, Retrieval};
