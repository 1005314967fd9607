//! Training stage: a config and prepared tensors → a trained model in a run folder.
//! `loss` (the authors' global loss and the L2 term), `pairs` (sampled or in-batch
//! pairs), `optim` (Adam with a state checkpoints can save), `fit` (the loop: train,
//! validate, checkpoint, resume, then test evaluation and export) and `sweep` (a
//! validation-only search over a grid of config values, built on `fit`).
//!
//! Input: [`crate::config::Config`] and [`crate::pipeline::Prepared`]. Output: a run
//! folder ([`crate::run::RunDir`]) and its [`fit::Outcome`].

pub mod loss;
pub mod pairs;
pub mod optim;
pub mod fit;
pub mod sweep;

pub use fit::{
    build_model, eval_run, export_existing, resume, seed_everything, train, Outcome, Summary, TrainOptions, Trained,
};
