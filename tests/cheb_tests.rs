//! The Laplacian and the Chebyshev layer against golden numpy/torch fixtures
//! (tests/golden/make_fixtures.py), plus properties: K = 1 is a linear layer, batched
//! equals one-at-a-time, gradients reach every parameter.

use crate::common::{assert_close, project_root};
use serde_json::Value;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};
use tgcn::config::{Config, Layer};
use tgcn::graph::laplacian::LambdaMax;
use tgcn::graph::laplacian::{normalized_laplacian, rescaled_laplacian, sparse_tensor};
use tgcn::graph::word_graph::Graph;
use tgcn::model::cheb::cheb_conv;
use tgcn::model::cheb::ChebBias;

fn fixture(name: &str) -> Value {
    let p = project_root().join("tests/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn fixture_graph(f: &Value) -> Graph {
    let n = f["n"].as_u64().unwrap() as usize;
    let mut entries = Vec::new();
    for e in f["edges"].as_array().unwrap() {
        let (i, j, w) = (e[0].as_u64().unwrap() as usize, e[1].as_u64().unwrap() as usize, e[2].as_f64().unwrap());
        entries.push((i, j, w as f32));
        entries.push((j, i, w as f32));
    }
    entries.sort_by_key(|e| (e.0, e.1));
    Graph { n, entries }
}

#[test]
fn laplacian_matches_numpy() {
    let f = fixture("cheb6.json");
    let g = fixture_graph(&f);
    assert_close(&normalized_laplacian(&g).unwrap().to_dense(), &floats(&f["L"]), 1e-7, "L");
    let (lt, lmax) = rescaled_laplacian(&g, LambdaMax::Fixed).unwrap();
    assert_eq!(lmax, 2.0);
    assert_close(&lt.to_dense(), &floats(&f["Lt_fixed"]), 1e-7, "L~ (λmax = 2)");
    let (lt, lmax) = rescaled_laplacian(&g, LambdaMax::PowerIteration).unwrap();
    let want = f["lambda_max"].as_f64().unwrap();
    assert!((lmax / 1.0001 - want).abs() < 1e-6, "power iteration {lmax} vs eigvalsh {want}");
    // The safety margin scales L~ by 1/1.0001 against the exact-λ fixture.
    assert_close(&lt.to_dense(), &floats(&f["Lt_eig"]), 1e-3, "L~ (power iteration)");
}

/// Loads `values` into `t` in place.
fn set(t: &Tensor, values: &[f64]) {
    let src = Tensor::from_slice(values).to_kind(Kind::Float).view(t.size().as_slice());
    tch::no_grad(|| t.shallow_clone().copy_(&src));
}

/// The fixture's graph and its L̃ (λmax = 2) as the sparse tensor the layer takes.
fn fixture_lap(f: &Value) -> (Graph, Tensor) {
    let g = fixture_graph(f);
    let (lt, _) = rescaled_laplacian(&g, LambdaMax::Fixed).unwrap();
    let (idx, vals) = lt.to_tensors(Device::Cpu);
    let lap = sparse_tensor(&idx, &vals, g.n);
    (g, lap)
}

#[test]
fn cheb_conv_matches_torch_for_k_1_2_3() {
    let f = fixture("cheb6.json");
    let (g, lap) = fixture_lap(&f);
    let shape: Vec<i64> = f["x_shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let x = Tensor::from_slice(&floats(&f["x"])).to_kind(Kind::Float).view(shape.as_slice());
    let f_out = f["f_out"].as_u64().unwrap() as usize;
    for case in f["cheb"].as_array().unwrap() {
        let k = case["K"].as_u64().unwrap() as usize;
        let vs = VarStore::new(Device::Cpu);
        let layer = cheb_conv(vs.root() / "cheb", k, shape[2] as usize, f_out, ChebBias::PerFilter, g.n);
        for (w, want) in layer.lins.iter().zip(case["weights"].as_array().unwrap()) {
            set(w, &floats(want));
        }
        set(&layer.bias, &floats(&case["bias"]));
        let y: Vec<f64> = Vec::try_from(layer.forward(&lap, &x).to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert_close(&y, &floats(&case["out"]), 1e-5, &format!("ChebConv K={k}"));
        // Parameter names follow PyG's ChebConv.
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        let mut want: Vec<String> = (0..k).map(|i| format!("cheb.lins.{i}.weight")).collect();
        want.push("cheb.bias".into());
        want.sort();
        assert_eq!(names, want);
    }
}

fn small_graph_lap(n: usize) -> Tensor {
    // A ring: every vertex has two neighbours.
    let mut entries = Vec::new();
    for i in 0..n {
        entries.push((i, (i + 1) % n, 1.0));
        entries.push(((i + 1) % n, i, 1.0));
    }
    entries.sort_by_key(|e| (e.0, e.1));
    let (lt, _) = rescaled_laplacian(&Graph { n, entries }, LambdaMax::Fixed).unwrap();
    let (i, v) = lt.to_tensors(Device::Cpu);
    sparse_tensor(&i, &v, n)
}

#[test]
fn k1_is_a_linear_layer_and_batching_is_exact() {
    tch::manual_seed(1);
    let n = 9;
    let lap = small_graph_lap(n);
    let vs = VarStore::new(Device::Cpu);
    let layer = cheb_conv(vs.root() / "a", 1, 4, 5, ChebBias::PerFilter, n);
    let x = Tensor::randn([3, n as i64, 4], (Kind::Float, Device::Cpu));
    let lin = x.matmul(&layer.lins[0].tr()) + &layer.bias;
    assert!(layer.forward(&lap, &x).allclose(&lin, 1e-6, 1e-6, false), "K = 1 must equal x W^T + b");

    let layer = cheb_conv(vs.root() / "b", 3, 4, 5, ChebBias::PerVertex, n);
    set(&layer.bias, &(0..n * 5).map(|i| i as f64 * 0.01).collect::<Vec<_>>());
    let batched = layer.forward(&lap, &x);
    for b in 0..3 {
        let single = layer.forward(&lap, &x.narrow(0, b, 1));
        assert!(single.allclose(&batched.narrow(0, b, 1), 1e-6, 1e-6, false), "row {b}");
    }
}

fn synthetic_cfg(sets: &[&str]) -> Config {
    crate::common::debug_cfg("tiny", sets)
}

#[test]
fn gradients_reach_every_parameter() {
    for extra in [
        // Leaky activations: a dead ReLU would zero a gradient by chance, not by a bug.
        vec![
            "model.text.fc=[8]",
            "model.image.hidden=[8]",
            "model.text.bias=per_vertex",
            "model.text.activation=leaky_relu",
            "model.text.last_activation=leaky_relu",
        ],
        vec!["model.text.kind=mlp", "model.scorer=cosine"],
    ] {
        let cfg = synthetic_cfg(&extra);
        tgcn::train::seed_everything(cfg.seed);
        let data = tgcn::prepare::prepare(&cfg, Device::Cpu, None).unwrap();
        let (vs, m) = tgcn::train::build_model(&cfg, &data);
        let idx = Tensor::arange(16, (Kind::Int64, Device::Cpu));
        let t = m.text.forward(&data.train.bow.index_select(0, &idx));
        let i = nn::Module::forward(&m.image, &data.train.images.index_select(0, &idx));
        let s = m.scorer.pairs(&t, &i, true);
        let (pos, neg) = (s.narrow(0, 0, 8), s.narrow(0, 8, 8));
        let l = tgcn::train::loss::global_loss(&pos, &neg, 0.35, 0.8).loss
            + tgcn::train::loss::l2_penalty(&m.l2_weights(true)) * 1e-3;
        l.backward();
        for (name, v) in vs.variables() {
            let g = v.grad();
            assert!(g.defined(), "{extra:?}: no gradient for {name}");
            let size = g.abs().sum(Kind::Float).double_value(&[]);
            if name == "scorer.bias" {
                // Shifting every score leaves both variances and the gap unchanged: the
                // global loss's gradient for the bias is 0 up to rounding.
                assert!(size < 1e-4, "{extra:?}: scorer.bias gradient {size}");
            } else {
                assert!(size > 0.0, "{extra:?}: zero gradient for {name}");
            }
        }
    }
}

#[test]
fn global_loss_matches_hand_calculation() {
    let f = fixture("loss.json");
    let pos = Tensor::from_slice(&floats(&f["pos"])).to_kind(Kind::Float);
    let neg = Tensor::from_slice(&floats(&f["neg"])).to_kind(Kind::Float);
    let g = tgcn::train::loss::global_loss(&pos, &neg, 0.35, 0.8);
    // By hand: var+ = 0.29/4 = 0.0725; var- = 0.186667/3 = 0.062222;
    // gap = 0.55 - 0.233333 = 0.316667; 0.35 * (0.8 - 0.316667) = 0.169167.
    let hand = 0.0725 + 0.186_666_666_7 / 3.0 + 0.35 * (0.8 - (0.55 - 0.7 / 3.0));
    assert!((g.loss.double_value(&[]) - hand).abs() < 1e-6);
    assert!((g.loss.double_value(&[]) - f["loss"].as_f64().unwrap()).abs() < 1e-6);
    assert!((g.mean_pos.unwrap() - 0.55).abs() < 1e-6);
    // The margin term vanishes once the gap exceeds m.
    let far = tgcn::train::loss::global_loss(&(&pos + 2.0), &neg, 0.35, 0.8);
    assert!((far.loss.double_value(&[]) - (0.0725 + 0.186_666_666_7 / 3.0)).abs() < 1e-6);
    // No negatives: only the positive variance remains.
    let only = tgcn::train::loss::global_loss(&pos, &Tensor::zeros([0], (Kind::Float, Device::Cpu)), 0.35, 0.8);
    assert!((only.loss.double_value(&[]) - 0.0725).abs() < 1e-6);
    assert!(only.mean_neg.is_none());
    // L2: sum of squares.
    let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
    assert!((tgcn::train::loss::l2_penalty(&[&w]).double_value(&[]) - 14.0).abs() < 1e-6);
}

/// The in-batch multi-positive InfoNCE against torch (value and gradient, multi-label).
#[test]
fn contrastive_loss_matches_torch_value_and_gradient() {
    let f = fixture("contrastive.json");
    let n = f["n"].as_i64().unwrap();
    let c = f["c"].as_i64().unwrap();
    let v = |k: &str| -> Vec<f64> { f[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let scores = Tensor::from_slice(&v("scores")).view([n, n]).set_requires_grad(true);
    let labels = Tensor::from_slice(&v("labels")).view([n, c]);
    let positive = labels.mm(&labels.tr()).gt(0.5);
    let loss = tgcn::train::loss::contrastive_loss(&scores, &positive, f["temperature"].as_f64().unwrap());
    assert!((loss.double_value(&[]) - f["loss"].as_f64().unwrap()).abs() < 1e-10, "loss {}", loss.double_value(&[]));
    loss.backward();
    let grad: Vec<f64> = Vec::try_from(scores.grad().flatten(0, -1)).unwrap();
    assert_close(&grad, &v("grad"), 1e-10, "d loss / d scores");
}

/// AdamW against torch.optim.AdamW: four steps on fixed gradients.
#[test]
fn adamw_matches_torch() {
    let f = fixture("adamw.json");
    let v = |x: &Value| -> Vec<f64> { x.as_array().unwrap().iter().map(|y| y.as_f64().unwrap()).collect() };
    let vs = VarStore::new(Device::Cpu);
    let p = vs.root().var_copy("p", &Tensor::from_slice(&v(&f["p0"])).view([3, 2]).to_kind(Kind::Float));
    let mut opt = tgcn::train::optim::Adam::new(&vs);
    opt.weight_decay = f["weight_decay"].as_f64().unwrap();
    for g in f["grads"].as_array().unwrap() {
        let g = Tensor::from_slice(&v(g)).view([3, 2]).to_kind(Kind::Float);
        opt.backward_step(&(&p * g).sum(Kind::Float), f["lr"].as_f64().unwrap()).unwrap();
    }
    let got: Vec<f64> = Vec::try_from(p.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    assert_close(&got, &v(&f["p"]), 1e-5, "AdamW parameters after 4 steps");
    // Without decay it is plain Adam: a different result.
    let vs2 = VarStore::new(Device::Cpu);
    let q = vs2.root().var_copy("p", &Tensor::from_slice(&v(&f["p0"])).view([3, 2]).to_kind(Kind::Float));
    let mut adam = tgcn::train::optim::Adam::new(&vs2);
    for g in f["grads"].as_array().unwrap() {
        let g = Tensor::from_slice(&v(g)).view([3, 2]).to_kind(Kind::Float);
        adam.backward_step(&(&q * g).sum(Kind::Float), f["lr"].as_f64().unwrap()).unwrap();
    }
    assert!((&q - &p).abs().max().double_value(&[]) > 1e-4);
}

/// Plain Adam (the fused kernel) matches `torch.optim.Adam` over 5 steps with a changing
/// learning rate, on two parameters at once; saving the state after step 2 and loading it
/// into a fresh optimizer continues to the same parameters (a resumed run).
#[test]
fn adam_matches_torch_and_resumes() {
    use tgcn::run::checkpoint::OptimizerState;
    let f = fixture("adam.json");
    let v = |x: &Value| -> Vec<f64> { x.as_array().unwrap().iter().map(|y| y.as_f64().unwrap()).collect() };
    let t = |x: &Value, shape: &[i64]| Tensor::from_slice(&v(x)).view(shape).to_kind(Kind::Float);
    let lrs = v(&f["lrs"]);
    let state = crate::common::temp_dir("adam-resume").join("adam.safetensors");
    let run = |resume_at: Option<usize>| {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &t(&f["a0"], &[4, 3]));
        let b = vs.root().var_copy("b", &t(&f["b0"], &[5]));
        let mut opt = tgcn::train::optim::Adam::new(&vs);
        for (s, lr) in lrs.iter().enumerate() {
            if Some(s) == resume_at {
                opt.save(&state).unwrap();
                let mut fresh = tgcn::train::optim::Adam::new(&vs);
                fresh.load(&state).unwrap();
                assert_eq!(fresh.steps, s as i64);
                opt = fresh;
            }
            let loss = (&a * t(&f["ga"][s], &[4, 3])).sum(Kind::Float) + (&b * t(&f["gb"][s], &[5])).sum(Kind::Float);
            opt.backward_step(&loss, *lr).unwrap();
        }
        let got = |x: &Tensor| Vec::<f64>::try_from(x.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        (got(&a), got(&b))
    };
    let (a, b) = run(None);
    assert_close(&a, &v(&f["a"]), 1e-5, "Adam: first parameter after 5 steps");
    assert_close(&b, &v(&f["b"]), 1e-5, "Adam: second parameter after 5 steps");
    let (ra, rb) = run(Some(2));
    assert_eq!((ra, rb), (a, b), "resumed after step 2: the same parameters, bit for bit");
}

/// The L2 term handed to the optimizer (`Adam::set_l2`, coupled decay 2c·W) takes the same
/// steps as the term back-propagated through the loss, with and without AdamW's decoupled
/// decay; `l2_value` is the term's value.
#[test]
fn l2_in_the_optimizer_matches_l2_in_the_loss() {
    use tgcn::train::loss::{l2_penalty, l2_value};
    let grads: Vec<Tensor> =
        (0..4).map(|i| Tensor::from_slice(&[0.3f32, -1.0, 0.5 * i as f32, 2.0]).view([2, 2])).collect();
    let (c, lr) = (0.05, 0.1);
    for wd in [0.0, 0.02] {
        let run = |in_optimizer: bool| {
            let vs = VarStore::new(Device::Cpu);
            let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([2, 2]));
            let b = vs.root().var_copy("b", &Tensor::from_slice(&[0.7f32, -0.2]));
            let mut opt = tgcn::train::optim::Adam::new(&vs);
            opt.weight_decay = wd;
            if in_optimizer {
                opt.set_l2(&[&w], c).unwrap();
            }
            for g in &grads {
                let mut loss = (&w * g).sum(Kind::Float) + b.sum(Kind::Float);
                if !in_optimizer {
                    loss += l2_penalty(&[&w]) * c;
                }
                opt.backward_step(&loss, lr).unwrap();
            }
            let v = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            (v(&w), v(&b))
        };
        let ((w1, b1), (w2, b2)) = (run(true), run(false));
        assert_close(&w1, &w2, 1e-6, &format!("penalised weight, weight_decay {wd}"));
        assert_close(&b1, &b2, 1e-6, &format!("unpenalised bias, weight_decay {wd}"));
    }
    let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
    assert!((l2_value(&[&w, &w]).double_value(&[]) - 28.0).abs() < 1e-6, "Σ‖W‖² = 2 · 14");
    let vs = VarStore::new(Device::Cpu);
    let mut opt = tgcn::train::optim::Adam::new(&vs);
    assert!(opt.set_l2(&[&w], c).is_err(), "a tensor outside the var store is refused");
}

/// Learning-rate schedules, worked by hand.
#[test]
fn learning_rate_schedules() {
    let mut t = Config::from_layers(&[Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()])
        .unwrap()
        .train;
    (t.lr, t.lr_decay, t.epochs) = (1.0, 0.5, 4);
    let lrs = |t: &tgcn::config::TrainConfig| {
        (1..=t.epochs).map(|e| tgcn::train::fit::learning_rate(t, e)).collect::<Vec<_>>()
    };
    assert_close(&lrs(&t), &[1.0, 0.5, 0.25, 0.125], 1e-12, "exp");
    t.warmup_epochs = 2;
    assert_close(&lrs(&t), &[0.5, 1.0, 1.0, 0.5], 1e-12, "warm-up, then exp");
    t.warmup_epochs = 0;
    t.schedule = tgcn::config::Schedule::Cosine;
    let c = |x: f64| 0.5 * (1.0 + (std::f64::consts::PI * x).cos());
    assert_close(&lrs(&t), &[1.0, c(0.25), 0.5, c(0.75)], 1e-12, "cosine");
}

/// The label loss against torch: softmax cross-entropy (single-label) and binary
/// cross-entropy (multi-label, a row without labels included), value and gradient.
#[test]
fn label_loss_matches_torch_value_and_gradient() {
    let f = fixture("label.json");
    for (kind, multi) in [("single", false), ("multi", true)] {
        let g = &f[kind];
        let (n, c) = (g["n"].as_i64().unwrap(), g["c"].as_i64().unwrap());
        let z = Tensor::from_slice(&floats(&g["logits"])).view([n, c]).set_requires_grad(true);
        let y = Tensor::from_slice(&floats(&g["labels"])).view([n, c]);
        let loss = tgcn::train::loss::label_loss(&z, &y, multi);
        let want = g["loss"].as_f64().unwrap();
        assert!((loss.double_value(&[]) - want).abs() < 1e-10, "{kind}: {} vs {want}", loss.double_value(&[]));
        loss.backward();
        let grad: Vec<f64> = Vec::try_from(z.grad().flatten(0, -1)).unwrap();
        assert_close(&grad, &floats(&g["grad"]), 1e-10, &format!("{kind}: d loss / d logits"));
    }
    // By hand: two classes, logits (0, ln 3) and label 1: −log(3/4).
    let z = Tensor::from_slice(&[0.0f64, 3f64.ln()]).view([1, 2]);
    let y = Tensor::from_slice(&[0.0f64, 1.0]).view([1, 2]);
    assert!((tgcn::train::loss::label_loss(&z, &y, false).double_value(&[]) + (0.75f64).ln()).abs() < 1e-12);
    // BCE by hand: −(log σ(ln 3) + log(1 − σ(0))) / 2 = −(log 0.75 + log 0.5) / 2.
    let hand = -((0.75f64).ln() + (0.5f64).ln()) / 2.0;
    let z = Tensor::from_slice(&[3f64.ln(), 0.0]).view([1, 2]);
    let y = Tensor::from_slice(&[1.0f64, 0.0]).view([1, 2]);
    assert!((tgcn::train::loss::label_loss(&z, &y, true).double_value(&[]) - hand).abs() < 1e-12);
}

/// The invariance term against torch, value and both gradients; 0 for identical embeddings.
#[test]
fn invariance_loss_matches_torch_value_and_gradient() {
    let f = &fixture("label.json")["invariance"];
    let (n, d) = (f["n"].as_i64().unwrap(), f["d"].as_i64().unwrap());
    let t = Tensor::from_slice(&floats(&f["t"])).view([n, d]).set_requires_grad(true);
    let i = Tensor::from_slice(&floats(&f["i"])).view([n, d]).set_requires_grad(true);
    let loss = tgcn::train::loss::invariance_loss(&t, &i);
    assert!((loss.double_value(&[]) - f["loss"].as_f64().unwrap()).abs() < 1e-10);
    loss.backward();
    assert_close(&Vec::<f64>::try_from(t.grad().flatten(0, -1)).unwrap(), &floats(&f["grad_t"]), 1e-10, "d/dt");
    assert_close(&Vec::<f64>::try_from(i.grad().flatten(0, -1)).unwrap(), &floats(&f["grad_i"]), 1e-10, "d/di");
    let same = tgcn::train::loss::invariance_loss(&t.detach(), &t.detach());
    assert_eq!(same.double_value(&[]), 0.0);
}

/// The text tower's input transforms by hand, the bag of words beside the graph features,
/// and dropout only while training.
#[test]
fn tower_input_transforms_concat_and_dropout() {
    let base = ["model.text.fc=[]", "model.embed_dim=8"];
    let build = |extra: &[&str]| {
        let cfg = synthetic_cfg(&[&base[..], extra].concat());
        tgcn::train::seed_everything(cfg.seed);
        let data = tgcn::prepare::prepare(&cfg, Device::Cpu, None).unwrap();
        let (vs, m) = tgcn::train::build_model(&cfg, &data);
        (cfg, data, vs, m)
    };
    let (_, data, _, m) = build(&["model.text.input=log1p", "model.text.input_l2=true"]);
    let bow = data.train.bow.narrow(0, 0, 4);
    let x = m.text.input_signal(&bow);
    let counts: Vec<f64> = Vec::try_from(bow.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let v = data.vocab.len();
    for (r, row) in counts.chunks(v).enumerate() {
        let logs: Vec<f64> = row.iter().map(|c| (1.0 + c).ln()).collect();
        let norm = logs.iter().map(|l| l * l).sum::<f64>().sqrt();
        let want: Vec<f64> = logs.iter().map(|l| l / norm).collect();
        let got: Vec<f64> = Vec::try_from(x.get(r as i64).to_kind(Kind::Double)).unwrap();
        assert_close(&got, &want, 1e-6, "log1p + L2 row");
    }
    let (_, _, _, m) = build(&["model.text.input=binary"]);
    let b = m.text.input_signal(&bow);
    assert!(b.eq_tensor(&bow.gt(0.0).to_kind(Kind::Float)).all().int64_value(&[]) == 1);

    // concat_bow: the first FC layer takes V·F + V inputs.
    let (_, _, vs, m) = build(&["model.text.concat_bow=true", "model.text.cheb=[{k: 2, filters: 3}]"]);
    assert_eq!(m.text.fc.out.ws.size(), vec![8, (v * 3 + v) as i64]);
    assert_eq!(m.text.forward(&bow).size(), vec![4, 8]);
    drop(vs);

    // Dropout: evaluation is deterministic, training draws masks.
    let (_, data, _, m) = build(&[
        "model.text.input_dropout=0.5",
        "model.text.fc=[16]",
        "model.text.dropout=0.5",
        "model.image.hidden=[16]",
        "model.image.dropout=0.5",
    ]);
    let img = data.train.images.narrow(0, 0, 4);
    tch::no_grad(|| {
        assert!(m.text.forward(&bow).equal(&m.text.forward(&bow)));
        assert!(!m.text.forward_t(&bow, true).equal(&m.text.forward_t(&bow, true)));
        assert!(m.image.forward_t(&img, false).equal(&nn::Module::forward(&m.image, &img)));
        assert!(!m.image.forward_t(&img, true).equal(&m.image.forward_t(&img, true)));
    });
}

/// `data.image_transform: sqrt` is the Hellinger map before the z-score; negative features
/// are refused naming the source.
#[test]
fn sqrt_image_transform_by_hand() {
    let raw = Tensor::from_slice(&[0.0f32, 4.0, 1.0, 16.0, 4.0, 1.0]).view([3, 2]);
    let n =
        tgcn::prepare::ImageNormalizer::fit(tgcn::config::ImageNorm::Zscore, tgcn::config::ImageTransform::Sqrt, &raw);
    // √x columns: (0, 1, 2) and (2, 4, 1); means 1 and 7/3; population std √(2/3) and √(14/9).
    let got: Vec<f64> = Vec::try_from(n.apply(&raw).to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let (s0, s1) = ((2.0f64 / 3.0).sqrt(), (14.0f64 / 9.0).sqrt());
    let want = [-1.0 / s0, (2.0 - 7.0 / 3.0) / s1, 0.0, (4.0 - 7.0 / 3.0) / s1, 1.0 / s0, (1.0 - 7.0 / 3.0) / s1];
    assert_close(&got, &want, 1e-5, "sqrt then z-score");
}

/// `model.init: glorot` draws FC weights from U(±√(6/(fan_in + fan_out))) with zero biases
/// (the authors' Keras default); `loss.l2_biases` adds the FC biases to the L2 term.
#[test]
fn glorot_init_and_l2_over_biases() {
    let cfg = synthetic_cfg(&["model.init=glorot", "model.image.hidden=[64]", "model.embed_dim=32"]);
    tgcn::train::seed_everything(cfg.seed);
    let data = tgcn::prepare::prepare(&cfg, Device::Cpu, None).unwrap();
    let (_, m) = tgcn::train::build_model(&cfg, &data);
    let layers = m.image.hidden.iter().chain([&m.image.out, &m.text.fc.out]);
    for l in layers {
        let (out, inp) = (l.ws.size()[0] as f64, l.ws.size()[1] as f64);
        let bound = (6.0 / (inp + out)).sqrt();
        let w = l.ws.detach().to_kind(Kind::Double);
        assert!(w.abs().max().double_value(&[]) <= bound, "|w| within the Glorot bound");
        // U(±b) has standard deviation b/√3.
        let sd = w.std(false).double_value(&[]);
        assert!((sd / (bound / 3f64.sqrt()) - 1.0).abs() < 0.05, "sd {sd} vs {}", bound / 3f64.sqrt());
        assert_eq!(l.bs.as_ref().unwrap().abs().sum(Kind::Float).double_value(&[]), 0.0, "zero biases");
    }
    let (w, wb) = (m.l2_weights(false), m.l2_weights(true));
    assert_eq!(wb.len(), 2 * w.len(), "one bias per FC weight");
    let sq = |ts: &[&Tensor]| ts.iter().map(|t| t.square().sum(Kind::Double).double_value(&[])).sum::<f64>();
    let p = tgcn::train::loss::l2_penalty(&wb).double_value(&[]);
    assert!((p - sq(&wb)).abs() < 1e-3 * p, "Σ p² over weights and biases");
}

/// AdamW's decoupled decay skips a learned log τ (it would pull τ towards 1) and decays the rest.
#[test]
fn adamw_does_not_decay_a_learned_temperature() {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
    let t = (vs.root() / "loss").var("log_temperature", &[], nn::Init::Const(-2.0));
    let mut opt = tgcn::train::optim::Adam::new(&vs);
    opt.weight_decay = 0.1;
    // A loss whose gradient is zero: only the decay moves a parameter.
    opt.backward_step(&((&w.sum(Kind::Float) + &t) * 0.0), 0.5).unwrap();
    assert_close(&Vec::<f64>::try_from(w.to_kind(Kind::Double)).unwrap(), &[0.95, 0.95], 1e-6, "w · (1 − lr · wd)");
    assert_eq!(t.double_value(&[]), -2.0, "log τ is not decayed");
}

/// One input feature takes the broadcast-product path instead of concatenate-then-matmul:
/// output and gradients against the recurrence written out with the dense fixture L̃ in f64.
#[test]
fn one_input_feature_matches_the_dense_recurrence_with_gradients() {
    let f = fixture("cheb6.json");
    let (g, lap) = fixture_lap(&f);
    let n = g.n as i64;
    let dense = Tensor::from_slice(&floats(&f["Lt_fixed"])).view([n, n]); // f64
    tch::manual_seed(3);
    for f_out in [1usize, 4] {
        let vs = VarStore::new(Device::Cpu);
        let layer = cheb_conv(vs.root() / "c", 3, 1, f_out, ChebBias::PerFilter, g.n);
        set(&layer.bias, &(0..f_out).map(|i| 0.1 * i as f64 - 0.05).collect::<Vec<_>>());
        let x = Tensor::randn([2, n, 1], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = layer.forward(&lap, &x);
        assert_eq!(y.size(), [2, n, f_out as i64]);
        // The reference, in f64 on dense L̃, with its own leaves for the gradients.
        let leaf = |t: &Tensor| t.detach().to_kind(Kind::Double).set_requires_grad(true);
        let (xr, wr, br) = (leaf(&x), layer.lins.iter().map(leaf).collect::<Vec<_>>(), leaf(&layer.bias));
        let t0 = xr.shallow_clone(); // [B, V, 1]
        let t1 = dense.matmul(&t0);
        let t2 = dense.matmul(&t1) * 2.0 - &t0;
        let want = [t0, t1, t2].iter().zip(&wr).map(|(t, w)| t.matmul(&w.tr())).fold(br.shallow_clone(), |a, t| a + t);
        let got: Vec<f64> = Vec::try_from(y.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert_close(&got, &Vec::<f64>::try_from(want.detach().flatten(0, -1)).unwrap(), 1e-5, "forward");
        // Gradients of a fixed weighting of the outputs.
        let c = Tensor::randn(y.size().as_slice(), (Kind::Double, Device::Cpu));
        (y.to_kind(Kind::Double) * &c).sum(Kind::Double).backward();
        (want * &c).sum(Kind::Double).backward();
        let grads = |a: &Tensor, b: &Tensor, what: &str| {
            let a: Vec<f64> = Vec::try_from(a.grad().to_kind(Kind::Double).flatten(0, -1)).unwrap();
            let b: Vec<f64> = Vec::try_from(b.grad().flatten(0, -1)).unwrap();
            assert_close(&a, &b, 1e-4, what);
        };
        grads(&x, &xr, "d/dx");
        grads(&layer.bias, &br, "d/dbias");
        for (k, (w, r)) in layer.lins.iter().zip(&wr).enumerate() {
            grads(w, r, &format!("d/dΘ{k} (F_out = {f_out})"));
        }
    }
}

/// `Adam::set_ema`: the bias-corrected moving average is the mean of θ_1 … θ_t weighted by
/// d^(t−s), worked here in f64 from the parameters after each step (the initial θ_0 carries
/// no weight); `swap_ema` exchanges the
/// average and the parameters and back; the average is saved and loaded with the moments,
/// and a state without it is refused by an optimizer that keeps one.
#[test]
fn ema_follows_its_formula_swaps_and_resumes() {
    use tgcn::run::checkpoint::OptimizerState;
    let d = 0.5;
    let vals = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let p = vs.root().var_copy("p", &Tensor::from_slice(&[1.0f32, -2.0, 0.5]));
    let mut opt = tgcn::train::optim::Adam::new(&vs);
    opt.set_ema(d);
    let mut thetas: Vec<Vec<f64>> = Vec::new();
    for step in 1..=4 {
        let g = Tensor::from_slice(&[0.3f32, -(step as f32), 0.5]);
        opt.backward_step(&(&p * g).sum(Kind::Float), 0.1).unwrap();
        thetas.push(vals(&p));
    }
    let weights: Vec<f64> = (1..=4).map(|s| d.powi(4 - s)).collect();
    let want: Vec<f64> = (0..3)
        .map(|j| thetas.iter().zip(&weights).map(|(th, w)| w * th[j]).sum::<f64>() / weights.iter().sum::<f64>())
        .collect();
    let theta = vals(&p);
    assert!(want.iter().zip(&theta).all(|(a, b)| (a - b).abs() > 1e-3), "the average lags the parameters");
    assert_close(&vals(&opt.ema().unwrap()[0]), &want, 1e-6, "EMA after 4 steps");
    opt.swap_ema();
    assert_close(&vals(&p), &want, 1e-6, "swapped in");
    opt.swap_ema();
    assert_eq!(vals(&p), theta, "swapped back");

    let dir = crate::common::temp_dir("ema-state");
    opt.save(&dir.join("ema.safetensors")).unwrap();
    let mut fresh = tgcn::train::optim::Adam::new(&vs);
    fresh.set_ema(d);
    fresh.load(&dir.join("ema.safetensors")).unwrap();
    assert_eq!(vals(&fresh.ema().unwrap()[0]), vals(&opt.ema().unwrap()[0]));
    tgcn::train::optim::Adam::new(&vs).save(&dir.join("plain.safetensors")).unwrap();
    let e = format!("{:#}", fresh.load(&dir.join("plain.safetensors")).unwrap_err());
    assert!(e.contains("lacks ema.p"), "{e}");
}

/// The smoothed twin's fixed feature −L̃x on the path 0 – 1 – 2 (degrees 1, 2, 1), worked by
/// hand: with λmax = 2, −L̃ = D^−1/2 A D^−1/2, so x = e0 gives (0, 1/√2, 0) and x = e1
/// gives (1/√2, 0, 1/√2); rare vertices left out of the FC input (`own_input_min_count`)
/// still feed their neighbours.
#[test]
fn smoothing_is_the_normalised_adjacency_by_hand() {
    let g = Graph { n: 3, entries: vec![(0, 1, 1.0), (1, 0, 1.0), (1, 2, 1.0), (2, 1, 1.0)] };
    let (lap, _) = rescaled_laplacian(&g, LambdaMax::Fixed).unwrap();
    let cfg = Config::from_layers(&[
        Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap(),
        Layer::from_set("model.text.kind=mlp").unwrap(),
        Layer::from_set("model.text.smooth=true").unwrap(),
        Layer::from_set("model.text.own_input_min_count=5").unwrap(),
    ])
    .unwrap();
    let own = tgcn::model::own_input_vertices(&cfg.model.text, &[9, 3, 5]);
    assert_eq!(own, Some(vec![0, 2]), "counts 9, 3, 5 against a floor of 5");
    let vs = VarStore::new(Device::Cpu);
    let graph = tgcn::model::GraphInputs { lap: lap.to_tensors(Device::Cpu), relations: vec![], own };
    let m = tgcn::model::model(&vs.root(), &cfg.model, 3, 4, graph, Default::default());
    let x = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0]).view([2, 3]);
    let got: Vec<f64> = Vec::try_from(m.text.smoothed(&x).to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    assert_close(&got, &[0.0, h, 0.0, h, 0.0, h], 1e-6, "−L̃x");
    // The FC input is [x at the kept vertices 0 and 2, −L̃x at all 3]: 5 columns.
    assert_eq!(m.text.fc.out.ws.size(), [cfg.model.embed_dim as i64, 5]);
}
