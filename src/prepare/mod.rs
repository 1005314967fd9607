//! Preparation stage, shared by `train`, `eval`, `export` and `retrieve`: the configured
//! dataset (`dataset`, with raw images through `images`) → vocabulary and kNN word graph
//! (`text_graph`, cached) → rescaled Laplacian, BoW signals and normalised image features
//! (`image_features`) as tensors on the device (`prepared`), with a digest of it all
//! (`fingerprint`). Rebuilding from a run's saved config gives the same vocabulary, graph
//! and splits: everything is seeded.
//!
//! Input: a [`crate::config::Config`]. Output: [`Prepared`] tensors on the run's device.

pub mod device;
pub mod image_features;
pub mod images;
pub mod dataset;
pub mod text_graph;
pub mod prepared;
pub mod fingerprint;

pub use dataset::{expected_layout, image_source, load_dataset, set_dataset_root, tokenize_query, tokenizer};
pub use device::resolve_device;
pub use fingerprint::DataFingerprint;
pub use image_features::{check_image_features, ImageNormalizer, MAX_FEATURE_MAGNITUDE};
pub use images::{dataset_images, featurize_images, from_images, image_categories, image_stem, resolve_image_ids};
pub use prepared::{prepare, Prepared, SplitTensors, SNIPPET_TOKENS};
pub use text_graph::{read_text_graph_cache, text_graph, TextGraph};
