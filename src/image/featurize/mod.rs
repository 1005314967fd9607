//! Image features from raw image files with a TorchScript backbone (`tgcn featurize`),
//! written as a [`crate::data::features`] file (`<out>.npy` + `<out>.ids.txt`).
//!
//! ```text
//! items (id, path) ─► stat every file (fingerprint: size, mtime) ─► cache hit? → done
//!   ─► <out>.partial/: reuse every shard whose fingerprint still matches
//!   ─► pre-check the rest (empty? image magic?) ─► load the backbone (CModule)
//!   ─► decode threads ──(item, [3,crop,crop])──► assembler ──[B,3,crop,crop]──► forward
//!      (imageprep: decode,         (restores input order, batches        (main thread,
//!       resize, crop, normalise)    never span a shard)                   on the device)
//!   ─► shard files, atomically ─► assemble <out>.npy + .ids.txt ─► <out>.featurize.json
//! ```
//!
//! **Overlap.** `threads` workers decode in parallel, at most a window of items ahead of
//! the batch being assembled, and the assembler keeps up to two finished batches queued,
//! so the model never waits for decoding unless decoding is the bottleneck, and memory
//! stays bounded (about `(2·batch + window)·3·crop²·4` bytes).
//!
//! **Resuming.** The input list is cut into shards of `shard_size` consecutive items.
//! Each finished shard is written to `<out>.partial/shard-NNNNN.{npy,ids.txt}`, then its
//! `.json` (the commit marker, holding a hash of its items' ids, paths, sizes and mtimes
//! and the images it skipped). A rerun reuses every shard whose hash still matches, so an
//! interrupted run continues where it stopped, and fixing or replacing one image redoes
//! only its shard. Batches never span shards, so a resumed run makes the same batches as
//! an uninterrupted one. The final files are written through temporary names and renames;
//! the partial folder is removed only after that.
//!
//! **Caching.** `<out>.featurize.json` records the key of the result (backbone SHA-256,
//! preprocessing, bad-image policy, hash of all items' fingerprints). A rerun with the
//! same key returns at once without loading the model.
//!
//! **Bad images.** A missing, empty, non-image (by magic bytes, not by name), truncated or
//! undecodable file never reaches the model. With `on_bad_image: stop` (the default) the
//! run fails with a [`BadImagesError`] naming each bad file it found; with `skip` the items
//! are left out of the output and listed, with the reason, in the report and the sidecar.
//!
//! Ids: [`list_images`] names each image by its path relative to the input folder, with
//! `/` separators (`sub/2008_000716.jpg`).
//!
//! The parts, in the order they depend on each other: `settings` (config and report
//! types) ─► `discover` ─► `shards` ─► `decode` ─► `batches` ─► `command` ─► `bench`.

pub mod settings;
pub mod discover;
pub mod shards;
pub mod decode;
pub mod batches;
pub mod command;
pub mod bench;

pub use batches::forward;
pub use bench::{bench_table, benchmark, BenchDecode, BenchRow};
pub use command::{featurize, featurize_with};
pub use discover::{list_images, read_image_list, scan_images, ImageList, Listing, IMAGE_EXTENSIONS};
pub use settings::{BadImage, BadImagesError, FeaturizeConfig, FeaturizeOptions, FeaturizeReport, OnBadImage};
pub use shards::{partial_dir, sidecar_path};
