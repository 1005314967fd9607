//! A finished run loaded back: rebuilt from its own config with the checkpoint it was
//! tested with, for `tgcn eval`, `tgcn export` and everything in `retrieve`.

use crate::config::Config;
use crate::eval::{Ranker, Retrieval, EVAL_BATCH};
use crate::model::Model;
use crate::prepare::{prepare, resolve_device, Prepared};
use crate::run::checkpoint::{checkpoint_exists, load_checkpoint, read_meta};
use crate::run::export;
use crate::run::RunDir;
use crate::train::fit::refits;
use crate::train::setup::{build_model, exclusive_rng, seed_everything};
use crate::train::test_eval::{report_table, test_retrievals, write_curves_or_warn};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;

/// A finished run, rebuilt from its own config with the checkpoint it was tested with
/// loaded: `best`, or `refit` (on train ∪ validation) with `train.refit`.
pub struct Trained {
    pub run: RunDir,
    pub cfg: Config,
    pub data: Prepared,
    pub vs: VarStore,
    pub model: Model,
    /// What the evaluation ranks by (`eval.ranking`), fitted to the loaded checkpoint.
    pub ranker: Ranker,
    /// The epoch of the best checkpoint (also the refit's epoch count).
    pub epoch: usize,
    /// The model is the refit on train ∪ validation (`data.train` then holds both).
    pub refit: bool,
}

impl Trained {
    pub fn load(run_dir: &Path) -> Result<Trained> {
        let run = RunDir::open(run_dir)?;
        let cfg = run.config()?;
        // Seeding and initialising draw from libtorch's one generator: not while another
        // thread trains (its dropout masks would change).
        let _one_at_a_time = exclusive_rng();
        seed_everything(cfg.seed);
        let mut data = prepare(&cfg, resolve_device(cfg.device)?, Some(&run.cache_dir()))?;
        run.check_fingerprint(&data)?;
        let refit = refits(&cfg, run.validation_only());
        if refit {
            data.include_val_in_train();
        }
        let (mut vs, model) = build_model(&cfg, &data);
        let tag = Trained::checkpoint_tag(refit);
        if !checkpoint_exists(&run.path, tag) {
            bail!("{}", not_loadable(&run, &cfg, tag));
        }
        let meta = load_checkpoint(&mut vs, None, &run, tag, &run.config_hash()?)?;
        let ranker = Ranker::new(&model, &data, &cfg.eval, EVAL_BATCH)?;
        Ok(Trained { run, cfg, data, vs, model, ranker, epoch: meta.epoch, refit })
    }

    fn checkpoint_tag(refit: bool) -> &'static str {
        if refit {
            "refit"
        } else {
            "best"
        }
    }

    /// Which checkpoint this is, for messages and reports.
    pub fn describe(&self) -> String {
        match self.refit {
            true => format!("refit on train ∪ validation for the selected {} epochs", self.epoch),
            false => format!("best checkpoint, epoch {}", self.epoch),
        }
    }
}

/// Why run `run` has no checkpoint `tag` to load, and what to do next: it is training now,
/// it stopped before the selection or mid-refit (`tgcn train --resume`), or it stopped
/// before its first epoch was saved (start it again).
fn not_loadable(run: &RunDir, cfg: &Config, tag: &str) -> String {
    let dir = run.path.display();
    let resume = format!("`tgcn train --resume {dir}`");
    if let Some(pid) = run.training_pid() {
        return format!(
            "run {dir} is still training (process {pid}) and has no `{tag}` checkpoint yet; wait for it to finish"
        );
    }
    let epochs = cfg.train.epochs;
    let meta = |t: &str| read_meta(run, t).ok().flatten();
    if run.join("summary.json").exists() {
        return format!(
            "run {dir} finished but its checkpoint `{tag}` is missing ({}): the run cannot be loaded; train it again",
            run.join("checkpoints").join(format!("{tag}.json")).display()
        );
    }
    if tag == "refit" && run.join("checkpoints/selected.json").exists() {
        let done = meta("refit_last").map_or(0, |m| m.epoch);
        return format!(
            "run {dir} stopped in the middle of its refit on train ∪ validation ({done} refit epoch(s) saved), so it \
             has no tested model yet; finish it with {resume}"
        );
    }
    match meta("last") {
        Some(m) => format!(
            "run {dir} stopped before training finished (epoch {} of {epochs} saved), so it has no tested model \
             yet; finish it with {resume}",
            m.epoch
        ),
        None => run.never_saved(),
    }
}

/// `tgcn eval --run DIR`: rebuild from the run's config, load its tested checkpoint,
/// evaluate the test split under both protocols.
pub fn eval_run(run_dir: &Path) -> Result<Vec<Retrieval>> {
    let t = Trained::load(run_dir)?;
    eprintln!("loaded the {} from {}", t.describe(), t.run.path.display());
    let test = test_retrievals(&t.cfg, &t.model, &t.ranker, &t.data)?;
    println!(
        "{}",
        report_table(&t.data.dataset_name, t.cfg.data.dataset == crate::config::DatasetKind::Synthetic, &test, None)
    );
    write_curves_or_warn(&t.run, &test);
    Ok(test)
}

/// `tgcn export --run DIR`: rebuild, load the tested checkpoint, write `export/` again.
pub fn export_existing(run_dir: &Path) -> Result<PathBuf> {
    let t = Trained::load(run_dir)?;
    let test = test_retrievals(&t.cfg, &t.model, &t.ranker, &t.data)?;
    write_curves_or_warn(&t.run, &test);
    export::export_run(&t.cfg, &t.data, &t.vs, &t.ranker, &t.run, &test)
}
