//! Image features as the towers take them: refused when they cannot train, then
//! normalised with statistics fitted on the train split.

use crate::config::{ImageNorm, ImageTransform};
use crate::data::Dataset;
use anyhow::{bail, ensure, Result};
use tch::{Kind, Tensor};

/// Image feature normalisation fitted on the train split: an optional √x (Hellinger map),
/// then x' = (x − shift) / scale, then an optional row L2 normalisation.
#[derive(Debug)]
pub struct ImageNormalizer {
    pub kind: ImageNorm,
    pub sqrt: bool,
    pub shift: Tensor,
    pub scale: Tensor,
}

impl ImageNormalizer {
    /// Fits on the raw train features `train: [n, F]`.
    pub fn fit(kind: ImageNorm, transform: ImageTransform, train: &Tensor) -> ImageNormalizer {
        let sqrt = transform == ImageTransform::Sqrt;
        let train = if sqrt { train.clamp_min(0.0).sqrt() } else { train.shallow_clone() };
        let f = train.size()[1];
        let (shift, scale) = match kind {
            ImageNorm::Zscore => {
                let mean = train.mean_dim(0, false, Kind::Float);
                let std = train.std_dim(0, false, false);
                // A constant feature has std 0: leave it centred rather than divide by 0.
                let std = std.where_self(&std.gt(1e-12), &std.ones_like());
                (mean, std)
            }
            ImageNorm::L2 | ImageNorm::None => {
                (Tensor::zeros([f], (Kind::Float, train.device())), Tensor::ones([f], (Kind::Float, train.device())))
            }
        };
        ImageNormalizer { kind, sqrt, shift, scale }
    }

    /// `x: [n, F] -> [n, F]` (raw features; negative ones were refused at load under `sqrt`).
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let x = if self.sqrt { x.clamp_min(0.0).sqrt() } else { x.shallow_clone() };
        let y = (x - &self.shift) / &self.scale;
        match self.kind {
            ImageNorm::L2 => &y / y.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12),
            _ => y,
        }
    }
}

/// Largest |value| accepted in image features: far above CNN activations or visual-word
/// counts, far below where squares overflow f32 in the z-score.
pub const MAX_FEATURE_MAGNITUDE: f32 = 1e8;

/// Refuses image features that cannot train (no columns, all zero, all rows identical,
/// absurd magnitudes) and warns about constant columns, naming `source`.
pub fn check_image_features(ds: &Dataset, source: &str) -> Result<()> {
    let (n, d) = (ds.items.len(), ds.image_dim);
    ensure!(d > 0, "the image features in {source} have 0 columns ({n} rows): nothing to train the image tower on");
    if n == 0 {
        return Ok(());
    }
    let x = &ds.images;
    let big = x.iter().enumerate().find(|(_, v)| v.abs() > MAX_FEATURE_MAGNITUDE);
    if let Some((i, v)) = big {
        bail!(
            "the image features in {source} hold absurd magnitudes: {v:e} at row {}, column {} (|x| > {MAX_FEATURE_MAGNITUDE:e}); \
             rescale them (they train as O(1)–O(1e3) values)",
            i / d,
            i % d
        );
    }
    ensure!(
        x.iter().any(|&v| v != 0.0),
        "the image features in {source} are all zero ({n} × {d}): MAP would be at chance"
    );
    // One pass over the rows marks the columns that vary; rows are all identical exactly
    // when no column does.
    let first = &x[..d];
    let mut varies = vec![false; d];
    for row in x.chunks(d).skip(1) {
        for ((v, a), b) in varies.iter_mut().zip(row).zip(first) {
            *v |= a != b;
        }
    }
    let constant = varies.iter().filter(|&&v| !v).count();
    ensure!(n < 2 || constant < d, "all {n} image feature rows in {source} are identical: images cannot be told apart");
    if constant > 0 {
        eprintln!(
            "warning: {constant} of {d} image feature columns in {source} are constant over all {n} items \
             (z-scoring leaves them at 0; they carry no information)"
        );
    }
    Ok(())
}
