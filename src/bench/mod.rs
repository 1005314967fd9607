//! `tgcn bench`: speed of the hot paths, printed as a table (never timed in tests).
//!
//! Each case is warmed up before timing (the first sparse products are several times
//! slower than steady state) and reports the median of its repeats.
//! - kNN graph search: V words × d dimensions, chunked cosine products + top-k.
//! - Chebyshev layer (K = 3, 1 filter) forward and forward+backward on a kNN graph.
//! - One training step of the full model at Eng-Wiki scale (sampled pairs, product scorer).
//! - Chunked evaluation: ranking a query set against a database, both directions' work.

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
use anyhow::Result;
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

/// Runs the benchmarks; `quick` uses smaller sizes.
pub fn run(device: Device, quick: bool) -> Result<String> {
    tch::manual_seed(0);
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // kNN search.
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

    // Chebyshev layer.
    let v = 6908;
    let b = 256i64;
    let (idx, vals) = random_lap(v, device)?;
    let vs = VarStore::new(device);
    let layer = cheb_conv(vs.root() / "c", 3, 1, 1, ChebBias::PerFilter, v);
    let x = Tensor::rand([b, v as i64, 1], (Kind::Float, device));
    let fwd = median_secs(3, 10, || {
        let lap = sparse_tensor(&idx, &vals, v);
        let _ = tch::no_grad(|| layer.forward(&lap, &x));
        sync(device);
    });
    rows.push((
        format!("ChebConv K=3 fwd, V={v}, B={b}"),
        format!("{:.2} ms", fwd * 1e3),
        format!("nnz {}", vals.size()[0]),
    ));
    let fb = median_secs(3, 10, || {
        let lap = sparse_tensor(&idx, &vals, v);
        let xg = x.set_requires_grad(true);
        layer.forward(&lap, &xg).sum(Kind::Float).backward();
        sync(device);
    });
    rows.push((format!("ChebConv K=3 fwd+bwd, V={v}, B={b}"), format!("{:.2} ms", fb * 1e3), String::new()));

    // A full training step at Eng-Wiki scale.
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
        },
        image: ImageTowerConfig { hidden: vec![], dropout: 0.0 },
        embed_dim: 1024,
        scorer: ScorerKind::Product,
        dropout: 0.2,
        init: Default::default(),
    };
    let vs = VarStore::new(device);
    let m =
        crate::model::model(&vs.root(), &cfg, v, 128, (idx.shallow_clone(), vals.shallow_clone()), Default::default());
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

    // Chunked ranking (t2i direction work: score, sort, gather relevance, AP).
    let (nq, ndb) = if quick { (1000, 5000) } else { (2000, 20000) };
    let q = Tensor::randn([nq, 1024], (Kind::Float, device));
    let db = Tensor::randn([ndb, 1024], (Kind::Float, device));
    let lab = |n: i64| Tensor::randint(10, [n], (Kind::Int64, device)).one_hot(10).to_kind(Kind::Float);
    let (ql, dl) = (lab(nq), lab(ndb));
    let ecfg = EvalConfig { protocol: Protocol::TestVsTest, k: 100, scope: vec![10, 100], chunk: 256 };
    let secs = median_secs(1, 2, || {
        crate::eval::rank(|i| q.index_select(0, i).mm(&db.tr()), nq as usize, &ql, &dl, &ecfg).expect("rank");
    });
    rows.push((
        format!("rank {nq} queries x {ndb} db, chunk 256"),
        format!("{secs:.2} s"),
        format!("{:.0} queries/s", nq as f64 / secs),
    ));

    let mut out = format!(
        "tgcn bench on {device:?}, {} threads, libtorch {}\n",
        tch::get_num_threads(),
        env!("TGCN_LIBTORCH_VERSION")
    );
    out += &format!("{:<44} {:>12}  {}\n", "case", "median", "throughput");
    for (a, b, c) in rows {
        out += &format!("{a:<44} {b:>12}  {c}\n");
    }
    Ok(out)
}
