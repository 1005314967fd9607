//! Class-posterior ranking (`eval.ranking: class_posterior`). Each modality gets its
//! nearest-class-mean posterior in the embedding space:
//!
//! ```text
//! μ_c^text  = normalise( Σ_{train items n with label c} t_n / |t_n| )     (and μ_c^image alike)
//! p(c | t)  = softmax_c( cos(t, μ_c^text) / τ )
//! score(t, i) = Σ_c p(c | t) · p(c | i)
//! ```
//!
//! The score is the probability that the two items share a class if each drew its class
//! from its own posterior. Retrieval here is class-level, so this ranks a text's images by
//! how likely each is to be of the text's class, rather than by closeness to the one point
//! the text maps to. The class means come from the train split only (its labels are what
//! training saw); validation and test labels are never read. A class with no train item
//! has no mean, and its posterior is 0 everywhere.
//!
//! `eval.ranking: classifier` takes the posteriors from the label classifier `W e + b`
//! that training shared by both towers (`loss.label`) instead, as trained: softmax of the
//! logits for single-label data, sigmoid per class for multi-label data (the score is
//! then the expected number of shared labels). Nothing is fitted at evaluation time.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Per-class means of the unit embeddings of the train split, one set per modality.
#[derive(Debug)]
pub struct ClassMeans {
    /// `[C, D]`, unit rows (a class without train items: a zero row).
    pub text: Tensor,
    /// `[C, D]`, unit rows (a class without train items: a zero row).
    pub image: Tensor,
    /// `[C]` bool: classes with at least one train item.
    pub present: Tensor,
    pub temperature: f64,
}

fn unit(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

impl ClassMeans {
    /// The class means of the train split's embeddings `text`, `image` (`[n, D]` each) and
    /// multi-hot `labels` (`[n, C]`); an item with several labels counts towards each.
    pub fn fit(text: &Tensor, image: &Tensor, labels: &Tensor, temperature: f64) -> Result<ClassMeans> {
        ensure!(temperature > 0.0, "the class-posterior temperature must be positive, got {temperature}");
        let labels = labels.to_kind(Kind::Float);
        let present = labels.sum_dim_intlist([0i64].as_slice(), false, Kind::Float).gt(0.0);
        ensure!(
            present.any().int64_value(&[]) != 0,
            "class-posterior ranking needs labelled train items, and the train split has none"
        );
        let means = |e: &Tensor| unit(&labels.tr().mm(&unit(&e.to_kind(Kind::Float))));
        Ok(ClassMeans { text: means(text), image: means(image), present, temperature })
    }

    fn posterior(&self, e: &Tensor, means: &Tensor) -> Tensor {
        let logits = unit(&e.to_kind(Kind::Float)).mm(&means.tr()) / self.temperature;
        logits.masked_fill(&self.present.logical_not().unsqueeze(0), f64::NEG_INFINITY).softmax(1, Kind::Float)
    }

    /// p(c | t) for text embeddings `[n, D]` → `[n, C]`.
    pub fn text_posterior(&self, t: &Tensor) -> Tensor {
        self.posterior(t, &self.text)
    }

    /// p(c | i) for image embeddings `[n, D]` → `[n, C]`.
    pub fn image_posterior(&self, i: &Tensor) -> Tensor {
        self.posterior(i, &self.image)
    }

    pub fn to_device(&self, device: Device) -> ClassMeans {
        ClassMeans {
            text: self.text.to_device(device),
            image: self.image.to_device(device),
            present: self.present.to_device(device),
            temperature: self.temperature,
        }
    }
}

/// The label classifier's posteriors (`eval.ranking: classifier`): `weight: [C, D]`,
/// `bias: [C]`, copied from the trained model.
#[derive(Debug)]
pub struct ClassifierPosterior {
    pub weight: Tensor,
    pub bias: Tensor,
    /// Sigmoid per class (multi-label data) instead of a softmax over classes.
    pub multi_label: bool,
}

impl ClassifierPosterior {
    /// p(c | e) for embeddings `[n, D]` of either tower → `[n, C]`.
    pub fn posterior(&self, e: &Tensor) -> Tensor {
        let logits = e.to_kind(Kind::Float).linear(&self.weight, Some(&self.bias));
        if self.multi_label {
            logits.sigmoid()
        } else {
            logits.softmax(1, Kind::Float)
        }
    }

    pub fn to_device(&self, device: Device) -> ClassifierPosterior {
        ClassifierPosterior {
            weight: self.weight.to_device(device),
            bias: self.bias.to_device(device),
            multi_label: self.multi_label,
        }
    }
}
