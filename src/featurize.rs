//! Image features from raw image files with a TorchScript backbone (`tgcn featurize`),
//! written as a [`crate::features`] file (`<out>.npy` + `<out>.ids.txt`).
//!
//! ```text
//! items (id, path) ─► stat every file (fingerprint: size, mtime) ─► cache hit? → done
//!   ─► <out>.partial/: reuse every shard whose fingerprint still matches
//!   ─► pre-check the rest (empty? JPEG/PNG/GIF magic?) ─► load the backbone (CModule)
//!   ─► decode threads ──(item, [3,crop,crop])──► assembler ──[B,3,crop,crop]──► forward
//!      (imageprep: decode,         (restores input order, batches        (main thread,
//!       resize, crop, normalise)    never span a shard)                   on the device)
//!   ─► shard files, atomically ─► assemble <out>.npy + .ids.txt ─► <out>.featurize.json
//! ```
//!
//! **Overlap.** `threads` workers decode in parallel, at most a window of items ahead of
//! the batch being assembled, and the assembler keeps up to two finished batches queued,
//! so the model never waits for decoding unless decoding is the bottleneck, and memory
//! stays bounded (about `(2·batch + window)·3·crop²·4` bytes).
//!
//! **Resuming.** The input list is cut into shards of `shard_size` consecutive items.
//! Each finished shard is written to `<out>.partial/shard-NNNNN.{npy,ids.txt}`, then its
//! `.json` (the commit marker, holding a hash of its items' ids, paths, sizes and mtimes
//! and the images it skipped). A rerun reuses every shard whose hash still matches, so an
//! interrupted run continues where it stopped, and fixing or replacing one image redoes
//! only its shard. Batches never span shards, so a resumed run makes the same batches as
//! an uninterrupted one. The final files are written through temporary names and renames;
//! the partial folder is removed only after that.
//!
//! **Caching.** `<out>.featurize.json` records the key of the result (backbone SHA-256,
//! preprocessing, bad-image policy, hash of all items' fingerprints). A rerun with the
//! same key returns at once without loading the model.
//!
//! **Bad images.** A missing, empty, non-image (by magic bytes, not by name), truncated or
//! undecodable file never reaches the model. With `on_bad_image: stop` (the default) the
//! run fails with a [`BadImagesError`] naming each bad file it found; with `skip` the items
//! are left out of the output and listed, with the reason, in the report and the sidecar.
//!
//! Ids: [`list_images`] names each image by its path relative to the input folder, with
//! `/` separators (`sub/2008_000716.jpg`).

use crate::imageprep::{self, Preprocess};
use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;
use tch::{CModule, Device, Kind, Tensor};

/// Format version of the partial folder and the sidecar; bump when their meaning changes.
const FORMAT: u32 = 1;

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
            mean: imageprep::IMAGENET_MEAN,
            std: imageprep::IMAGENET_STD,
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

/// The folder of finished shards of an unfinished run: `<out>.partial/`.
pub fn partial_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// The cache record beside the output: `<stem>.featurize.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    out.with_extension("featurize.json")
}

/// `(id, path)` pairs, in output row order.
pub type ImageList = Vec<(String, PathBuf)>;

const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "gif"];

/// Every `.jpg`/`.jpeg`/`.png`/`.gif` file under `dir` (any case, recursively, symlinked
/// files followed but not symlinked folders), sorted by id; the id is the path relative to
/// `dir` with `/` separators. Files with other extensions are ignored.
pub fn list_images(dir: &Path) -> Result<ImageList> {
    ensure!(dir.is_dir(), "image folder {} does not exist or is not a folder", dir.display());
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", d.display()))?;
            let path = entry.path();
            let ft = entry.file_type().with_context(|| format!("cannot stat {}", path.display()))?;
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if !ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) || path.is_dir() {
                continue;
            }
            let rel = path.strip_prefix(dir).expect("read_dir yields paths under dir");
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            let id = parts.with_context(|| format!("image path {} is not valid UTF-8", path.display()))?.join("/");
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A list file: one image path a line (blank lines ignored), relative to the list's folder
/// unless absolute. The id is the line as written.
pub fn read_image_list(list: &Path) -> Result<ImageList> {
    let text = std::fs::read_to_string(list).with_context(|| format!("cannot read image list {}", list.display()))?;
    let base = list.parent().unwrap_or(Path::new(""));
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.to_string(), base.join(l)))
        .collect())
}

/// Featurizes `images` (id, path) into `out` (`.npy` + `.ids.txt`), with a progress bar.
/// Resumable and cached; see the module docs.
pub fn featurize(
    images: &[(String, PathBuf)],
    out: &Path,
    cfg: &FeaturizeConfig,
    device: Device,
) -> Result<FeaturizeReport> {
    featurize_with(images, out, cfg, device, &FeaturizeOptions::default())
}

/// File identity that decides whether earlier work on it is still valid.
fn fingerprint_line(id: &str, path: &Path) -> String {
    let (size, mtime) = match std::fs::metadata(path) {
        Ok(m) => {
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (m.len().to_string(), t.map_or(0, |d| d.as_nanos()).to_string())
        }
        Err(_) => ("missing".to_string(), "0".to_string()),
    };
    format!("{id}\t{}\t{size}\t{mtime}\n", path.display())
}

fn sha256_hex(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_ref());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open backbone {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read backbone {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What the result depends on, besides the items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ResultKey {
    format: u32,
    backbone_sha256: String,
    resize: u32,
    crop: u32,
    mean: [f32; 3],
    std: [f32; 3],
    on_bad_image: OnBadImage,
}

/// `<out>.partial/manifest.json`: shards are only comparable under the same key and size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Manifest {
    key: ResultKey,
    shard_size: usize,
}

/// `<out>.partial/shard-NNNNN.json`, written last: the shard's commit marker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ShardMeta {
    items_sha256: String,
    rows: usize,
    dim: usize,
    skipped: Vec<BadImage>,
}

/// `<stem>.featurize.json` beside a finished output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Sidecar {
    key: ResultKey,
    items_sha256: String,
    report: FeaturizeReport,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn shard_path(dir: &Path, s: usize, ext: &str) -> PathBuf {
    dir.join(format!("shard-{s:05}.{ext}"))
}

fn validate_items(images: &[(String, PathBuf)]) -> Result<()> {
    ensure!(!images.is_empty(), "no images to featurize");
    let mut seen = HashSet::new();
    for (id, path) in images {
        // The ids file is one id a line, trimmed when read back.
        ensure!(
            !id.is_empty() && !id.contains(['\n', '\r']) && id.trim() == id,
            "image id {id:?} (file {}) is empty, has a line break, or starts or ends with a space",
            path.display()
        );
        ensure!(seen.insert(id.as_str()), "image id {id:?} appears twice (second file {})", path.display());
    }
    Ok(())
}

/// `featurize` with explicit options (progress bar, early stop).
pub fn featurize_with(
    images: &[(String, PathBuf)],
    out: &Path,
    cfg: &FeaturizeConfig,
    device: Device,
    opts: &FeaturizeOptions,
) -> Result<FeaturizeReport> {
    let t_start = Instant::now();
    cfg.validate()?;
    validate_items(images)?;
    ensure!(
        out.extension().is_some_and(|e| e == "npy"),
        "features output {} must end in .npy (the ids go beside it, in .ids.txt)",
        out.display()
    );
    if !cfg.backbone.is_file() {
        bail!(
            "backbone {} does not exist (run `make backbone` for EfficientNet-Lite0, or name a TorchScript file)",
            cfg.backbone.display()
        );
    }
    let key = ResultKey {
        format: FORMAT,
        backbone_sha256: file_sha256(&cfg.backbone)?,
        resize: cfg.resize,
        crop: cfg.crop,
        mean: cfg.mean,
        std: cfg.std,
        on_bad_image: cfg.on_bad_image,
    };
    let prints: Vec<String> = images.iter().map(|(id, p)| fingerprint_line(id, p)).collect();
    let items_sha256 = sha256_hex(&prints);

    // Up to date already?
    let sidecar = sidecar_path(out);
    if let Some(sc) = read_json::<Sidecar>(&sidecar) {
        if sc.key == key && sc.items_sha256 == items_sha256 && out.is_file() && crate::features::ids_path(out).is_file()
        {
            let mut report = sc.report;
            report.from_cache = true;
            report.reused_shards = 0;
            report.computed = 0;
            report.batches = 0;
            report.decode_seconds = 0.0;
            report.model_seconds = 0.0;
            report.pipeline_seconds = 0.0;
            report.wall_seconds = t_start.elapsed().as_secs_f64();
            return Ok(report);
        }
    }

    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = partial_dir(out);
    let manifest = Manifest { key: key.clone(), shard_size: cfg.shard_size };
    let partial_matches = read_json::<Manifest>(&partial.join("manifest.json")).as_ref() == Some(&manifest);

    // Which shards are done already.
    let n = images.len();
    let shard_size = cfg.shard_size;
    let n_shards = n.div_ceil(shard_size);
    let shard_range = |s: usize| s * shard_size..((s + 1) * shard_size).min(n);
    let shard_hash = |s: usize| sha256_hex(&prints[shard_range(s)]);
    let mut pending = Vec::new();
    let mut reused = 0;
    for s in 0..n_shards {
        if partial_matches && shard_is_done(&partial, s, &shard_hash(s), images, shard_range(s)) {
            reused += 1;
        } else {
            pending.push(s);
        }
    }

    // Cheap checks before any decoding: missing, empty and non-image files.
    let mut pre_bad: HashMap<usize, String> = HashMap::new();
    for &s in &pending {
        for i in shard_range(s) {
            if let Some(why) = precheck(&images[i].1) {
                pre_bad.insert(i, why);
            }
        }
    }
    let bad_of =
        |i: usize, why: &str| BadImage { id: images[i].0.clone(), path: images[i].1.clone(), reason: why.into() };
    if cfg.on_bad_image == OnBadImage::Stop && !pre_bad.is_empty() {
        let mut idx: Vec<usize> = pre_bad.keys().copied().collect();
        idx.sort_unstable();
        return Err(BadImagesError { images: idx.iter().map(|&i| bad_of(i, &pre_bad[&i])).collect() }.into());
    }

    let mut stats = RunStats::default();
    if !pending.is_empty() {
        open_partial(&partial, &manifest, partial_matches)?;
        let mut module = CModule::load_on_device(&cfg.backbone, device)
            .with_context(|| format!("cannot load TorchScript backbone {}", cfg.backbone.display()))?;
        module.set_eval();
        let t = Instant::now();
        let job = ShardJob {
            images,
            shards: &pending,
            shard_size,
            pre_bad: &pre_bad,
            partial: &partial,
            shard_hash: &shard_hash,
            cfg,
            device,
            opts,
        };
        stats = run_shards(&job, &module)?;
        stats.pipeline_seconds = t.elapsed().as_secs_f64();
    }
    let mut report = FeaturizeReport {
        out: out.to_path_buf(),
        rows: 0,
        dim: 0,
        skipped: Vec::new(),
        complete: stats.complete,
        from_cache: false,
        reused_shards: reused,
        computed: stats.computed,
        batches: stats.batches,
        decode_seconds: stats.decode_seconds,
        model_seconds: stats.model_seconds,
        pipeline_seconds: stats.pipeline_seconds,
        wall_seconds: 0.0,
    };
    if !stats.complete {
        report.wall_seconds = t_start.elapsed().as_secs_f64();
        return Ok(report);
    }

    // A stale sidecar must never vouch for the files being replaced.
    if sidecar.exists() {
        std::fs::remove_file(&sidecar).with_context(|| format!("cannot remove {}", sidecar.display()))?;
    }
    let (rows, dim, skipped) = assemble(&partial, n_shards, out)?;
    report.rows = rows;
    report.dim = dim;
    report.skipped = skipped;
    report.wall_seconds = t_start.elapsed().as_secs_f64();
    crate::run::write_json(&sidecar, &Sidecar { key, items_sha256, report: report.clone() })?;
    std::fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
    Ok(report)
}

/// Creates `<out>.partial/` for shards made under `manifest`. Shards made under another
/// backbone, preprocessing or shard size cannot be reused: they are deleted (only the
/// files this module writes there).
fn open_partial(partial: &Path, manifest: &Manifest, matches: bool) -> Result<()> {
    let mpath = partial.join("manifest.json");
    if matches {
        return Ok(());
    }
    if partial.is_dir() {
        let mut stale = 0;
        let entries = std::fs::read_dir(partial).with_context(|| format!("cannot list {}", partial.display()))?;
        for e in entries {
            let p = e.with_context(|| format!("cannot list {}", partial.display()))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("shard-") || name == "manifest.json" || name.ends_with(".tmp") {
                std::fs::remove_file(&p).with_context(|| format!("cannot remove stale {}", p.display()))?;
                stale += name.ends_with(".json") as usize;
            }
        }
        if stale > 1 {
            eprintln!("featurize: {} holds shards made with other settings; starting over", partial.display());
        }
    } else {
        std::fs::create_dir_all(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    }
    crate::run::write_json(&mpath, manifest)
}

/// A shard counts as done when its commit marker matches and its files read back whole
/// with the expected ids.
fn shard_is_done(
    partial: &Path,
    s: usize,
    hash: &str,
    images: &[(String, PathBuf)],
    range: std::ops::Range<usize>,
) -> bool {
    let Some(meta) = read_json::<ShardMeta>(&shard_path(partial, s, "json")) else { return false };
    if meta.items_sha256 != hash {
        return false;
    }
    let Ok(f) = crate::features::read_features(&shard_path(partial, s, "npy")) else { return false };
    let skipped: HashSet<&str> = meta.skipped.iter().map(|b| b.id.as_str()).collect();
    let want: Vec<&str> = images[range].iter().map(|(id, _)| id.as_str()).filter(|id| !skipped.contains(id)).collect();
    f.ids.len() == meta.rows && f.ids.iter().map(String::as_str).eq(want) && (meta.rows == 0 || f.dim == meta.dim)
}

/// Why a file can never be an image, from its size and first bytes; None when it may be one.
fn precheck(path: &Path) -> Option<String> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("cannot open: {e}")),
    };
    let len = match f.metadata() {
        Ok(m) if m.is_dir() => return Some("is a folder".into()),
        Ok(m) => m.len(),
        Err(e) => return Some(format!("cannot stat: {e}")),
    };
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) => return Some(format!("cannot read: {e}")),
        }
    }
    imageprep::reject_header(&head[..got], len)
}

struct ShardJob<'a> {
    images: &'a [(String, PathBuf)],
    /// Shards to compute, ascending.
    shards: &'a [usize],
    shard_size: usize,
    /// Items found bad by `precheck` (skip mode; stop mode has failed already).
    pre_bad: &'a HashMap<usize, String>,
    partial: &'a Path,
    shard_hash: &'a dyn Fn(usize) -> String,
    cfg: &'a FeaturizeConfig,
    device: Device,
    opts: &'a FeaturizeOptions,
}

#[derive(Default)]
struct RunStats {
    complete: bool,
    computed: usize,
    batches: usize,
    decode_seconds: f64,
    model_seconds: f64,
    pipeline_seconds: f64,
}

/// Consecutive decoded items of one shard, ready for one forward pass.
struct Batch {
    shard: usize,
    /// Item indices of the rows of `data`, ascending.
    items: Vec<usize>,
    /// `[items.len(), 3, crop, crop]` row-major.
    data: Vec<f32>,
    /// Items of this stretch that failed to decode, with the reason.
    bad: Vec<(usize, String)>,
    /// The last batch of its shard.
    ends_shard: bool,
}

/// Decodes on worker threads, assembles in-order batches on another, and runs the model
/// and writes shards on this one. Returns when every shard is written, at the first bad
/// image in stop mode, or after `max_batches`.
fn run_shards(job: &ShardJob, module: &CModule) -> Result<RunStats> {
    // Worker threads get plain data, not `job` (its hash closure is not `Sync`).
    let (images, shard_size) = (job.images, job.shard_size);
    let shard_of = move |i: usize| i / shard_size;
    let work: Vec<usize> = job
        .shards
        .iter()
        .flat_map(|&s| s * job.shard_size..((s + 1) * job.shard_size).min(job.images.len()))
        .filter(|i| !job.pre_bad.contains_key(i))
        .collect();
    let total: usize =
        job.shards.iter().map(|&s| ((s + 1) * job.shard_size).min(job.images.len()) - s * job.shard_size).sum();
    let threads = job.cfg.decode_threads();
    let batch_size = job.cfg.batch_size;
    let window = batch_size.max(4 * threads);
    let prep = &job.cfg.preprocess();
    let item_len = prep.len();
    let stop_on_bad = job.cfg.on_bad_image == OnBadImage::Stop;
    let stop = AtomicBool::new(false);
    let decode_ns = AtomicU64::new(0);

    let pb = progress_bar(job.opts.progress, total as u64);
    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, std::result::Result<Vec<f32>, String>)>();
    let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch>(2);

    let result = std::thread::scope(|scope| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let (job_rx, stop, decode_ns, prep, work) = (&job_rx, &stop, &decode_ns, prep, &work);
            scope.spawn(move || loop {
                let next = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => break,
                };
                let Ok(pos) = next else { break };
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let t = Instant::now();
                let path = &images[work[pos]].1;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prep.file(path)))
                    .unwrap_or_else(|_| Err(anyhow!("preprocessing panicked")))
                    .map_err(|e| format!("{e:#}"));
                decode_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if done_tx.send((pos, r)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);

        // Assembler: restores input order and cuts batches at shard ends.
        let (work, stop) = (&work, &stop);
        scope.spawn(move || {
            let mut sent = 0;
            while sent < work.len().min(window) {
                let _ = job_tx.send(sent);
                sent += 1;
            }
            let mut held = HashMap::new();
            let mut next = 0;
            let mut cur: Option<Batch> = None;
            while next < work.len() {
                // Poll, so that an early stop of the model side (which leaves the workers
                // idle, waiting for jobs that only this thread sends) ends this thread too.
                let (pos, r) = loop {
                    match done_rx.recv_timeout(std::time::Duration::from_millis(50)) {
                        Ok(m) => break m,
                        Err(mpsc::RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
                        Err(_) => return,
                    }
                };
                held.insert(pos, r);
                while let Some(r) = held.remove(&next) {
                    if sent < work.len() {
                        let _ = job_tx.send(sent);
                        sent += 1;
                    }
                    let item = work[next];
                    let b = cur.get_or_insert_with(|| Batch {
                        shard: shard_of(item),
                        items: Vec::with_capacity(batch_size),
                        data: Vec::with_capacity(batch_size * item_len),
                        bad: Vec::new(),
                        ends_shard: false,
                    });
                    let is_bad = r.is_err();
                    match r {
                        Ok(v) => {
                            b.items.push(item);
                            b.data.extend_from_slice(&v);
                        }
                        Err(why) => b.bad.push((item, why)),
                    }
                    next += 1;
                    let ends_shard = next == work.len() || shard_of(work[next]) != b.shard;
                    if ends_shard || b.items.len() == batch_size || (is_bad && stop_on_bad) {
                        let mut b = cur.take().expect("a batch is open");
                        b.ends_shard = ends_shard;
                        if batch_tx.send(b).is_err() {
                            return;
                        }
                    }
                }
            }
        });

        let r = consume(job, module, work, batch_rx, &pb, &decode_ns);
        stop.store(true, Ordering::Relaxed);
        r
    });
    pb.finish_and_clear();
    result
}

/// The model side of [`run_shards`]: forward passes and shard files, in shard order.
fn consume(
    job: &ShardJob,
    module: &CModule,
    work: &[usize],
    batch_rx: mpsc::Receiver<Batch>,
    pb: &indicatif::ProgressBar,
    decode_ns: &AtomicU64,
) -> Result<RunStats> {
    let images = job.images;
    let mut stats = RunStats::default();
    let crop = job.cfg.crop as usize;
    let mut dim: Option<usize> = None;
    let bad_of = |i: usize, why: String| BadImage { id: images[i].0.clone(), path: images[i].1.clone(), reason: why };
    let has_work: HashSet<usize> = work.iter().map(|&i| i / job.shard_size).collect();
    let finish = |mut stats: RunStats, complete: bool| {
        stats.complete = complete;
        stats.decode_seconds = decode_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        stats
    };
    for &s in job.shards {
        let range = s * job.shard_size..((s + 1) * job.shard_size).min(images.len());
        let mut skipped: Vec<(usize, String)> =
            range.clone().filter_map(|i| job.pre_bad.get(&i).map(|w| (i, w.clone()))).collect();
        pb.inc(skipped.len() as u64);
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        let mut interrupted = false;
        if has_work.contains(&s) {
            loop {
                let b = batch_rx.recv().map_err(|_| anyhow!("the decoding threads stopped unexpectedly"))?;
                ensure!(b.shard == s, "internal: batch of shard {} while writing shard {s}", b.shard);
                if !b.bad.is_empty() && job.cfg.on_bad_image == OnBadImage::Stop {
                    return Err(
                        BadImagesError { images: b.bad.into_iter().map(|(i, w)| bad_of(i, w)).collect() }.into()
                    );
                }
                pb.inc(b.bad.len() as u64);
                skipped.extend(b.bad);
                if !b.items.is_empty() {
                    let t = Instant::now();
                    let (y, d) = forward(module, &b.data, b.items.len(), crop, job.device)
                        .with_context(|| format!("backbone {} failed", job.cfg.backbone.display()))?;
                    stats.model_seconds += t.elapsed().as_secs_f64();
                    if let Some(p) = dim {
                        ensure!(p == d, "backbone {} gave {d} features after giving {p}", job.cfg.backbone.display());
                    }
                    dim = Some(d);
                    for (r, &i) in b.items.iter().enumerate() {
                        let row = &y[r * d..(r + 1) * d];
                        ensure!(
                            row.iter().all(|v| v.is_finite()),
                            "backbone {} gave a non-finite feature for image {}",
                            job.cfg.backbone.display(),
                            images[i].1.display()
                        );
                        ids.push(images[i].0.clone());
                    }
                    rows.extend_from_slice(&y);
                    stats.computed += b.items.len();
                    stats.batches += 1;
                    pb.inc(b.items.len() as u64);
                    interrupted = job.opts.max_batches.is_some_and(|m| stats.batches >= m);
                }
                if b.ends_shard {
                    break;
                }
                if interrupted {
                    return Ok(finish(stats, false));
                }
            }
        }
        skipped.sort_by_key(|(i, _)| *i);
        let meta = ShardMeta {
            items_sha256: (job.shard_hash)(s),
            rows: ids.len(),
            dim: if ids.is_empty() { 0 } else { dim.unwrap_or(0) },
            skipped: skipped.into_iter().map(|(i, w)| bad_of(i, w)).collect(),
        };
        let feats = crate::features::Features { dim: meta.dim, ids, data: rows };
        crate::features::write_features(&shard_path(job.partial, s, "npy"), &feats)?;
        crate::run::write_json(&shard_path(job.partial, s, "json"), &meta)?;
        if interrupted && s != *job.shards.last().expect("shards is not empty") {
            return Ok(finish(stats, false));
        }
    }
    Ok(finish(stats, true))
}

/// Runs the backbone on a batch. `data: [n, 3, crop, crop]` row-major → (`[n, D]`
/// row-major, D). A `[n, D, 1, 1]` output (a pooled map) is flattened.
pub fn forward(module: &CModule, data: &[f32], n: usize, crop: usize, device: Device) -> Result<(Vec<f32>, usize)> {
    let x = Tensor::f_from_slice(data)?.f_view([n as i64, 3, crop as i64, crop as i64])?.f_to_device(device)?;
    let y = tch::no_grad(|| module.forward_ts(&[x]))?;
    let size = y.size();
    let y = match size.as_slice() {
        [b, _] if *b == n as i64 => y,
        [b, _, 1, 1] if *b == n as i64 => y.f_flatten(1, -1)?,
        _ => bail!("expected output [{n}, D] (or [{n}, D, 1, 1]) for input [{n}, 3, {crop}, {crop}], got {size:?}"),
    };
    let dim = y.size()[1] as usize;
    ensure!(dim > 0, "the backbone output has 0 features");
    let y = y.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?;
    Ok((Vec::<f32>::try_from(&y)?, dim))
}

fn progress_bar(show: bool, len: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let style = indicatif::ProgressStyle::with_template(
        "featurize {wide_bar} {pos}/{len} images  {rate}  elapsed {elapsed_precise}  left {eta_precise}",
    )
    .expect("the template is valid")
    .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1} images/s", s.per_sec());
    });
    indicatif::ProgressBar::new(len).with_style(style)
}

/// Concatenates the shards into `out` (`.npy` streamed through a temporary file, then
/// `.ids.txt`), returning (rows, dim, skipped).
fn assemble(partial: &Path, n_shards: usize, out: &Path) -> Result<(usize, usize, Vec<BadImage>)> {
    let mut metas = Vec::with_capacity(n_shards);
    for s in 0..n_shards {
        let p = shard_path(partial, s, "json");
        metas.push(read_json::<ShardMeta>(&p).with_context(|| format!("shard marker {} is missing", p.display()))?);
    }
    let rows: usize = metas.iter().map(|m| m.rows).sum();
    let skipped: Vec<BadImage> = metas.iter().flat_map(|m| m.skipped.iter().cloned()).collect();
    let dims: HashSet<usize> = metas.iter().filter(|m| m.rows > 0).map(|m| m.dim).collect();
    ensure!(rows > 0, "no image could be featurized ({} skipped)", skipped.len());
    ensure!(dims.len() == 1, "shards in {} disagree on the feature size: {dims:?}", partial.display());
    let dim = *dims.iter().next().expect("one dim");

    let tmp = out.with_extension("npy.tmp");
    let mut ids = String::new();
    {
        let f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        w.write_all(&crate::features::npy_bytes(&[], rows, dim))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        for (s, meta) in metas.iter().enumerate() {
            if meta.rows == 0 {
                continue;
            }
            let f = crate::features::read_features(&shard_path(partial, s, "npy"))?;
            ensure!(
                f.dim == dim && f.ids.len() == meta.rows,
                "shard {s} in {} changed while assembling",
                partial.display()
            );
            for v in &f.data {
                w.write_all(&v.to_le_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
            }
            for id in &f.ids {
                ids.push_str(id);
                ids.push('\n');
            }
        }
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    crate::run::write_atomic(&crate::features::ids_path(out), ids.as_bytes())?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok((rows, dim, skipped))
}

impl FeaturizeConfig {
    /// Reads a YAML `FeaturizeConfig`; an unknown key or a bad value names the key and file.
    pub fn from_yaml_file(path: &Path) -> Result<FeaturizeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let de = serde_yaml::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de).map_err(|e| anyhow!("{}: `{}`: {}", path.display(), e.path(), e.inner()))
    }
}

/// One batch size of [`benchmark`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchRow {
    pub batch_size: usize,
    /// Forward passes alone, on already-decoded tensors, after a warm-up batch.
    pub model_images_per_s: f64,
    /// The whole pipeline (decode threads overlapped with the model), as `featurize` runs.
    pub pipeline_images_per_s: f64,
    /// Inside that pipeline run: decoding time summed over threads, and model wall time.
    pub pipeline_decode_seconds: f64,
    pub pipeline_model_seconds: f64,
}

/// Decoding throughput of [`benchmark`] (independent of the batch size).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchDecode {
    /// Images decoded (bad files are not counted).
    pub images: usize,
    pub threads: usize,
    /// Images per second with all decoding threads, no model running.
    pub images_per_s: f64,
    /// Mean time to read, decode and preprocess one image on one thread.
    pub ms_per_image: f64,
}

/// Measures decoding alone, the model alone and the whole pipeline for each batch size.
/// Bad images are skipped. `scratch` receives throw-away feature files.
pub fn benchmark(
    images: &[(String, PathBuf)],
    cfg: &FeaturizeConfig,
    device: Device,
    batch_sizes: &[usize],
    scratch: &Path,
) -> Result<(BenchDecode, Vec<BenchRow>)> {
    cfg.validate()?;
    validate_items(images)?;
    ensure!(!batch_sizes.is_empty() && batch_sizes.iter().all(|&b| b > 0), "batch sizes must be positive");
    let prep = cfg.preprocess();
    let threads = cfg.decode_threads();

    // Decoding alone, every thread busy.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let busy_ns = AtomicU64::new(0);
    let decoded: Mutex<Vec<(usize, Vec<f32>)>> = Mutex::new(Vec::new());
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= images.len() {
                    break;
                }
                let t = Instant::now();
                let r = prep.file(&images[i].1);
                busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if let Ok(v) = r {
                    decoded.lock().expect("no panics while held").push((i, v));
                }
            });
        }
    });
    let wall = t.elapsed().as_secs_f64();
    let mut decoded = decoded.into_inner().expect("no panics while held");
    decoded.sort_by_key(|(i, _)| *i);
    let n = decoded.len();
    ensure!(n > 0, "no image could be decoded");
    let decode = BenchDecode {
        images: n,
        threads,
        images_per_s: n as f64 / wall,
        ms_per_image: busy_ns.load(Ordering::Relaxed) as f64 * 1e-6 / n as f64,
    };

    let mut module = CModule::load_on_device(&cfg.backbone, device)
        .with_context(|| format!("cannot load TorchScript backbone {}", cfg.backbone.display()))?;
    module.set_eval();
    let crop = cfg.crop as usize;
    std::fs::create_dir_all(scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let mut rows = Vec::new();
    for &b in batch_sizes {
        let batch = |lo: usize| -> Vec<f32> {
            decoded[lo..(lo + b).min(n)].iter().flat_map(|(_, v)| v.iter().copied()).collect()
        };
        forward(&module, &batch(0), b.min(n), crop, device)?; // warm-up (allocator, kernels)
        let t = Instant::now();
        for lo in (0..n).step_by(b) {
            forward(&module, &batch(lo), (lo + b).min(n) - lo, crop, device)?;
        }
        let model_images_per_s = n as f64 / t.elapsed().as_secs_f64();

        let out = scratch.join(format!("bench-b{b}.npy"));
        for p in [out.clone(), crate::features::ids_path(&out), sidecar_path(&out)] {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(partial_dir(&out));
        let c = FeaturizeConfig { batch_size: b, on_bad_image: OnBadImage::Skip, ..cfg.clone() };
        let r = featurize_with(images, &out, &c, device, &FeaturizeOptions { progress: false, max_batches: None })?;
        rows.push(BenchRow {
            batch_size: b,
            model_images_per_s,
            pipeline_images_per_s: r.computed as f64 / r.pipeline_seconds,
            pipeline_decode_seconds: r.decode_seconds,
            pipeline_model_seconds: r.model_seconds,
        });
    }
    Ok((decode, rows))
}

/// The benchmark as text: a decoding line, then a markdown table.
pub fn bench_table(dec: &BenchDecode, rows: &[BenchRow]) -> String {
    let mut s = format!(
        "decode alone: {:.1} images/s with {} threads ({:.1} ms per image per thread; {} images decodable)\n",
        dec.images_per_s, dec.threads, dec.ms_per_image, dec.images
    );
    s += "| batch | model alone (images/s) | pipeline (images/s) | decode in pipeline (thread-s) | model in pipeline (s) |\n";
    s += "|---:|---:|---:|---:|---:|\n";
    for r in rows {
        s += &format!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} |\n",
            r.batch_size,
            r.model_images_per_s,
            r.pipeline_images_per_s,
            r.pipeline_decode_seconds,
            r.pipeline_model_seconds
        );
    }
    s
}
