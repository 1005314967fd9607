//! Text-as-graph cross-modal retrieval (Yu et al. 2018, arXiv 1802.00985) on libtorch.
//!
//! ```text
//! dataset files ─► listed / pascal / nus_wide / synthetic ─► dataset (common Dataset)
//!   raw images ─► imageprep + featurize (TorchScript backbone) ─► features ─┘
//!                                   ─► vocab (BoW signals) ─► skipgram / wordvec
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

// Data: dataset files -> common Dataset (one loader per layout).
pub mod config;
pub mod dataset;
pub mod synthetic;
pub mod mat5;
pub mod listed;
pub mod pascal;
pub mod nus_wide;
pub mod features;
pub mod imageprep;
pub mod featurize;
pub mod tokenize;
// Text -> vocabulary/BoW -> word vectors -> kNN word graph -> Laplacian.
pub mod vocab;
pub mod skipgram;
pub mod wordvec;
pub mod knn;
pub mod graph;
pub mod laplacian;
pub mod pipeline;
// Model: Chebyshev text tower + image tower -> scorer.
pub mod cheb;
pub mod model;
// Training: loss, pairs, optimizer, loop.
pub mod loss;
pub mod pairs;
pub mod optim;
pub mod train;
// Evaluation, logging, runs, export.
pub mod map;
pub mod eval;
pub mod metrics;
pub mod run;
pub mod export;
pub mod report;
pub mod bench;
