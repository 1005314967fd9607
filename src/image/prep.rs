//! Image file → normalised `[3, crop, crop]` float tensor data, in pure Rust (no libtorch),
//! so that CPU threads can run it in parallel with the model.
//!
//! ```text
//! bytes ─► sniff (JPEG | PNG | GIF | BMP | WebP | TIFF, by magic bytes; never by file name)
//!       ─► completeness check (JPEG: the scan data must reach the end-of-image marker)
//!       ─► decode (`image` crate) ─► RGB8 (grayscale replicated, CMYK converted, alpha dropped,
//!          16-bit scaled; a GIF gives its first frame)
//!       ─► resize: shorter side → `resize`, longer side → ⌊long·resize/short⌋ (torchvision's rule)
//!       ─► centre crop `crop × crop` at (⌊(h'−crop)/2⌋, ⌊(w'−crop)/2⌋)
//!       ─► normalise (x/255 − mean_c) / std_c, planar CHW (R, G, B)
//! ```
//!
//! The resize is separable and antialiased: the triangle (bilinear) filter is widened by
//! the scale factor when shrinking, as PIL's `BILINEAR`, torchvision's antialiased resize
//! and `image::imageops::FilterType::Triangle` do. For output pixel `j` of an axis scaled by
//! `s = n_in / n_out`, the centre in input coordinates is `c = (j + ½)·s`, and input pixel
//! `i` (centre `i + ½`) gets weight `max(0, 1 − |i + ½ − c| / max(s, 1))`, normalised to sum
//! 1 over the pixels inside the image (so edges are not darkened). Only the output pixels
//! inside the crop are computed, and nothing is rounded to 8 bits along the way (PIL rounds
//! after each pass; the difference is below 1/255).

use anyhow::{bail, ensure, Context, Result};
use image::{ImageFormat, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// The ImageNet channel means and standard deviations (RGB, on a 0..1 scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The preprocessing of one image; see the module docs for the exact arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Target length of the shorter side after resizing.
    pub resize: u32,
    /// Side of the square centre crop (at most `resize`).
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// Floats per image: `3 · crop · crop`.
    pub fn len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    pub fn is_empty(&self) -> bool {
        self.crop == 0
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.resize >= 1 && self.crop >= 1,
            "resize and crop must be at least 1, got {} and {}",
            self.resize,
            self.crop
        );
        ensure!(self.crop <= self.resize, "crop ({}) must not exceed resize ({})", self.crop, self.resize);
        for c in 0..3 {
            ensure!(self.mean[c].is_finite(), "mean[{c}] = {} is not finite", self.mean[c]);
            ensure!(self.std[c].is_finite() && self.std[c] > 0.0, "std[{c}] = {} must be positive", self.std[c]);
        }
        Ok(())
    }

    /// Reads, decodes and preprocesses one file: `[3, crop, crop]` row-major.
    /// The error says why the file is unusable; the caller adds the path.
    pub fn file(&self, path: &Path) -> Result<Vec<f32>> {
        let bytes = read_image_file(path)?;
        let img = decode_rgb(&bytes)?;
        Ok(self.rgb(&img))
    }

    /// Resizes, crops and normalises a decoded image: `[3, crop, crop]` row-major.
    pub fn rgb(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = img.dimensions();
        let (rw, rh) = resized_size(w, h, self.resize);
        let (top, left) = crop_origin(rw, rh, self.crop);
        let c = self.crop as usize;
        let xs = axis_weights(w, rw, left, self.crop);
        let ys = axis_weights(h, rh, top, self.crop);
        // Horizontal pass over only the input rows that some output row reads.
        let row_lo = ys.iter().map(|t| t.start).min().unwrap_or(0);
        let row_hi = ys.iter().map(|t| t.start + t.weights.len()).max().unwrap_or(0);
        let raw = img.as_raw();
        let stride = 3 * w as usize;
        let mut tmp = vec![0f32; (row_hi - row_lo) * c * 3]; // [rows, crop, 3]
        for (r, y) in (row_lo..row_hi).enumerate() {
            let src = &raw[y * stride..(y + 1) * stride];
            let dst = &mut tmp[r * c * 3..(r + 1) * c * 3];
            for (x, t) in xs.iter().enumerate() {
                let mut acc = [0f32; 3];
                for (k, wt) in t.weights.iter().enumerate() {
                    let p = &src[3 * (t.start + k)..3 * (t.start + k) + 3];
                    acc[0] += wt * p[0] as f32;
                    acc[1] += wt * p[1] as f32;
                    acc[2] += wt * p[2] as f32;
                }
                dst[3 * x..3 * x + 3].copy_from_slice(&acc);
            }
        }
        // Vertical pass, then normalise into planar CHW.
        let scale: [f32; 3] = std::array::from_fn(|ch| 1.0 / (255.0 * self.std[ch]));
        let shift: [f32; 3] = std::array::from_fn(|ch| self.mean[ch] / self.std[ch]);
        let mut out = vec![0f32; 3 * c * c];
        for (y, t) in ys.iter().enumerate() {
            for x in 0..c {
                let mut acc = [0f32; 3];
                for (k, wt) in t.weights.iter().enumerate() {
                    let p = &tmp[((t.start + k - row_lo) * c + x) * 3..][..3];
                    acc[0] += wt * p[0];
                    acc[1] += wt * p[1];
                    acc[2] += wt * p[2];
                }
                for ch in 0..3 {
                    out[ch * c * c + y * c + x] = acc[ch] * scale[ch] - shift[ch];
                }
            }
        }
        out
    }
}

/// `(width, height)` after scaling the shorter side to `short`; the longer side is
/// `⌊long · short / shorter⌋`, never less than `short`.
/// The largest image file read (bytes): far above any photograph, and a bound on what a
/// mistaken path (a disk image, `/dev/zero`) can make the decoder read.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Why `path` cannot be an image file, from its metadata alone (no read, so a FIFO or a
/// device never blocks or streams): not a regular file, or larger than [`MAX_IMAGE_BYTES`].
pub fn reject_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot open: {e}")),
        Ok(m) if m.is_dir() => Some("is a folder".into()),
        Ok(m) if !m.is_file() => Some("is not a regular file (a pipe, socket or device)".into()),
        Ok(m) if m.len() > MAX_IMAGE_BYTES => {
            Some(format!("is {} bytes, above the {} MiB an image file may have", m.len(), MAX_IMAGE_BYTES >> 20))
        }
        Ok(_) => None,
    }
}

/// The bytes of an image file, after [`reject_file`]'s checks (errors do not repeat the
/// path: callers name it).
pub fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    if let Some(why) = reject_file(path) {
        bail!("{why}");
    }
    std::fs::read(path).context("cannot read")
}

pub fn resized_size(w: u32, h: u32, short: u32) -> (u32, u32) {
    let scale = |long: u32, shorter: u32| ((long as u64 * short as u64) / shorter as u64).max(short as u64) as u32;
    if w <= h {
        (short, scale(h, w))
    } else {
        (scale(w, h), short)
    }
}

/// `(top, left)` of the centre `crop × crop` window in a `w × h` image.
pub fn crop_origin(w: u32, h: u32, crop: u32) -> (u32, u32) {
    ((h - crop) / 2, (w - crop) / 2)
}

/// The input pixels `start..start + weights.len()` that make one output pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    pub start: usize,
    pub weights: Vec<f32>,
}

/// Antialiased triangle weights for output pixels `first..first + count` of an axis
/// resized from `n_in` to `n_out` pixels (formula in the module docs).
pub fn axis_weights(n_in: u32, n_out: u32, first: u32, count: u32) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let support = scale.max(1.0);
    (first..first + count)
        .map(|j| {
            let centre = (j as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0) as usize).min(n_in as usize - 1);
            let hi = ((centre + support).ceil() as usize).clamp(lo + 1, n_in as usize);
            let mut weights: Vec<f64> =
                (lo..hi).map(|i| (1.0 - ((i as f64 + 0.5 - centre) / support).abs()).max(0.0)).collect();
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            } else {
                // Cannot happen for lo..hi around the centre; nearest pixel as a fallback.
                weights = vec![0.0; hi - lo];
                weights[0] = 1.0;
            }
            // Trim zero weights at the ends, so the inner loops only touch useful pixels.
            let first_nz = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last_nz = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
            Taps { start: lo + first_nz, weights: weights[first_nz..=last_nz].iter().map(|&w| w as f32).collect() }
        })
        .collect()
}

/// The format by magic bytes, among those this crate decodes (the first 12 bytes suffice).
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.starts_with(b"BM") {
        Some(ImageFormat::Bmp)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|m| bytes.starts_with(*m)) {
        // TIFF, little- or big-endian, classic or BigTIFF.
        Some(ImageFormat::Tiff)
    } else {
        None
    }
}

/// The formats [`sniff`] knows, for messages.
pub const FORMAT_NAMES: &str = "JPEG, PNG, GIF, BMP, WebP or TIFF";

/// Why a file cannot be an image, judging from its first bytes (`len` is its full size):
/// `None` when it could be one. Cheap enough to check every file before any decoding.
pub fn reject_header(head: &[u8], len: u64) -> Option<String> {
    if len == 0 {
        return Some("empty file (0 bytes)".to_string());
    }
    if sniff(head).is_none() {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Some(format!("not a {FORMAT_NAMES} image (starts with bytes {})", shown.join(" ")));
    }
    None
}

/// Decodes a JPEG, PNG, GIF, BMP, WebP or TIFF (told by content, whatever the file is
/// called) to 8-bit RGB. A truncated or corrupt file is an error, and
/// so is a decoder panic (decoders are fed untrusted bytes; a panic must not end the run).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    if let Some(why) = reject_header(bytes, bytes.len() as u64) {
        bail!(why);
    }
    let format = sniff(bytes).expect("reject_header checked the format");
    if format == ImageFormat::Jpeg {
        // zune-jpeg fills a truncated scan with grey instead of failing; check ourselves.
        check_jpeg_complete(bytes)?;
    }
    let decoded = std::panic::catch_unwind(|| {
        let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
        // The default limits (512 MiB per allocation) stop decompression bombs.
        reader.limits(image::Limits::default());
        reader.decode()
    });
    let img = match decoded {
        Ok(Ok(img)) => img,
        Ok(Err(e)) => bail!("cannot decode {format:?}: {e}"),
        Err(_) => bail!("the {format:?} decoder panicked on this file (corrupt data)"),
    };
    ensure!(img.width() > 0 && img.height() > 0, "image has zero size {}x{}", img.width(), img.height());
    Ok(img.to_rgb8())
}

/// Walks the JPEG marker segments and the entropy-coded scans, and fails unless the
/// end-of-image marker (FF D9) is reached: the usual sign of a truncated download.
/// In scan data a literal FF byte is stuffed as FF 00 and restart markers are FF D0..D7,
/// so any other FF xx there is the next marker.
pub fn check_jpeg_complete(b: &[u8]) -> Result<()> {
    ensure!(b.starts_with(&[0xFF, 0xD8]), "not a JPEG (no start-of-image marker)");
    let n = b.len();
    let truncated = |at: usize| {
        anyhow::anyhow!("truncated JPEG: the data ends at byte {at} of {n}, before the end-of-image marker")
    };
    let mut i = 2;
    loop {
        // Find the next marker, tolerating stray bytes and FF fill bytes before it.
        while i < n && b[i] != 0xFF {
            i += 1;
        }
        while i < n && b[i] == 0xFF {
            i += 1;
        }
        if i >= n {
            return Err(truncated(n));
        }
        let marker = b[i];
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => {}
            0x00 => {} // a stuffed zero outside a scan: ignore, as decoders do
            _ => {
                if i + 2 > n {
                    return Err(truncated(n));
                }
                let len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
                ensure!(len >= 2, "corrupt JPEG: segment FF {marker:02X} at byte {} has length {len}", i - 2);
                if i + len > n {
                    return Err(truncated(n));
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data until a marker that is neither stuffing nor a restart.
                    loop {
                        match b[i..].iter().position(|&x| x == 0xFF) {
                            None => return Err(truncated(n)),
                            Some(p) => i += p,
                        }
                        match b.get(i + 1) {
                            None => return Err(truncated(n)),
                            Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}
