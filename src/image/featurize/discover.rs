//! Discovery: which image files to featurize, under which ids, and their fingerprints
//! (size and mtime) that decide whether earlier work on them is still valid.

use anyhow::{ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// `(id, path)` pairs, in output row order.
pub type ImageList = Vec<(String, PathBuf)>;

/// The extensions (any case) of the files [`list_images`] reads; decoding goes by content.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"];

/// The files under a folder: the images, and how many files of each other extension were
/// passed over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub images: ImageList,
    /// Lowercased extension with its dot (`.txt`), or `(no extension)`, and its count,
    /// most frequent first.
    pub not_images: Vec<(String, usize)>,
    /// Image files (ids) that are symlinks resolving to outside the folder: read as linked,
    /// and named by [`Listing::note`].
    pub outside: Vec<String>,
}

impl Listing {
    /// The one-line note on the files that are not read, if there are any.
    pub fn note(&self, dir: &Path) -> Option<String> {
        let n: usize = self.not_images.iter().map(|(_, c)| c).sum();
        let mut lines = Vec::new();
        if n > 0 {
            let kinds: Vec<String> = self.not_images.iter().map(|(e, c)| format!("{e} ×{c}")).collect();
            lines.push(format!(
                "featurize: {n} file{} under {} {} not images by extension ({}); they are not read",
                if n == 1 { "" } else { "s" },
                dir.display(),
                if n == 1 { "is" } else { "are" },
                kinds.join(", ")
            ));
        }
        if !self.outside.is_empty() {
            lines.push(format!(
                "featurize: {} image(s) under {} are symlinks to files outside it (read as linked): {}",
                self.outside.len(),
                dir.display(),
                crate::data::listed::first_few(&self.outside)
            ));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Every image file under `dir` (by extension, any case: [`IMAGE_EXTENSIONS`];
/// recursively, symlinked files followed but not symlinked folders), sorted by id; the id is
/// the path relative to `dir` with `/` separators. Files with other extensions are not read;
/// see [`scan_images`] for their count.
pub fn list_images(dir: &Path) -> Result<ImageList> {
    Ok(scan_images(dir)?.images)
}

/// [`list_images`], plus the count of the files passed over by extension.
pub fn scan_images(dir: &Path) -> Result<Listing> {
    ensure!(dir.is_dir(), "image folder {} does not exist or is not a folder", dir.display());
    let mut out = Vec::new();
    let mut others: BTreeMap<String, usize> = BTreeMap::new();
    let canonical_dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut outside = Vec::new();
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
            if path.is_dir() {
                // A symlinked folder: not followed.
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if !ext.as_deref().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e)) {
                let kind = match (ext, path.extension()) {
                    (Some(e), _) => format!(".{e}"),
                    (None, Some(e)) => format!(".{}", e.to_string_lossy().to_lowercase()),
                    (None, None) => "(no extension)".to_string(),
                };
                *others.entry(kind).or_default() += 1;
                continue;
            }
            let rel = path.strip_prefix(dir).expect("read_dir yields paths under dir");
            let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            let id = parts.with_context(|| format!("image path {} is not valid UTF-8", path.display()))?.join("/");
            if ft.is_symlink() && path.canonicalize().is_ok_and(|p| !p.starts_with(&canonical_dir)) {
                outside.push(id.clone());
            }
            out.push((id, path));
        }
    }
    out.sort();
    let mut not_images: Vec<(String, usize)> = others.into_iter().collect();
    not_images.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    outside.sort();
    Ok(Listing { images: out, not_images, outside })
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
