//! The training objectives. Terms are weighted and summed by the training loop.
//!
//! The "global loss" of the authors (after Kumar BG et al. 2016):
//!   L = var(S+) + var(S−) + λ · max(0, m − (mean(S+) − mean(S−))) + l2 · Σ‖W‖²
//! over the positive scores S+ and negative scores S− of a batch. Variances are
//! population variances (as Keras' `K.var`). When a batch has no positives (or no
//! negatives) their variance term is zero and the margin term is left out.

use tch::{Kind, Tensor};

pub struct GlobalLoss {
    /// Scalar to minimise, without the L2 term.
    pub loss: Tensor,
    pub mean_pos: Option<f64>,
    pub mean_neg: Option<f64>,
    pub var_pos: Option<f64>,
    pub var_neg: Option<f64>,
}

/// `pos: [P]`, `neg: [N]` scores -> the global loss and its parts.
pub fn global_loss(pos: &Tensor, neg: &Tensor, lambda: f64, margin: f64) -> GlobalLoss {
    let stats = |s: &Tensor| (s.numel() > 0).then(|| (s.mean(Kind::Float), s.var(false)));
    let (p, n) = (stats(pos), stats(neg));
    let zero = || Tensor::zeros([], (Kind::Float, pos.device()));
    let mut loss = zero();
    if let Some((_, v)) = &p {
        loss += v;
    }
    if let Some((_, v)) = &n {
        loss += v;
    }
    if let (Some((mp, _)), Some((mn, _))) = (&p, &n) {
        let gap = mp - mn;
        loss += (-gap + margin).clamp_min(0.0) * lambda;
    }
    let val = |t: &Tensor| t.double_value(&[]);
    GlobalLoss {
        loss,
        mean_pos: p.as_ref().map(|(m, _)| val(m)),
        mean_neg: n.as_ref().map(|(m, _)| val(m)),
        var_pos: p.as_ref().map(|(_, v)| val(v)),
        var_neg: n.as_ref().map(|(_, v)| val(v)),
    }
}

/// Multi-positive InfoNCE over an in-batch score matrix, in both directions (after Khosla
/// et al. 2020, supervised contrastive):
///   L_t2i = mean_i [ −(1/|P_i|) Σ_{j ∈ P_i} log softmax_j(S_i· / τ) ],
/// L_i2t the same over the columns, L = (L_t2i + L_i2t) / 2, where P_i are the images
/// sharing a label with text i (multi-label aware; the item's own image is always in it).
/// `scores: [B, B]` (text i vs image j), `positive: [B, B]` bool -> a scalar.
pub fn contrastive_loss(scores: &Tensor, positive: &Tensor, temperature: f64) -> Tensor {
    contrastive_loss_logits(&(scores / temperature), positive)
}

/// [`contrastive_loss`] of logits already divided by τ (a learned τ enters as a tensor).
pub fn contrastive_loss_logits(logits: &Tensor, positive: &Tensor) -> Tensor {
    let kind = logits.kind(); // computed in the logits' precision
    let pos = positive.to_kind(kind);
    let direction = |l: &Tensor, p: &Tensor| {
        let lsm = l.log_softmax(1, kind);
        let per_row = -(lsm * p).sum_dim_intlist(1, false, kind) / p.sum_dim_intlist(1, false, kind).clamp_min(1.0);
        per_row.mean(kind)
    };
    (direction(logits, &pos) + direction(&logits.tr(), &pos.tr())) / 2.0
}

/// The label loss of one tower's classifier outputs `logits: [B, C]` against multi-hot
/// `labels: [B, C]`. Single-label data: softmax cross-entropy, mean over rows,
///   −(1/B) Σ_b Σ_c y_bc log softmax_c(z_b).
/// Multi-label data: binary cross-entropy per class, mean over rows and classes,
///   −(1/BC) Σ_b Σ_c [y_bc log σ(z_bc) + (1 − y_bc) log(1 − σ(z_bc))].
pub fn label_loss(logits: &Tensor, labels: &Tensor, multi_label: bool) -> Tensor {
    let kind = logits.kind();
    let y = labels.to_kind(kind);
    if multi_label {
        logits.binary_cross_entropy_with_logits::<Tensor>(&y, None, None, tch::Reduction::Mean)
    } else {
        -(logits.log_softmax(1, kind) * y).sum_dim_intlist(1, false, kind).mean(kind)
    }
}

/// The modality-invariance term: mean over the batch of ‖t_b − i_b‖², between an item's
/// text and image embedding (`t, i: [B, D]`, as the scorer compares them).
pub fn invariance_loss(t: &Tensor, i: &Tensor) -> Tensor {
    let kind = t.kind();
    (t - i).square().sum_dim_intlist(1, false, kind).mean(kind)
}

/// Σ‖W‖² over the given weights (a scalar tensor, differentiable).
pub fn l2_penalty(weights: &[&Tensor]) -> Tensor {
    weights
        .iter()
        .map(|w| w.square().sum(Kind::Float))
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, tch::Device::Cpu)))
}

/// The value of Σ‖W‖² without an autograd graph: one pass over each weight, no temporary.
/// Training reports the L2 term with this and applies its gradient in the optimizer
/// ([`crate::train::optim::Adam::set_l2`]).
pub fn l2_value(weights: &[&Tensor]) -> Tensor {
    tch::no_grad(|| {
        weights
            .iter()
            .map(|w| {
                let f = w.flatten(0, -1);
                f.dot(&f)
            })
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, tch::Device::Cpu)))
    })
}
