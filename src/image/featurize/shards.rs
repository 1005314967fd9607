//! The on-disk state of a run: `<out>.partial/` (manifest + resumable shards, each
//! committed by its `.json` marker), the result key, the `<stem>.featurize.json` cache
//! sidecar, and the final assembly of the shards into `<out>.npy` + `.ids.txt`.

use super::settings::{BadImage, FeaturizeReport, OnBadImage};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The folder of finished shards of an unfinished run: `<out>.partial/`.
pub fn partial_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// The cache record beside the output: `<stem>.featurize.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    out.with_extension("featurize.json")
}

pub(super) fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open backbone {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read backbone {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What the result depends on, besides the items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct ResultKey {
    pub(super) format: u32,
    pub(super) backbone_sha256: String,
    pub(super) resize: u32,
    pub(super) crop: u32,
    pub(super) mean: [f32; 3],
    pub(super) std: [f32; 3],
    pub(super) on_bad_image: OnBadImage,
}

/// `<out>.partial/manifest.json`: shards are only comparable under the same key and size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Manifest {
    pub(super) key: ResultKey,
    pub(super) shard_size: usize,
}

/// `<out>.partial/shard-NNNNN.json`, written last: the shard's commit marker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct ShardMeta {
    pub(super) items_sha256: String,
    pub(super) rows: usize,
    pub(super) dim: usize,
    pub(super) skipped: Vec<BadImage>,
}

/// `<stem>.featurize.json` beside a finished output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Sidecar {
    pub(super) key: ResultKey,
    pub(super) items_sha256: String,
    pub(super) report: FeaturizeReport,
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub(super) fn shard_path(dir: &Path, s: usize, ext: &str) -> PathBuf {
    dir.join(format!("shard-{s:05}.{ext}"))
}

/// Creates `<out>.partial/` for shards made under `manifest`. Shards made under another
/// backbone, preprocessing or shard size cannot be reused: they are deleted (only the
/// files this module writes there).
pub(super) fn open_partial(partial: &Path, manifest: &Manifest, matches: bool) -> Result<()> {
    let mpath = partial.join("manifest.json");
    if matches {
        return Ok(());
    }
    if partial.is_dir() {
        let mut stale = 0;
        let entries = std::fs::read_dir(partial).with_context(|| format!("cannot list {}", partial.display()))?;
        for e in entries {
            let p = e.with_context(|| format!("cannot list {}", partial.display()))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("shard-") || name == "manifest.json" || name.ends_with(".tmp") {
                std::fs::remove_file(&p).with_context(|| format!("cannot remove stale {}", p.display()))?;
                stale += name.ends_with(".json") as usize;
            }
        }
        if stale > 1 {
            eprintln!("featurize: {} holds shards made with other settings; starting over", partial.display());
        }
    } else {
        std::fs::create_dir_all(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    }
    crate::files::write_json(&mpath, manifest)
}

/// A shard counts as done when its commit marker matches and its files read back whole
/// with the expected ids.
pub(super) fn shard_is_done(
    partial: &Path,
    s: usize,
    hash: &str,
    images: &[(String, PathBuf)],
    range: std::ops::Range<usize>,
) -> bool {
    let Some(meta) = read_json::<ShardMeta>(&shard_path(partial, s, "json")) else { return false };
    if meta.items_sha256 != hash {
        return false;
    }
    let Ok(f) = crate::data::features::read_features(&shard_path(partial, s, "npy")) else { return false };
    let skipped: HashSet<&str> = meta.skipped.iter().map(|b| b.id.as_str()).collect();
    let want: Vec<&str> = images[range].iter().map(|(id, _)| id.as_str()).filter(|id| !skipped.contains(id)).collect();
    f.ids.len() == meta.rows && f.ids.iter().map(String::as_str).eq(want) && (meta.rows == 0 || f.dim == meta.dim)
}

/// Concatenates the shards into `out` (`.npy` streamed through a temporary file, then
/// `.ids.txt`), returning (rows, dim, skipped).
pub(super) fn assemble(partial: &Path, n_shards: usize, out: &Path) -> Result<(usize, usize, Vec<BadImage>)> {
    let mut metas = Vec::with_capacity(n_shards);
    for s in 0..n_shards {
        let p = shard_path(partial, s, "json");
        metas.push(read_json::<ShardMeta>(&p).with_context(|| format!("shard marker {} is missing", p.display()))?);
    }
    let rows: usize = metas.iter().map(|m| m.rows).sum();
    let skipped: Vec<BadImage> = metas.iter().flat_map(|m| m.skipped.iter().cloned()).collect();
    let dims: HashSet<usize> = metas.iter().filter(|m| m.rows > 0).map(|m| m.dim).collect();
    ensure!(rows > 0, "no image could be featurized ({} skipped)", skipped.len());
    ensure!(dims.len() == 1, "shards in {} disagree on the feature size: {dims:?}", partial.display());
    let dim = *dims.iter().next().expect("one dim");

    let tmp = crate::files::temp_path(out);
    let mut ids = String::new();
    {
        let f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        w.write_all(&crate::data::features::npy_bytes(&[], rows, dim))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        for (s, meta) in metas.iter().enumerate() {
            if meta.rows == 0 {
                continue;
            }
            let f = crate::data::features::read_features(&shard_path(partial, s, "npy"))?;
            ensure!(
                f.dim == dim && f.ids.len() == meta.rows,
                "shard {s} in {} changed while assembling",
                partial.display()
            );
            for v in &f.data {
                w.write_all(&v.to_le_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
            }
            for id in &f.ids {
                ids.push_str(id);
                ids.push('\n');
            }
        }
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    crate::files::write_atomic(&crate::data::features::ids_path(out), ids.as_bytes())?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok((rows, dim, skipped))
}
