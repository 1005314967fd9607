//! What a featurization run is told (`FeaturizeConfig`, `FeaturizeOptions`) and what it
//! reports (`FeaturizeReport`, `BadImage`, `BadImagesError`).

use crate::image::prep::{self, Preprocess};
use anyhow::{anyhow, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format version of the partial folder and the sidecar; bump when their meaning changes.
pub const FORMAT: u32 = 1;

/// What to do with an image that cannot be read or decoded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Fail the run, naming the bad files.
    #[default]
    Stop,
    /// Leave the item out of the output, and list and count it in the report.
    Skip,
}

/// Settings of a featurization run. Every field has a default, so a config may name only
/// what differs (`backbone: models/efficientnet_lite0.pt` is what `make backbone` writes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturizeConfig {
    /// TorchScript module mapping `[N, 3, crop, crop]` float32 to `[N, D]` (or `[N, D, 1, 1]`).
    pub backbone: PathBuf,
    /// The shorter side is resized to this many pixels (antialiased triangle filter).
    pub resize: u32,
    /// Side of the square centre crop fed to the backbone.
    pub crop: u32,
    /// Per-channel RGB mean and std on a 0..1 scale (ImageNet's by default).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Images per forward pass.
    pub batch_size: usize,
    /// Decoding threads; 0 means one per CPU core.
    pub threads: usize,
    pub on_bad_image: OnBadImage,
    /// Items per resumable shard of `<out>.partial/`.
    pub shard_size: usize,
}

impl Default for FeaturizeConfig {
    fn default() -> Self {
        FeaturizeConfig {
            backbone: PathBuf::from("models/efficientnet_lite0.pt"),
            resize: 256,
            crop: 224,
            mean: prep::IMAGENET_MEAN,
            std: prep::IMAGENET_STD,
            batch_size: 32,
            threads: 0,
            on_bad_image: OnBadImage::Stop,
            shard_size: 1024,
        }
    }
}

impl FeaturizeConfig {
    pub fn preprocess(&self) -> Preprocess {
        Preprocess { resize: self.resize, crop: self.crop, mean: self.mean, std: self.std }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(!self.backbone.as_os_str().is_empty(), "`backbone` is empty: name a TorchScript file");
        self.preprocess().validate()?;
        ensure!(self.batch_size >= 1, "`batch_size` must be at least 1, got {}", self.batch_size);
        ensure!(self.shard_size >= 1, "`shard_size` must be at least 1, got {}", self.shard_size);
        Ok(())
    }

    /// Decoding threads after resolving 0 to the number of cores.
    pub fn decode_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}

impl FeaturizeConfig {
    /// Reads a YAML `FeaturizeConfig`; an unknown key or a bad value names the key and file.
    pub fn from_yaml_file(path: &Path) -> Result<FeaturizeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let de = serde_yaml::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| anyhow!("{}: `{}`: {}", path.display(), e.path(), e.inner()))
    }
}

/// An image that was not featurized, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BadImage {
    pub id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// The error of a run stopped by bad images (`on_bad_image: stop`); callers can
/// `downcast_ref` an `anyhow::Error` to it to get the list.
#[derive(Debug, Clone, PartialEq)]
pub struct BadImagesError {
    pub images: Vec<BadImage>,
}

impl std::fmt::Display for BadImagesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.images.len();
        write!(f, "{n} bad image{}", if n == 1 { "" } else { "s" })?;
        for b in self.images.iter().take(20) {
            write!(f, "; {}: {}", b.path.display(), b.reason)?;
        }
        if n > 20 {
            write!(f, "; … and {} more", n - 20)?;
        }
        write!(f, " (set `on_bad_image: skip` to leave them out)")
    }
}

impl std::error::Error for BadImagesError {}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeaturizeReport {
    pub out: PathBuf,
    /// Rows written (items minus skipped); 0 when the run was not complete.
    pub rows: usize,
    pub dim: usize,
    /// Items left out (`on_bad_image: skip`), in input order.
    pub skipped: Vec<BadImage>,
    /// False when the run stopped early (`max_batches`): `<out>.partial/` holds the progress.
    pub complete: bool,
    /// True when the output was already up to date and nothing ran.
    pub from_cache: bool,
    /// Shards taken from an earlier, interrupted run.
    pub reused_shards: usize,
    /// Images that went through the model in this call.
    pub computed: usize,
    pub batches: usize,
    /// Time spent reading, decoding and preprocessing, summed over the decoding threads.
    pub decode_seconds: f64,
    /// Wall time of the forward passes, host↔device copies included.
    pub model_seconds: f64,
    /// Wall time of the overlapped decode + model stage (no hashing, loading, assembling).
    pub pipeline_seconds: f64,
    pub wall_seconds: f64,
}

/// Knobs that do not change the result.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturizeOptions {
    /// Show an indicatif progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
    /// Stop after this many forward passes, leaving a resumable `<out>.partial/`
    /// (time-boxed jobs; tests use it to simulate an interruption).
    pub max_batches: Option<usize>,
}

impl Default for FeaturizeOptions {
    fn default() -> Self {
        FeaturizeOptions { progress: true, max_batches: None }
    }
}
