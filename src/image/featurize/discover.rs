//! Discovery: which image files to featurize, under which ids, and their fingerprints
//! (size and mtime) that decide whether earlier work on them is still valid.

use anyhow::{ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `(id, path)` pairs, in output row order.
pub type ImageList = Vec<(String, PathBuf)>;

pub(super) const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "gif"];

/// Every `.jpg`/`.jpeg`/`.png`/`.gif` file under `dir` (any case, recursively, symlinked
/// files followed but not symlinked folders), sorted by id; the id is the path relative to
/// `dir` with `/` separators. Files with other extensions are ignored.
pub fn list_images(dir: &Path) -> Result<ImageList> {
    ensure!(dir.is_dir(), "image folder {} does not exist or is not a folder", dir.display());
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry.with_context(|| format!("cannot list {}", d.display()))?;
            let path = entry.path();
            let ft = entry.file_type().with_context(|| format!("cannot stat {}", path.display()))?;
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if !ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) || path.is_dir() {
                continue;
            }
            let rel = path.strip_prefix(dir).expect("read_dir yields paths under dir");
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            let id = parts.with_context(|| format!("image path {} is not valid UTF-8", path.display()))?.join("/");
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A list file: one image path a line (blank lines ignored), relative to the list's folder
/// unless absolute. The id is the line as written.
pub fn read_image_list(list: &Path) -> Result<ImageList> {
    let text = std::fs::read_to_string(list).with_context(|| format!("cannot read image list {}", list.display()))?;
    let base = list.parent().unwrap_or(Path::new(""));
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.to_string(), base.join(l)))
        .collect())
}

pub(super) fn validate_items(images: &[(String, PathBuf)]) -> Result<()> {
    ensure!(!images.is_empty(), "no images to featurize");
    let mut seen = HashSet::new();
    for (id, path) in images {
        // The ids file is one id a line, trimmed when read back.
        ensure!(
            !id.is_empty() && !id.contains(['\n', '\r']) && id.trim() == id,
            "image id {id:?} (file {}) is empty, has a line break, or starts or ends with a space",
            path.display()
        );
        ensure!(seen.insert(id.as_str()), "image id {id:?} appears twice (second file {})", path.display());
    }
    Ok(())
}

/// File identity that decides whether earlier work on it is still valid.
pub(super) fn fingerprint_line(id: &str, path: &Path) -> String {
    let (size, mtime) = match std::fs::metadata(path) {
        Ok(m) => {
            let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (m.len().to_string(), t.map_or(0, |d| d.as_nanos()).to_string())
        }
        Err(_) => ("missing".to_string(), "0".to_string()),
    };
    format!("{id}\t{}\t{size}\t{mtime}\n", path.display())
}

pub(super) fn sha256_hex(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_ref());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
