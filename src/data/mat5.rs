//! MATLAB level-5 MAT-files (what `save -v6` and `save -v7` write): read real 2-D
//! numeric variables as row-major `f64` matrices.
//!
//! Layout (MathWorks, "MAT-File Format"): a 128-byte header, 116 bytes of text
//! (`MATLAB 5.0 MAT-file, ...`), an 8-byte subsystem offset, a u16 version 0x0100 and
//! the two bytes `IM` (written little-endian) or `MI` (big-endian). Data elements follow.
//! An element is an 8-byte tag (u32 type, u32 byte count) and its data, padded to a
//! multiple of 8; a *small* element packs (u16 count, u16 type) into the first 4 bytes
//! and keeps up to 4 data bytes in the other 4 (MATLAB writes names of ≤ 4 characters,
//! such as `I_tr`, this way).
//!
//! A variable is an miMATRIX element (type 14) made of sub-elements: array flags
//! (class in the low byte, complex bit 0x0800), dimensions (i32), name (i8), the real
//! part and, when complex, the imaginary part. The real part may be stored in any numeric
//! type, not only the class's own: MATLAB stores a double array whose values fit in
//! uint8 as uint8. `save -v7` wraps each variable in an miCOMPRESSED element (type 15),
//! a zlib stream that inflates to one miMATRIX element and is not padded. Data are
//! column-major; [`Matrix`] is row-major.
//!
//! Supported: real 2-D arrays of the numeric classes (double, single, the integers),
//! plain or compressed, in either byte order. Not supported: sparse, complex, and
//! cell/struct/char arrays (skipped unless asked for), and v7.3 files (HDF5).
//! A truncated file is an error even when the cut lies past the variable asked for:
//! a cut file means the copy is bad.

use anyhow::{bail, ensure, Result};
use std::io::{Read, Write};
use std::path::Path;

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;

const HEADER_LEN: usize = 128;
const COMPLEX_FLAG: u32 = 0x0800;

/// A real matrix, row-major `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// The array classes the writer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatClass {
    Double,
    Single,
}

#[derive(Debug, Clone, Copy)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }
}

fn pad8(n: usize) -> usize {
    (8 - n % 8) % 8
}

fn class_name(class: u32) -> &'static str {
    match class {
        1 => "cell",
        2 => "struct",
        3 => "object",
        4 => "char",
        5 => "sparse",
        6 => "double",
        7 => "single",
        8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        15 => "uint64",
        _ => "unknown",
    }
}

/// Reads variable `var` of the MAT-file at `path`.
pub fn read_matrix(path: &Path, var: &str) -> Result<Matrix> {
    Ok(read_matrices(path, &[var])?.remove(0))
}

/// Reads several variables in one pass, in the order asked.
pub fn read_matrices(path: &Path, vars: &[&str]) -> Result<Vec<Matrix>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read MAT-file {}: {e}", path.display()))?;
    parse_matrices(&bytes, vars, &path.display().to_string())
}

/// Parses the bytes of a MAT-file; `what` names the file in errors.
pub fn parse_matrices(bytes: &[u8], vars: &[&str], what: &str) -> Result<Vec<Matrix>> {
    let order = header_order(bytes, what)?;
    let mut found: Vec<Option<Matrix>> = vec![None; vars.len()];
    let mut names = Vec::new();
    for el in top_elements(bytes, order, what)? {
        let inflated;
        let (matrix, at) = match el.kind {
            MI_MATRIX => (el.data, format!("the variable at byte {}", el.offset)),
            MI_COMPRESSED => {
                inflated = inflate(el.data, el.offset, what)?;
                let at = format!("the compressed variable at byte {}", el.offset);
                ensure!(inflated.len() >= 8, "{what}: {at} inflates to {} bytes, less than a tag", inflated.len());
                let kind = order.u32(&inflated[0..4]);
                let n = order.u32(&inflated[4..8]) as usize;
                if kind != MI_MATRIX {
                    continue;
                }
                ensure!(
                    8 + n <= inflated.len(),
                    "{what}: truncated MAT-file: {at} declares {n} bytes but inflates to {}",
                    inflated.len() - 8
                );
                (&inflated[8..8 + n], at)
            }
            // Other top-level elements (none in files MATLAB writes) carry no variable.
            _ => continue,
        };
        let mut pos = 0;
        let head = matrix_head(matrix, &mut pos, order, what, &at)?;
        names.push(head.name.clone());
        if let Some(k) = vars.iter().position(|v| *v == head.name) {
            if found[k].is_none() {
                found[k] = Some(matrix_values(matrix, &mut pos, order, what, head)?);
            }
        }
    }
    let mut out = Vec::with_capacity(vars.len());
    for (var, m) in vars.iter().zip(found) {
        match m {
            Some(m) => out.push(m),
            None => bail!("{what}: no variable `{var}` (the file holds: {})", names.join(", ")),
        }
    }
    Ok(out)
}

fn header_order(bytes: &[u8], what: &str) -> Result<Order> {
    ensure!(
        bytes.len() >= HEADER_LEN,
        "{what}: truncated MAT-file: {} bytes, the header alone takes {HEADER_LEN}",
        bytes.len()
    );
    if bytes.starts_with(b"MATLAB 7.3") {
        bail!("{what}: a MAT v7.3 file (HDF5), which is not supported; re-save it with `save -v7`");
    }
    let order = match &bytes[126..128] {
        b"IM" => Order::Little,
        b"MI" => Order::Big,
        other => bail!(
            "{what}: not a MAT v5 file (bytes 126..128 are {other:?}, not \"IM\" or \"MI\"; MAT v4 is not supported)"
        ),
    };
    let version = order.u16(&bytes[124..126]);
    ensure!(version == 0x0100, "{what}: MAT v5 header version is {version:#06x}, expected 0x0100");
    Ok(order)
}

struct Element<'a> {
    offset: usize,
    kind: u32,
    data: &'a [u8],
}

/// Every top-level element, with bounds checked first so that a cut anywhere is found.
fn top_elements<'a>(bytes: &'a [u8], order: Order, what: &str) -> Result<Vec<Element<'a>>> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let left = bytes.len() - pos;
        ensure!(left >= 8, "{what}: truncated MAT-file: {left} stray bytes at byte {pos}, an element tag takes 8");
        let kind = order.u32(&bytes[pos..]);
        let n = order.u32(&bytes[pos + 4..]) as usize;
        ensure!(
            n <= left - 8,
            "{what}: truncated MAT-file: the element at byte {pos} declares {n} bytes but {} remain",
            left - 8
        );
        out.push(Element { offset: pos, kind, data: &bytes[pos + 8..pos + 8 + n] });
        // Compressed elements are not padded; the others are.
        pos += 8 + n + if kind == MI_COMPRESSED { 0 } else { pad8(n) };
    }
    Ok(out)
}

fn inflate(data: &[u8], offset: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data).read_to_end(&mut out).map_err(|e| {
        anyhow::anyhow!(
            "{what}: the compressed element at byte {offset} does not inflate ({e}); the file is truncated or corrupt"
        )
    })?;
    Ok(out)
}

/// One sub-element of an miMATRIX, normal or small; advances `pos`.
fn sub_element<'a>(buf: &'a [u8], pos: &mut usize, order: Order, what: &str, at: &str) -> Result<(u32, &'a [u8])> {
    let p = *pos;
    ensure!(p + 8 <= buf.len(), "{what}: truncated MAT-file: {at} ends inside a sub-element tag at byte {p} of it");
    let first = order.u32(&buf[p..]);
    if first >> 16 != 0 {
        // Small element: byte count in the high half, type in the low half.
        let n = (first >> 16) as usize;
        ensure!(n <= 4, "{what}: {at}: small sub-element at byte {p} claims {n} bytes (at most 4)");
        *pos = p + 8;
        return Ok((first & 0xffff, &buf[p + 4..p + 4 + n]));
    }
    let n = order.u32(&buf[p + 4..]) as usize;
    ensure!(
        n <= buf.len() - p - 8,
        "{what}: truncated MAT-file: {at}: sub-element at byte {p} declares {n} bytes but {} remain",
        buf.len() - p - 8
    );
    *pos = p + 8 + n + pad8(n);
    Ok((first, &buf[p + 8..p + 8 + n]))
}

struct Head {
    class: u32,
    complex: bool,
    dims: Vec<usize>,
    name: String,
}

fn matrix_head(buf: &[u8], pos: &mut usize, order: Order, what: &str, at: &str) -> Result<Head> {
    let (kind, flags) = sub_element(buf, pos, order, what, at)?;
    ensure!(
        kind == MI_UINT32 && flags.len() >= 8,
        "{what}: {at}: array flags are type {kind} with {} bytes, expected miUINT32 with 8",
        flags.len()
    );
    let f = order.u32(flags);
    let (kind, dims) = sub_element(buf, pos, order, what, at)?;
    ensure!(
        kind == MI_INT32 && dims.len().is_multiple_of(4),
        "{what}: {at}: dimensions are type {kind}, expected miINT32"
    );
    let dims: Vec<i32> = dims.chunks_exact(4).map(|c| order.u32(c) as i32).collect();
    let (kind, name) = sub_element(buf, pos, order, what, at)?;
    ensure!(kind == MI_INT8 || kind == MI_UTF8, "{what}: {at}: the name is type {kind}, expected miINT8");
    let name = String::from_utf8_lossy(name).into_owned();
    // Dimensions are signed on disk; a negative one is corruption, not a huge size.
    let dims = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| anyhow::anyhow!("{what}: {at}: variable `{name}` has negative dimensions {dims:?}"))?;
    Ok(Head { class: f & 0xff, complex: f & COMPLEX_FLAG != 0, dims, name })
}

fn matrix_values(buf: &[u8], pos: &mut usize, order: Order, what: &str, head: Head) -> Result<Matrix> {
    let name = &head.name;
    ensure!(
        (6..=15).contains(&head.class),
        "{what}: variable `{name}` is a {} array; only real numeric matrices are supported",
        class_name(head.class)
    );
    ensure!(!head.complex, "{what}: variable `{name}` is complex; only real matrices are supported");
    ensure!(head.dims.len() == 2, "{what}: variable `{name}` has dimensions {:?}; only 2-D is supported", head.dims);
    let (rows, cols) = (head.dims[0], head.dims[1]);
    let at = format!("variable `{name}`");
    let (kind, raw) = sub_element(buf, pos, order, what, &at)?;
    let col_major = decode_numbers(kind, raw, order).map_err(|e| anyhow::anyhow!("{what}: {at}: {e}"))?;
    // Checked: a corrupt size must not wrap around to the number of values present.
    let n = rows.checked_mul(cols).filter(|&n| n == col_major.len());
    ensure!(n.is_some(), "{what}: {at} is {rows}x{cols} but holds {} values", col_major.len());
    // MATLAB stores column by column; element (r, c) sits at c * rows + r.
    let mut data = vec![0.0; rows * cols];
    for c in 0..cols {
        for r in 0..rows {
            data[r * cols + c] = col_major[c * rows + r];
        }
    }
    Ok(Matrix { name: head.name, rows, cols, data })
}

fn decode_numbers(kind: u32, raw: &[u8], order: Order) -> Result<Vec<f64>> {
    let width = match kind {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => bail!("the real part is stored as data type {kind}, not a numeric type"),
    };
    ensure!(raw.len().is_multiple_of(width), "{} data bytes are not a whole number of {width}-byte values", raw.len());
    let big = matches!(order, Order::Big);
    Ok(raw
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            if big {
                b[..width].reverse();
            }
            match kind {
                MI_INT8 => b[0] as i8 as f64,
                MI_UINT8 => b[0] as f64,
                MI_INT16 => i16::from_le_bytes([b[0], b[1]]) as f64,
                MI_UINT16 => u16::from_le_bytes([b[0], b[1]]) as f64,
                MI_INT32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                MI_UINT32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                MI_SINGLE => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                MI_INT64 => i64::from_le_bytes(b) as f64,
                MI_UINT64 => u64::from_le_bytes(b) as f64,
                _ => f64::from_le_bytes(b),
            }
        })
        .collect())
}

fn push_sub(out: &mut Vec<u8>, kind: u32, data: &[u8]) {
    if data.len() <= 4 {
        // Small element, as MATLAB writes short names.
        out.extend_from_slice(&(((data.len() as u32) << 16) | kind).to_le_bytes());
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(0, 4 - data.len()));
    } else {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out.extend(std::iter::repeat_n(0, pad8(data.len())));
    }
}

/// Encodes `vars` as a little-endian MAT v5 file of real 2-D matrices of one class,
/// each variable plain or zlib-compressed (as `save -v7` does). Fixtures and tests use it.
pub fn mat5_bytes(vars: &[&Matrix], class: MatClass, compress: bool) -> Vec<u8> {
    let mut text = b"MATLAB 5.0 MAT-file, written by tgcn".to_vec();
    text.resize(116, b' ');
    let mut out = text;
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for m in vars {
        assert_eq!(m.data.len(), m.rows * m.cols, "matrix {} shape", m.name);
        let mut body = Vec::new();
        let class_id: u32 = match class {
            MatClass::Double => 6,
            MatClass::Single => 7,
        };
        let flags = [class_id.to_le_bytes(), 0u32.to_le_bytes()].concat();
        push_sub(&mut body, MI_UINT32, &flags);
        let dims = [(m.rows as i32).to_le_bytes(), (m.cols as i32).to_le_bytes()].concat();
        push_sub(&mut body, MI_INT32, &dims);
        push_sub(&mut body, MI_INT8, m.name.as_bytes());
        let mut values = Vec::new();
        for c in 0..m.cols {
            for r in 0..m.rows {
                let v = m.data[r * m.cols + c];
                match class {
                    MatClass::Double => values.extend_from_slice(&v.to_le_bytes()),
                    MatClass::Single => values.extend_from_slice(&(v as f32).to_le_bytes()),
                }
            }
        }
        let kind = if class == MatClass::Double { MI_DOUBLE } else { MI_SINGLE };
        // Even a 4-byte real part gets a full tag: MATLAB packs only short sub-elements it knows.
        body.extend_from_slice(&kind.to_le_bytes());
        body.extend_from_slice(&(values.len() as u32).to_le_bytes());
        body.extend_from_slice(&values);
        body.extend(std::iter::repeat_n(0, pad8(values.len())));
        let mut element = MI_MATRIX.to_le_bytes().to_vec();
        element.extend_from_slice(&(body.len() as u32).to_le_bytes());
        element.extend_from_slice(&body);
        if compress {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&element).expect("write to memory");
            let z = z.finish().expect("finish in memory");
            out.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
            out.extend_from_slice(&(z.len() as u32).to_le_bytes());
            out.extend_from_slice(&z);
        } else {
            out.extend_from_slice(&element);
        }
    }
    out
}
