//! Retrieval stage, for use after training: query a trained run (`search`), write its
//! embeddings for a vector index (`embed`), and show what it retrieves (`html`, the run
//! report with retrieval examples).
//!
//! Input: a run folder (its `config.yaml` and the checkpoint it was tested with). Output: ranked hits,
//! `.npy` embeddings with a manifest, and `report.html`.
//!
//! Everything here scores with the evaluation's own code: [`crate::eval::embed`] in the
//! same chunks, [`crate::eval::Ranker`] and [`crate::eval::ranking_order`], so a
//! search result is exactly a row of the score matrix that MAP was computed on.

pub mod search;
pub mod embed;
pub mod html;

pub use crate::train::trained::Trained;

use crate::data::Split;
use crate::eval::EVAL_BATCH;
use crate::eval::{embed, Embedded};
use anyhow::{bail, Result};
use tch::Tensor;

/// Which splits a query searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    Test,
    Train,
    /// Train, then validation, then test, in that row order.
    All,
}

impl Against {
    pub fn parse(s: &str) -> Result<Against> {
        Ok(match s {
            "test" => Against::Test,
            "train" => Against::Train,
            "all" => Against::All,
            _ => bail!("--against must be test, train or all, not {s:?}"),
        })
    }

    pub fn splits(self) -> &'static [Split] {
        match self {
            Against::Test => &[Split::Test],
            Against::Train => &[Split::Train],
            Against::All => &[Split::Train, Split::Val, Split::Test],
        }
    }
}

/// Items of one or more splits, embedded and represented as the evaluation ranks them
/// (the embeddings, or their class posteriors: [`crate::eval::Ranker::represent`]).
pub struct Database {
    pub emb: Embedded,
    /// Per row: (split, index within the split).
    pub rows: Vec<(Split, usize)>,
}

impl Database {
    /// After a refit the train split ends with the validation items
    /// ([`crate::prepare::Prepared::include_val_in_train`]): their rows are named as
    /// validation rows, and they are listed once when both splits are asked for.
    pub fn build(t: &Trained, splits: &[Split]) -> Database {
        let mut parts = Vec::new();
        let mut rows = Vec::new();
        let joined = t.data.val_in_train;
        for &s in splits {
            if joined && s == Split::Val && splits.contains(&Split::Train) {
                continue;
            }
            let st = t.data.split(s);
            parts.push(t.ranker.represent(embed(&t.model, st, EVAL_BATCH)));
            let own = if s == Split::Train { t.data.train_items() } else { st.len() };
            rows.extend((0..own).map(|i| (s, i)));
            rows.extend((own..st.len()).map(|i| (Split::Val, i - own)));
        }
        let emb = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            let cat = |f: fn(&Embedded) -> &Tensor| Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0);
            Embedded { text: cat(|e| &e.text), image: cat(|e| &e.image), labels: cat(|e| &e.labels) }
        };
        Database { emb, rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}
