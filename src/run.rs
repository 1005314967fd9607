//! Self-describing run folders: `runs/<dataset>/<timestamp>-<name>/`, created fresh for
//! every run (never reused or deleted), holding the resolved `config.yaml`, `env.json`,
//! `metrics.csv`, `tb/` event files, `checkpoints/` (safetensors + JSON sidecar),
//! `curves/`, `export/` and `summary.json`. Every file is written to a temporary name and
//! renamed, so a failed or killed run never leaves a half-written checkpoint behind.

use crate::config::Config;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;

pub struct RunDir {
    pub path: PathBuf,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(value)? + "\n").as_bytes())
}

impl RunDir {
    /// A new folder `root/<dataset>/<YYYYmmdd-HHMMSS>-<name>`; a clash gets a `-2`, `-3`… suffix.
    pub fn create(root: &Path, dataset: &str, name: &str) -> Result<RunDir> {
        let parent = root.join(dataset);
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        for n in 1..1000 {
            let leaf = if n == 1 { format!("{stamp}-{name}") } else { format!("{stamp}-{name}-{n}") };
            let path = parent.join(leaf);
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    for sub in ["checkpoints", "curves", "tb"] {
                        std::fs::create_dir(path.join(sub))?;
                    }
                    return Ok(RunDir { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot create run folder {}", path.display())),
            }
        }
        bail!("cannot find a free run folder name under {}", parent.display())
    }

    pub fn open(path: &Path) -> Result<RunDir> {
        ensure!(path.join("config.yaml").is_file(), "{} is not a run folder: it has no config.yaml", path.display());
        Ok(RunDir { path: path.to_path_buf() })
    }

    pub fn config(&self) -> Result<Config> {
        let p = self.path.join("config.yaml");
        let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        Config::from_yaml_str(&text, &p.display().to_string())
    }

    /// `runs/cache`, beside the dataset folders (the run is `runs/<dataset>/<run>`).
    pub fn cache_dir(&self) -> PathBuf {
        match self.path.parent().and_then(Path::parent) {
            Some(root) => root.join("cache"),
            None => PathBuf::from("runs/cache"),
        }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
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
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Saves `<tag>.safetensors` (+ `<tag>.optim.safetensors`) and then the sidecar `<tag>.json`.
pub fn save_checkpoint(
    vs: &VarStore,
    optim: Option<&crate::optim::Adam>,
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

/// Loads `<tag>` into `vs` (and `optim`), after checking the config hash and checksums.
pub fn load_checkpoint(
    vs: &mut VarStore,
    optim: Option<&mut crate::optim::Adam>,
    run: &RunDir,
    tag: &str,
    config_hash: &str,
) -> Result<CheckpointMeta> {
    let dir = run.join("checkpoints");
    let w = dir.join(format!("{tag}.safetensors"));
    let m = dir.join(format!("{tag}.json"));
    let meta: CheckpointMeta = serde_json::from_str(
        &std::fs::read_to_string(&m).with_context(|| format!("cannot read checkpoint sidecar {}", m.display()))?,
    )
    .with_context(|| format!("checkpoint sidecar {} is not valid", m.display()))?;
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

/// Where and how a run ran: git commit, versions, device, threads, seed, command line.
pub fn env_record(cfg: &Config, device: tch::Device) -> serde_json::Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    serde_json::json!({
        "git_commit": git(&["rev-parse", "HEAD"]),
        "git_dirty": dirty,
        "tgcn_version": env!("CARGO_PKG_VERSION"),
        "tch_version": "0.26",
        "libtorch_version": env!("TGCN_LIBTORCH_VERSION"),
        "device": format!("{device:?}"),
        "cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "threads": tch::get_num_threads(),
        "seed": cfg.seed,
        "command_line": std::env::args().collect::<Vec<_>>(),
        "started": chrono::Local::now().to_rfc3339(),
    })
}
