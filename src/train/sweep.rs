//! `tgcn sweep`: a hyper-parameter search that selects on validation only.
//!
//! `--grid KEY=V1,V2,…` (repeatable) spans the settings: the cartesian product of the
//! values, the first key varying slowest, or with `--random N` N distinct settings of that
//! product drawn with a ChaCha8 seeded by `--sweep-seed`. Each setting trains once per
//! seed. A trial's config is the base (dataset config, `--config` overlays, `--set`s), one
//! `--set KEY=V` layer per grid key, then `seed` and a `name` derived from the setting:
//! short readable values plus 8 hex digits of the hash of its config without seed and name.
//! Every trial config is resolved and validated before the first trial trains.
//!
//! Trials train with [`TrainOptions::validation_only`]: the test split is withheld from
//! the prepared data before the model exists, so every number here is the validation
//! mean MAP@all (val vs val) of a trial's best epoch. Under `--out DIR`:
//!
//! ```text
//! DIR/runs/<dataset>/<name>-seed<S>/  one run folder per trial, at a fixed path
//! DIR/runs/cache/                     vocabulary and word graph, shared by the trials
//! DIR/trials.csv                      one row per (setting, seed), in sweep order
//! DIR/results.csv, DIR/results.md     one row per setting over its seeds, best first
//! DIR/best.yaml                       the best setting's grid keys, a `--config` overlay
//! DIR/sweep.json                      the command and the trials this folder belongs to
//! ```
//!
//! A used `--out` holding another sweep (a different grid, seed list or base config) is
//! refused, and a folder at a trial's path that a run did not make is never removed.
//!
//! Rerunning the same command continues: a trial with `summary.json` is kept, one with a
//! `last` checkpoint is resumed ([`fit::resume`]), one without is started again. A trial
//! that fails is recorded with its error and the sweep goes on. The tables are rewritten
//! atomically after every trial, so a killed sweep leaves a valid partial table.

use crate::config::{Config, Layer};
use crate::files::write_atomic;
use crate::run::summary::Summary;
use crate::run::RunDir;
use crate::train::fit::{self, Outcome, TrainOptions};
use anyhow::{anyhow, bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One swept key and its values as written (YAML, read like `--set` values).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Splits `KEY=V1,V2,…` on the commas outside brackets, braces and quotes, so that list
/// and mapping values keep theirs: `model.image.hidden=[],[512],[1024, 512]` has three.
pub fn parse_grid(arg: &str) -> Result<Axis> {
    let hint = "expected --grid KEY=V1,V2,... (e.g. --grid train.lr=1e-3,3e-3; lists in brackets: \
                --grid 'model.image.hidden=[],[512]')";
    let (key, raw) = arg.split_once('=').ok_or_else(|| anyhow!("--grid {arg:?}: no `=`; {hint}"))?;
    let key = key.trim();
    ensure!(!key.is_empty(), "--grid {arg:?}: empty key; {hint}");
    ensure!(
        key != "seed" && key != "name",
        "--grid {key}: `{key}` is set by the sweep itself (give seeds with --seeds; names follow the setting)"
    );
    let mut values = Vec::new();
    let (mut cur, mut depth, mut quote, mut escaped) = (String::new(), 0i32, None::<char>, false);
    for c in raw.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => {
                    depth -= 1;
                    ensure!(depth >= 0, "--grid {key}: `{c}` closes nothing in {raw:?}; {hint}");
                }
                ',' if depth == 0 => {
                    values.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            },
        }
        cur.push(c);
    }
    ensure!(quote.is_none(), "--grid {key}: unclosed quote in {raw:?}; {hint}");
    ensure!(depth == 0, "--grid {key}: unclosed bracket in {raw:?}; {hint}");
    values.push(cur);
    let values: Vec<String> = values.iter().map(|v| v.trim().to_string()).collect();
    if let Some(i) = values.iter().position(String::is_empty) {
        bail!("--grid {key}: value {} of {raw:?} is empty (a stray comma?); {hint}", i + 1);
    }
    let parsed = values
        .iter()
        .map(|v| serde_yaml::from_str::<Value>(v).with_context(|| format!("--grid {key}: cannot parse value {v:?}")))
        .collect::<Result<Vec<_>>>()?;
    for (i, a) in parsed.iter().enumerate() {
        if let Some(j) = parsed[..i].iter().position(|b| b == a) {
            bail!("--grid {key}: {} and {} are the same value", values[j], values[i]);
        }
    }
    Ok(Axis { key: key.to_string(), values })
}

/// `1,2,3` → the seeds; empty, unparsable or repeated seeds are errors.
pub fn parse_seeds(arg: &str) -> Result<Vec<u64>> {
    ensure!(!arg.trim().is_empty(), "--seeds is empty: give one or more seeds, e.g. --seeds 1,2,3");
    let mut seeds = Vec::new();
    for s in arg.split(',').map(str::trim) {
        let v: u64 = s.parse().map_err(|_| anyhow!("--seeds {arg:?}: {s:?} is not a seed (a whole number ≥ 0)"))?;
        ensure!(!seeds.contains(&v), "--seeds {arg:?}: seed {v} is given twice");
        seeds.push(v);
    }
    Ok(seeds)
}

/// What `tgcn sweep` was asked to do.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The dataset config and each `--config` overlay, in order.
    pub base: Vec<Layer>,
    /// Each `--set KEY=VALUE`, applied after `base` and before the grid.
    pub sets: Vec<String>,
    pub grid: Vec<Axis>,
    /// Draw this many distinct settings of the grid instead of taking all of them.
    pub random: Option<usize>,
    pub sweep_seed: u64,
    pub seeds: Vec<u64>,
    pub out: PathBuf,
    /// A copy of `best.yaml` here too.
    pub best_out: Option<PathBuf>,
    /// The command line, recorded in `results.md`.
    pub command: String,
    /// Test hook: pause trial `.0` (1-based) after its epoch `.1` and stop, as a kill would.
    pub stop_after: Option<(usize, usize)>,
}

/// One point of the grid.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Position in the full product (row-major over the axes, the first axis slowest).
    pub index: usize,
    /// One value per axis, as written.
    pub values: Vec<String>,
    /// The trials' `name`, shared by the seeds of this setting.
    pub name: String,
}

/// One training of a setting with one seed.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Index into [`Plan::settings`].
    pub setting: usize,
    pub seed: u64,
    pub cfg: Config,
    pub dir: PathBuf,
}

/// Every trial of a sweep, resolved and validated.
#[derive(Debug)]
pub struct Plan {
    pub axes: Vec<Axis>,
    pub settings: Vec<Setting>,
    /// Setting-major: all seeds of the first setting, then the next.
    pub trials: Vec<Trial>,
    /// `DIR/runs`: the trial folders and the data cache.
    pub runs: PathBuf,
}

impl Plan {
    /// `train.lr=1e-3 loss.margin=0.8`
    pub fn label(&self, setting: usize) -> String {
        let s = &self.settings[setting];
        self.axes.iter().zip(&s.values).map(|(a, v)| format!("{}={v}", a.key)).collect::<Vec<_>>().join(" ")
    }
}

fn key_of_set(assignment: &str) -> &str {
    assignment.split_once('=').map_or(assignment, |(k, _)| k).trim()
}

/// `a.b` and `a.b.c` name overlapping parts of the config.
fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

/// The readable part of a setting's name: the last segment of each key and its value,
/// reduced to name characters (`lr0.001_hidden1024x512`), at most 48 of them.
fn readable(axes: &[Axis], values: &[String]) -> String {
    let parts: Vec<String> = axes
        .iter()
        .zip(values)
        .map(|(a, v)| {
            let seg = a.key.rsplit('.').next().unwrap_or(&a.key);
            let seg: String = seg.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let mut val: String = v
                .chars()
                .filter_map(|c| match c {
                    c if c.is_ascii_alphanumeric() || c == '.' || c == '-' => Some(c),
                    ',' => Some('x'),
                    _ => None,
                })
                .collect();
            if val.is_empty() {
                val = "empty".to_string();
            }
            format!("{seg}{val}")
        })
        .collect();
    let mut s = parts.join("_");
    s.truncate(48);
    s.trim_start_matches('.').to_string()
}

/// Resolves and validates every trial config, and checks that any trial folder already
/// there holds the same config; nothing is trained or written.
pub fn plan(spec: &SweepSpec) -> Result<Plan> {
    ensure!(!spec.grid.is_empty(), "give at least one --grid KEY=V1,V2,...");
    ensure!(!spec.seeds.is_empty(), "--seeds is empty: give one or more seeds, e.g. --seeds 1,2,3");
    for (i, a) in spec.grid.iter().enumerate() {
        if let Some(b) = spec.grid[..i].iter().find(|b| overlaps(&a.key, &b.key)) {
            bail!("--grid {} and --grid {} overlap: give each key once", b.key, a.key);
        }
        if let Some(s) = spec.sets.iter().find(|s| overlaps(key_of_set(s), &a.key)) {
            bail!(
                "--grid {} overlaps --set {s}: the grid sets that key; drop one \
                 (best.yaml, used as --config, would be overridden by the --set)",
                a.key
            );
        }
    }
    let total = spec
        .grid
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .context("the grid has too many settings to count")?;
    let indices: Vec<usize> = match spec.random {
        None => (0..total).collect(),
        Some(n) => {
            ensure!(
                (1..=total).contains(&n),
                "--random {n}: the grid has {total} settings; draw between 1 and {total}"
            );
            let mut rng = ChaCha8Rng::seed_from_u64(spec.sweep_seed);
            let mut v = rand::seq::index::sample(&mut rng, total, n).into_vec();
            v.sort_unstable();
            v
        }
    };
    let mut base = spec.base.clone();
    for s in &spec.sets {
        base.push(Layer::from_set(s)?);
    }
    let mut settings: Vec<Setting> = Vec::new();
    let mut trials = Vec::new();
    let runs = spec.out.join("runs");
    for index in indices {
        // Mixed radix, the last axis fastest.
        let mut rest = index;
        let mut values = vec![String::new(); spec.grid.len()];
        for (j, a) in spec.grid.iter().enumerate().rev() {
            values[j] = a.values[rest % a.values.len()].clone();
            rest /= a.values.len();
        }
        let mut layers = base.clone();
        for (a, v) in spec.grid.iter().zip(&values) {
            let mut l = Layer::from_set(&format!("{}={v}", a.key))?;
            l.source = format!("--grid {}={v}", a.key);
            layers.push(l);
        }
        let label = spec.grid.iter().zip(&values).map(|(a, v)| format!("{}={v}", a.key)).collect::<Vec<_>>();
        let label = label.join(" ");
        let cfg0 = Config::from_layers(&layers).with_context(|| format!("sweep setting {label}"))?;
        let variant = Config { name: String::new(), seed: 0, ..cfg0.clone() }.hash()?;
        let name = format!("{}-{}", readable(&spec.grid, &values), &variant[..8]);
        if let Some(other) = settings.iter().find(|s| s.name == name) {
            bail!("sweep settings {:?} and {:?} resolve to the same config", other.values, values);
        }
        let s_idx = settings.len();
        for &seed in &spec.seeds {
            let cfg = Config { seed, name: name.clone(), ..cfg0.clone() };
            cfg.validate().with_context(|| format!("sweep setting {label}, seed {seed}"))?;
            let dir = runs.join(cfg.data.dataset.name()).join(format!("{name}-seed{seed}"));
            if dir.join("config.yaml").is_file() {
                let have = RunDir::open(&dir)?.config().with_context(|| format!("trial folder {}", dir.display()))?;
                ensure!(
                    have.hash()? == cfg.hash()?,
                    "trial folder {} holds another config (hash {}, this sweep's trial: {}); \
                     move it away or sweep into another --out",
                    dir.display(),
                    have.hash()?,
                    cfg.hash()?
                );
            }
            trials.push(Trial { setting: s_idx, seed, cfg, dir });
        }
        settings.push(Setting { index, values, name });
    }
    Ok(Plan { axes: spec.grid.clone(), settings, trials, runs })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Pending,
    Finished,
    Failed,
    Paused,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Paused => "paused",
        }
    }
}

/// A trial's line of `trials.csv`.
#[derive(Debug, Clone, Default)]
pub struct TrialRow {
    pub status: Status,
    /// Validation MAP@all of the best epoch: mean, i2t, t2i.
    pub val: Option<[f64; 3]>,
    pub best_epoch: Option<usize>,
    pub epochs_run: Option<usize>,
    /// Training wall seconds over every session of the trial (`summary.json`).
    pub train_seconds: Option<f64>,
    pub error: String,
}

impl TrialRow {
    fn failed(e: &anyhow::Error) -> TrialRow {
        let text = format!("{e:#}");
        TrialRow {
            status: Status::Failed,
            error: text.split_whitespace().collect::<Vec<_>>().join(" "),
            ..Default::default()
        }
    }
}

/// A finished trial's numbers: `summary.json`, and `val/map_i2t`, `val/map_t2i` of the
/// best epoch from `metrics.csv` (`val/r1_i2t`, … under `train.select_on: r1`, …).
fn read_finished(dir: &Path) -> Result<TrialRow> {
    let s = Summary::read(dir)?
        .with_context(|| format!("{} has no summary.json: the trial has not finished", dir.display()))?;
    let m = dir.join("metrics.csv");
    let mut reader = csv::Reader::from_path(&m).with_context(|| format!("cannot read {}", m.display()))?;
    let (mut i2t, mut t2i) = (None, None);
    let epoch = s.best_epoch.to_string();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: bad row {}", m.display(), i + 2))?;
        if rec.get(1) != Some(epoch.as_str()) {
            continue;
        }
        let value = || -> Result<f64> {
            rec.get(3)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}: bad value in row {}", m.display(), i + 2))
        };
        let [tag_i2t, tag_t2i] = s.selected_on.direction_tags();
        match rec.get(2) {
            Some(t) if t == tag_i2t => i2t = Some(value()?),
            Some(t) if t == tag_t2i => t2i = Some(value()?),
            _ => {}
        }
    }
    let missing = || format!("{} has no validation MAP for the best epoch {}", m.display(), s.best_epoch);
    Ok(TrialRow {
        status: Status::Finished,
        val: Some([s.best_val_map_mean, i2t.with_context(missing)?, t2i.with_context(missing)?]),
        best_epoch: Some(s.best_epoch),
        epochs_run: Some(s.epochs_run),
        train_seconds: Some(s.train_seconds),
        error: String::new(),
    })
}

/// What a run folder holds before its first checkpoint: the only entries
/// [`clear_unstarted`] removes.
const RUN_ENTRIES: [&str; 10] = [
    "config.yaml",
    "env.json",
    "data.json",
    "train.lock",
    "metrics.csv",
    "untrained.json",
    "checkpoints",
    "curves",
    "tb",
    "cache",
];

/// Clears a trial folder that holds no checkpoint (a trial killed or failed before its
/// first epoch ended), so that it starts again. A folder another process trains in is
/// refused, and so is one holding anything a run does not write (not a trial's folder):
/// nothing the sweep did not create is deleted.
fn clear_unstarted(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let name = e.with_context(|| format!("cannot list {}", dir.display()))?.file_name();
        let name = name.to_string_lossy();
        let staged = name.ends_with(".tmp");
        if !RUN_ENTRIES.contains(&name.as_ref()) && !staged {
            bail!(
                "{} is in the way of a trial: it holds {name}, which a run does not write, so it is not an \
                 unstarted trial; move it away, or name another --out",
                dir.display()
            );
        }
    }
    drop(RunDir { path: dir.to_path_buf() }.lock()?);
    std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear trial folder {}", dir.display()))
}

/// `DIR/sweep.json`: the trials a sweep folder belongs to. A rerun with the same trials
/// continues; a different grid, seed list or base config in a used `--out` is refused, so
/// that one sweep's tables never replace another's.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct SweepRecord {
    command: String,
    trials: Vec<String>,
}

fn trial_names(plan: &Plan) -> Vec<String> {
    plan.trials.iter().map(|t| t.dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())).collect()
}

/// Checks that `--out` is new, or holds this same sweep, and records it there.
fn claim_out(spec: &SweepSpec, plan: &Plan) -> Result<()> {
    let path = spec.out.join("sweep.json");
    let trials = trial_names(plan);
    let recorded: Option<Vec<String>> = match crate::files::read_json_if_exists::<SweepRecord>(&path)? {
        Some(r) => Some(r.trials),
        // A sweep folder without the record: its trials.csv names the trials.
        None => match std::fs::read(spec.out.join("trials.csv")) {
            Ok(bytes) => {
                let mut r = csv::Reader::from_reader(bytes.as_slice());
                Some(r.records().filter_map(|rec| rec.ok()?.get(0).map(str::to_string)).collect())
            }
            Err(_) => None,
        },
    };
    if let Some(old) = recorded.filter(|old| *old != trials) {
        let old_only = old.iter().filter(|t| !trials.contains(t)).count();
        let new_only = trials.iter().filter(|t| !old.contains(t)).count();
        bail!(
            "--out {} holds another sweep ({} trials; {old_only} of them are not in this one, and {new_only} of this \
             sweep's are not there): a different grid, seed list or base config; name a new --out to keep both{}",
            spec.out.display(),
            old.len(),
            match crate::files::read_json_if_exists::<SweepRecord>(&path).ok().flatten() {
                Some(r) => format!(" (it was started with: {})", r.command),
                None => String::new(),
            }
        );
    }
    if !path.exists() {
        std::fs::create_dir_all(&spec.out).with_context(|| format!("cannot create {}", spec.out.display()))?;
        crate::files::write_json(&path, &SweepRecord { command: spec.command.clone(), trials })?;
    }
    Ok(())
}

/// Checks that `--best-out` can be written, before any trial trains.
fn check_best_out(p: &Path) -> Result<()> {
    ensure!(!p.is_dir(), "--best-out {} is a folder; name a YAML file", p.display());
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure!(dir.is_dir(), "--best-out {}: the folder {} does not exist", p.display(), dir.display());
    crate::files::ensure_writable(p, &format!("--best-out {}", p.display()))
}

/// One setting over its finished seeds.
#[derive(Debug, Clone)]
pub struct SettingResult {
    pub setting: usize,
    /// Mean and sample std (None below two seeds) of the validation mean MAP@all.
    pub val_mean: Option<(f64, Option<f64>)>,
    pub val_i2t: Option<f64>,
    pub val_t2i: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub finished: usize,
    pub seeds: usize,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn sample_std(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    (v.len() > 1).then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// Settings over their seeds, best validation mean MAP@all first; settings with no
/// finished seed last, in sweep order.
pub fn results(plan: &Plan, rows: &[TrialRow]) -> Vec<SettingResult> {
    let mut out: Vec<SettingResult> = (0..plan.settings.len())
        .map(|k| {
            let done: Vec<&TrialRow> = plan
                .trials
                .iter()
                .zip(rows)
                .filter(|(t, r)| t.setting == k && r.status == Status::Finished)
                .map(|(_, r)| r)
                .collect();
            let col = |j: usize| done.iter().filter_map(|r| r.val.map(|v| v[j])).collect::<Vec<f64>>();
            let means = col(0);
            SettingResult {
                setting: k,
                val_mean: mean(&means).map(|m| (m, sample_std(&means))),
                val_i2t: mean(&col(1)),
                val_t2i: mean(&col(2)),
                wall_seconds: mean(&done.iter().filter_map(|r| r.train_seconds).collect::<Vec<_>>()),
                finished: done.len(),
                seeds: plan.trials.iter().filter(|t| t.setting == k).count(),
            }
        })
        .collect();
    out.sort_by(|a, b| match (a.val_mean, b.val_mean) {
        (Some((x, _)), Some((y, _))) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

fn csv_bytes(header: Vec<String>, rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for r in rows {
        w.write_record(&r)?;
    }
    w.into_inner().map_err(|e| anyhow!("cannot write CSV: {e}"))
}

fn trials_csv(plan: &Plan, rows: &[TrialRow]) -> Result<Vec<u8>> {
    let mut header = vec!["trial".to_string(), "setting".to_string()];
    header.extend(plan.axes.iter().map(|a| a.key.clone()));
    header.extend(
        [
            "seed",
            "val_map_mean",
            "val_map_i2t",
            "val_map_t2i",
            "best_epoch",
            "epochs_run",
            "train_seconds",
            "status",
            "error",
        ]
        .map(String::from),
    );
    let body = plan
        .trials
        .iter()
        .zip(rows)
        .map(|(t, r)| {
            let s = &plan.settings[t.setting];
            let mut row = vec![t.dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())];
            row.push(s.name.clone());
            row.extend(s.values.iter().cloned());
            row.push(t.seed.to_string());
            for j in 0..3 {
                row.push(opt(r.val.map(|v| v[j])));
            }
            row.extend([opt(r.best_epoch), opt(r.epochs_run), opt(r.train_seconds)]);
            row.extend([r.status.name().to_string(), r.error.clone()]);
            row
        })
        .collect();
    csv_bytes(header, body)
}

fn results_csv(plan: &Plan, res: &[SettingResult]) -> Result<Vec<u8>> {
    let mut header = vec!["rank".to_string(), "setting".to_string()];
    header.extend(plan.axes.iter().map(|a| a.key.clone()));
    header.extend(
        ["val_map_mean", "val_map_mean_std", "val_map_i2t", "val_map_t2i", "wall_seconds", "seeds_finished", "seeds"]
            .map(String::from),
    );
    let body = res
        .iter()
        .enumerate()
        .map(|(rank, r)| {
            let s = &plan.settings[r.setting];
            let mut row = vec![(rank + 1).to_string(), s.name.clone()];
            row.extend(s.values.iter().cloned());
            row.extend([
                opt(r.val_mean.map(|m| m.0)),
                opt(r.val_mean.and_then(|m| m.1)),
                opt(r.val_i2t),
                opt(r.val_t2i),
                opt(r.wall_seconds),
                r.finished.to_string(),
                r.seeds.to_string(),
            ]);
            row
        })
        .collect();
    csv_bytes(header, body)
}

fn f4(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.4}"))
}

fn results_md(spec: &SweepSpec, plan: &Plan, rows: &[TrialRow], res: &[SettingResult]) -> String {
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let base: Vec<&str> = spec.base.iter().map(|l| l.source.as_str()).collect();
    let mut base = base.join(" + ");
    for s in &spec.sets {
        base += &format!(" + --set {s}");
    }
    let grid: Vec<String> = plan.axes.iter().map(|a| format!("`{}` ∈ {{{}}}", a.key, a.values.join(", "))).collect();
    let total: usize = plan.axes.iter().map(|a| a.values.len()).product();
    let drawn = match spec.random {
        Some(n) => format!(" ({n} of {total} settings drawn at random, sweep seed {})", spec.sweep_seed),
        None => format!(" ({total} settings)"),
    };
    let seeds: Vec<String> = spec.seeds.iter().map(u64::to_string).collect();
    let mut md = format!("# Sweep {}\n\n", spec.out.display());
    md += "**Validation only.** Every number below is validation MAP@all (validation queries against \
           the validation set) of each trial's best epoch; the test split was withheld from every trial \
           and never read.\n\n";
    md += &format!("- base: {base}\n- grid: {}{drawn}\n- seeds: {}\n", grid.join("; "), seeds.join(", "));
    md += &format!("- command: `{}`\n", spec.command);
    md += &format!(
        "- trials: {} ({} finished, {} failed, {} paused, {} pending)\n",
        rows.len(),
        count(Status::Finished),
        count(Status::Failed),
        count(Status::Paused),
        count(Status::Pending)
    );
    if let Some(b) = res.first().filter(|r| r.val_mean.is_some()) {
        md +=
            &format!("- best: `{}` ({}), overlay `best.yaml`\n", plan.settings[b.setting].name, plan.label(b.setting));
    }
    md += "\n| rank | setting |";
    for a in &plan.axes {
        md += &format!(" `{}` |", a.key);
    }
    md += " val mean MAP@all | val i2t | val t2i | wall s / trial | seeds |\n|---|---|";
    md += &"---|".repeat(plan.axes.len());
    md += "---|---|---|---|---|\n";
    for (rank, r) in res.iter().enumerate() {
        let s = &plan.settings[r.setting];
        md += &format!("| {} | {} |", rank + 1, s.name);
        for v in &s.values {
            md += &format!(" {v} |");
        }
        let score = match r.val_mean {
            Some((m, Some(sd))) => format!("{m:.4} ± {sd:.4}"),
            Some((m, None)) => format!("{m:.4}"),
            None => "—".to_string(),
        };
        md += &format!(
            " {score} | {} | {} | {} | {}/{} |\n",
            f4(r.val_i2t),
            f4(r.val_t2i),
            r.wall_seconds.map_or("—".to_string(), |s| format!("{s:.1}")),
            r.finished,
            r.seeds
        );
    }
    let failed: Vec<String> = plan
        .trials
        .iter()
        .zip(rows)
        .filter(|(_, r)| r.status == Status::Failed)
        .map(|(t, r)| format!("- `{}` (seed {}): {}\n", plan.settings[t.setting].name, t.seed, r.error))
        .collect();
    if !failed.is_empty() {
        md += &format!("\nFailed trials (rerun the sweep to retry them):\n\n{}", failed.concat());
    }
    md
}

/// The best setting's grid keys as nested mappings, under a comment header.
fn best_yaml(spec: &SweepSpec, plan: &Plan, best: &SettingResult) -> Result<String> {
    let s = &plan.settings[best.setting];
    let mut root = Value::Mapping(Mapping::new());
    for (a, v) in plan.axes.iter().zip(&s.values) {
        let leaf: Value = serde_yaml::from_str(v).with_context(|| format!("--grid {}: cannot parse {v:?}", a.key))?;
        let mut cur = &mut root;
        let parts: Vec<&str> = a.key.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let m = cur.as_mapping_mut().context("grid keys overlap")?;
            let k = Value::String(p.to_string());
            if i + 1 == parts.len() {
                m.insert(k, leaf.clone());
                break;
            }
            if !m.contains_key(&k) {
                m.insert(k.clone(), Value::Mapping(Mapping::new()));
            }
            cur = m.get_mut(&k).expect("just inserted");
        }
    }
    let (m, sd) = best.val_mean.context("the best setting has no finished trial")?;
    let sd = sd.map_or(String::new(), |sd| format!(" ± {sd:.4}"));
    let seeds: Vec<String> = spec.seeds.iter().map(u64::to_string).collect();
    let base: Vec<&str> = spec.base.iter().map(|l| l.source.as_str()).collect();
    let mut head = format!(
        "# Best setting of the sweep in {} (validation only: no trial read the test split):\n\
         # {} ({}), validation mean MAP@all {m:.4}{sd} over seeds {} ({} of {} finished).\n\
         # An overlay over the sweep's base ({}",
        spec.out.display(),
        s.name,
        plan.label(best.setting),
        seeds.join(","),
        best.finished,
        best.seeds,
        base.join(" + ")
    );
    if !spec.sets.is_empty() {
        head += &format!(", then --set {}", spec.sets.join(" --set "));
    }
    head += "): pass it as --config FILE.\n";
    Ok(head + &serde_yaml::to_string(&root)?)
}

/// What a sweep left behind.
#[derive(Debug)]
pub struct SweepOutcome {
    pub plan: Plan,
    pub rows: Vec<TrialRow>,
    pub results: Vec<SettingResult>,
    /// True when the `stop_after` hook paused a trial and the sweep stopped.
    pub stopped: bool,
}

fn write_outputs(spec: &SweepSpec, plan: &Plan, rows: &[TrialRow]) -> Result<Vec<SettingResult>> {
    let res = results(plan, rows);
    write_atomic(&spec.out.join("trials.csv"), &trials_csv(plan, rows)?)?;
    write_atomic(&spec.out.join("results.csv"), &results_csv(plan, &res)?)?;
    write_atomic(&spec.out.join("results.md"), results_md(spec, plan, rows, &res).as_bytes())?;
    let best_path = spec.out.join("best.yaml");
    match res.first().filter(|r| r.val_mean.is_some()) {
        Some(best) => {
            let y = best_yaml(spec, plan, best)?;
            write_atomic(&best_path, y.as_bytes())?;
            if let Some(p) = &spec.best_out {
                write_atomic(p, y.as_bytes())?;
            }
        }
        // No setting of this grid has finished yet: a best.yaml left by another grid goes.
        None if best_path.exists() => {
            std::fs::remove_file(&best_path).with_context(|| format!("cannot remove {}", best_path.display()))?
        }
        None => {}
    }
    Ok(res)
}

/// Plans the sweep, then trains (or skips, resumes, restarts) each trial in order,
/// rewriting the tables after each one.
pub fn run(spec: &SweepSpec) -> Result<SweepOutcome> {
    let plan = plan(spec)?;
    if let Some(p) = &spec.best_out {
        check_best_out(p)?;
    }
    std::fs::create_dir_all(&spec.out).with_context(|| format!("cannot create {}", spec.out.display()))?;
    // One sweep at a time in a folder (the lock file is `DIR/train.lock`).
    let _lock = RunDir { path: spec.out.clone() }.lock()?;
    claim_out(spec, &plan)?;
    std::fs::create_dir_all(&plan.runs).with_context(|| format!("cannot create {}", plan.runs.display()))?;
    let mut rows: Vec<TrialRow> = plan
        .trials
        .iter()
        .map(|t| match t.dir.join("summary.json").is_file() {
            true => read_finished(&t.dir).unwrap_or_else(|e| TrialRow::failed(&e)),
            false => TrialRow::default(),
        })
        .collect();
    write_outputs(spec, &plan, &rows)?;
    let n = plan.trials.len();
    for (i, t) in plan.trials.iter().enumerate() {
        let what = format!("trial {}/{n} (setting {}, seed {})", i + 1, plan.label(t.setting), t.seed);
        if t.dir.join("summary.json").is_file() {
            match (&rows[i].val, rows[i].status) {
                (Some(v), Status::Finished) => println!("{what}: val mean MAP@all {:.4}, finished earlier", v[0]),
                _ => println!("{what}: FAILED: {}", rows[i].error),
            }
            continue;
        }
        let pause = spec.stop_after.filter(|s| s.0 == i + 1).map(|s| s.1);
        let opts = TrainOptions {
            stop_after_epoch: pause,
            validation_only: true,
            run_dir: Some(t.dir.clone()),
            ..Default::default()
        };
        let resuming = crate::run::checkpoint::checkpoint_exists(&t.dir, "last");
        eprintln!("{what}: {}", if resuming { "resuming" } else { "training" });
        let t0 = Instant::now();
        // A panic inside libtorch (out of memory, say) fails this trial, not the sweep.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if resuming {
                fit::resume(&t.dir, &opts)
            } else {
                if t.dir.exists() {
                    clear_unstarted(&t.dir)?;
                }
                fit::train(&t.cfg, &plan.runs, &opts)
            }
        }))
        .unwrap_or_else(|p| {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(anyhow!("panicked: {}", msg.unwrap_or_else(|| "(no message)".to_string())))
        });
        if let Some(stop) = outcome.as_ref().err().and_then(crate::stop::interrupted) {
            write_outputs(spec, &plan, &rows)?;
            return Err(crate::stop::Interrupted {
                signal: stop.signal,
                next: format!(
                    "the sweep stopped during trial {}/{n}, which resumes from its last checkpoint; run the same \
                     command again to continue: {}",
                    i + 1,
                    spec.command
                ),
            }
            .into());
        }
        let secs = t0.elapsed().as_secs_f64();
        let resumed = if resuming { " (resumed)" } else { "" };
        rows[i] = match outcome {
            Ok(Outcome::Finished(_)) => read_finished(&t.dir).unwrap_or_else(|e| TrialRow::failed(&e)),
            Ok(Outcome::Paused { epoch, .. }) => {
                println!("{what}: paused after epoch {epoch}{resumed}");
                TrialRow { status: Status::Paused, ..Default::default() }
            }
            Err(e) => TrialRow::failed(&e),
        };
        match rows[i].status {
            Status::Finished => println!(
                "{what}: val mean MAP@all {:.4} in {secs:.1} s{resumed}",
                rows[i].val.map_or(f64::NAN, |v| v[0])
            ),
            Status::Failed => println!("{what}: FAILED after {secs:.1} s: {}", rows[i].error),
            _ => {}
        }
        let res = write_outputs(spec, &plan, &rows)?;
        if rows[i].status == Status::Paused {
            println!("sweep stopped during trial {}/{n}; rerun the same command to continue", i + 1);
            return Ok(SweepOutcome { plan, rows, results: res, stopped: true });
        }
    }
    let res = write_outputs(spec, &plan, &rows)?;
    ensure!(
        rows.iter().any(|r| r.status == Status::Finished),
        "every trial of the sweep failed; see {}",
        spec.out.join("trials.csv").display()
    );
    Ok(SweepOutcome { plan, rows, results: res, stopped: false })
}
