//! `tgcn bench-featurize`: decoding alone, the model alone and the whole pipeline, per
//! batch size.

use super::batches::forward;
use super::command::featurize_with;
use super::discover::validate_items;
use super::settings::{FeaturizeConfig, FeaturizeOptions, OnBadImage};
use super::shards::{partial_dir, sidecar_path};
use anyhow::{ensure, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tch::{CModule, Device};

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
        for p in [out.clone(), crate::data::features::ids_path(&out), sidecar_path(&out)] {
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
