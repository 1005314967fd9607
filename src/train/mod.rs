//! Training stage: a config and prepared tensors → a trained model in a run folder.
//! `loss` (the objectives' terms), `pairs` (sampled pairs), `optim` (Adam with a state
//! checkpoints can save), `setup` (seeding, the model and its optimizer), `step` (batches
//! and one step's loss), `test_eval` (the test evaluation and its table), `fit` (the loop:
//! train, validate, checkpoint, resume, refit, then test and export), `trained` (a
//! finished run loaded back) and `sweep` (a validation-only search over config values).
//!
//! Input: [`crate::config::Config`] and [`crate::prepare::Prepared`]. Output: a run
//! folder ([`crate::run::RunDir`]) and its [`fit::Outcome`].

pub mod loss;
pub mod pairs;
pub mod optim;
pub mod setup;
pub mod step;
pub mod test_eval;
pub mod fit;
pub mod trained;
pub mod sweep;

pub use crate::run::summary::Summary;
pub use fit::{resume, train, Outcome, TrainOptions};
pub use setup::{build_model, seed_everything};
pub use trained::{eval_run, export_existing, Trained};
