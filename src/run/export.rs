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

extern "C" {
    fn tgcn_module_bytes(
        module: *mut std::ffi::c_void,
        sink: extern "C" fn(*mut std::ffi::c_void, *const u8, usize),
        ctx: *mut std::ffi::c_void,
    ) -> i32;
    fn tgcn_module_bytes_error() -> *const std::os::raw::c_char;
}

/// A traced module serialised into memory (`csrc/module_bytes.cpp`): libtorch's own file
/// writer ends the process when the disk fills, so the bytes are written from Rust instead.
fn module_bytes(m: &CModule) -> Result<Vec<u8>> {
    // tch's CModule holds exactly one pointer to the C++ `torch::jit::Module`.
    const _: () = assert!(std::mem::size_of::<CModule>() == std::mem::size_of::<*mut std::ffi::c_void>());
    extern "C" fn sink(ctx: *mut std::ffi::c_void, data: *const u8, len: usize) {
        // SAFETY: ctx is the Vec passed below; data/len are the C++ string's bytes.
        unsafe { (*(ctx as *mut Vec<u8>)).extend_from_slice(std::slice::from_raw_parts(data, len)) }
    }
    let mut out: Vec<u8> = Vec::new();
    // SAFETY: the module pointer is read from tch's one-pointer wrapper (size checked above)
    // and stays valid for the call; the sink only appends to `out`.
    let rc = unsafe {
        let module = *(m as *const CModule as *const *mut std::ffi::c_void);
        tgcn_module_bytes(module, sink, &mut out as *mut Vec<u8> as *mut std::ffi::c_void)
    };
    if rc != 0 {
        // SAFETY: a NUL-terminated thread-local string owned by the C++ side.
        let msg = unsafe { std::ffi::CStr::from_ptr(tgcn_module_bytes_error()) }.to_string_lossy().into_owned();
        anyhow::bail!("cannot serialise the module: {}", msg.lines().next().unwrap_or(""));
    }
    Ok(out)
}

fn trace<F>(name: &str, inputs: &[Tensor], path: &Path, mut f: F) -> Result<()>
where
    F: FnMut(&[Tensor]) -> Vec<Tensor>,
{
    let m =
        CModule::create_by_tracing(name, "forward", inputs, &mut f).with_context(|| format!("cannot trace {name}"))?;
    write_atomic(path, &module_bytes(&m).with_context(|| format!("cannot save {}", path.display()))?)
}

fn npy(t: &Tensor, path: &Path) -> Result<()> {
    t.write_npy(path).with_context(|| format!("cannot write {}{}", path.display(), crate::files::disk_full_hint(path)))
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
        data.graph_inputs(&cfg.model.text, cpu),
        Default::default(),
    );
    vs.copy(trained).context("cannot copy the trained weights for export")?;
    vs.freeze();
    let shift = data.image_norm.shift.to_device(cpu);
    let scale = data.image_norm.scale.to_device(cpu);
    let norm = crate::prepare::ImageNormalizer { kind: data.image_norm.kind, sqrt: data.image_norm.sqrt, shift, scale };

    let dir = run.join("export.partial");
    let dst = run.join("export");
    let written = write_export(cfg, data, &m, &norm, ranker, &dir, test);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dir);
        let kept = if dst.is_dir() { "the previous export is unchanged" } else { "nothing was exported" };
        return Err(e.context(format!("the export to {} was not written; {kept}", dst.display())));
    }
    // The previous export is moved aside, not removed, until the new one is in place.
    let old = run.join("export.old");
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    if dst.exists() {
        std::fs::rename(&dst, &old).with_context(|| format!("cannot move {} aside", dst.display()))?;
    }
    std::fs::rename(&dir, &dst).with_context(|| format!("cannot move the export to {}", dst.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    eprintln!("exported TorchScript modules to {}", dst.display());
    if cfg.export.onnx {
        export_with_python(&run.path);
    }
    Ok(dst)
}

/// Writes the export's files into `dir` (created afresh).
fn write_export(
    cfg: &Config,
    data: &Prepared,
    m: &crate::model::Model,
    norm: &crate::prepare::ImageNormalizer,
    ranker: &Ranker,
    dir: &Path,
    test: &[Retrieval],
) -> Result<()> {
    let cpu = Device::Cpu;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("example")).with_context(|| format!("cannot create {}", dir.display()))?;
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
    let score = |t: &Tensor, i: &Tensor| ranker.matrix(m, &ranker.represent_text(t), &ranker.represent_image(i));
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
    write_pytorch_inputs(cfg, data, &ranker, dir)
}

fn safetensors(tensors: &[(&str, Tensor)], path: &Path) -> Result<()> {
    Tensor::write_safetensors(tensors, path)
        .with_context(|| format!("cannot write {}{}", path.display(), crate::files::disk_full_hint(path)))
}

/// What the Python package `tgcn_torch` (`load_run`) needs beside the run's `config.yaml`
/// and tested checkpoint: L̃ (`laplacian.safetensors`: COO `indices [2, nnz]` i64 sorted
/// by row, `values [nnz]` f32), the train-split image normalisation
/// (`image_norm.safetensors`: `shift`, `scale` `[F]`), the ranker's constants
/// (`ranker.safetensors`: class means or the label classifier) and `pytorch.json` naming
/// them with the settings that are not tensors.
fn write_pytorch_inputs(cfg: &Config, data: &Prepared, ranker: &Ranker, dir: &Path) -> Result<()> {
    let cpu = Device::Cpu;
    let (indices, values) = data.laplacian.to_tensors(cpu);
    let mut lap = vec![("indices", indices), ("values", values)];
    if let Some(own) = crate::model::own_input_vertices(&cfg.model.text, &data.vocab.counts) {
        lap.push(("own_vertices", Tensor::from_slice(&own)));
    }
    // `graph.combine: separate`: each relation's L̃ as indices_<relation>, values_<relation>.
    let names: Vec<(String, String)> =
        data.relation_laplacians.iter().map(|(n, _)| (format!("indices_{n}"), format!("values_{n}"))).collect();
    for ((i, v), (_, l)) in names.iter().zip(&data.relation_laplacians) {
        let (idx, vals) = l.to_tensors(cpu);
        lap.push((i.as_str(), idx));
        lap.push((v.as_str(), vals));
    }
    safetensors(&lap, &dir.join("laplacian.safetensors"))?;
    let norm = &data.image_norm;
    safetensors(
        &[("shift", norm.shift.to_device(cpu)), ("scale", norm.scale.to_device(cpu))],
        &dir.join("image_norm.safetensors"),
    )?;
    let ranking = match ranker {
        Ranker::Scorer => serde_json::json!({"kind": ranker.name()}),
        Ranker::Posterior(c) => {
            let present = c.present.to_kind(tch::Kind::Uint8);
            safetensors(
                &[
                    ("text_means", c.text.shallow_clone()),
                    ("image_means", c.image.shallow_clone()),
                    ("present", present),
                ],
                &dir.join("ranker.safetensors"),
            )?;
            serde_json::json!({"kind": ranker.name(), "file": "ranker.safetensors", "temperature": c.temperature})
        }
        Ranker::Classifier(c) => {
            safetensors(
                &[("weight", c.weight.shallow_clone()), ("bias", c.bias.shallow_clone())],
                &dir.join("ranker.safetensors"),
            )?;
            serde_json::json!({"kind": ranker.name(), "file": "ranker.safetensors", "multi_label": c.multi_label})
        }
    };
    let tag = if data.val_in_train { "refit" } else { "best" };
    // The checkpoint these constants belong to, so that a loader can tell a stale export.
    let sidecar = format!("checkpoints/{tag}.json");
    let run_dir = dir.parent().unwrap_or(Path::new("."));
    let sha = crate::files::read_json_if_exists::<serde_json::Value>(&run_dir.join(&sidecar))?
        .and_then(|v| v.get("weights_sha256").cloned());
    let info = serde_json::json!({
        "checkpoint": format!("checkpoints/{tag}.safetensors"),
        "checkpoint_sidecar": sidecar,
        "weights_sha256": sha,
        "vocabulary_file": "vocab.txt",
        "vocabulary_size": data.vocab.len(),
        "image_dim": data.image_dim,
        "classes": data.classes,
        "multi_label": data.multi_label,
        "laplacian": {
            "file": "laplacian.safetensors",
            "lambda_max": data.lambda_max,
            "relations": data.relation_laplacians.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        },
        "image_norm": {"file": "image_norm.safetensors", "kind": cfg.data.image_norm, "sqrt": norm.sqrt},
        "ranking": ranking,
        "pre_tokenized": crate::prepare::dataset::pre_tokenized(cfg),
    });
    write_json(&dir.join("pytorch.json"), &info)
}

/// The Python that writes the `.pt2` and `.onnx` modules: `TGCN_PYTHON`, else the venv of
/// the source tree this binary was built from.
fn project_python() -> PathBuf {
    match std::env::var_os("TGCN_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

/// Runs `python -m tgcn_torch.export RUN` (the package from this source tree's `python/`).
/// The TorchScript export is complete by then, so a missing Python or package, or a failure
/// there, is reported on one line and the run goes on.
fn export_with_python(run: &Path) {
    let python = project_python();
    if !python.exists() {
        eprintln!(
            "no .pt2/.onnx export: {} is absent (`make setup` installs it with the tgcn_torch package)",
            python.display()
        );
        return;
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let path = match std::env::var_os("PYTHONPATH") {
        Some(p) if !p.is_empty() => {
            std::env::join_paths(std::iter::once(package.clone()).chain(std::env::split_paths(&p))).unwrap_or_default()
        }
        _ => package.into_os_string(),
    };
    let out =
        std::process::Command::new(&python).args(["-m", "tgcn_torch.export"]).arg(run).env("PYTHONPATH", path).output();
    match out {
        Ok(o) if o.status.success() => eprint!("{}", String::from_utf8_lossy(&o.stderr)),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            eprintln!("no .pt2/.onnx export ({} -m tgcn_torch.export failed): {last}", python.display());
        }
        Err(e) => eprintln!("no .pt2/.onnx export: cannot run {}: {e}", python.display()),
    }
}
