//! `tgcn bench`: speed of the hot paths, printed as a table (never timed in tests).
//!
//! Each case is warmed up before timing (the first sparse products are several times
//! slower than steady state) and reports the median of its repeats.
//! - kNN graph search: V words × d dimensions, chunked cosine products + top-k.
//! - Chebyshev layer (K = 3, 1 filter) forward and forward+backward on a kNN graph.
//! - One training step of the full model at Eng-Wiki scale (sampled pairs, product scorer).
//! - Chunked evaluation: ranking a query set against a database (one direction's work:
//!   score, stable sort, gather relevance, MAP@k and MAP@all from the same ranking).
//!
//! `--only` picks cases; `--rank-queries N --rank-db M` sizes the ranking case (e.g. 2000
//! queries against 100k items, the scale of NUS-WIDE's test set), which is then warmed up on
//! one chunk and timed once. The table ends with the process's peak RSS.

pub mod side;

use crate::config::{EvalConfig, Protocol};
use crate::graph::knn::cosine_knn;
use crate::graph::laplacian::LambdaMax;
use crate::graph::laplacian::{rescaled_laplacian, sparse_tensor};
use crate::graph::word_graph::EdgeWeighting;
use crate::graph::word_graph::Graph;
use crate::model::cheb::cheb_conv;
use crate::model::cheb::{ChebBias, ChebLayerConfig};
use crate::model::{Activation, ImageTowerConfig, ModelConfig, ScorerKind, TextKind, TextTowerConfig};
use anyhow::{bail, ensure, Result};
use std::time::Instant;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

fn median_secs<F: FnMut()>(warmup: usize, repeats: usize, mut f: F) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[t.len() / 2]
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn random_lap(v: usize, device: Device) -> Result<(Tensor, Tensor)> {
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(v * 50) as i64], (Kind::Float, Device::Cpu)))?;
    let knn = cosine_knn(&x, v, 50, 8, 4096, device)?;
    let (lt, _) = rescaled_laplacian(&Graph::from_knn(&knn, EdgeWeighting::Binary, false), LambdaMax::Fixed)?;
    Ok(lt.to_tensors(device))
}

/// A benchmark case, as `--only` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Knn,
    Cheb,
    Step,
    Rank,
}

impl Case {
    pub const ALL: [Case; 4] = [Case::Knn, Case::Cheb, Case::Step, Case::Rank];

    pub fn name(self) -> &'static str {
        match self {
            Case::Knn => "knn",
            Case::Cheb => "cheb",
            Case::Step => "step",
            Case::Rank => "rank",
        }
    }

    pub fn parse(s: &str) -> Result<Case> {
        match Case::ALL.into_iter().find(|c| c.name() == s) {
            Some(c) => Ok(c),
            None => bail!("unknown bench case {s:?} (expected one of knn, cheb, step, rank)"),
        }
    }
}

/// What `tgcn bench` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Smaller sizes, for a smoke run.
    pub quick: bool,
    /// The cases to run; empty runs all.
    pub only: Vec<Case>,
    /// Ranking queries (default 2000, 1000 with `quick`).
    pub rank_queries: Option<usize>,
    /// Ranking database size (default 20000, 5000 with `quick`).
    pub rank_db: Option<usize>,
    /// Queries scored at once (`eval.chunk`).
    pub rank_chunk: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { quick: false, only: Vec::new(), rank_queries: None, rank_db: None, rank_chunk: 256 }
    }
}

/// The process's peak resident set (`VmHWM` of /proc/self/status) in bytes, where Linux gives it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs the benchmarks; `quick` uses smaller sizes.
pub fn run(device: Device, quick: bool) -> Result<String> {
    run_with(device, &BenchOptions { quick, ..Default::default() })
}

/// Runs the selected benchmarks (see the module docs).
pub fn run_with(device: Device, opts: &BenchOptions) -> Result<String> {
    let quick = opts.quick;
    ensure!(opts.rank_queries != Some(0), "--rank-queries must be at least 1");
    ensure!(opts.rank_db != Some(0), "--rank-db must be at least 1");
    ensure!(opts.rank_chunk >= 1, "--rank-chunk must be at least 1");
    let wants = |c: Case| opts.only.is_empty() || opts.only.contains(&c);
    tch::manual_seed(0);
    let mut rows: Vec<(String, String, String)> = Vec::new();

    if wants(Case::Knn) {
        knn_rows(device, quick, &mut rows)?;
    }
    if wants(Case::Cheb) || wants(Case::Step) {
        cheb_and_step_rows(device, quick, wants(Case::Cheb), wants(Case::Step), &mut rows)?;
    }
    if wants(Case::Rank) {
        rank_row(device, opts, &mut rows)?;
    }

    let mut out = format!(
        "tgcn bench on {device:?}, {} threads, libtorch {}\n",
        tch::get_num_threads(),
        env!("TGCN_LIBTORCH_VERSION")
    );
    out += &format!("{:<52} {:>12}  {}\n", "case", "median", "throughput");
    for (a, b, c) in rows {
        out += &format!("{a:<52} {b:>12}  {c}\n");
    }
    if let Some(b) = peak_rss_bytes() {
        out += &format!("peak RSS {:.2} GiB (whole process, VmHWM)\n", b as f64 / (1u64 << 30) as f64);
    }
    Ok(out)
}

type Rows = Vec<(String, String, String)>;

fn knn_rows(device: Device, quick: bool, rows: &mut Rows) -> Result<()> {
    let sizes: &[(usize, usize)] = if quick { &[(5_000, 300)] } else { &[(10_000, 300), (50_000, 300)] };
    for &(v, d) in sizes {
        let x: Vec<f32> = Vec::try_from(Tensor::randn([(v * d) as i64], (Kind::Float, Device::Cpu)))?;
        let secs = median_secs(1, if quick { 1 } else { 2 }, || {
            cosine_knn(&x, v, d, 8, 4096, device).expect("knn");
        });
        let gflop = 2.0 * (v * v * d) as f64 / 1e9;
        rows.push((
            format!("kNN k=8, {v} words x {d}-d"),
            format!("{secs:.2} s"),
            format!("{:.1} GFLOP/s", gflop / secs),
        ));
    }
    Ok(())
}

fn cheb_and_step_rows(device: Device, quick: bool, cheb: bool, step: bool, rows: &mut Rows) -> Result<()> {
    let v = 6908;
    let b = 256i64;
    let (idx, vals) = random_lap(v, device)?;
    if cheb {
        cheb_rows(&idx, &vals, v, b, device, rows);
    }
    if step {
        step_row(&idx, &vals, v, b, device, quick, rows)?;
    }
    Ok(())
}

/// The Chebyshev layer alone, on a random kNN graph's Laplacian `(idx, vals)`.
fn cheb_rows(idx: &Tensor, vals: &Tensor, v: usize, b: i64, device: Device, rows: &mut Rows) {
    let vs = VarStore::new(device);
    let layer = cheb_conv(vs.root() / "c", 3, 1, 1, ChebBias::PerFilter, v);
    let x = Tensor::rand([b, v as i64, 1], (Kind::Float, device));
    let fwd = median_secs(3, 10, || {
        let lap = sparse_tensor(idx, vals, v);
        let _ = tch::no_grad(|| layer.forward(&lap, &x));
        sync(device);
    });
    rows.push((
        format!("ChebConv K=3 fwd, V={v}, B={b}"),
        format!("{:.2} ms", fwd * 1e3),
        format!("nnz {}", vals.size()[0]),
    ));
    let fb = median_secs(3, 10, || {
        let lap = sparse_tensor(idx, vals, v);
        let xg = x.set_requires_grad(true);
        layer.forward(&lap, &xg).sum(Kind::Float).backward();
        sync(device);
    });
    rows.push((format!("ChebConv K=3 fwd+bwd, V={v}, B={b}"), format!("{:.2} ms", fb * 1e3), String::new()));
}

/// A full training step at Eng-Wiki scale.
fn step_row(idx: &Tensor, vals: &Tensor, v: usize, b: i64, device: Device, quick: bool, rows: &mut Rows) -> Result<()> {
    let cfg = ModelConfig {
        text: TextTowerConfig {
            kind: TextKind::Gcn,
            cheb: vec![ChebLayerConfig { k: 3, filters: 1 }; 2],
            bias: ChebBias::PerFilter,
            activation: Activation::Relu,
            last_activation: Activation::Relu,
            fc: vec![],
            input: Default::default(),
            input_l2: false,
            input_dropout: 0.0,
            dropout: 0.0,
            concat_bow: false,
            own_input_min_count: 0,
            smooth: false,
        },
        image: ImageTowerConfig { hidden: vec![], dropout: 0.0 },
        embed_dim: 1024,
        scorer: ScorerKind::Product,
        dropout: 0.2,
        init: Default::default(),
    };
    let vs = VarStore::new(device);
    let m = crate::model::model(
        &vs.root(),
        &cfg,
        v,
        128,
        crate::model::GraphInputs::union((idx.shallow_clone(), vals.shallow_clone())),
        Default::default(),
    );
    let mut opt = crate::train::optim::Adam::new(&vs);
    let bow = Tensor::rand([b, v as i64], (Kind::Float, device)).lt(0.02).to_kind(Kind::Float);
    let img = Tensor::randn([b, 128], (Kind::Float, device));
    let step = median_secs(2, if quick { 3 } else { 8 }, || {
        let t = m.text.forward(&bow);
        let i = nn::Module::forward(&m.image, &img);
        let s = m.scorer.pairs(&t, &i, true);
        let g = crate::train::loss::global_loss(&s.narrow(0, 0, b / 2), &s.narrow(0, b / 2, b / 2), 0.35, 0.8);
        opt.backward_step(&g.loss, 1e-3).expect("adam step");
        sync(device);
    });
    rows.push((
        format!("train step, V={v}, D=1024, B={b} pairs"),
        format!("{:.1} ms", step * 1e3),
        format!("{:.0} pairs/s", b as f64 / step),
    ));

    Ok(())
}

/// Chunked ranking, one direction's work as `eval::retrieval` runs it per direction:
/// score each chunk of queries against the database (256-d, the best config's embedding
/// size), find the relevant items' positions, and sum AP@k, AP@all, precision@k and the
/// PR curve of every query. Beside it, the score GEMM alone over the same chunks, and
/// (where it takes under a minute or so) the reference evaluator that sorts every row.
fn rank_row(device: Device, opts: &BenchOptions, rows: &mut Rows) -> Result<()> {
    let sized = opts.rank_queries.is_some() || opts.rank_db.is_some();
    let nq = opts.rank_queries.unwrap_or(if opts.quick { 1000 } else { 2000 }) as i64;
    let ndb = opts.rank_db.unwrap_or(if opts.quick { 5000 } else { 20000 }) as i64;
    let chunk = opts.rank_chunk;
    let dim = 256;
    let unit = |n: i64| {
        let x = Tensor::randn([n, dim], (Kind::Float, device));
        &x / x.norm_scalaropt_dim(2, [1], true)
    };
    let (q, db) = (unit(nq), unit(ndb));
    let lab = |n: i64| Tensor::randint(10, [n], (Kind::Int64, device)).one_hot(10).to_kind(Kind::Float);
    let (ql, dl) = (lab(nq), lab(ndb));
    let ecfg = EvalConfig {
        protocol: Protocol::TestVsTest,
        untrained: true,
        k: 100,
        scope: vec![10, 100],
        chunk,
        ranking: Default::default(),
        posterior_temperature: 0.1,
        relevance: None,
    };
    let score = |i: &Tensor| q.index_select(0, i).mm(&db.tr());
    let rank = |n: usize| crate::eval::rank(score, n, &ql, &dl, &ecfg).map(|_| sync(device));
    let reference = |n: usize| crate::eval::ranking::rank_reference(score, n, &ql, &dl, &ecfg).map(|_| sync(device));
    let gemm = |n: usize| {
        tch::no_grad(|| {
            let mut start = 0;
            while start < n {
                let len = chunk.min(n - start);
                let idx = Tensor::arange_start(start as i64, (start + len) as i64, (Kind::Int64, device));
                let _ = score(&idx).sum(Kind::Float);
                start += len;
            }
        });
        sync(device);
    };
    // Sized runs can be long: warm up on one chunk, time one pass.
    let time = |f: &dyn Fn(usize) -> Result<()>| -> Result<f64> {
        if sized {
            f(chunk.min(nq as usize))?;
            let t = Instant::now();
            f(nq as usize)?;
            Ok(t.elapsed().as_secs_f64())
        } else {
            Ok(median_secs(1, 2, || f(nq as usize).expect("rank")))
        }
    };
    let gemm_secs = time(&|n| {
        gemm(n);
        Ok(())
    })?;
    let secs = time(&|n| rank(n))?;
    let flop = 2.0 * nq as f64 * ndb as f64 * dim as f64;
    let pass = if sized { " (1 pass)" } else { "" };
    rows.push((
        format!("score GEMM alone, {nq} x {ndb} x {dim}, chunk {chunk}{pass}"),
        format!("{gemm_secs:.2} s"),
        format!("{:.0} GFLOP/s", flop / gemm_secs / 1e9),
    ));
    rows.push((
        format!("rank {nq} queries x {ndb} db, chunk {chunk}{pass}"),
        format!("{secs:.2} s"),
        format!(
            "{:.0} queries/s (MAP@100, MAP@all, P@k, PR11); {:.2}x the GEMM alone",
            nq as f64 / secs,
            secs / gemm_secs
        ),
    ));
    // The reference sorts every row: about 9 ms per 100k-item row on 2 cores.
    if (nq as f64) * (ndb as f64) <= 4e8 {
        let ref_secs = time(&|n| reference(n))?;
        rows.push((
            format!("rank, reference evaluator (stable sort of every row){pass}"),
            format!("{ref_secs:.2} s"),
            format!("{:.0} queries/s; the fast one takes {:.2}x its time", nq as f64 / ref_secs, secs / ref_secs),
        ));
    }
    Ok(())
}
