//! Leaf helpers every stage may use: atomic writes, JSON files, SHA-256 digests and the
//! serde skip helpers of the configs. Nothing here imports from the crate, so any stage can
//! depend on it without a circle.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(value)? + "\n").as_bytes())
}

/// The JSON value in `path`, or None when there is no such file.
pub fn read_json_if_exists<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?))
}

/// Lowercase hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// serde `skip_serializing_if` helpers: a setting at its default is left out of saved YAML,
/// so configs written before the setting existed keep their hash.
pub fn is_false(v: &bool) -> bool {
    !*v
}

pub fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

pub fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// serde default `true`, for keys that are on unless a config turns them off.
pub fn yes() -> bool {
    true
}

pub fn is_true(v: &bool) -> bool {
    *v
}
