//! `summary.json`: what a finished run reports. Training writes it once, at the very
//! end, so its presence marks a finished run; `tgcn report`, the sweep and the HTML
//! report read it through [`Summary::read`], the one schema they share.

use crate::eval::Retrieval;
use crate::files::{read_json_if_exists, write_json};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub dataset: String,
    pub synthetic: bool,
    pub run: PathBuf,
    pub best_epoch: usize,
    /// The best validation figure: mean MAP@all, or under `train.select_on` the figure
    /// named by `selected_on`.
    pub best_val_map_mean: f64,
    /// `train.select_on` (absent: `map`).
    #[serde(default, skip_serializing_if = "crate::config::SelectOn::is_map")]
    pub selected_on: crate::config::SelectOn,
    pub epochs: usize,
    /// Epochs actually trained (fewer than `epochs` after an early stop).
    pub epochs_run: usize,
    /// `train.refit`: the refit's epochs (= `best_epoch`), on train ∪ validation; the test
    /// figures are then the refit model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_epochs: Option<usize>,
    pub train_seconds: f64,
    pub pairs_per_s: f64,
    /// Test retrieval of the model before any training step (default protocol); None in a
    /// validation-only run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrained_test: Option<Retrieval>,
    /// Test retrieval of the best checkpoint (or the refit), both protocols (default first); empty in a
    /// validation-only run.
    pub test: Vec<Retrieval>,
    /// Trained and selected on validation with the test split withheld (`tgcn sweep`).
    #[serde(default)]
    pub validation_only: bool,
}

impl Summary {
    /// `RUN/summary.json`.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("summary.json")
    }

    pub fn write(&self, run_dir: &Path) -> Result<()> {
        write_json(&Summary::path(run_dir), self)
    }

    /// The summary of a finished run; None for a run that has not finished (no file).
    pub fn read(run_dir: &Path) -> Result<Option<Summary>> {
        let p = Summary::path(run_dir);
        read_json_if_exists(&p).with_context(|| format!("run summary {}", p.display()))
    }
}
