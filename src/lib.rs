//! Text-as-graph cross-modal retrieval (Yu et al. 2018, arXiv 1802.00985) on libtorch.
//!
//! ```text
//! dataset files ─► dataset (common Dataset) ─► vocab (BoW signals)
//!                                   │               │
//!                     word vectors ─┴─► knn ─► graph ─► laplacian (L̃ = 2L/λmax − I)
//!                                                          │
//!   bow ─► cheb (Chebyshev stack) ─► model::TextTower ─┐   │
//!   image features ─► model::Mlp (image tower) ────────┴─► model::Scorer
//!          ─► loss (global loss) ◄─ pairs ◄─ train (Adam, checkpoints)
//!          ─► eval + map (MAP@k / MAP@all, curves) ─► metrics (TensorBoard + CSV)
//!          ─► export (TorchScript + manifest)
//! ```
//! `config` types every setting; `pipeline` runs the data steps for train/eval/export;
//! `run` owns the self-describing run folders.

pub mod cheb;
pub mod config;
pub mod dataset;
pub mod eval;
pub mod export;
pub mod features;
pub mod featurize;
pub mod graph;
pub mod imageprep;
pub mod knn;
pub mod laplacian;
pub mod loss;
pub mod map;
pub mod metrics;
pub mod model;
pub mod pairs;
pub mod pipeline;
pub mod run;
pub mod synthetic;
pub mod tokenize;
pub mod train;
pub mod vocab;
