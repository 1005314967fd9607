//! The rescaled normalized Laplacian of the word graph, as sparse COO data.
//!
//! L = I − D^−1/2 A D^−1/2 (an isolated vertex gets L_ii = 1), then
//! L̃ = 2L/λmax − I, whose spectrum lies in [−1, 1] when λmax ≥ the largest eigenvalue
//! of L. λmax is the fixed bound 2 (the authors' choice) or a power-iteration estimate.
//! The entries are kept sorted by (row, col) with no duplicates, i.e. coalesced, so the
//! sparse tensor can be built inside a traced closure without a coalesce step.

use crate::graph::word_graph::Graph;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LambdaMax {
    /// λmax = 2, the upper bound of the normalized Laplacian (the authors' choice).
    Fixed,
    /// λmax estimated by power iteration on L.
    PowerIteration,
}

/// A square sparse matrix in coalesced COO form.
#[derive(Debug, Clone, PartialEq)]
pub struct Coo {
    pub n: usize,
    pub rows: Vec<i64>,
    pub cols: Vec<i64>,
    pub vals: Vec<f64>,
}

impl Coo {
    /// Sums the triplets of each (row, col) in the order given (a stable sort keeps it, so
    /// the sums are those of accumulating into a map in that order) and drops exact zeros.
    fn from_triplets(n: usize, mut t: Vec<(usize, usize, f64)>) -> Coo {
        t.sort_by_key(|&(i, j, _)| (i, j));
        let mut c = Coo { n, rows: vec![], cols: vec![], vals: vec![] };
        let mut k = 0;
        while k < t.len() {
            let (i, j, mut v) = t[k];
            k += 1;
            while k < t.len() && (t[k].0, t[k].1) == (i, j) {
                v += t[k].2;
                k += 1;
            }
            if v != 0.0 {
                c.rows.push(i as i64);
                c.cols.push(j as i64);
                c.vals.push(v);
            }
        }
        c
    }

    pub fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// y = M x
    pub fn matvec(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.n];
        for ((&i, &j), &v) in self.rows.iter().zip(&self.cols).zip(&self.vals) {
            y[i as usize] += v * x[j as usize];
        }
        y
    }

    pub fn to_dense(&self) -> Vec<f64> {
        let mut d = vec![0.0; self.n * self.n];
        for ((&i, &j), &v) in self.rows.iter().zip(&self.cols).zip(&self.vals) {
            d[i as usize * self.n + j as usize] += v;
        }
        d
    }

    /// Dense `indices: [2, nnz]` (i64) and `values: [nnz]` (f32) tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let idx = Tensor::from_slice(&[self.rows.as_slice(), self.cols.as_slice()].concat())
            .view([2, self.nnz() as i64])
            .to_device(device);
        let vals: Vec<f32> = self.vals.iter().map(|&v| v as f32).collect();
        (idx, Tensor::from_slice(&vals).to_device(device))
    }
}

/// Builds the sparse `[n, n]` tensor from dense index/value tensors (row-major COO, as
/// [`Coo::to_tensors`] gives them), in CSR layout: libtorch's CSR × dense product ran ~10×
/// faster than COO's on Eng-Wiki's graph (V = 6362, 2 threads), forward and backward.
/// Call it inside the forward pass: a traced closure can build it, but cannot capture a
/// sparse tensor.
pub fn sparse_tensor(indices: &Tensor, values: &Tensor, n: usize) -> Tensor {
    extern "C" {
        fn tgcn_spend_csr_beta_warning();
    }
    static QUIET: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain libtorch call with no arguments (csrc/fused_adam.cpp).
    QUIET.call_once(|| unsafe { tgcn_spend_csr_beta_warning() });
    Tensor::sparse_coo_tensor_indices_size(indices, values, [n as i64, n as i64], (Kind::Float, values.device()), true)
        .to_sparse_csr(None)
}

/// L = I − D^−1/2 A D^−1/2, with D the weighted degree (self-loops included, as in A).
/// An entry outside the `n` vertices or a non-finite weight is an error ([`Graph::check`]).
pub fn normalized_laplacian(g: &Graph) -> Result<Coo> {
    g.check()?;
    let mut deg = vec![0.0f64; g.n];
    for &(i, _, w) in &g.entries {
        deg[i] += w as f64;
    }
    let inv_sqrt: Vec<f64> = deg.iter().map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 }).collect();
    let mut t: Vec<(usize, usize, f64)> = (0..g.n).map(|i| (i, i, 1.0)).collect();
    t.extend(g.entries.iter().map(|&(i, j, w)| (i, j, -(inv_sqrt[i] * w as f64 * inv_sqrt[j]))));
    Ok(Coo::from_triplets(g.n, t))
}

/// Largest eigenvalue of a symmetric PSD matrix by power iteration (deterministic start).
pub fn power_iteration(m: &Coo, max_iter: usize, tol: f64) -> f64 {
    let n = m.n;
    if n == 0 {
        return 0.0;
    }
    // A fixed, non-symmetric start vector so it is not orthogonal to the top eigenvector.
    let mut x: Vec<f64> = (0..n).map(|i| 1.0 + ((i * 7919) % 97) as f64 / 97.0).collect();
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let nx = norm(&x);
    x.iter_mut().for_each(|a| *a /= nx);
    let mut lambda = 0.0;
    for _ in 0..max_iter {
        let y = m.matvec(&x);
        let new_lambda: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let ny = norm(&y);
        if ny == 0.0 {
            return 0.0;
        }
        x = y.into_iter().map(|a| a / ny).collect();
        if (new_lambda - lambda).abs() <= tol * new_lambda.abs().max(1.0) {
            return new_lambda;
        }
        lambda = new_lambda;
    }
    lambda
}

/// L̃ = 2L/λmax − I.
pub fn rescale(l: &Coo, lambda_max: f64) -> Coo {
    let mut t: Vec<(usize, usize, f64)> = l
        .rows
        .iter()
        .zip(&l.cols)
        .zip(&l.vals)
        .map(|((&i, &j), &v)| (i as usize, j as usize, 2.0 * v / lambda_max))
        .collect();
    t.extend((0..l.n).map(|i| (i, i, -1.0)));
    Coo::from_triplets(l.n, t)
}

/// The rescaled Laplacian of `g` and the λmax used.
pub fn rescaled_laplacian(g: &Graph, lambda: LambdaMax) -> Result<(Coo, f64)> {
    let l = normalized_laplacian(g)?;
    let lmax = match lambda {
        LambdaMax::Fixed => 2.0,
        // Power iteration approaches λmax from below; the small margin keeps the
        // spectrum of L̃ inside [−1, 1] despite the residual error.
        LambdaMax::PowerIteration => power_iteration(&l, 1000, 1e-9) * 1.0001,
    };
    anyhow::ensure!(lmax > 0.0, "the word graph has no edges: λmax = {lmax}");
    Ok((rescale(&l, lmax), lmax))
}
