//! The whole test suite in one binary, so libtorch is linked once. Real-data and slow
//! tests are `#[ignore]`d and run by `make test-slow`.

mod common;

mod cheb_tests;
mod config_tests;
mod datasets_tests;
mod docs_tests;
mod e2e_tests;
mod featurize_tests;
mod fuzz_tests;
mod layout_tests;
mod listed_tests;
mod map_tests;
mod nus_synth_tests;
mod pairs_tests;
mod pascal_nus_tests;
mod pytorch_tests;
mod recall_tests;
mod retrieve_tests;
mod robustness_tests;
mod safety_tests;
mod sweep_tests;
mod text_graph_tests;
mod wordvec_tests;
