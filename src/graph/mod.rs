//! Graph stage: word relations → the symmetric word graph (`word_graph`) → the rescaled
//! Laplacian L̃ = 2L/λmax − I as sparse COO (`laplacian`). The relations (`graph.relations`)
//! are cosine kNN lists over word vectors (`knn`), positive-PMI co-occurrence neighbours
//! (`pmi`) and WordNet synonyms and hypernyms (`wordnet`); several are joined as SCKR
//! (Yu et al. 2019) does, by the union of their neighbour lists.
//!
//! Input: [`crate::data::WordVectors`] in vocabulary order, the texts' vocabulary ids, the
//! WordNet files. Output: [`laplacian::Coo`] (and [`word_graph::GraphStats`] for the record).

pub mod knn;
pub mod pmi;
pub mod wordnet;
pub mod word_graph;
pub mod laplacian;

use laplacian::LambdaMax;
use serde::{Deserialize, Serialize};
use word_graph::EdgeWeighting;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// Neighbours per word in the cosine kNN search.
    pub k: usize,
    pub weighting: EdgeWeighting,
    /// Keep A_ii = 1, as the authors' code does.
    pub self_loops: bool,
    pub lambda_max: LambdaMax,
    /// Vocabulary words without a vector: dropped from the vocabulary, or kept as
    /// isolated vertices (their counts still reach the text tower).
    pub missing_vectors: MissingVectors,
    /// Rows per chunk of the kNN similarity product (bounds memory at chunk × vocab).
    pub knn_chunk: usize,
    /// The relations whose neighbour lists are joined into the graph; left out, `[knn]`.
    /// An edge that only `pmi` or `wordnet` gives has weight 1.
    #[serde(default = "knn_only", skip_serializing_if = "is_knn_only")]
    pub relations: Vec<Relation>,
    /// How several relations make the graph: `union` (one graph of the joined neighbour
    /// lists, SCKR's way) or `separate` (one L̃ per relation, each with its own Chebyshev
    /// stack, their features side by side).
    #[serde(default, skip_serializing_if = "is_default")]
    pub combine: Combine,
    /// Settings of the `pmi` relation.
    #[serde(default, skip_serializing_if = "is_default")]
    pub pmi: pmi::PmiConfig,
    /// Settings of the `wordnet` relation.
    #[serde(default, skip_serializing_if = "is_default")]
    pub wordnet: wordnet::WordnetConfig,
}

/// One source of word–word edges.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Cosine kNN over the word vectors (`graph.k`, `graph.weighting`).
    Knn,
    /// Positive PMI over sliding windows of the vocabulary's texts (`graph.pmi`).
    Pmi,
    /// WordNet 3.0 synonyms and direct hypernyms (`graph.wordnet`).
    Wordnet,
}

impl Relation {
    pub fn name(self) -> &'static str {
        match self {
            Relation::Knn => "knn",
            Relation::Pmi => "pmi",
            Relation::Wordnet => "wordnet",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    Union,
    Separate,
}

fn knn_only() -> Vec<Relation> {
    vec![Relation::Knn]
}

fn is_knn_only(r: &[Relation]) -> bool {
    r == [Relation::Knn]
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MissingVectors {
    Drop,
    Isolate,
}
