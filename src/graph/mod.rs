//! Graph stage: word vectors → cosine kNN lists (`knn`) → the symmetric word graph
//! (`word_graph`) → the rescaled Laplacian L̃ = 2L/λmax − I as sparse COO (`laplacian`).
//!
//! Input: [`crate::data::WordVectors`] in vocabulary order. Output:
//! [`laplacian::Coo`] (and [`word_graph::GraphStats`] for the record).

pub mod knn;
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
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MissingVectors {
    Drop,
    Isolate,
}
