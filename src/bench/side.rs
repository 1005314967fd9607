//! `tgcn bench-side`: the Rust side of `make bench-compare` (scripts/bench_compare.py runs
//! it and the PyTorch side alternately, in one command, and prints both medians and their
//! ratio).
//!
//! `--case workload` prepares the dataset of the config (through the data cache) and
//! writes what both sides read into the workload folder, so they time the same inputs:
//! - `meta.json`: shapes and where the data came from;
//! - `lap_indices.npy` `[2, nnz]` int64 and `lap_values.npy` `[nnz]` f32: L̃;
//! - `train_bow.npy` `[n, V]`, `train_images.npy` `[n, F]` (normalised as training sees
//!   them), `train_labels.npy` `[n, C]`; `test_labels.npy` `[m, C]`;
//! - `corpus.txt`: the train texts, one per line, tokens separated by spaces;
//! - `vectors.npy` `[V, d]`: Gaussian vectors of the skip-gram dimension (the kNN case);
//! - `test_text.npy`, `test_image.npy` `[m, D]`: Gaussian embeddings (the ranking case);
//!   `large_text.npy`, `large_image.npy` `[20000, D]` and `large_labels.npy` (`rank-large`).
//!
//! The other cases time one workload, after `warmup` untimed repeats:
//! - `step`: one optimizer step of `tgcn train` with this config: the epoch-1 batches of
//!   the training loop ([`fit::epoch_batches`]), forward, every loss term, one read back
//!   of the values, backward and the Adam update ([`fit::step_loss`]). The batches are
//!   written to `step-<name>.npy` so that the PyTorch side takes the same rows.
//! - `skipgram`: `vectors.skipgram` on `corpus.txt`, the whole training.
//! - `knn`: the k-nearest-neighbour search on `vectors.npy`, the symmetric graph and L̃.
//! - `rank`: both directions of test-vs-test ranking with MAP@all, MAP@k, precision@k and
//!   the PR curve, in query chunks of `eval.chunk`; `rank-large` the same on
//!   `large_{text,image,labels}.npy`, 20,000 items of 10 random classes.
//!
//! The result is one JSON line on stdout: `{"case", "name", "times_s", "median_s", "detail"}`.

use crate::config::Config;
use crate::graph::knn::cosine_knn;
use crate::graph::laplacian::rescaled_laplacian;
use crate::graph::word_graph::Graph;
use crate::prepare::{load_dataset, prepare};
use crate::text::skipgram::train_skipgram;
use crate::train::seed_everything;
use crate::train::setup::{build_model, optimizer, seed_epoch};
use crate::train::step::{epoch_batches, step_loss, Batch};
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The workloads `tgcn bench-side --case` runs.
pub const CASES: [&str; 6] = ["workload", "step", "skipgram", "knn", "rank", "rank-large"];

/// Embedding width of the ranking cases' Gaussian embeddings (the recipe's).
const RANK_DIM: i64 = 1024;

/// Items of the large ranking case (`rank-large`): queries and database alike.
const RANK_LARGE: i64 = 20_000;

fn npy(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.npy"))
}

fn write(t: &Tensor, dir: &Path, name: &str) -> Result<()> {
    let path = npy(dir, name);
    t.to_device(Device::Cpu).contiguous().write_npy(&path).with_context(|| format!("cannot write {}", path.display()))
}

fn read(dir: &Path, name: &str) -> Result<Tensor> {
    let path = npy(dir, name);
    ensure!(path.exists(), "{} is absent: run `tgcn bench-side --case workload` first", path.display());
    Tensor::read_npy(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// Times `f` `repeats` times after `warmup` untimed calls; seconds per call.
fn time<F: FnMut() -> Result<()>>(warmup: usize, repeats: usize, mut f: F) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

/// Runs one case on CPU and returns its JSON result line.
pub fn run(cfg: &Config, case: &str, dir: &Path, cache: &Path, warmup: usize, repeats: usize) -> Result<String> {
    ensure!(repeats > 0, "--repeats must be at least 1");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let device = Device::Cpu;
    let (times, detail) = match case {
        "workload" => (vec![], write_workload(cfg, dir, cache)?),
        "step" => step(cfg, dir, cache, warmup, repeats)?,
        "skipgram" => {
            let text = std::fs::read_to_string(dir.join("corpus.txt"))
                .with_context(|| format!("cannot read {}/corpus.txt (run --case workload first)", dir.display()))?;
            let docs: Vec<Vec<String>> =
                text.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
            let texts: Vec<&[String]> = docs.iter().map(Vec::as_slice).collect();
            let tokens: usize = docs.iter().map(Vec::len).sum();
            let sg = &cfg.vectors.skipgram;
            let times = time(warmup, repeats, || train_skipgram(&texts, sg, cfg.seed).map(|_| ()))?;
            let detail = format!(
                "{} texts, {tokens} tokens x {} epochs, dim {}, window {}, {} negatives: {:.0} tokens/s",
                docs.len(),
                sg.epochs,
                sg.dim,
                sg.window,
                sg.negatives,
                (tokens * sg.epochs) as f64 / median(&times)
            );
            (times, detail)
        }
        "knn" => {
            let x = read(dir, "vectors")?;
            let (n, d) = (x.size()[0] as usize, x.size()[1] as usize);
            let x: Vec<f32> = Vec::try_from(x.to_kind(Kind::Float).flatten(0, -1))?;
            let g = &cfg.graph;
            let times = time(warmup, repeats, || {
                let knn = cosine_knn(&x, n, d, g.k, g.knn_chunk, device)?;
                rescaled_laplacian(&Graph::from_knn(&knn, g.weighting, g.self_loops), g.lambda_max)?;
                Ok(())
            })?;
            (times, format!("{n} words x {d}-d, k = {}, chunks of {} rows", g.k, g.knn_chunk))
        }
        "rank" | "rank-large" => {
            let prefix = if case == "rank" { "test" } else { "large" };
            let (t, i, lab) = (
                read(dir, &format!("{prefix}_text"))?,
                read(dir, &format!("{prefix}_image"))?,
                read(dir, &format!("{prefix}_labels"))?,
            );
            let n = t.size()[0] as usize;
            let ecfg = &cfg.eval;
            let times = time(warmup, repeats, || {
                crate::eval::rank(|idx| t.index_select(0, idx).mm(&i.tr()), n, &lab, &lab, ecfg)?;
                crate::eval::rank(|idx| i.index_select(0, idx).mm(&t.tr()), n, &lab, &lab, ecfg)?;
                Ok(())
            })?;
            (times, format!("{n} x {n}, {}-d, both directions, chunk {}", t.size()[1], ecfg.chunk))
        }
        other => bail!("unknown --case `{other}`; choose one of {}", CASES.join(", ")),
    };
    let median_s = if times.is_empty() { 0.0 } else { median(&times) };
    Ok(json!({"case": case, "name": cfg.name, "times_s": times, "median_s": median_s, "detail": detail}).to_string())
}

fn write_workload(cfg: &Config, dir: &Path, cache: &Path) -> Result<String> {
    let data = prepare(cfg, Device::Cpu, Some(cache))?;
    let ds = load_dataset(cfg, Some(cache), Device::Cpu)?;
    let (idx, vals) = data.laplacian.to_tensors(Device::Cpu);
    write(&idx, dir, "lap_indices")?;
    write(&vals, dir, "lap_values")?;
    write(&data.train.bow, dir, "train_bow")?;
    write(&data.train.images, dir, "train_images")?;
    write(&data.train.labels, dir, "train_labels")?;
    write(&data.test.labels, dir, "test_labels")?;
    let corpus: Vec<String> = ds.train.iter().map(|&i| ds.items[i].tokens.join(" ")).collect();
    crate::files::write_atomic(&dir.join("corpus.txt"), (corpus.join("\n") + "\n").as_bytes())?;
    tch::manual_seed(cfg.seed as i64);
    let (v, m) = (data.vocab.len() as i64, data.test.len() as i64);
    write(&Tensor::randn([v, cfg.vectors.skipgram.dim as i64], (Kind::Float, Device::Cpu)), dir, "vectors")?;
    write(&Tensor::randn([m, RANK_DIM], (Kind::Float, Device::Cpu)), dir, "test_text")?;
    write(&Tensor::randn([m, RANK_DIM], (Kind::Float, Device::Cpu)), dir, "test_image")?;
    // The large ranking case: RANK_LARGE items of 10 balanced random classes.
    write(&Tensor::randn([RANK_LARGE, RANK_DIM], (Kind::Float, Device::Cpu)), dir, "large_text")?;
    write(&Tensor::randn([RANK_LARGE, RANK_DIM], (Kind::Float, Device::Cpu)), dir, "large_image")?;
    let classes = Tensor::randint(10, [RANK_LARGE], (Kind::Int64, Device::Cpu));
    write(&classes.one_hot(10).to_kind(Kind::Float), dir, "large_labels")?;
    let meta = json!({
        "dataset": data.dataset_name,
        "synthetic": cfg.data.dataset == crate::config::DatasetKind::Synthetic,
        "vocabulary": v,
        "nnz": vals.size()[0],
        "train": data.train.len(),
        "test": m,
        "image_dim": data.image_dim,
        "classes": data.classes.len(),
        "multi_label": data.multi_label,
        "corpus_tokens": ds.train.iter().map(|&i| ds.items[i].tokens.len()).sum::<usize>(),
        "knn_chunk": cfg.graph.knn_chunk,
    });
    crate::files::write_json(&dir.join("meta.json"), &meta)?;
    Ok(format!("{} (V = {v}, {} train, {m} test) in {}", data.dataset_name, data.train.len(), dir.display()))
}

fn step(cfg: &Config, dir: &Path, cache: &Path, warmup: usize, repeats: usize) -> Result<(Vec<f64>, String)> {
    seed_everything(cfg.seed);
    let data = prepare(cfg, Device::Cpu, Some(cache))?;
    let (vs, m) = build_model(cfg, &data);
    let mut opt = optimizer(cfg, &vs, &m)?;
    let mut rng = seed_epoch(cfg.seed, 1);
    let batches: Vec<Batch> = epoch_batches(cfg, &data, &mut rng)?
        .into_iter()
        .filter(|b| match b {
            Batch::Pairs { texts, .. } => texts.len() == cfg.train.batch_size,
            Batch::Items(items) => items.len() == cfg.train.batch_size,
        })
        .collect();
    ensure!(!batches.is_empty(), "the config gives no full batch of {} in epoch 1", cfg.train.batch_size);
    // The rows of each batch the step takes, for the PyTorch side: [n, B, 2] (text row,
    // image row; the first B/2 are positives) or [n, B] (in-batch items).
    let rows: Vec<Tensor> = batches
        .iter()
        .map(|b| match b {
            Batch::Pairs { texts, images, .. } => {
                Tensor::stack(&[Tensor::from_slice(texts), Tensor::from_slice(images)], 1)
            }
            Batch::Items(items) => Tensor::from_slice(items),
        })
        .collect();
    write(&Tensor::stack(&rows, 0), dir, &format!("step-{}", cfg.name))?;
    let n_pos = match &batches[0] {
        Batch::Pairs { n_pos, .. } => Some(*n_pos),
        Batch::Items(_) => None,
    };
    let lr = cfg.train.lr;
    let mut k = 0usize;
    let times = time(warmup, repeats, || {
        let sl = step_loss(cfg, &m, &data, &batches[k % batches.len()])?;
        ensure!(sl.values[0].is_finite(), "the loss is {} at bench step {k}", sl.values[0]);
        opt.backward_step(&sl.total, lr)?;
        k += 1;
        Ok(())
    })?;
    let pairs = match &batches[0] {
        Batch::Pairs { texts, .. } => texts.len(),
        Batch::Items(items) => items.len() * items.len(),
    };
    let detail = format!(
        "{} text tower, V = {}, B = {}{}, {} parameters, {} threads: {:.0} pairs/s",
        format!("{:?}", cfg.model.text.kind).to_lowercase(),
        data.vocab.len(),
        cfg.train.batch_size,
        n_pos.map(|p| format!(" ({p} positive pairs)")).unwrap_or_else(|| " items (B x B pairs)".into()),
        vs.variables().values().map(|t| t.numel()).sum::<usize>(),
        tch::get_num_threads(),
        pairs as f64 / median(&times)
    );
    Ok((times, detail))
}
