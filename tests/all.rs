//! The whole test suite in one binary, so libtorch is linked once. Real-data and slow
//! tests are `#[ignore]`d and run by `make test-slow`.

mod common;

mod config_tests;
mod featurize_tests;
mod map_tests;
mod text_graph_tests;
