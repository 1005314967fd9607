//! Self-describing run folders: `runs/<dataset>/<timestamp>-<name>/`, created fresh for
//! every run (never reused or deleted), holding the resolved `config.yaml`, `env.json`,
//! `metrics.csv`, `tb/` event files, `checkpoints/` (safetensors + JSON sidecar),
//! `curves/`, `export/` and `summary.json`. Every file is written to a temporary name and
//! renamed, so a failed or killed run never leaves a half-written checkpoint behind.
//!
//! Input: the resolved [`Config`], weights, metrics and [`crate::eval::Retrieval`]s.
//! Output: the run folder: [`RunDir`] and `env.json` here, `checkpoint`, `metrics`
//! (TensorBoard + CSV), `export` (TorchScript) and `report` (tables over runs).

pub mod checkpoint;
pub mod metrics;
pub mod export;
pub mod report;

use crate::config::Config;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

pub struct RunDir {
    pub path: PathBuf,
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
