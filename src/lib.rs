//! Text-as-graph cross-modal retrieval (Yu et al. 2018, arXiv 1802.00985) on libtorch.
//!
//! One folder per pipeline stage, declared below in data-flow order; a stage imports
//! only from earlier stages and from the leaves `files` and `stop` (checked by
//! `tests/layout_tests.rs`).
//!
//! ```text
//! data      dataset files ─► listed / pascal / nus_wide / synthetic ─► Dataset
//! image     raw images ─► prep + featurize (TorchScript backbone) ─► feature files ─► data
//! text      Dataset tokens ─► tokenize ─► vocab (BoW signals) ─► skipgram / wordvec
//! graph     word vectors ─► knn ─► word_graph ─► laplacian (L̃ = 2L/λmax − I, sparse COO)
//! model     bow ─► cheb (Chebyshev stack) ─► TextTower ─┐
//!           image features ─► Mlp (image tower) ───────┴─► Scorer
//! config    every stage's settings composed into one Config (YAML layers, --set)
//! prepare   Config ─► dataset ─► text_graph (vocabulary + word graph, cached) ─► Prepared tensors
//! eval      Model + Prepared ─► embeddings ─► ranking ─► map (MAP@k, MAP@all, curves)
//! run       run folders, checkpoints, metrics (TensorBoard + CSV), export, report
//! train     loss + pairs + optim ─► fit (the loop: validate, checkpoint, resume, test)
//!           fit ─► sweep (a validation-only grid or random search over config values)
//! retrieve  a trained run ─► search (one query), embed (.npy for FAISS), html (report.html)
//! bench     speed tables over all of the above
//! ```

// Leaves: atomic writes, JSON, digests, locks; Ctrl-C and SIGTERM as a stop request.
pub mod files;
pub mod stop;
// Stages, in data-flow order.
pub mod data;
pub mod image;
pub mod text;
pub mod graph;
pub mod model;
pub mod config;
pub mod prepare;
pub mod eval;
pub mod run;
pub mod train;
pub mod retrieve;
pub mod bench;
