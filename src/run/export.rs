//! TorchScript export: three modules traced from Rust after freezing the weights, plus a
//! JSON manifest and the vocabulary.
//!
//! - `text_encoder.pt`: bow `[B, V]` (f32 word counts, vertex order = `vocab.txt`) → `[B, D]`
//! - `image_encoder.pt`: raw image features `[B, F]` → `[B, D]`; the train-split
//!   normalisation is inside the module
//! - `scorer.pt`: (text `[Nt, D]`, image `[Ni, D]`) → scores `[Nt, Ni]`, the scores the
//!   evaluation ranks by (`eval.ranking`: the trained scorer, or the class posteriors)
//!
//! The model is rebuilt on the CPU for tracing, whatever device trained it, so the
//! modules load anywhere. The sparse L̃ is built inside the traced closure from dense
//! index/value tensors (a sparse tensor captured from outside cannot be traced). Batch
//! dimensions are kept free (flatten/unflatten with −1), so any batch size works.
//! `example/` holds inputs and the Rust outputs as `.npy` for checking a loader.

use crate::config::Config;
use crate::eval::{Ranker, Retrieval};
use crate::files::{write_atomic, write_json};
use crate::model::model;
use crate::prepare::Prepared;
use crate::run::RunDir;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::nn::{Module, VarStore};
use tch::{CModule, Device, Tensor};

fn trace<F>(name: &str, inputs: &[Tensor], path: &Path, mut f: F) -> Result<()>
where
    F: FnMut(&[Tensor]) -> Vec<Tensor>,
{
    let m =
        CModule::create_by_tracing(name, "forward", inputs, &mut f).with_context(|| format!("cannot trace {name}"))?;
    m.save(path).with_context(|| format!("cannot save {}", path.display()))
}

fn npy(t: &Tensor, path: &Path) -> Result<()> {
    t.write_npy(path).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `run/export/` (through `export.partial/` and a rename) and returns its path.
pub fn export_run(
    cfg: &Config,
    data: &Prepared,
    trained: &VarStore,
    ranker: &Ranker,
    run: &RunDir,
    test: &[Retrieval],
) -> Result<PathBuf> {
    let cpu = Device::Cpu;
    let mut vs = VarStore::new(cpu);
    let m = model(
        &vs.root(),
        &cfg.model,
        data.vocab.len(),
        data.image_dim,
        data.laplacian.to_tensors(cpu),
        Default::default(),
    );
    vs.copy(trained).context("cannot copy the trained weights for export")?;
    vs.freeze();
    let shift = data.image_norm.shift.to_device(cpu);
    let scale = data.image_norm.scale.to_device(cpu);
    let norm = crate::prepare::ImageNormalizer { kind: data.image_norm.kind, sqrt: data.image_norm.sqrt, shift, scale };

    let dir = run.join("export.partial");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(dir.join("example"))?;
    let n = data.test.len().min(4) as i64;
    let bow = data.test.bow.narrow(0, 0, n).to_device(cpu);
    let img = data.test.images_raw.narrow(0, 0, n).to_device(cpu);

    trace("TextEncoder", &[bow.shallow_clone()], &dir.join("text_encoder.pt"), |x| vec![m.text.forward(&x[0])])?;
    trace("ImageEncoder", &[img.shallow_clone()], &dir.join("image_encoder.pt"), |x| {
        vec![m.image.forward(&norm.apply(&x[0]))]
    })?;
    let (t_out, i_out) = tch::no_grad(|| (m.text.forward(&bow), m.image.forward(&norm.apply(&img))));
    // The scores the evaluation ranks by: the trained scorer, or the class posteriors
    // (their train-split class means become constants of the traced module).
    let ranker = ranker.to_device(cpu);
    let score = |t: &Tensor, i: &Tensor| ranker.matrix(&m, &ranker.represent_text(t), &ranker.represent_image(i));
    trace("Scorer", &[t_out.shallow_clone(), i_out.shallow_clone()], &dir.join("scorer.pt"), |x| {
        vec![score(&x[0], &x[1])]
    })?;
    let s_out = tch::no_grad(|| score(&t_out, &i_out));

    let ex = dir.join("example");
    npy(&bow, &ex.join("text_input.npy"))?;
    npy(&t_out, &ex.join("text_output.npy"))?;
    npy(&img, &ex.join("image_input.npy"))?;
    npy(&i_out, &ex.join("image_output.npy"))?;
    npy(&s_out, &ex.join("score_output.npy"))?;
    write_atomic(&dir.join("vocab.txt"), (data.vocab.words.join("\n") + "\n").as_bytes())?;

    let metrics: Vec<serde_json::Value> = test
        .iter()
        .map(|r| {
            serde_json::json!({
                "protocol": r.protocol,
                "map_all_i2t": r.i2t.map_all, "map_all_t2i": r.t2i.map_all, "map_all_mean": r.map_all_mean(),
                "k": r.i2t.k, "map_k_i2t": r.i2t.map_k, "map_k_t2i": r.t2i.map_k, "map_k_mean": r.map_k_mean(),
                "relevance": r.relevance,
                "recall_i2t": r.i2t.recall, "recall_t2i": r.t2i.recall,
                "median_rank_i2t": r.i2t.median_rank, "median_rank_t2i": r.t2i.median_rank,
            })
        })
        .collect();
    let d = cfg.model.embed_dim;
    let manifest = serde_json::json!({
        "format": "torchscript",
        "dataset": data.dataset_name,
        "config_hash": cfg.hash()?,
        "trained_on": if data.val_in_train { "train ∪ validation (refit)" } else { "train" },
        "modules": {
            "text_encoder.pt": {"inputs": [{"name": "bow", "shape": ["B", data.vocab.len()], "dtype": "float32"}],
                                 "output": {"shape": ["B", d], "dtype": "float32"}},
            "image_encoder.pt": {"inputs": [{"name": "features", "shape": ["B", data.image_dim], "dtype": "float32"}],
                                  "output": {"shape": ["B", d], "dtype": "float32"}},
            "scorer.pt": {"inputs": [{"name": "text_embedding", "shape": ["Nt", d], "dtype": "float32"},
                                      {"name": "image_embedding", "shape": ["Ni", d], "dtype": "float32"}],
                           "output": {"shape": ["Nt", "Ni"], "dtype": "float32"}},
        },
        "vocabulary_file": "vocab.txt",
        "vocabulary_size": data.vocab.len(),
        "preprocessing": {
            "text": "bag-of-words counts of the tokens in vocab.txt order (line i = vertex i); out-of-vocabulary tokens are ignored",
            "tokenizer": if cfg.text.lowercase {
                "the dataset's tokens, lowercased (text.lowercase; synthetic: whitespace-separated words)"
            } else {
                "the dataset's tokens (synthetic: whitespace-separated words)"
            },
            "image": format!(
                "raw features; the module applies {}{:?} normalisation fitted on the train split",
                if data.image_norm.sqrt { "√x, then " } else { "" },
                cfg.data.image_norm
            ),
        },
        "scorer": format!("{:?}", cfg.model.scorer),
        "ranking": ranker.name(),
        "ranking_note": format!("scorer.pt gives {}", ranker.describe()),
        "metrics_at_export": metrics,
        "example": {
            "files": ["example/text_input.npy", "example/text_output.npy", "example/image_input.npy",
                       "example/image_output.npy", "example/score_output.npy"],
            "note": "Rust outputs on these inputs; a loader should match them within 1e-5",
        },
    });
    write_json(&dir.join("manifest.json"), &manifest)?;
    let dst = run.join("export");
    if dst.exists() {
        std::fs::remove_dir_all(&dst).with_context(|| format!("cannot replace {}", dst.display()))?;
    }
    std::fs::rename(&dir, &dst).with_context(|| format!("cannot move the export to {}", dst.display()))?;
    eprintln!("exported TorchScript modules to {}", dst.display());
    Ok(dst)
}
