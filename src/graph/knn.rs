//! Cosine k-nearest-neighbour search over word vectors, on the device.
//!
//! Rows are L2-normalised once; then each chunk of `chunk` rows is multiplied against the
//! whole matrix (`[chunk, d] × [d, V] -> [chunk, V]`), the diagonal masked, and `topk`
//! keeps the k best. Memory stays at chunk × V scores, so 50k words × 300 dimensions
//! runs in a few hundred MB on CPU or CUDA.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Neighbour lists: `indices[i*k..(i+1)*k]` are word i's neighbours, best first, with
/// their cosine similarities in `sims`.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub n: usize,
    pub k: usize,
    pub indices: Vec<usize>,
    pub sims: Vec<f32>,
}

/// `vectors: [V, d]` row-major f32 -> k neighbours per row, excluding the row itself.
pub fn cosine_knn(vectors: &[f32], n: usize, dim: usize, k: usize, chunk: usize, device: Device) -> Result<Knn> {
    ensure!(vectors.len() == n * dim, "kNN: {} values for {n} vectors of dim {dim}", vectors.len());
    ensure!(k < n, "graph.k ({k}) must be below the number of words ({n})");
    let x = Tensor::from_slice(vectors).view([n as i64, dim as i64]).to_device(device);
    // Zero vectors stay zero after the clamp, so they are nobody's close neighbour.
    let norms = x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let x = x / norms;
    let xt = x.tr();
    let mut indices = Vec::with_capacity(n * k);
    let mut sims = Vec::with_capacity(n * k);
    let chunk = chunk.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let rows = x.narrow(0, start as i64, (end - start) as i64);
        let mut s = rows.mm(&xt); // [rows, V]
        let diag = Tensor::arange_start(start as i64, end as i64, (Kind::Int64, device)).unsqueeze(1);
        let _ = s.scatter_value_(1, &diag, f64::NEG_INFINITY); // in place: no copy of the chunk
        let (vals, idx) = s.topk(k as i64, 1, true, true);
        let idx: Vec<i64> = Vec::<i64>::try_from(idx.to_device(Device::Cpu).flatten(0, -1))?;
        let vals: Vec<f32> = Vec::<f32>::try_from(vals.to_device(Device::Cpu).flatten(0, -1))?;
        indices.extend(idx.into_iter().map(|i| i as usize));
        sims.extend(vals);
        start = end;
    }
    Ok(Knn { n, k, indices, sims })
}
