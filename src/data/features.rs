//! Image feature files keyed by image id: `<name>.npy` (a little-endian float32 matrix
//! `[N, D]`, NumPy format 1.0) beside `<name>.ids.txt` (N ids, one a line, row order).
//! Python reads them with `numpy.load` and `open().read().split()`. Writes go to a
//! temporary name and are renamed, so a reader never sees half a file.

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Ids and a row-major `[ids.len(), dim]` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub ids: Vec<String>,
    pub dim: usize,
    pub data: Vec<f32>,
}

/// The dataset id of an image file: its file stem, surrounding spaces trimmed
/// (`art/22 .jpg` → `22`: some downloads put a space before the extension).
pub fn image_stem(id: &str) -> String {
    Path::new(id).file_stem().map_or_else(|| id.to_string(), |s| s.to_string_lossy().into_owned()).trim().to_string()
}

/// The id list that belongs to a `.npy` file.
pub fn ids_path(npy: &Path) -> PathBuf {
    npy.with_extension("ids.txt")
}

/// Encodes a float32 `[rows, cols]` matrix as NumPy `.npy` (format 1.0).
pub fn npy_bytes(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a float32 (`<f4`) or float64 (`<f8`) 2-D C-order `.npy`; `what` names it in errors.
/// Every header field is checked before use (sizes with checked arithmetic, so a crafted
/// shape cannot wrap around to match a short body), and a matrix of rows without columns
/// is rejected: only `(0, 0)`, a shard whose every image was skipped, may be empty.
pub fn parse_npy(bytes: &[u8], what: &str) -> Result<(Vec<f32>, usize, usize)> {
    ensure!(bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY", "{what}: not a .npy file (bad magic)");
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "{what}: truncated .npy header ({} bytes)", bytes.len());
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => bail!("{what}: unsupported .npy version {v}"),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= bytes.len()).with_context(|| {
        format!("{what}: truncated .npy header: it declares {hlen} bytes but the file has {}", bytes.len())
    })?;
    let header = std::str::from_utf8(&bytes[start..end]).with_context(|| format!("{what}: .npy header is not text"))?;
    let field = |key: &str| -> Result<&str> {
        let i = header.find(key).with_context(|| format!("{what}: .npy header lacks {key}"))?;
        Ok(&header[i + key.len()..])
    };
    let descr = field("'descr':")?.trim_start();
    let width: usize = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!("{what}: .npy dtype must be little-endian float32 or float64, header {header:?}")
    };
    ensure!(
        field("'fortran_order':")?.trim_start().starts_with("False"),
        "{what}: Fortran-order .npy is not supported"
    );
    let shape = field("'shape':")?;
    let inner = shape
        .find('(')
        .and_then(|open| shape[open + 1..].find(')').map(|close| &shape[open + 1..open + 1 + close]))
        .with_context(|| format!("{what}: .npy header has no `(rows, cols)` shape: {header:?}"))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{what}: bad .npy shape {inner:?}"))?;
    ensure!(dims.len() == 2, "{what}: expected a 2-D matrix, shape is {dims:?}");
    let (rows, cols) = (dims[0], dims[1]);
    ensure!(
        cols > 0 || rows == 0,
        "{what}: shape ({rows}, {cols}): {rows} feature rows of no values; a feature matrix needs at least one column"
    );
    let body = &bytes[end..];
    let want = rows.checked_mul(cols).and_then(|n| n.checked_mul(width)).with_context(|| {
        format!("{what}: shape ({rows}, {cols}) of {width}-byte floats does not fit in memory (a corrupt header?)")
    })?;
    ensure!(
        body.len() == want,
        "{what}: {} data bytes for shape ({rows}, {cols}) of {width}-byte floats, expected {want} (truncated?)",
        body.len()
    );
    let data = if width == 4 {
        body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((data, rows, cols))
}

/// Reads `<path>` (.npy) and its `.ids.txt`; row counts must agree and values be finite.
pub fn read_features(path: &Path) -> Result<Features> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read features {}", path.display()))?;
    let (data, rows, dim) = parse_npy(&bytes, &path.display().to_string())?;
    let ip = ids_path(path);
    let text = std::fs::read_to_string(&ip).with_context(|| format!("cannot read feature ids {}", ip.display()))?;
    let ids: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    ensure!(ids.len() == rows, "{} has {} ids but {} has {rows} rows", ip.display(), ids.len(), path.display());
    if let Some(p) = data.iter().position(|v| !v.is_finite()) {
        bail!("{}: row {} (id {}) has a non-finite value", path.display(), p / dim.max(1), ids[p / dim.max(1)]);
    }
    Ok(Features { ids, dim, data })
}

/// Writes `<path>` and its `.ids.txt` through temporary files and renames.
pub fn write_features(path: &Path, f: &Features) -> Result<()> {
    ensure!(
        f.data.len() == f.ids.len() * f.dim,
        "features: {} values for {} ids × {}",
        f.data.len(),
        f.ids.len(),
        f.dim
    );
    crate::files::write_atomic(&ids_path(path), (f.ids.join("\n") + "\n").as_bytes())?;
    crate::files::write_atomic(path, &npy_bytes(&f.data, f.ids.len(), f.dim))
}
