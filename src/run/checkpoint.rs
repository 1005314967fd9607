//! Checkpoints: `checkpoints/<tag>.safetensors` (+ `<tag>.optim.safetensors`), then the
//! JSON sidecar `<tag>.json` naming their SHA-256, written last, so that a checkpoint
//! interrupted mid-save is refused on load rather than half-read.

use super::RunDir;
use crate::files::{read_json_if_exists, sha256_file, write_json};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;

/// An optimizer whose state a checkpoint saves beside the weights. The training stage's
/// Adam implements it; this stage only needs to know that the state is a file.
pub trait OptimizerState {
    fn save(&self, path: &Path) -> Result<()>;
    fn load(&mut self, path: &Path) -> Result<()>;
}

/// The JSON sidecar of a checkpoint. It is written last, and names the SHA-256 of the
/// weights (and optimizer state), so a checkpoint interrupted mid-save is detected on load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMeta {
    pub epoch: usize,
    pub step: usize,
    /// Validation mean MAP@all at this epoch (None when not evaluated).
    pub val_map_mean: Option<f64>,
    /// Best validation so far (epoch, mean MAP@all), for resuming.
    pub best: Option<(usize, f64)>,
    pub config_hash: String,
    pub weights_sha256: String,
    /// SHA-256 of `<tag>.optim.safetensors`, when the optimizer state was saved.
    pub optim_sha256: Option<String>,
    /// Totals over every session so far (a resumed run adds to them): wall seconds of
    /// training (validation included), pairs seen, and seconds spent on those pairs.
    #[serde(default)]
    pub train_seconds: f64,
    #[serde(default)]
    pub pairs: usize,
    #[serde(default)]
    pub pair_seconds: f64,
}

/// Saves `<tag>.safetensors` (+ `<tag>.optim.safetensors`) and then the sidecar `<tag>.json`.
pub fn save_checkpoint(
    vs: &VarStore,
    optim: Option<&dyn OptimizerState>,
    run: &RunDir,
    tag: &str,
    meta: &mut CheckpointMeta,
) -> Result<()> {
    let dir = run.join("checkpoints");
    let tmp = dir.join(format!("{tag}.partial.safetensors"));
    vs.save(&tmp).with_context(|| format!("cannot write checkpoint {}", tmp.display()))?;
    meta.weights_sha256 = sha256_file(&tmp)?;
    let dst = dir.join(format!("{tag}.safetensors"));
    std::fs::rename(&tmp, &dst).with_context(|| format!("cannot rename checkpoint to {}", dst.display()))?;
    meta.optim_sha256 = match optim {
        Some(o) => {
            let tmp = dir.join(format!("{tag}.optim.partial.safetensors"));
            o.save(&tmp)?;
            let sha = sha256_file(&tmp)?;
            std::fs::rename(&tmp, dir.join(format!("{tag}.optim.safetensors")))?;
            Some(sha)
        }
        None => None,
    };
    write_json(&dir.join(format!("{tag}.json")), meta)
}

/// The sidecar of checkpoint `<tag>`, if it has one (the weights are not read or checked).
pub fn read_meta(run: &RunDir, tag: &str) -> Result<Option<CheckpointMeta>> {
    let m = run.join("checkpoints").join(format!("{tag}.json"));
    read_json_if_exists(&m).with_context(|| format!("checkpoint sidecar {}", m.display()))
}

/// Loads `<tag>` into `vs` (and `optim`), after checking the config hash and checksums.
pub fn load_checkpoint(
    vs: &mut VarStore,
    optim: Option<&mut dyn OptimizerState>,
    run: &RunDir,
    tag: &str,
    config_hash: &str,
) -> Result<CheckpointMeta> {
    let dir = run.join("checkpoints");
    let w = dir.join(format!("{tag}.safetensors"));
    let m = dir.join(format!("{tag}.json"));
    let meta = read_meta(run, tag)?
        .with_context(|| format!("cannot read checkpoint sidecar {}: no such file", m.display()))?;
    ensure!(
        meta.config_hash == config_hash,
        "checkpoint {} was written under config hash {} but the run's config.yaml hashes to {}",
        w.display(),
        meta.config_hash,
        config_hash
    );
    ensure!(
        sha256_file(&w)? == meta.weights_sha256,
        "checkpoint {} does not match its sidecar {} (interrupted while saving?)",
        w.display(),
        m.display()
    );
    vs.load(&w).with_context(|| format!("cannot load checkpoint {}", w.display()))?;
    if let Some(o) = optim {
        let p = dir.join(format!("{tag}.optim.safetensors"));
        let want = meta.optim_sha256.as_deref().with_context(|| format!("{} has no optimizer state", m.display()))?;
        ensure!(sha256_file(&p)? == want, "{} does not match its sidecar (interrupted while saving?)", p.display());
        o.load(&p)?;
    }
    Ok(meta)
}
