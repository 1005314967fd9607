//! The word graph built from kNN lists: symmetric, binary or Gaussian-weighted, with
//! optional self-loops. Pure Rust, so it is testable without libtorch.
//!
//! Edge i–j exists when j is among i's neighbours or i among j's. Gaussian weights
//! follow cnn_graph: w_ij = exp(−d_ij² / σ²), with d the Euclidean distance of the
//! unit vectors (d² = 2 − 2cos) and σ the mean distance to the k-th neighbour.

use crate::graph::knn::Knn;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EdgeWeighting {
    Binary,
    Gaussian,
}

/// A weighted undirected graph stored as a sorted, symmetric list of directed entries
/// (both (i, j) and (j, i)), self-loops as (i, i).
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub n: usize,
    pub entries: Vec<(usize, usize, f32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphStats {
    pub vertices: usize,
    pub undirected_edges: usize,
    pub self_loops: usize,
    pub degree_min: usize,
    pub degree_mean: f64,
    pub degree_max: usize,
    pub isolated: usize,
}

impl Graph {
    pub fn from_knn(knn: &Knn, weighting: EdgeWeighting, self_loops: bool) -> Graph {
        let dist2 = |s: f32| (2.0 - 2.0 * s).max(0.0);
        let sigma2 = if knn.k > 0 && knn.n > 0 {
            let mean_d: f64 =
                (0..knn.n).map(|i| (dist2(knn.sims[i * knn.k + knn.k - 1]) as f64).sqrt()).sum::<f64>() / knn.n as f64;
            (mean_d * mean_d).max(1e-12)
        } else {
            1.0
        };
        let weight = |s: f32| match weighting {
            EdgeWeighting::Binary => 1.0f32,
            EdgeWeighting::Gaussian => (-(dist2(s) as f64) / sigma2).exp() as f32,
        };
        // Both directions of every neighbour edge; where an edge comes twice (i and j list
        // each other), the later write wins, as in a map.
        let mut t: Vec<(usize, usize, f32)> = Vec::with_capacity(2 * knn.n * knn.k + knn.n);
        for i in 0..knn.n {
            for r in 0..knn.k {
                let j = knn.indices[i * knn.k + r];
                if i == j {
                    continue;
                }
                let w = weight(knn.sims[i * knn.k + r]);
                t.push((i, j, w));
                t.push((j, i, w));
            }
        }
        if self_loops {
            t.extend((0..knn.n).map(|i| (i, i, 1.0)));
        }
        t.sort_by_key(|&(i, j, _)| (i, j)); // stable: writes of one edge stay in order
        let mut entries: Vec<(usize, usize, f32)> = Vec::with_capacity(t.len());
        for e in t {
            match entries.last_mut() {
                Some(last) if (last.0, last.1) == (e.0, e.1) => *last = e,
                _ => entries.push(e),
            }
        }
        Graph { n: knn.n, entries }
    }

    /// Every entry names two of the `n` vertices and has a finite weight: what the
    /// Laplacian needs. Graphs built here always pass; a graph read from a cache may not.
    pub fn check(&self) -> Result<()> {
        for (k, &(i, j, w)) in self.entries.iter().enumerate() {
            ensure!(
                i < self.n && j < self.n,
                "word graph entry {k} is ({i}, {j}) but the graph has {} vertices",
                self.n
            );
            ensure!(w.is_finite(), "word graph entry {k} ({i}, {j}) has weight {w}, not a finite number");
        }
        Ok(())
    }

    /// Off-diagonal degree (number of neighbours) of each vertex.
    pub fn degrees(&self) -> Vec<usize> {
        let mut d = vec![0; self.n];
        for &(i, j, _) in &self.entries {
            if i != j {
                d[i] += 1;
            }
        }
        d
    }

    pub fn stats(&self) -> GraphStats {
        let d = self.degrees();
        let loops = self.entries.iter().filter(|e| e.0 == e.1).count();
        GraphStats {
            vertices: self.n,
            undirected_edges: (self.entries.len() - loops) / 2,
            self_loops: loops,
            degree_min: d.iter().copied().min().unwrap_or(0),
            degree_mean: if self.n == 0 { 0.0 } else { d.iter().sum::<usize>() as f64 / self.n as f64 },
            degree_max: d.iter().copied().max().unwrap_or(0),
            isolated: d.iter().filter(|&&x| x == 0).count(),
        }
    }
}
