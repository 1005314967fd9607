//! A finished run loaded back: rebuilt from its own config with the checkpoint it was
//! tested with, for `tgcn eval`, `tgcn export` and everything in `retrieve`.

use crate::config::Config;
use crate::eval::{Ranker, Retrieval, EVAL_BATCH};
use crate::model::Model;
use crate::prepare::{prepare, resolve_device, Prepared};
use crate::run::checkpoint::load_checkpoint;
use crate::run::export;
use crate::run::RunDir;
use crate::train::fit::refits;
use crate::train::setup::{build_model, exclusive_rng, seed_everything};
use crate::train::test_eval::{report_table, test_retrievals, write_curves_or_warn};
use anyhow::Result;
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
        let mut data = prepare(&cfg, resolve_device(cfg.device)?, run.cache_dir().as_deref())?;
        run.check_fingerprint(&data)?;
        let refit = refits(&cfg, run.validation_only());
        if refit {
            data.include_val_in_train();
        }
        let (mut vs, model) = build_model(&cfg, &data);
        let meta = load_checkpoint(&mut vs, None, &run, Trained::checkpoint_tag(refit), &cfg.hash()?)?;
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
