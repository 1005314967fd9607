//! The training loop: Adam with per-epoch exponential learning-rate decay, pairs drawn
//! per epoch (`sampled`) or all B×B pairs of a batch (`in_batch`), the global loss plus
//! L2, validation every `eval_every` epochs with the best checkpoint kept by validation
//! mean MAP@all, optionally a refit on train ∪ validation for the selected epochs
//! (`train.refit`), then test evaluation under both protocols, curves, summary and export.
//!
//! Metrics (TensorBoard and `metrics.csv`, same names): `train/loss`, `train/lr`,
//! `train/mean_pos`, `train/mean_neg`, `train/var_pos`, `train/var_neg`, `train/gap`
//! (mean S+ − mean S−, the early-warning signal of the reference notes),
//! `train/graph_zero_frac` (dead graph units), `val/map_i2t`, `val/map_t2i`,
//! `val/map_mean`, `perf/pairs_per_s`; during a refit the same training curves as
//! `refit/*` (at epochs numbered on after the selection's) and `perf/refit_pairs_per_s`.

use crate::config::Config;
use crate::eval::{self, Ranker, Retrieval, EVAL_BATCH};
use crate::files::{read_json_if_exists, write_atomic, write_json};
use crate::model::Model;
use crate::prepare::{prepare, resolve_device, Prepared};
use crate::run::checkpoint::{
    checkpoint_exists, load_checkpoint, read_meta, save_checkpoint, CheckpointMeta, OptimizerState,
};
use crate::run::export;
use crate::run::metrics::MetricsLog;
use crate::run::summary::Summary;
use crate::run::{env_record, RunDir};
use crate::train::optim::Adam;
use crate::train::setup::{build_model, exclusive_rng, optimizer, seed_epoch, seed_everything};
use crate::train::step::{epoch_batches, step_loss, TERMS};
use crate::train::test_eval::{report_table, test_report};
use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::Kind;

struct EpochStats {
    loss: f64,
    /// Sums of the weighted terms, in the order of [`TERMS`].
    terms: [f64; 5],
    mean_pos: f64,
    mean_neg: f64,
    var_pos: f64,
    var_neg: f64,
    pairs: usize,
    seconds: f64,
}

/// Fraction of exactly-zero outputs of the graph layers on the validation texts.
fn graph_zero_fraction(m: &Model, data: &Prepared) -> Option<f64> {
    tch::no_grad(|| {
        let n = data.val.len().min(EVAL_BATCH) as i64;
        m.text
            .graph_features(&data.val.bow.narrow(0, 0, n))
            .map(|h| h.eq(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]))
    })
}

fn log_retrieval(log: &mut MetricsLog, prefix: &str, r: &Retrieval, step: usize, epoch: usize) -> Result<()> {
    log.scalar(&format!("{prefix}/map_i2t"), step, epoch, r.i2t.map_all)?;
    log.scalar(&format!("{prefix}/map_t2i"), step, epoch, r.t2i.map_all)?;
    log.scalar(&format!("{prefix}/map_mean"), step, epoch, r.map_all_mean())?;
    // Instance-level figures: `val/r1_i2t`, …, `val/medr_mean`.
    for (k, _) in &r.i2t.recall {
        log.scalar(&format!("{prefix}/r{k}_i2t"), step, epoch, r.i2t.recall_at(*k).unwrap_or(0.0))?;
        log.scalar(&format!("{prefix}/r{k}_t2i"), step, epoch, r.t2i.recall_at(*k).unwrap_or(0.0))?;
        log.scalar(&format!("{prefix}/r{k}_mean"), step, epoch, r.recall_mean(*k))?;
    }
    log.scalar(&format!("{prefix}/medr_i2t"), step, epoch, r.i2t.median_rank)?;
    log.scalar(&format!("{prefix}/medr_t2i"), step, epoch, r.t2i.median_rank)?;
    log.scalar(&format!("{prefix}/medr_mean"), step, epoch, r.median_rank_mean())
}

/// How far to go in this process.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Stop cleanly after this epoch (resume later with `tgcn train --resume RUN`).
    pub stop_after_epoch: Option<usize>,
    /// Train and select on validation only: the test split is withheld from the prepared
    /// data ([`Prepared::withhold_test`]) before the model is built, and no untrained or
    /// final test evaluation, test curves or export is made. The run records it in
    /// `env.json`, so that a resume stays validation-only.
    pub validation_only: bool,
    /// Stop cleanly after this epoch of the refit (`train.refit`); for pausing and resuming
    /// in the middle of one.
    pub stop_after_refit_epoch: Option<usize>,
    /// Train in this new folder instead of `<runs>/<dataset>/<timestamp>-<name>`
    /// ([`RunDir::create_at`]); the data cache is still `<runs>/cache`.
    pub run_dir: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Outcome {
    Finished(Box<Summary>),
    /// Stopped after `epoch` by `stop_after_epoch`; the run folder can be resumed.
    Paused {
        run: PathBuf,
        epoch: usize,
    },
}

impl Outcome {
    pub fn summary(self) -> Result<Summary> {
        match self {
            Outcome::Finished(s) => Ok(*s),
            Outcome::Paused { run, epoch } => bail!("run {} paused after epoch {epoch}", run.display()),
        }
    }
}

/// Everything a training session holds, fresh or resumed.
struct Session {
    cfg: Config,
    data: Prepared,
    run: RunDir,
    vs: VarStore,
    m: Model,
    opt: Adam,
    log: MetricsLog,
    hash: String,
    /// Last finished epoch and optimizer steps so far.
    epoch: usize,
    step: usize,
    best: Option<(usize, f64)>,
    /// Totals of earlier sessions of this run (see [`CheckpointMeta`]).
    before: (f64, usize, f64),
    /// Set once the selection on validation has ended (read back by a resume).
    selected: Option<Selected>,
    /// Held while training; released when the session ends.
    _lock: crate::run::RunLock,
}

/// Trains a new run described by `cfg` under `runs_root`.
pub fn train(cfg: &Config, runs_root: &Path, opts: &TrainOptions) -> Result<Outcome> {
    let _one_at_a_time = exclusive_rng();
    seed_everything(cfg.seed);
    let device = resolve_device(cfg.device)?;
    check_stop_after(opts, cfg.train.epochs, 0)?;
    check_refit_stop(opts, cfg)?;
    let cache = runs_root.join("cache");
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let mut data = prepare(cfg, device, Some(&cache))?;
    // Taken of every split before the test split is withheld: a digest, read back only by
    // the checks of a resume or a later `tgcn eval`, which see the full data.
    let fingerprint = data.fingerprint();
    if opts.validation_only {
        data.withhold_test();
    }
    eprintln!("{}{}", data.summary(), synthetic_note(cfg));

    let run = match &opts.run_dir {
        Some(dir) => RunDir::create_at(dir)?,
        None => RunDir::create(runs_root, cfg.data.dataset.name(), &cfg.name)?,
    };
    let lock = run.lock()?;
    eprintln!("run folder {}  device {device:?}  threads {}", run.path.display(), tch::get_num_threads());
    write_atomic(&run.join("config.yaml"), cfg.to_yaml()?.as_bytes())?;
    let mut env = env_record(cfg, device, &cache);
    env["validation_only"] = opts.validation_only.into();
    write_json(&run.join("env.json"), &env)?;
    run.write_fingerprint(&fingerprint)?;

    let (vs, m) = build_model(cfg, &data);
    let opt = optimizer(cfg, &vs, &m)?;
    let mut log = MetricsLog::create(&run.join("tb"), &run.join("metrics.csv"))?;
    let mut test0 = "test withheld (validation only)".to_string();
    if !opts.validation_only && !cfg.eval.untrained {
        test0 = "test not evaluated (eval.untrained: false)".to_string();
    }
    if !opts.validation_only && cfg.eval.untrained {
        let ranker = Ranker::new(&m, &data, &cfg.eval, EVAL_BATCH)?;
        let untrained = eval::evaluate_test(&m, &ranker, &data, &cfg.eval, cfg.eval.protocol, EVAL_BATCH)?;
        write_json(&run.join("untrained.json"), &untrained)?;
        test0 = format!("test mean MAP@all {:.4} ({})", untrained.map_all_mean(), untrained.protocol);
    }
    let val0 = eval::evaluate_val(&m, &data, &cfg.eval, EVAL_BATCH)?;
    log_retrieval(&mut log, "val", &val0, 0, 0)?;
    eprintln!("untrained: val mean MAP@all {:.4}, {test0}", val0.map_all_mean());
    let hash = cfg.hash()?;
    let s = Session {
        cfg: cfg.clone(),
        data,
        run,
        vs,
        m,
        opt,
        log,
        hash,
        epoch: 0,
        step: 0,
        best: None,
        before: (0.0, 0, 0.0),
        selected: None,
        _lock: lock,
    };
    fit(s, opts)
}

/// Continues an interrupted run from its last checkpoint (weights, optimizer, epoch).
pub fn resume(run_dir: &Path, opts: &TrainOptions) -> Result<Outcome> {
    let _one_at_a_time = exclusive_rng();
    let run = RunDir::open(run_dir)?;
    let lock = run.lock()?;
    let cfg = run.config()?;
    let opts = &TrainOptions { validation_only: opts.validation_only || run.validation_only(), ..opts.clone() };
    seed_everything(cfg.seed);
    let device = resolve_device(cfg.device)?;
    let mut data = prepare(&cfg, device, Some(&run.cache_dir()))?;
    run.check_fingerprint(&data)?;
    if opts.validation_only {
        data.withhold_test();
    }
    let (mut vs, m) = build_model(&cfg, &data);
    let mut opt = optimizer(&cfg, &vs, &m)?;
    let hash = run.config_hash()?;
    if !checkpoint_exists(&run.path, "last") {
        bail!("{}", run.never_saved());
    }
    let meta = load_checkpoint(&mut vs, Some(&mut opt as &mut dyn OptimizerState), &run, "last", &hash)?;
    ensure!(
        !run.join("summary.json").exists(),
        "run {} already finished (epoch {} of {}{})",
        run.path.display(),
        meta.epoch,
        cfg.train.epochs,
        if meta.epoch < cfg.train.epochs { ", stopped early" } else { "" }
    );
    check_refit_stop(opts, &cfg)?;
    let selected = Selected::read(&run)?;
    // Metrics rows after the last checkpoint (logged before the interruption) are dropped;
    // the refit logs its epochs after the selection's.
    let logged = match &selected {
        None => {
            check_stop_after(opts, cfg.train.epochs, meta.epoch)?;
            eprintln!("resuming {} after epoch {} (step {})", run.path.display(), meta.epoch, meta.step);
            meta.epoch
        }
        Some(sel) => {
            ensure!(
                opts.stop_after_epoch.is_none(),
                "--stop-after-epoch: the selection of run {} has ended (best epoch {} of the {} run)",
                run.path.display(),
                sel.best_epoch,
                sel.epochs_run
            );
            let refit = refits(&cfg, opts.validation_only);
            let refit_done = match read_meta(&run, "refit_last")? {
                Some(m) if refit => m.epoch,
                _ => 0,
            };
            eprintln!(
                "resuming {}: the selection has ended (best epoch {}); {}",
                run.path.display(),
                sel.best_epoch,
                match refit {
                    true => format!("refit after refit epoch {refit_done}"),
                    false => "finishing".to_string(),
                }
            );
            sel.epochs_run + refit_done
        }
    };
    let log = MetricsLog::resume(&run.join("tb"), &run.join("metrics.csv"), logged)?;
    let s = Session {
        cfg,
        data,
        run,
        vs,
        m,
        opt,
        log,
        hash,
        epoch: meta.epoch,
        step: meta.step,
        best: meta.best,
        before: (meta.train_seconds, meta.pairs, meta.pair_seconds),
        selected,
        _lock: lock,
    };
    fit(s, opts)
}

/// The learning rate of `epoch` (1-based): a linear warm-up over `warmup_epochs`, then
/// `exp` (lr · lr_decay^(e−1−warmup), the authors') or `cosine` (lr · ½(1 + cos(π t)),
/// t going from 0 at the first epoch after the warm-up to 1 after the last).
pub fn learning_rate(t: &crate::config::TrainConfig, epoch: usize) -> f64 {
    let w = t.warmup_epochs;
    if epoch <= w {
        return t.lr * epoch as f64 / w as f64;
    }
    match t.schedule {
        crate::config::Schedule::Exp => t.lr * t.lr_decay.powi((epoch - w) as i32 - 1),
        crate::config::Schedule::Cosine => {
            let progress = (epoch - w - 1) as f64 / (t.epochs - w) as f64;
            t.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// `--stop-after-epoch E` must fall in (done, epochs]: 0, an epoch already done or one
/// past the last would otherwise be ignored without a word.
fn check_stop_after(opts: &TrainOptions, epochs: usize, done: usize) -> Result<()> {
    if let Some(e) = opts.stop_after_epoch {
        ensure!(
            e > done && e <= epochs,
            "--stop-after-epoch {e} is outside {}..={epochs}: the run {} and trains {epochs} epochs",
            done + 1,
            if done == 0 { "starts at epoch 1".to_string() } else { format!("resumes after epoch {done}") }
        );
    }
    Ok(())
}

/// `--stop-after-refit-epoch` needs a refit to stop in: `train.refit` in a tested run.
fn check_refit_stop(opts: &TrainOptions, cfg: &Config) -> Result<()> {
    if let Some(e) = opts.stop_after_refit_epoch {
        ensure!(
            refits(cfg, opts.validation_only),
            "--stop-after-refit-epoch {e}: this run has no refit (it needs `train.refit: true`, and a run that is \
             tested: validation-only runs stop before the refit)"
        );
        ensure!(e > 0, "--stop-after-refit-epoch 0: refit epochs count from 1");
    }
    Ok(())
}

fn synthetic_note(cfg: &Config) -> &'static str {
    if cfg.data.dataset == crate::config::DatasetKind::Synthetic {
        "\n  (SYNTHETIC data: numbers are not comparable to papers)"
    } else {
        ""
    }
}

/// Which training a run is in: selection on validation, then (`train.refit`) the refit on
/// train ∪ validation. Each logs its training curves under its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Select,
    Refit,
}

impl Phase {
    fn prefix(self) -> &'static str {
        match self {
            Phase::Select => "train",
            Phase::Refit => "refit",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Phase::Select => "epoch",
            Phase::Refit => "refit",
        }
    }
}

/// For the divergence error: the checkpoint a phase can go back to after `done` epochs.
fn last_good(run: &RunDir, phase: Phase, done: usize) -> String {
    let (tag, what, none) = match phase {
        Phase::Select => ("last", "epoch", "checkpoint"),
        Phase::Refit => ("refit_last", "refit epoch", "refit checkpoint"),
    };
    match done {
        0 => format!("no {what} finished, so there is no {none}"),
        e => format!(
            "the last good checkpoint is {} ({what} {e})",
            run.join(&format!("checkpoints/{tag}.safetensors")).display()
        ),
    }
}

/// What one epoch of training did: its console line, pairs seen and seconds spent on them.
struct EpochDone {
    line: String,
    pairs: usize,
    seconds: f64,
}

/// One epoch (`epoch` of `of`) of optimizer steps over the train split, logged as
/// `<prefix>/…` at (`s.step`, `log_epoch`). `keep` names the last good checkpoint, for the
/// error when the loss diverges.
fn train_epoch(
    s: &mut Session,
    phase: Phase,
    epoch: usize,
    of: usize,
    log_epoch: usize,
    keep: &str,
) -> Result<EpochDone> {
    let cfg = s.cfg.clone();
    let (data, m) = (&s.data, &s.m);
    let mut rng = seed_epoch(cfg.seed, epoch);
    let lr = learning_rate(&cfg.train, epoch);
    let batches = epoch_batches(&cfg, data, &mut rng)?;
    let bar = ProgressBar::new(batches.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:28}] {pos}/{len} {msg} [{elapsed}<{eta}]")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {epoch}/{of}", phase.word()));
    let t0 = Instant::now();
    let mut st = EpochStats {
        loss: 0.0,
        terms: [0.0; 5],
        mean_pos: 0.0,
        mean_neg: 0.0,
        var_pos: 0.0,
        var_neg: 0.0,
        pairs: 0,
        seconds: 0.0,
    };
    let mut counted = [0usize; 3]; // batches with loss, with positives, with negatives
    for batch in &batches {
        if crate::stop::requested().is_some() {
            bar.abandon();
            crate::stop::check(|| match (phase, epoch) {
                (Phase::Select, 1) => s.run.never_saved(),
                _ => format!(
                    "run {} stopped during {} {epoch}; {keep}; continue with: tgcn train --resume {}",
                    s.run.path.display(),
                    phase.word(),
                    s.run.path.display()
                ),
            })?;
        }
        let sl = step_loss(&cfg, m, data, batch)?;
        let value = sl.values[0];
        for (j, v) in sl.on.iter().zip(&sl.values[1..]) {
            st.terms[*j] += v;
        }
        if !value.is_finite() {
            bar.abandon();
            bail!(
                "training diverged: the loss is {value} at {} {epoch}, step {}; stopped, {keep}",
                phase.word(),
                s.step + 1
            );
        }
        let (g, n_pairs) = (sl.stats, sl.pairs);
        s.opt.backward_step(&sl.total, lr)?;
        s.step += 1;
        counted[0] += 1;
        st.loss += value;
        if let (Some(mp), Some(vp)) = (g.mean_pos, g.var_pos) {
            st.mean_pos += mp;
            st.var_pos += vp;
            counted[1] += 1;
        }
        if let (Some(mn), Some(vn)) = (g.mean_neg, g.var_neg) {
            st.mean_neg += mn;
            st.var_neg += vn;
            counted[2] += 1;
        }
        st.pairs += n_pairs;
        let secs = t0.elapsed().as_secs_f64();
        bar.set_message(format!(
            "loss {:.4} lr {lr:.2e} {:.0} pairs/s",
            st.loss / counted[0] as f64,
            st.pairs as f64 / secs.max(1e-9)
        ));
        bar.inc(1);
    }
    st.seconds = t0.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let c = |n: usize| n.max(1) as f64;
    let pairs_per_s = st.pairs as f64 / st.seconds.max(1e-9);
    let (step, p, e) = (s.step, phase.prefix(), log_epoch);
    let log = &mut s.log;
    log.scalar(&format!("{p}/loss"), step, e, st.loss / c(counted[0]))?;
    let weights = [cfg.loss.global, cfg.loss.contrastive, cfg.loss.label, cfg.loss.invariance, cfg.loss.l2];
    for ((name, w), sum) in TERMS.iter().zip(weights).zip(st.terms) {
        if w > 0.0 {
            log.scalar(&format!("{p}/loss_{name}"), step, e, sum / c(counted[0]))?;
        }
    }
    if let Some(log_tau) = &m.log_temperature {
        log.scalar(&format!("{p}/temperature"), step, e, log_tau.exp().double_value(&[]))?;
    }
    log.scalar(&format!("{p}/lr"), step, e, lr)?;
    log.scalar(&format!("{p}/mean_pos"), step, e, st.mean_pos / c(counted[1]))?;
    log.scalar(&format!("{p}/mean_neg"), step, e, st.mean_neg / c(counted[2]))?;
    log.scalar(&format!("{p}/var_pos"), step, e, st.var_pos / c(counted[1]))?;
    log.scalar(&format!("{p}/var_neg"), step, e, st.var_neg / c(counted[2]))?;
    let gap = st.mean_pos / c(counted[1]) - st.mean_neg / c(counted[2]);
    log.scalar(&format!("{p}/gap"), step, e, gap)?;
    if let Some(z) = graph_zero_fraction(m, data) {
        log.scalar(&format!("{p}/graph_zero_frac"), step, e, z)?;
    }
    let perf = if phase == Phase::Select { "perf/pairs_per_s" } else { "perf/refit_pairs_per_s" };
    log.scalar(perf, step, e, pairs_per_s)?;
    let line = format!(
        "{} {epoch:3}  loss {:.4}  gap {gap:+.4}  lr {lr:.2e}  {pairs_per_s:.0} pairs/s  {:.1}s",
        phase.word(),
        st.loss / c(counted[0]),
        st.seconds
    );
    Ok(EpochDone { line, pairs: st.pairs, seconds: st.seconds })
}

/// Where a run's selection on validation ended. Written to `checkpoints/selected.json` once
/// it has ended (early stop or its last epoch): a resume then goes straight on to the refit
/// and the test, and never trains the selected model further.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Selected {
    best_epoch: usize,
    best_val: f64,
    epochs_run: usize,
}

impl Selected {
    fn read(run: &RunDir) -> Result<Option<Selected>> {
        read_json_if_exists(&run.join("checkpoints/selected.json"))
    }
}

/// Whether a run refits after its selection: `train.refit`, unless it is validation-only.
pub(crate) fn refits(cfg: &Config, validation_only: bool) -> bool {
    cfg.train.refit && !validation_only
}

/// This session's training clock: wall time since it started, and the pairs seen and
/// seconds spent on them (earlier sessions' totals are in [`Session::before`]).
struct Clock {
    start: Instant,
    pairs: usize,
    secs: f64,
}

impl Clock {
    /// Wall seconds of training over every session of the run.
    fn train_seconds(&self, s: &Session) -> f64 {
        s.before.0 + self.start.elapsed().as_secs_f64()
    }

    fn meta(&self, s: &Session, epoch: usize) -> CheckpointMeta {
        CheckpointMeta {
            epoch,
            step: s.step,
            val_map_mean: None,
            best: s.best,
            config_hash: s.hash.clone(),
            weights_sha256: String::new(),
            optim_sha256: None,
            train_seconds: self.train_seconds(s),
            pairs: s.before.1 + self.pairs,
            pair_seconds: s.before.2 + self.secs,
        }
    }
}

fn fit(mut s: Session, opts: &TrainOptions) -> Result<Outcome> {
    let cfg = s.cfg.clone();
    let mut clock = Clock { start: Instant::now(), pairs: 0, secs: 0.0 };
    if s.selected.is_none() {
        for epoch in s.epoch + 1..=cfg.train.epochs {
            let keep = last_good(&s.run, Phase::Select, s.epoch);
            let done = train_epoch(&mut s, Phase::Select, epoch, cfg.train.epochs, epoch, &keep)?;
            clock.pairs += done.pairs;
            clock.secs += done.seconds;
            let mut line = done.line;
            let mut meta = clock.meta(&s, epoch);
            if epoch % cfg.train.eval_every == 0 || epoch == cfg.train.epochs {
                // Validated and kept as `best` with the moving averages (`train.ema`) in the model.
                s.opt.swap_ema();
                let val = eval::evaluate_val(&s.m, &s.data, &cfg.eval, EVAL_BATCH)?;
                log_retrieval(&mut s.log, "val", &val, s.step, epoch)?;
                let score = val.select_score(cfg.train.select_on);
                meta.val_map_mean = Some(score);
                line += &format!(
                    "  val MAP@all i2t {:.4} t2i {:.4} mean {:.4}  R@1 {:.4} R@10 {:.4} medR {:.1}",
                    val.i2t.map_all,
                    val.t2i.map_all,
                    val.map_all_mean(),
                    val.recall_mean(1),
                    val.recall_mean(10),
                    val.median_rank_mean()
                );
                if s.best.is_none_or(|(_, b)| score > b) {
                    s.best = Some((epoch, score));
                    meta.best = s.best;
                    save_checkpoint(&s.vs, None, &s.run, "best", &mut meta.clone())?;
                    line += "  *";
                }
                s.opt.swap_ema();
            }
            meta.train_seconds = clock.train_seconds(&s);
            save_checkpoint(&s.vs, Some(&s.opt as &dyn OptimizerState), &s.run, "last", &mut meta)?;
            s.epoch = epoch;
            s.log.flush()?;
            eprintln!("{line}");
            if opts.stop_after_epoch == Some(epoch) && epoch < cfg.train.epochs {
                eprintln!("paused after epoch {epoch}; continue with: tgcn train --resume {}", s.run.path.display());
                return Ok(Outcome::Paused { run: s.run.path.clone(), epoch });
            }
            if let (Some(patience), Some((best_epoch, best))) = (cfg.train.patience, s.best) {
                // Evaluations since the best one; derived from (best, epoch), so a resumed run
                // stops exactly where an uninterrupted one would.
                let since = (best_epoch + 1..=epoch).filter(|e| e % cfg.train.eval_every == 0).count();
                if since >= patience && epoch < cfg.train.epochs {
                    eprintln!(
                        "early stop after epoch {epoch}: no validation gain in {since} evaluations \
                         (best epoch {best_epoch}, {} {best:.4})",
                        cfg.train.select_on.label()
                    );
                    break;
                }
            }
        }
        let (best_epoch, best_val) = s.best.context("no validation ran")?;
        let sel = Selected { best_epoch, best_val, epochs_run: s.epoch };
        write_json(&s.run.join("checkpoints/selected.json"), &sel)?;
        s.selected = Some(sel);
    }
    let sel = s.selected.clone().context("the selection has ended")?;
    let (best_epoch, best_val) = (sel.best_epoch, sel.best_val);
    let refit = refits(&cfg, opts.validation_only);
    if refit {
        // A fresh model: the selected one is not needed.
        if let Some(paused) = refit_model(&mut s, &sel, opts, &mut clock)? {
            return Ok(paused);
        }
    } else {
        load_checkpoint(&mut s.vs, None, &s.run, "best", &s.hash)?;
    }
    let train_seconds = clock.train_seconds(&s);
    let (total_pairs, total_secs) = (s.before.1 + clock.pairs, s.before.2 + clock.secs);

    // Fitted once to the tested model (best checkpoint or refit), for the test report and the export.
    let ranker = if opts.validation_only { None } else { Some(Ranker::new(&s.m, &s.data, &cfg.eval, EVAL_BATCH)?) };
    let test = match &ranker {
        Some(r) => test_report(&cfg, &s.m, r, &s.data, &s.run)?,
        None => Vec::new(),
    };
    for r in &test {
        let epoch = sel.epochs_run + if refit { best_epoch } else { 0 };
        log_retrieval(&mut s.log, &format!("test_{}", r.protocol), r, s.step, epoch)?;
    }
    s.log.flush()?;
    let untrained: Option<Retrieval> = if opts.validation_only || !cfg.eval.untrained {
        None
    } else {
        Some(serde_json::from_str(
            &std::fs::read_to_string(s.run.join("untrained.json")).context("cannot read untrained.json")?,
        )?)
    };
    let synthetic = cfg.data.dataset == crate::config::DatasetKind::Synthetic;
    let summary = Summary {
        dataset: s.data.dataset_name.clone(),
        synthetic,
        run: s.run.path.clone(),
        best_epoch,
        best_val_map_mean: best_val,
        selected_on: cfg.train.select_on,
        epochs: cfg.train.epochs,
        epochs_run: sel.epochs_run,
        refit_epochs: refit.then_some(best_epoch),
        train_seconds,
        pairs_per_s: total_pairs as f64 / total_secs.max(1e-9),
        untrained_test: untrained,
        test,
        validation_only: opts.validation_only,
    };
    summary.write(&s.run.path)?;
    if opts.validation_only {
        println!(
            "validation only (test withheld): best epoch {best_epoch}, val {} {best_val:.4}; {:.1}s training\nrun folder: {}",
            cfg.train.select_on.label(),
            summary.train_seconds,
            summary.run.display()
        );
        return Ok(Outcome::Finished(Box::new(summary)));
    }
    if cfg.export.enabled {
        let ranker = ranker.as_ref().context("a run that reports test figures has a fitted ranker")?;
        export::export_run(&cfg, &s.data, &s.vs, ranker, &s.run, &summary.test)?;
    }
    println!("{}", report_table(&summary.dataset, synthetic, &summary.test, Some(&summary)));
    Ok(Outcome::Finished(Box::new(summary)))
}

/// The refit (`train.refit`): a fresh model from the run's seed, trained on train ∪
/// validation for the selected number of epochs under the same schedule and saved as
/// checkpoint `refit`; `s` then holds it and the joined data. Each epoch is checkpointed
/// as `refit_last`, which a resume continues from. Some outcome when paused.
fn refit_model(s: &mut Session, sel: &Selected, opts: &TrainOptions, clock: &mut Clock) -> Result<Option<Outcome>> {
    let cfg = s.cfg.clone();
    let epochs = sel.best_epoch;
    s.data.include_val_in_train();
    seed_everything(cfg.seed);
    let (mut vs, m) = build_model(&cfg, &s.data);
    let mut opt = optimizer(&cfg, &vs, &m)?;
    let mut done = 0;
    if checkpoint_exists(&s.run.path, "refit_last") {
        let meta = load_checkpoint(&mut vs, Some(&mut opt as &mut dyn OptimizerState), &s.run, "refit_last", &s.hash)?;
        (done, s.step, s.before) = (meta.epoch, meta.step, (meta.train_seconds, meta.pairs, meta.pair_seconds));
        *clock = Clock { start: Instant::now(), pairs: 0, secs: 0.0 };
    }
    (s.vs, s.m, s.opt) = (vs, m, opt);
    if let Some(e) = opts.stop_after_refit_epoch {
        ensure!(
            e > done,
            "--stop-after-refit-epoch {e}: the refit of {} resumes after refit epoch {done}",
            s.run.path.display()
        );
    }
    eprintln!(
        "refit: train ∪ validation ({} + {} items) for the selected {epochs} epochs{}",
        s.data.train_items(),
        s.data.val.len(),
        if done > 0 { format!(", continuing after refit epoch {done}") } else { String::new() }
    );
    if let Some(e) = opts.stop_after_refit_epoch.filter(|&e| e > epochs) {
        eprintln!("--stop-after-refit-epoch {e}: the refit has {epochs} epochs, so it runs to its end");
    }
    for epoch in done + 1..=epochs {
        let keep = last_good(&s.run, Phase::Refit, epoch - 1);
        let d = train_epoch(s, Phase::Refit, epoch, epochs, sel.epochs_run + epoch, &keep)?;
        clock.pairs += d.pairs;
        clock.secs += d.seconds;
        let mut meta = clock.meta(s, epoch);
        save_checkpoint(&s.vs, Some(&s.opt as &dyn OptimizerState), &s.run, "refit_last", &mut meta)?;
        s.log.flush()?;
        eprintln!("{}", d.line);
        if opts.stop_after_refit_epoch == Some(epoch) && epoch < epochs {
            eprintln!("paused after refit epoch {epoch}; continue with: tgcn train --resume {}", s.run.path.display());
            return Ok(Some(Outcome::Paused { run: s.run.path.clone(), epoch }));
        }
    }
    // The tested refit holds the moving averages (`train.ema`), as `best` does.
    s.opt.swap_ema();
    save_checkpoint(&s.vs, None, &s.run, "refit", &mut clock.meta(s, epochs))?;
    Ok(None)
}
