//! Image stage: raw image files → feature files. `prep` decodes, resizes, crops and
//! normalises one image; `featurize` runs a TorchScript backbone over a folder or list,
//! resumable and cached, and writes a [`crate::data::features`] file.
//!
//! Input: image paths. Output: `<out>.npy` + `<out>.ids.txt`, which the data stage reads.

pub mod prep;
pub mod featurize;
