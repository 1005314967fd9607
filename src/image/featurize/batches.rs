//! Batching: decode threads ─► an assembler that restores input order and cuts batches
//! at shard ends ─► forward passes and shard files on the calling thread, in shard order.

use super::decode::decode_worker;
use super::settings::{BadImage, BadImagesError, FeaturizeConfig, FeaturizeOptions, OnBadImage};
use super::shards::{shard_path, ShardMeta};
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;
use tch::{CModule, Device, Kind, Tensor};

pub(super) struct ShardJob<'a> {
    pub(super) images: &'a [(String, PathBuf)],
    /// Shards to compute, ascending.
    pub(super) shards: &'a [usize],
    pub(super) shard_size: usize,
    /// Items found bad by `precheck` (skip mode; stop mode has failed already).
    pub(super) pre_bad: &'a HashMap<usize, String>,
    pub(super) partial: &'a Path,
    pub(super) shard_hash: &'a dyn Fn(usize) -> String,
    pub(super) cfg: &'a FeaturizeConfig,
    pub(super) device: Device,
    pub(super) opts: &'a FeaturizeOptions,
}

#[derive(Default)]
pub(super) struct RunStats {
    pub(super) complete: bool,
    pub(super) computed: usize,
    pub(super) batches: usize,
    pub(super) decode_seconds: f64,
    pub(super) model_seconds: f64,
    pub(super) pipeline_seconds: f64,
}

/// Consecutive decoded items of one shard, ready for one forward pass.
pub(super) struct Batch {
    pub(super) shard: usize,
    /// Item indices of the rows of `data`, ascending.
    pub(super) items: Vec<usize>,
    /// `[items.len(), 3, crop, crop]` row-major.
    pub(super) data: Vec<f32>,
    /// Items of this stretch that failed to decode, with the reason.
    pub(super) bad: Vec<(usize, String)>,
    /// The last batch of its shard.
    pub(super) ends_shard: bool,
}

/// Decodes on worker threads, assembles in-order batches on another, and runs the model
/// and writes shards on this one. Returns when every shard is written, at the first bad
/// image in stop mode, or after `max_batches`.
pub(super) fn run_shards(job: &ShardJob, module: &CModule) -> Result<RunStats> {
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
            scope.spawn(move || decode_worker(images, work, prep, job_rx, done_tx, stop, decode_ns));
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
pub(super) fn consume(
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
                crate::stop::check(|| {
                    format!(
                        "the finished shards are kept in {}; run the same command again to continue from them",
                        job.partial.display()
                    )
                })?;
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
        let feats = crate::data::features::Features { dim: meta.dim, ids, data: rows };
        crate::data::features::write_features(&shard_path(job.partial, s, "npy"), &feats)?;
        crate::files::write_json(&shard_path(job.partial, s, "json"), &meta)?;
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

pub(super) fn progress_bar(show: bool, len: u64) -> indicatif::ProgressBar {
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
