//! Chebyshev graph convolution (Defferrard et al. 2016), as used by Yu et al. 2018.
//!
//! For a signal X on the graph, with L̃ = 2L/λmax − I:
//!   T0 = X,  T1 = L̃X,  Tk = 2L̃T(k−1) − T(k−2),
//!   Y = Σ_k Tk Θk + b,
//! where Θk: [F_in, F_out] is stored as `lins/{k}/weight: [F_out, F_in]` (PyG's `ChebConv`
//! names), and b is `bias: [F_out]` (per filter) or `[V, F_out]` (per vertex). The
//! recurrence runs on sparse × dense products with the whole batch folded into columns.

use crate::config::ChebBias;
use tch::{nn, Tensor};

#[derive(Debug)]
pub struct ChebConv {
    /// One `[F_out, F_in]` weight per Chebyshev order.
    pub lins: Vec<Tensor>,
    pub bias: Tensor,
    pub f_in: i64,
    pub f_out: i64,
}

/// `k` Chebyshev terms mapping `f_in` to `f_out` features per vertex on `n_vertices` vertices.
pub fn cheb_conv(p: nn::Path, k: usize, f_in: usize, f_out: usize, bias: ChebBias, n_vertices: usize) -> ChebConv {
    let (f_in, f_out) = (f_in as i64, f_out as i64);
    // Glorot-uniform per order, as PyG's Linear layers inside ChebConv.
    let bound = (6.0 / (f_in + f_out) as f64).sqrt();
    let lins = (0..k)
        .map(|i| (&p / "lins" / i).var("weight", &[f_out, f_in], nn::Init::Uniform { lo: -bound, up: bound }))
        .collect();
    let bias = match bias {
        ChebBias::PerFilter => p.zeros("bias", &[f_out]),
        ChebBias::PerVertex => p.zeros("bias", &[n_vertices as i64, f_out]),
    };
    ChebConv { lins, bias, f_in, f_out }
}

impl ChebConv {
    pub fn k(&self) -> usize {
        self.lins.len()
    }

    /// `lap`: sparse `[V, V]`; `xs: [batch, V, F_in] -> [batch, V, F_out]`.
    pub fn forward(&self, lap: &Tensor, xs: &Tensor) -> Tensor {
        let f_in = self.f_in;
        // [B, V, F_in] -> [V, B*F_in]: one sparse product serves the whole batch.
        let to_cols = |t: &Tensor| t.permute([1, 0, 2]).flatten(1, 2);
        // [V, B*F_in] -> [B, V, F_in]; -1 keeps the batch size free in traced graphs.
        let to_batch = |t: &Tensor| t.unflatten(1, [-1, f_in]).permute([1, 0, 2]);
        let x0 = to_cols(xs);
        let mut out = xs.matmul(&self.lins[0].tr());
        if self.k() > 1 {
            let mut prev = x0.shallow_clone();
            let mut cur = lap.mm(&x0);
            out += to_batch(&cur).matmul(&self.lins[1].tr());
            for w in &self.lins[2..] {
                let next = lap.mm(&cur) * 2.0 - &prev;
                out += to_batch(&next).matmul(&w.tr());
                prev = cur;
                cur = next;
            }
        }
        out + &self.bias
    }
}
