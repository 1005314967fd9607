//! The command: [`featurize`] ties discovery, the shard state, decoding and batching
//! together, with the cache check first and the assembly last.

use super::batches::{run_shards, RunStats, ShardJob};
use super::decode::precheck;
use super::discover::{fingerprint_line, sha256_hex, validate_items};
use super::settings::{
    BadImage, BadImagesError, FeaturizeConfig, FeaturizeOptions, FeaturizeReport, OnBadImage, FORMAT,
};
use super::shards::{
    assemble, file_sha256, open_partial, partial_dir, read_json, shard_is_done, sidecar_path, Manifest, ResultKey,
    Sidecar,
};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{CModule, Device};

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

    // One writer per output: a second run on the same images waits, then finds it done.
    let mut lock_name = out.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    lock_name.push(".lock");
    let _lock = crate::files::lock(&out.with_file_name(lock_name), "these image features")?;

    // Up to date already?
    let sidecar = sidecar_path(out);
    if let Some(sc) = read_json::<Sidecar>(&sidecar) {
        if sc.key == key
            && sc.items_sha256 == items_sha256
            && out.is_file()
            && crate::data::features::ids_path(out).is_file()
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
    crate::files::write_json(&sidecar, &Sidecar { key, items_sha256, report: report.clone() })?;
    std::fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
    Ok(report)
}
