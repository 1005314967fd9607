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
pub mod summary;
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

    /// A new folder at exactly `path` (a sweep's trial, found again by a rerun); it must not
    /// exist. `curves/` is made when curves are written (a validation-only run has none).
    pub fn create_at(path: &Path) -> Result<RunDir> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::create_dir(path).with_context(|| format!("cannot create run folder {}", path.display()))?;
        for sub in ["checkpoints", "tb"] {
            std::fs::create_dir(path.join(sub)).with_context(|| format!("cannot create {}/{sub}", path.display()))?;
        }
        Ok(RunDir { path: path.to_path_buf() })
    }

    pub fn open(path: &Path) -> Result<RunDir> {
        ensure!(path.join("config.yaml").is_file(), "{} is not a run folder: it has no config.yaml", path.display());
        Ok(RunDir { path: path.to_path_buf() })
    }

    /// The run's config as saved (its hash is the one the checkpoints carry).
    pub fn saved_config(&self) -> Result<Config> {
        let p = self.path.join("config.yaml");
        let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        Config::from_yaml_str(&text, &p.display().to_string()).map_err(|e| self.explain_old_config(&text, e))
    }

    /// The run's config, with its relative data paths (root, raw-image folder, backbone)
    /// read from the folder the run was trained in (`working_dir` in `env.json`) where they
    /// do not exist from this one: a run is usable from any directory. Hash it with
    /// [`RunDir::config_hash`], not [`Config::hash`].
    pub fn config(&self) -> Result<Config> {
        let mut cfg = self.saved_config()?;
        if let Some(base) = self.env().and_then(|env| env["working_dir"].as_str().map(PathBuf::from)) {
            cfg.data.map_paths(&|p: &Path| match p.is_relative() && !p.exists() && base.join(p).exists() {
                true => base.join(p),
                false => p.to_path_buf(),
            })?;
        }
        Ok(cfg)
    }

    /// The message for a run that stopped before its first epoch was saved: nothing to
    /// load or resume; the command that starts it again.
    pub fn never_saved(&self) -> String {
        let again = match self.command_line() {
            Some(c) => format!("start it again with `{c}`"),
            None => "start it again with the command that created it".to_string(),
        };
        format!(
            "run {} stopped before its first epoch was saved, so there is nothing to load or resume; {again} \
             (that makes a new run folder; this one can then be removed)",
            self.path.display()
        )
    }

    /// The hash of the run's config as saved, which its checkpoints carry.
    pub fn config_hash(&self) -> Result<String> {
        self.saved_config()?.hash()
    }

    /// A run saved before the batched skip-gram trainer was replaced (its config has
    /// `vectors.skipgram.batch`) cannot be rebuilt by this version: its word vectors, hence
    /// its word graph, came from the other trainer. Say so, with the commit that made it.
    fn explain_old_config(&self, text: &str, e: anyhow::Error) -> anyhow::Error {
        let old = serde_yaml::from_str::<serde_yaml::Value>(text)
            .ok()
            .and_then(|v| v.get("vectors")?.get("skipgram")?.get("batch").cloned())
            .is_some();
        if !old {
            return e;
        }
        let commit = self
            .env()
            .and_then(|v| v["git_commit"].as_str().map(String::from))
            .unwrap_or_else(|| "unknown (no env.json)".into());
        e.context(format!(
            "run {} was trained with the batched skip-gram trainer (`vectors.skipgram.batch`), which this \
             version replaced by word2vec.c's sequential SGD: its word graph cannot be rebuilt here. \
             Evaluate, export or resume it with the version that made it, commit {commit}",
            self.path.display()
        ))
    }

    /// The cache folder for this run: the one it was trained with (`cache_dir` in its
    /// `env.json`) while that folder exists, else `RUN/cache` (a run copied elsewhere, or
    /// made before the record): whatever is rebuilt then is written inside the run.
    pub fn cache_dir(&self) -> PathBuf {
        let recorded = self.env().and_then(|env| env["cache_dir"].as_str().map(PathBuf::from));
        recorded.filter(|d| d.is_dir()).unwrap_or_else(|| self.join("cache"))
    }

    /// The command line that created the run (`command_line` in its `env.json`), quoted
    /// for a shell where needed; None for runs made before the record.
    pub fn command_line(&self) -> Option<String> {
        let args = self.env()?["command_line"].as_array()?.clone();
        let words: Vec<String> = args.iter().filter_map(|a| a.as_str().map(shell_word)).collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    /// Whether the run was trained with the test split withheld (`validation_only` in its
    /// `env.json`; false for runs made before the record).
    pub fn validation_only(&self) -> bool {
        self.env().and_then(|env| env["validation_only"].as_bool()).unwrap_or(false)
    }

    /// The run's `env.json`, when it is there and parses (runs may predate a field).
    fn env(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.join("env.json")).ok()?).ok()
    }

    /// Records what the run was trained on (`data.json`), from [`crate::prepare::Prepared::fingerprint`].
    pub fn write_fingerprint(&self, fingerprint: &crate::prepare::DataFingerprint) -> Result<()> {
        crate::files::write_json(&self.join("data.json"), fingerprint)
    }

    /// Refuses data that differs from what the run was trained on, naming what changed;
    /// a run made before the record gets a warning.
    pub fn check_fingerprint(&self, data: &crate::prepare::Prepared) -> Result<()> {
        let p = self.join("data.json");
        let Ok(text) = std::fs::read_to_string(&p) else {
            eprintln!(
                "warning: {} has no data.json: cannot check that the data still matches the checkpoints",
                self.path.display()
            );
            return Ok(());
        };
        let saved: crate::prepare::DataFingerprint =
            serde_json::from_str(&text).with_context(|| format!("{} is not a data fingerprint", p.display()))?;
        let diff = saved.differences(&data.fingerprint());
        ensure!(
            diff.is_empty(),
            "the prepared data no longer matches run {}: {} changed since it was trained (see {}); \
             restore the data it was trained on, or train a new run",
            self.path.display(),
            diff.join(", "),
            p.display()
        );
        Ok(())
    }

    /// Holds `RUN/train.lock` while a process trains in the run; a second trainer is
    /// refused. A lock left by a process that no longer runs is taken over.
    pub fn lock(&self) -> Result<RunLock> {
        let p = self.join("train.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(mut f) => {
                    use std::io::Write;
                    writeln!(f, "{}", std::process::id()).with_context(|| format!("cannot write {}", p.display()))?;
                    return Ok(RunLock { path: p });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&p).unwrap_or_default().trim().to_string();
                    ensure!(
                        !process_runs(&pid),
                        "run {} is in use: process {pid} is training in it ({}); wait for it, or stop it first",
                        self.path.display(),
                        p.display()
                    );
                    eprintln!("note: taking over {} left by process {pid}, which no longer runs", p.display());
                    std::fs::remove_file(&p).with_context(|| format!("cannot remove stale {}", p.display()))?;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", p.display())),
            }
        }
        bail!("cannot lock {}", p.display())
    }

    /// The process id in `train.lock` when that process still runs (someone trains in the
    /// run now); None for no lock or a lock left by a dead process.
    pub fn training_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.join("train.lock")).ok()?.trim().to_string();
        process_runs(&pid).then_some(pid)
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

/// Whether the process `pid` (as written in a `train.lock`) still runs.
fn process_runs(pid: &str) -> bool {
    !pid.is_empty() && Path::new("/proc").join(pid).exists()
}

/// The lock of a run folder; released when dropped.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The CPU a run ran on: its model name (`/proc/cpuinfo`, where there is one) and the
/// widest vector instruction set it offers. libtorch's MKL picks its kernels by that set,
/// so the same commit, seed and data reproduce to the digit on CPUs of one kind and can
/// differ in the fourth decimal between kinds (README, Runs).
pub fn cpu_record() -> serde_json::Value {
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| cpu_model(&t));
    serde_json::json!({ "model": model, "simd": simd() })
}

/// The first `model name` of a `/proc/cpuinfo` text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return if std::arch::is_x86_feature_detected!("fma") { "avx2+fma" } else { "avx2" };
        }
        return "sse";
    }
    #[allow(unreachable_code)]
    std::env::consts::ARCH
}

/// Where and how a run ran: git commit, versions, device, CPU, threads, seed, command line.
pub fn env_record(cfg: &Config, device: tch::Device, cache: &Path) -> serde_json::Value {
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
        "cpu": cpu_record(),
        "threads": tch::get_num_threads(),
        "seed": cfg.seed,
        "cache_dir": std::fs::canonicalize(cache).unwrap_or(cache.to_path_buf()),
        "command_line": std::env::args().collect::<Vec<_>>(),
        "working_dir": std::env::current_dir().ok().and_then(|d| d.canonicalize().ok()),
        "started": chrono::Local::now().to_rfc3339(),
    })
}

/// `word` as one shell word: unchanged when it holds only safe characters, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
