//! `tgcn embed --run RUN --split train|val|test|all --out DIR`: the run's text and image
//! embeddings as `.npy`, for a vector index (FAISS, a vector database).
//!
//! ```text
//! DIR/text.npy    [n, D] f32   text side: t ⊙ w (product scorer) or t/|t| (cosine);
//!                              [n, C] class posteriors with `eval.ranking: class_posterior`
//!                              or `classifier`
//! DIR/image.npy   [n, D] f32   image side: i (product) or i/|i| (cosine); or [n, C] posteriors
//! DIR/labels.npy  [n, C] f32   multi-hot labels
//! DIR/ids.txt     n lines      item ids, in row order
//! DIR/splits.txt  n lines      each row's split (after a refit, validation rows are named val, once)
//! DIR/manifest.json            scorer, bias, dim, count, classes, run, checkpoint (epoch, refit)
//! ```
//!
//! The model's score of text row a against image row b is exactly
//! `⟨text[a], image[b]⟩ + bias` (the product scorer's weight w is folded into the text
//! side; for cosine both sides are L2-normalised and the bias is 0; for class-posterior
//! or classifier ranking both sides are posteriors and the bias is 0). The sides come from
//! [`crate::eval::Ranker::inner_product_sides`], beside the function the evaluation's
//! score matrix is computed with. Everything is written to `DIR.partial/` and renamed at the end.

use super::{Database, Trained};
use crate::data::Split;
use crate::eval::Ranker;
use crate::files::{write_atomic, write_json};
use crate::model::ScorerKind;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tch::Device;

/// A side of classifier ranking, in words (both towers share the classifier).
fn classifier_side(multi_label: bool) -> &'static str {
    if multi_label {
        "p(c | x): sigmoid of the shared label classifier's logits W x + b, per class"
    } else {
        "p(c | x): softmax of the shared label classifier's logits W x + b"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbedManifest {
    pub run: PathBuf,
    pub checkpoint_epoch: usize,
    /// The best checkpoint, or the refit on train ∪ validation ([`Trained::describe`]).
    pub checkpoint: String,
    pub splits: Vec<&'static str>,
    pub count: usize,
    pub dim: usize,
    /// `product` or `cosine`.
    pub scorer: &'static str,
    /// `scorer` (the sides are embeddings), or `class_posterior` or `classifier` (the
    /// sides are class posteriors `[n, C]`, in the order of `classes`).
    pub ranking: &'static str,
    /// score(text a, image b) = ⟨text[a], image[b]⟩ + bias.
    pub bias: f64,
    pub score: &'static str,
    pub text_side: &'static str,
    pub image_side: &'static str,
    pub classes: Vec<String>,
    pub files: Vec<&'static str>,
}

pub fn parse_splits(s: &str) -> Result<Vec<Split>> {
    Ok(match s {
        "train" => vec![Split::Train],
        "val" => vec![Split::Val],
        "test" => vec![Split::Test],
        "all" => vec![Split::Train, Split::Val, Split::Test],
        _ => bail!("--split must be train, val, test or all, not {s:?}"),
    })
}

/// `out` may be new, empty, or an earlier export (which is replaced); never a folder the
/// user keeps other things in.
pub fn check_out(out: &Path) -> Result<()> {
    if out.exists() {
        let ours = out.join("manifest.json").is_file() && out.join("text.npy").is_file();
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !out.is_dir() || !(ours || empty) {
            bail!(
                "--out {} exists and is not an earlier `tgcn embed` folder; name a new or empty folder",
                out.display()
            );
        }
    }
    Ok(())
}

/// Writes the embeddings of `splits` into `out` (replacing an earlier export there).
pub fn write_embeddings(t: &Trained, splits: &[Split], out: &Path) -> Result<EmbedManifest> {
    check_out(out)?;
    let db = Database::build(t, splits);
    let (text, image, bias) = tch::no_grad(|| t.ranker.inner_product_sides(&t.model, &db.emb.text, &db.emb.image));
    let bias = bias.map_or(0.0, |b| b.double_value(&[0]));
    let cpu = |x: tch::Tensor| x.to_device(Device::Cpu).contiguous();
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let npy = |x: tch::Tensor, name: &str| {
        let p = tmp.join(name);
        cpu(x).write_npy(&p).with_context(|| format!("cannot write {}", p.display()))
    };
    npy(text, "text.npy")?;
    npy(image, "image.npy")?;
    npy(db.emb.labels.shallow_clone(), "labels.npy")?;
    let lines = |f: &dyn Fn(&(Split, usize)) -> String| db.rows.iter().map(f).collect::<Vec<_>>().join("\n") + "\n";
    write_atomic(&tmp.join("ids.txt"), lines(&|&(s, i)| t.data.split(s).ids[i].clone()).as_bytes())?;
    write_atomic(&tmp.join("splits.txt"), lines(&|&(s, _)| s.name().to_string()).as_bytes())?;
    let product = t.model.scorer.kind == ScorerKind::Product;
    let manifest = EmbedManifest {
        run: t.run.path.clone(),
        checkpoint_epoch: t.epoch,
        checkpoint: t.describe(),
        splits: splits.iter().map(|s| s.name()).collect(),
        count: db.len(),
        dim: db.emb.text.size()[1] as usize,
        scorer: if product { "product" } else { "cosine" },
        bias,
        score:
            "score(text a, image b) = dot(text[a], image[b]) + bias: an inner-product index ranks exactly as the model",
        ranking: t.ranker.name(),
        text_side: match (&t.ranker, product) {
            (Ranker::Posterior(_), _) => "p(c | t): softmax of cos(t, train-split text class means) / tau",
            (Ranker::Classifier(c), _) => classifier_side(c.multi_label),
            (Ranker::Scorer, true) => "t * w (the product scorer's weight folded in)",
            (Ranker::Scorer, false) => "t / |t| (L2-normalised)",
        },
        image_side: match (&t.ranker, product) {
            (Ranker::Posterior(_), _) => "p(c | i): softmax of cos(i, train-split image class means) / tau",
            (Ranker::Classifier(c), _) => classifier_side(c.multi_label),
            (Ranker::Scorer, true) => "i",
            (Ranker::Scorer, false) => "i / |i| (L2-normalised)",
        },
        classes: t.data.classes.clone(),
        files: vec!["text.npy", "image.npy", "labels.npy", "ids.txt", "splits.txt"],
    };
    write_json(&tmp.join("manifest.json"), &manifest)?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok(manifest)
}
