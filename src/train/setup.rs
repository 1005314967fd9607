//! What every training starts from: libtorch and the Rust RNG seeded, the model built on
//! the prepared data's device, and its optimizer.

use crate::config::Config;
use crate::model::{model, Model, TrainingHeads};
use crate::prepare::Prepared;
use crate::train::optim::Adam;
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::nn::VarStore;

/// Builds the model on the data's device, with L̃ from the prepared graph.
pub fn build_model(cfg: &Config, data: &Prepared) -> (VarStore, Model) {
    let vs = VarStore::new(data.device);
    let heads = TrainingHeads {
        classes: (cfg.loss.label > 0.0).then_some(data.classes.len()),
        temperature: cfg.loss.learn_temperature.then_some(cfg.loss.temperature),
    };
    let graph = data.graph_inputs(&cfg.model.text, data.device);
    let m = model(&vs.root(), &cfg.model, data.vocab.len(), data.image_dim, graph, heads);
    (vs, m)
}

/// Adam for `cfg.train` over the model's parameters, with the L2 term's gradient
/// (`loss.l2`) applied as coupled decay of the penalised weights.
pub fn optimizer(cfg: &Config, vs: &VarStore, m: &Model) -> Result<Adam> {
    let mut opt = Adam::new(vs);
    opt.weight_decay = cfg.train.weight_decay;
    if cfg.loss.l2 > 0.0 {
        opt.set_l2(&m.l2_weights(cfg.loss.l2_biases), cfg.loss.l2)?;
    }
    if let Some(d) = cfg.train.ema {
        opt.set_ema(d);
    }
    Ok(opt)
}

/// Seeds libtorch for model initialisation; each epoch then reseeds both libtorch and its
/// own Rust RNG from (seed, epoch) (see `seed_epoch`).
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
}

/// Per-epoch seeding: epoch e's pairs, shuffles and dropout masks depend only on
/// (seed, e), so a resumed run draws exactly what an uninterrupted one would.
pub fn seed_epoch(seed: u64, epoch: usize) -> ChaCha8Rng {
    tch::manual_seed((seed as i64).wrapping_mul(1_000_003).wrapping_add(epoch as i64));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

/// libtorch's random generator is one per process: two trainings on two threads would
/// interleave their draws (initialisation, dropout) and neither would be reproducible. A
/// training holds this lock from seeding to its last draw; a second one waits.
pub(crate) fn exclusive_rng() -> std::sync::MutexGuard<'static, ()> {
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A training that failed with an error (or panicked) leaves nothing half-done behind
    // the lock: the next one reseeds everything.
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}
