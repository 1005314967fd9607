//! Vocabulary, kNN graph and Laplacian properties.

use tch::{Device, Kind, Tensor};
use tgcn::graph::knn::cosine_knn;
use tgcn::graph::laplacian::LambdaMax;
use tgcn::graph::laplacian::{normalized_laplacian, power_iteration, rescaled_laplacian};
use tgcn::graph::word_graph::EdgeWeighting;
use tgcn::graph::word_graph::Graph;
use tgcn::text::vocab::Vocab;

fn toks(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn vocab_fit_orders_and_filters() {
    let texts = [toks("b a c a"), toks("a b d"), toks("e")];
    let v = Vocab::fit(texts.iter().map(|t| t.as_slice()), 2, None);
    assert_eq!(v.words, vec!["a", "b"]); // a:3, b:2; c, d, e below min_freq
    let v = Vocab::fit(texts.iter().map(|t| t.as_slice()), 1, Some(3));
    assert_eq!(v.words, vec!["a", "b", "c"]); // ties (c, d, e: 1) broken alphabetically
    let (m, oov, total) = v.bow_matrix([toks("a a z c").as_slice()]);
    assert_eq!(m, vec![2.0, 0.0, 1.0]);
    assert_eq!((oov, total), (1, 4));
}

fn random_graph(n: usize, dim: usize, k: usize, seed: i64) -> Graph {
    tch::manual_seed(seed);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(n * dim) as i64], (Kind::Float, Device::Cpu))).unwrap();
    let knn = cosine_knn(&x, n, dim, k, 7, Device::Cpu).unwrap();
    Graph::from_knn(&knn, EdgeWeighting::Binary, false)
}

#[test]
fn knn_matches_brute_force_and_chunking() {
    tch::manual_seed(3);
    let (n, d, k) = (50usize, 6usize, 4usize);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(n * d) as i64], (Kind::Float, Device::Cpu))).unwrap();
    let a = cosine_knn(&x, n, d, k, 7, Device::Cpu).unwrap();
    let b = cosine_knn(&x, n, d, k, 1000, Device::Cpu).unwrap();
    assert_eq!(a.indices, b.indices, "chunk size must not change the result");
    let cos = |i: usize, j: usize| {
        let (u, v) = (&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
        let dot: f32 = u.iter().zip(v).map(|(p, q)| p * q).sum();
        dot / (u.iter().map(|p| p * p).sum::<f32>().sqrt() * v.iter().map(|p| p * p).sum::<f32>().sqrt())
    };
    for i in 0..n {
        let mut all: Vec<(f32, usize)> = (0..n).filter(|&j| j != i).map(|j| (cos(i, j), j)).collect();
        all.sort_by(|p, q| q.0.partial_cmp(&p.0).unwrap());
        let want: Vec<usize> = all[..k].iter().map(|p| p.1).collect();
        assert_eq!(&a.indices[i * k..(i + 1) * k], want.as_slice(), "row {i}");
    }
    assert!(cosine_knn(&x, n, d, n, 7, Device::Cpu).is_err(), "k >= n must be an error");
}

#[test]
fn graph_is_symmetric_without_self_loops() {
    let g = random_graph(80, 8, 5, 1);
    let set: std::collections::HashSet<(usize, usize)> = g.entries.iter().map(|e| (e.0, e.1)).collect();
    for &(i, j, w) in &g.entries {
        assert_ne!(i, j, "self loop");
        assert!(set.contains(&(j, i)), "edge {i}-{j} not symmetric");
        assert_eq!(w, 1.0);
    }
    assert!(g.degrees().iter().all(|&d| d >= 5), "every vertex keeps its k neighbours");
    let s = g.stats();
    assert_eq!(s.undirected_edges * 2, g.entries.len());
    assert_eq!(s.isolated, 0);
}

#[test]
fn self_loops_and_gaussian_weights() {
    tch::manual_seed(2);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([240], (Kind::Float, Device::Cpu))).unwrap();
    let knn = cosine_knn(&x, 40, 6, 3, 16, Device::Cpu).unwrap();
    let g = Graph::from_knn(&knn, EdgeWeighting::Gaussian, true);
    assert_eq!(g.stats().self_loops, 40);
    for &(i, j, w) in &g.entries {
        if i == j {
            assert_eq!(w, 1.0);
        } else {
            assert!(w > 0.0 && w < 1.0, "gaussian weight {w}");
        }
    }
}

fn eigenvalues(dense: Vec<f64>, n: usize) -> Vec<f64> {
    let t = Tensor::from_slice(&dense).view([n as i64, n as i64]);
    Vec::try_from(t.linalg_eigvalsh("L")).unwrap()
}

#[test]
fn rescaled_spectrum_lies_in_unit_interval() {
    let g = random_graph(60, 5, 4, 5);
    for lm in [LambdaMax::Fixed, LambdaMax::PowerIteration] {
        let (lt, lmax) = rescaled_laplacian(&g, lm).unwrap();
        let ev = eigenvalues(lt.to_dense(), g.n);
        let (lo, hi) = (ev[0], ev[ev.len() - 1]);
        assert!(lo >= -1.0 - 1e-9 && hi <= 1.0 + 1e-9, "{lm:?}: spectrum [{lo}, {hi}]");
        if lm == LambdaMax::PowerIteration {
            // The estimate is the true λmax (to the safety margin), so L̃ reaches ~1.
            let true_max = *eigenvalues(normalized_laplacian(&g).to_dense(), g.n).last().unwrap();
            assert!((lmax / 1.0001 - true_max).abs() < 1e-5, "power {lmax} vs eig {true_max}");
            assert!(hi > 0.999, "{hi}");
        }
    }
}

#[test]
fn laplacian_is_symmetric_with_unit_diagonal() {
    let g = random_graph(30, 4, 3, 9);
    let l = normalized_laplacian(&g);
    let d = l.to_dense();
    for i in 0..g.n {
        assert!((d[i * g.n + i] - 1.0).abs() < 1e-12);
        for j in 0..g.n {
            assert!((d[i * g.n + j] - d[j * g.n + i]).abs() < 1e-12);
        }
    }
    // Rows sorted and unique: the COO data is coalesced.
    let keys: Vec<(i64, i64)> = l.rows.iter().zip(&l.cols).map(|(&r, &c)| (r, c)).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let lmax = power_iteration(&l, 1000, 1e-10);
    assert!(lmax <= 2.0 + 1e-9);
}
