//! Training pairs. `sampled` mode (the authors' protocol) draws, every epoch,
//! class-balanced positive pairs (a class uniformly, then a text and an image of it) and
//! as many negatives (a class uniformly, a text of it, then an image sharing no label
//! with that text). Indices are positions in the train split. Pure Rust, seeded.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

/// (text position, image position)
pub type Pair = (usize, usize);

pub fn shares_label(a: &[usize], b: &[usize]) -> bool {
    a.iter().any(|x| b.contains(x))
}

pub fn sample_pairs<R: Rng>(
    labels: &[Vec<usize>],
    n_classes: usize,
    n: usize,
    rng: &mut R,
) -> Result<(Vec<Pair>, Vec<Pair>)> {
    let mut members = vec![Vec::new(); n_classes];
    for (i, ls) in labels.iter().enumerate() {
        for &l in ls {
            members[l].push(i);
        }
    }
    let classes: Vec<usize> = (0..n_classes).filter(|&c| !members[c].is_empty()).collect();
    if classes.is_empty() {
        bail!("no labelled training items to draw pairs from");
    }
    let mut pos = Vec::with_capacity(n);
    let mut neg = Vec::with_capacity(n);
    for _ in 0..n {
        let c = *classes.choose(rng).unwrap();
        pos.push((*members[c].choose(rng).unwrap(), *members[c].choose(rng).unwrap()));
    }
    for _ in 0..n {
        let c = *classes.choose(rng).unwrap();
        let a = *members[c].choose(rng).unwrap();
        let mut found = None;
        for _ in 0..64 {
            let b = rng.gen_range(0..labels.len());
            if !shares_label(&labels[a], &labels[b]) {
                found = Some(b);
                break;
            }
        }
        let b = match found {
            Some(b) => b,
            None => {
                // Rejection failed (a label shared by most items): draw from the full list.
                let ok: Vec<usize> = (0..labels.len()).filter(|&b| !shares_label(&labels[a], &labels[b])).collect();
                match ok.choose(rng) {
                    Some(&b) => b,
                    None => bail!("cannot draw a negative pair: every training item shares a label with item {a}"),
                }
            }
        };
        neg.push((a, b));
    }
    Ok((pos, neg))
}
