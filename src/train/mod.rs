//! Training stage: a config and prepared tensors → a trained model in a run folder.
//! `loss` (the authors' global loss and the L2 term), `pairs` (sampled or in-batch
//! pairs), `optim` (Adam with a state checkpoints can save) and `fit` (the loop: train,
//! validate, checkpoint, resume, then test evaluation and export).
//!
//! Input: [`crate::config::Config`] and [`crate::pipeline::Prepared`]. Output: a run
//! folder ([`crate::run::RunDir`]) and its [`fit::Outcome`].

pub mod loss;
pub mod pairs;
pub mod optim;
pub mod fit;

pub use fit::{
    build_model, eval_run, export_existing, resume, seed_everything, train, Outcome, Summary, TrainOptions, Trained,
};
