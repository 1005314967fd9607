//! Checkpoints: `checkpoints/<tag>.safetensors` (+ `<tag>.optim.safetensors`) and the JSON
//! sidecar `<tag>.json` naming their SHA-256.
//!
//! A checkpoint never goes backwards. A save first writes the whole new set under staging
//! names (`<tag>.next.safetensors`, `<tag>.next.optim.safetensors`, then `<tag>.next.json`)
//! beside the previous set, which it does not touch; a full disk or a kill at that point
//! leaves the previous set as it was. Only then are the files renamed into place, the
//! sidecar last. At every point of those renames one sidecar (`<tag>.next.json`, then
//! `<tag>.json`) names files that exist under one of the two names with its checksums, and
//! loading looks for exactly that: the newest set that verifies.

use super::RunDir;
use crate::files::{read_json_if_exists, sha256_file, write_json};
use anyhow::{bail, ensure, Context, Result};
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

/// The files of checkpoint `<tag>`: in place, and staged.
struct Files {
    weights: [std::path::PathBuf; 2],
    optim: [std::path::PathBuf; 2],
    /// Sidecars, newest first: the staged one, then the one in place.
    sidecars: [std::path::PathBuf; 2],
}

impl Files {
    fn new(dir: &Path, tag: &str) -> Files {
        let f = |name: String| dir.join(name);
        Files {
            weights: [f(format!("{tag}.safetensors")), f(format!("{tag}.next.safetensors"))],
            optim: [f(format!("{tag}.optim.safetensors")), f(format!("{tag}.next.optim.safetensors"))],
            sidecars: [f(format!("{tag}.next.json")), f(format!("{tag}.json"))],
        }
    }

    fn remove_staged(&self) {
        for p in [&self.weights[1], &self.optim[1], &self.sidecars[0]] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Saves checkpoint `<tag>` (weights, optimizer state, sidecar) so that the previous one
/// stays loadable until the new one is: see the module doc. An error (a full disk) names
/// the file and leaves the previous checkpoint as it was.
pub fn save_checkpoint(
    vs: &VarStore,
    optim: Option<&dyn OptimizerState>,
    run: &RunDir,
    tag: &str,
    meta: &mut CheckpointMeta,
) -> Result<()> {
    let dir = run.join("checkpoints");
    let f = Files::new(&dir, tag);
    settle(run, &f, tag)?;
    let staged = (|| -> Result<()> {
        // The new set is written beside the old one: weights, and the optimizer's state
        // (at most twice the weights' size for Adam's moments), plus room for the sidecar.
        let weights: u64 = vs.variables().values().map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64).sum();
        let need = weights * if optim.is_some() { 3 } else { 1 } + (64 << 10);
        crate::files::ensure_free(&dir, need, &format!("checkpoint `{tag}`"))?;
        vs.save(&f.weights[1]).with_context(|| format!("cannot write checkpoint {}", f.weights[1].display()))?;
        meta.weights_sha256 = sha256_file(&f.weights[1])?;
        meta.optim_sha256 = match optim {
            Some(o) => {
                o.save(&f.optim[1]).with_context(|| format!("cannot write {}", f.optim[1].display()))?;
                Some(sha256_file(&f.optim[1])?)
            }
            None => None,
        };
        write_json(&f.sidecars[0], meta)
    })();
    if let Err(e) = staged {
        f.remove_staged();
        let kept = match read_meta(run, tag) {
            Ok(Some(m)) => format!("the previous checkpoint `{tag}` (epoch {}) is intact", m.epoch),
            _ => format!("no earlier checkpoint `{tag}` exists"),
        };
        return Err(e.context(format!(
            "checkpoint `{tag}` of epoch {} was not saved (is the disk full? `df -h {}`); {kept}",
            meta.epoch,
            dir.display()
        )));
    }
    rename(&f.weights[1], &f.weights[0])?;
    if optim.is_some() {
        rename(&f.optim[1], &f.optim[0])?;
    }
    rename(&f.sidecars[0], &f.sidecars[1])
}

/// A checkpoint found by [`resolve`]: its sidecar, where its files are, and whether the
/// sidecar is the staged one.
struct Resolved {
    meta: CheckpointMeta,
    weights: std::path::PathBuf,
    optim: Option<std::path::PathBuf>,
    staged: bool,
}

/// Moves a checkpoint file into place (nothing to do when it is there already).
fn rename(from: &Path, to: &Path) -> Result<()> {
    if from != to {
        std::fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Finishes the renames of a save that was interrupted after its set was complete, or
/// clears the staged files of one interrupted before; then the staging names are free.
fn settle(run: &RunDir, f: &Files, tag: &str) -> Result<()> {
    if !f.sidecars[0].exists() {
        return Ok(());
    }
    match resolve(run, tag) {
        Ok(Some(r)) if r.staged => {
            rename(&r.weights, &f.weights[0])?;
            if let Some(o) = &r.optim {
                rename(o, &f.optim[0])?;
            }
            rename(&f.sidecars[0], &f.sidecars[1])
        }
        _ => {
            f.remove_staged();
            Ok(())
        }
    }
}

/// The newest sidecar of `<tag>` whose files verify, with the weights' and the optimizer
/// state's paths; None when `<tag>` was never saved. A sidecar whose files do not verify
/// (a set interrupted before a checkpoint existed) is an error naming it.
fn resolve(run: &RunDir, tag: &str) -> Result<Option<Resolved>> {
    let f = Files::new(&run.join("checkpoints"), tag);
    let find = |paths: &[std::path::PathBuf; 2], sha: &str| -> Result<Option<std::path::PathBuf>> {
        for p in paths {
            if p.exists() && sha256_file(p)? == sha {
                return Ok(Some(p.clone()));
            }
        }
        Ok(None)
    };
    let mut unverified = None;
    for sidecar in &f.sidecars {
        let Some(meta): Option<CheckpointMeta> =
            read_json_if_exists(sidecar).with_context(|| format!("checkpoint sidecar {}", sidecar.display()))?
        else {
            continue;
        };
        let Some(weights) = find(&f.weights, &meta.weights_sha256)? else {
            unverified.get_or_insert(sidecar.clone());
            continue;
        };
        let optim = match &meta.optim_sha256 {
            Some(sha) => match find(&f.optim, sha)? {
                Some(p) => Some(p),
                None => {
                    unverified.get_or_insert(sidecar.clone());
                    continue;
                }
            },
            None => None,
        };
        return Ok(Some(Resolved { meta, weights, optim, staged: sidecar == &f.sidecars[0] }));
    }
    match unverified {
        Some(m) => bail!(
            "checkpoint {} does not match its sidecar {} (interrupted while saving?)",
            f.weights[0].display(),
            m.display()
        ),
        None => Ok(None),
    }
}

/// Whether checkpoint `<tag>` has been saved (its sidecar, in place or staged, exists).
pub fn checkpoint_exists(run_dir: &Path, tag: &str) -> bool {
    let f = Files::new(&run_dir.join("checkpoints"), tag);
    f.sidecars.iter().any(|p| p.is_file())
}

/// The sidecar of checkpoint `<tag>` that loading would use, if `<tag>` was saved.
pub fn read_meta(run: &RunDir, tag: &str) -> Result<Option<CheckpointMeta>> {
    Ok(resolve(run, tag)?.map(|r| r.meta))
}

/// Loads `<tag>` into `vs` (and `optim`), after checking the config hash and checksums.
pub fn load_checkpoint(
    vs: &mut VarStore,
    optim: Option<&mut dyn OptimizerState>,
    run: &RunDir,
    tag: &str,
    config_hash: &str,
) -> Result<CheckpointMeta> {
    let m = run.join("checkpoints").join(format!("{tag}.json"));
    let Resolved { meta, weights: w, optim: o, .. } =
        resolve(run, tag)?.with_context(|| format!("cannot read checkpoint sidecar {}: no such file", m.display()))?;
    ensure!(
        meta.config_hash == config_hash,
        "checkpoint {} was written under config hash {} but the run's config.yaml hashes to {}",
        w.display(),
        meta.config_hash,
        config_hash
    );
    vs.load(&w).with_context(|| format!("cannot load checkpoint {}", w.display()))?;
    if let Some(opt) = optim {
        let p = o.with_context(|| format!("{} has no optimizer state", m.display()))?;
        opt.load(&p)?;
    }
    Ok(meta)
}
