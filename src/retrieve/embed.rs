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
//! score matrix is computed with. Each file is written under a temporary name and renamed
//! into place at the end, `manifest.json` last; other files in `DIR` are never touched.

use super::{Database, Trained};
use crate::data::Split;
use crate::eval::Ranker;
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

/// The files `tgcn embed` writes into `--out`; nothing else there is touched.
pub const FILES: [&str; 6] = ["text.npy", "image.npy", "labels.npy", "ids.txt", "splits.txt", "manifest.json"];

/// `out` may be new, empty, or an earlier export (whose files are replaced; other files the
/// user put beside them, such as a FAISS index, stay); never a folder the user keeps other
/// things in. Checked before any work: the folder is created and a probe file written, so a
/// read-only or full file system is found before the embeddings are computed.
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
    std::fs::create_dir_all(out).with_context(|| format!("cannot create --out {}", out.display()))?;
    crate::files::ensure_writable(&out.join(".write-probe"), &format!("--out {}", out.display()))
}

/// Writes the embeddings of `splits` into `out`: each file under a temporary name first,
/// then all renamed into place, `manifest.json` last. Files in `out` that `tgcn embed` does
/// not write ([`FILES`]) are left as they are, with a note that they may describe the
/// previous embeddings.
pub fn write_embeddings(t: &Trained, splits: &[Split], out: &Path) -> Result<EmbedManifest> {
    check_out(out)?;
    let n: usize = splits.iter().map(|&s| t.data.split(s).len()).sum();
    let width = t.cfg.model.embed_dim.max(t.data.classes.len()) as u64;
    let need = n as u64 * (2 * width + t.data.classes.len() as u64) * 4 + n as u64 * 80 + (64 << 10);
    crate::files::ensure_free(out, need, &format!("the embeddings into {}", out.display()))?;
    let db = Database::build(t, splits);
    let (text, image, bias) = tch::no_grad(|| t.ranker.inner_product_sides(&t.model, &db.emb.text, &db.emb.image));
    let bias = bias.map_or(0.0, |b| b.double_value(&[0]));
    let cpu = |x: tch::Tensor| x.to_device(Device::Cpu).contiguous();
    let staged: Vec<(PathBuf, PathBuf)> =
        FILES.iter().map(|f| (crate::files::temp_path(&out.join(f)), out.join(f))).collect();
    let result = (|| -> Result<EmbedManifest> {
        let tmp = |name: &str| &staged[FILES.iter().position(|f| *f == name).expect("a listed file")].0;
        let npy = |x: tch::Tensor, name: &str| {
            let p = tmp(name);
            cpu(x).write_npy(p).with_context(|| {
                format!("cannot write {}{}", out.join(name).display(), crate::files::disk_full_hint(p))
            })
        };
        npy(text, "text.npy")?;
        npy(image, "image.npy")?;
        npy(db.emb.labels.shallow_clone(), "labels.npy")?;
        let lines = |f: &dyn Fn(&(Split, usize)) -> String| db.rows.iter().map(f).collect::<Vec<_>>().join("\n") + "\n";
        let write = |name: &str, text: String| {
            std::fs::write(tmp(name), text).with_context(|| {
                format!("cannot write {}{}", out.join(name).display(), crate::files::disk_full_hint(out))
            })
        };
        write("ids.txt", lines(&|&(s, i)| t.data.split(s).ids[i].clone()))?;
        write("splits.txt", lines(&|&(s, _)| s.name().to_string()))?;
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
        files: FILES.iter().copied().filter(|f| *f != "manifest.json").collect(),
    };
        write("manifest.json", serde_json::to_string_pretty(&manifest)? + "\n")?;
        Ok(manifest)
    })();
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            staged.iter().for_each(|(tmp, _)| drop(std::fs::remove_file(tmp)));
            return Err(e.context(format!("the embeddings were not written; {} is unchanged", out.display())));
        }
    };
    for (tmp, dst) in &staged {
        std::fs::rename(tmp, dst).with_context(|| format!("cannot rename {} to {}", tmp.display(), dst.display()))?;
    }
    let others: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|f| !FILES.contains(&f.as_str()))
        .collect();
    if !others.is_empty() {
        eprintln!(
            "note: {} also holds {} (not written by `tgcn embed`, left as they are): rebuild an index made from the \
             previous embeddings",
            out.display(),
            others.join(", ")
        );
    }
    Ok(manifest)
}
