//! Word-vector files (each format against a fixture, errors naming file and line),
//! source selection, skip-gram reproducibility and structure, and the real files.

use crate::common::{project_root, shared_data, temp_dir};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tgcn::data::WordVectors;
use tgcn::text::skipgram::{train_skipgram, SkipgramConfig};
use tgcn::text::wordvec::{
    detect_format, read_vectors, vectors_for, Coverage, VectorFormat, VectorSource, VectorsConfig, GLOVE6B50_PATH,
};

/// The fixture's words and vectors: exact in decimal and in float32.
const WORDS: [&str; 3] = ["king", "queen", "naïve"];
const VECS: [[f32; 3]; 3] = [[0.5, -1.25, 2.0], [0.25, 0.0, -3.5], [1e-3, 7.0, -0.125]];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn text_rows(sep_end: &str) -> String {
    WORDS.iter().zip(VECS).map(|(w, v)| format!("{w} {}{sep_end}", v.map(|x| x.to_string()).join(" "))).collect()
}

fn binary_fixture(newline_after: bool) -> Vec<u8> {
    let mut b = b"3 3\n".to_vec();
    for (w, v) in WORDS.iter().zip(VECS) {
        b.extend_from_slice(w.as_bytes());
        b.push(b' ');
        v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
        if newline_after {
            b.push(b'\n');
        }
    }
    b
}

fn assert_fixture(wv: &WordVectors, what: &str) {
    assert_eq!(wv.dim, 3, "{what}");
    assert_eq!(wv.words, WORDS.map(String::from), "{what}");
    assert_eq!(wv.data, VECS.concat(), "{what}");
}

fn err_text(r: anyhow::Result<WordVectors>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn each_format_reads_back_its_fixture() {
    let dir = temp_dir("wordvec_formats");
    let w2v = write(&dir, "w.txt", format!("3 3\n{}", text_rows("\n")).as_bytes());
    let glove = write(&dir, "g.txt", text_rows("\n").as_bytes());
    // fastText: trailing space before the newline; here also CRLF line ends.
    let ft = write(&dir, "f.vec", format!("3 3 \r\n{}", text_rows(" \r\n")).as_bytes());
    let bin = write(&dir, "w.bin", &binary_fixture(true));
    let bin_bare = write(&dir, "bare.w2v", &binary_fixture(false));
    let cases = [
        (&w2v, VectorFormat::Word2vecText),
        (&glove, VectorFormat::GloveText),
        (&ft, VectorFormat::FasttextVec),
        (&bin, VectorFormat::Word2vecBinary),
        (&bin_bare, VectorFormat::Word2vecBinary),
    ];
    for (path, format) in cases {
        let what = format!("{} as {format:?}", path.display());
        assert_fixture(&read_vectors(path, format, None).unwrap(), &what);
        // Detection: fastText .vec reads as word2vec text, the same layout.
        let want = if format == VectorFormat::FasttextVec { VectorFormat::Word2vecText } else { format };
        assert_eq!(detect_format(path).unwrap(), want, "{what}");
        let keep: HashSet<String> = ["naïve", "queen", "absent"].map(String::from).into();
        let wv = read_vectors(path, format, Some(&keep)).unwrap();
        assert_eq!(wv.words, ["queen", "naïve"], "{what}: file order, only kept words");
        assert_eq!(wv.data, [VECS[1], VECS[2]].concat(), "{what}");
    }
}

#[test]
fn glove_words_with_spaces_and_duplicates() {
    let dir = temp_dir("wordvec_glove_spaces");
    let p = write(&dir, "g.txt", b"a 1 2\n. . . 3 4\na 5 6\n\nb 7 8\n");
    let wv = read_vectors(&p, VectorFormat::GloveText, None).unwrap();
    assert_eq!(wv.words, ["a", ". . .", "b"], "the first `a` wins, the blank line is skipped");
    assert_eq!(wv.data, [1.0, 2.0, 3.0, 4.0, 7.0, 8.0]);
}

#[test]
fn malformed_lines_name_file_and_line() {
    let dir = temp_dir("wordvec_errors");
    let bad_number = write(&dir, "bad.vec", b"2 3\nking 0.5 -1.25 2\nqueen 0.25 x1 -3.5\n");
    let e = err_text(read_vectors(&bad_number, VectorFormat::Word2vecText, None));
    assert!(e.contains("bad.vec:3") && e.contains("queen") && e.contains("x1"), "{e}");

    let short = write(&dir, "short.vec", b"2 3\nking 0.5 -1.25 2\nqueen 0.25 -3.5\n");
    let e = err_text(read_vectors(&short, VectorFormat::FasttextVec, None));
    assert!(e.contains("short.vec:3") && e.contains("2 values, expected 3"), "{e}");
    // Even a word that is not kept must have the right number of values.
    let keep: HashSet<String> = ["king".to_string()].into();
    assert!(read_vectors(&short, VectorFormat::Word2vecText, Some(&keep)).is_err());

    let long = write(&dir, "long.txt", b"king 0.5 -1.25 2\nqueen 0.25 0 -3.5 9\n");
    let e = err_text(read_vectors(&long, VectorFormat::GloveText, None));
    assert!(e.contains("long.txt:2") && e.contains("4 values, expected 3"), "{e}");

    let nan = write(&dir, "nan.txt", b"king 0.5 NaN 2\n");
    let e = err_text(read_vectors(&nan, VectorFormat::GloveText, None));
    assert!(e.contains("nan.txt:1") && e.contains("NaN"), "{e}");

    let truncated = write(&dir, "trunc.vec", b"3 3\nking 0.5 -1.25 2\n");
    let e = err_text(read_vectors(&truncated, VectorFormat::Word2vecText, None));
    assert!(e.contains("trunc.vec") && e.contains("announces 3 words but 1"), "{e}");

    let no_header = write(&dir, "nohead.vec", text_rows("\n").as_bytes());
    let e = err_text(read_vectors(&no_header, VectorFormat::Word2vecText, None));
    assert!(e.contains("nohead.vec:1") && e.contains("glove_text"), "{e}");
    let header_as_glove = write(&dir, "head.txt", format!("3 3\n{}", text_rows("\n")).as_bytes());
    let e = err_text(read_vectors(&header_as_glove, VectorFormat::GloveText, None));
    assert!(e.contains("head.txt:1") && e.contains("word2vec_text"), "{e}");

    let mut cut = binary_fixture(true);
    cut.truncate(cut.len() - 6);
    let cut = write(&dir, "cut.bin", &cut);
    let e = err_text(read_vectors(&cut, VectorFormat::Word2vecBinary, None));
    assert!(e.contains("cut.bin") && e.contains("record 3 of 3") && e.contains("end of file"), "{e}");

    let missing = dir.join("absent.vec");
    let e = err_text(read_vectors(&missing, VectorFormat::Word2vecText, None));
    assert!(e.contains("absent.vec"), "{e}");
}

fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|w| w.to_string()).collect()
}

#[test]
fn vectors_for_picks_the_source_and_reports_coverage() {
    let dir = temp_dir("wordvec_sources");
    let path = write(&dir, "w.vec", format!("3 3\n{}", text_rows("\n")).as_bytes());
    let vocab = words(&["naïve", "rook", "king"]);
    let cfg = VectorsConfig { source: VectorSource::File, path: Some(path.clone()), ..VectorsConfig::default() };
    let wv = vectors_for(&cfg, &vocab, &[], None, 0).unwrap();
    assert_eq!(wv.words, ["naïve", "king"], "vocabulary order, only words with a vector");
    assert_eq!(wv.data, [VECS[2], VECS[0]].concat());
    let cov = Coverage::of(&vocab, &wv);
    assert_eq!((cov.words, cov.found, cov.missing.clone()), (3, 2, words(&["rook"])));
    assert!(cov.to_string().contains("2 of 3 words") && cov.to_string().contains("rook"), "{cov}");

    let shipped = WordVectors { words: words(&["king", "rook"]), dim: 2, data: vec![1.0, 2.0, 3.0, 4.0] };
    let cfg = VectorsConfig::default();
    assert_eq!(cfg.source, VectorSource::Dataset);
    let wv = vectors_for(&cfg, &vocab, &[], Some(&shipped), 0).unwrap();
    assert_eq!((wv.words.clone(), wv.data.clone()), (words(&["rook", "king"]), vec![3.0, 4.0, 1.0, 2.0]));
    let e = vectors_for(&cfg, &vocab, &[], None, 0).unwrap_err();
    assert!(format!("{e:#}").contains("ships no word vectors"), "{e:#}");

    let cfg = VectorsConfig { source: VectorSource::File, ..VectorsConfig::default() };
    let e = vectors_for(&cfg, &vocab, &[], None, 0).unwrap_err();
    assert!(format!("{e:#}").contains("`vectors.path` is required"), "{e:#}");
    let cfg = VectorsConfig { source: VectorSource::Skipgram, path: Some(path), ..VectorsConfig::default() };
    assert!(cfg.validate().is_err(), "a path that skip-gram would ignore is an error");
    let cfg = VectorsConfig {
        source: VectorSource::Glove6b50,
        path: Some(dir.join("missing.bin")),
        ..VectorsConfig::default()
    };
    let e = vectors_for(&cfg, &vocab, &[], None, 0).unwrap_err();
    assert!(format!("{e:#}").contains("make glove"), "{e:#}");
}

#[test]
fn vectors_config_yaml_is_strict_snake_case() {
    let cfg: VectorsConfig = serde_yaml::from_str(
        "source: file\npath: a.vec\nformat: fasttext_vec\nskipgram: {dim: 8, window: 2, negatives: 3, epochs: 1, \
         lr: 0.05, min_count: 2, sample: 0.0}\n",
    )
    .unwrap();
    assert_eq!(cfg.format, Some(VectorFormat::FasttextVec));
    assert_eq!((cfg.skipgram.dim, cfg.skipgram.min_count), (8, 2));
    let back: VectorsConfig = serde_yaml::from_str(&serde_yaml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let cfg: VectorsConfig = serde_yaml::from_str("source: glove6b50").unwrap();
    assert_eq!(cfg.skipgram, SkipgramConfig::default(), "the skipgram block may be left out");
    // `batch` belonged to the batched tensor trainer that sequential SGD replaced.
    for bad in [
        "source: glove",
        "source: file\nformat: word2vec",
        "source: skipgram\nskipgram: {dims: 3}",
        "source: skipgram\nskipgram: {batch: 4096}",
    ] {
        assert!(serde_yaml::from_str::<VectorsConfig>(bad).is_err(), "{bad:?} must not parse");
    }
    let mut cfg = VectorsConfig { source: VectorSource::Skipgram, ..VectorsConfig::default() };
    cfg.skipgram.window = 0;
    let e = cfg.validate().unwrap_err();
    assert!(e.to_string().contains("vectors.skipgram.window"), "{e}");
}

/// A corpus with clear structure: 4 topics of 6 words; each text draws from one topic.
fn topic_corpus(seed: u64) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let topics: Vec<Vec<String>> = (0..4).map(|t| (0..6).map(|w| format!("t{t}w{w}")).collect()).collect();
    let texts = (0..300)
        .map(|i| {
            let t = &topics[i % 4];
            (0..12).map(|_| t[rng.gen_range(0..t.len())].clone()).collect()
        })
        .collect();
    (topics, texts)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (dot / (n(a) * n(b))) as f64
}

fn small_cfg() -> SkipgramConfig {
    SkipgramConfig { dim: 16, window: 3, epochs: 5, sample: 0.0, ..SkipgramConfig::default() }
}

/// One SGD step of one pair, worked by hand: d = 2, u = (0.5, −1), the context's output
/// row (1, 0.5) and one negative's (−0.5, 0.25), lr = 0.1. s_o = 0 reads σ = 0.5 from the
/// table (g_o = 0.05); s_n = −0.5 falls in table cell 458, σ(−0.504) (g_n = −0.1·σ(−0.504)).
#[test]
fn skipgram_sgd_step_by_hand() {
    let table: Vec<f32> = (0..1000)
        .map(|i| {
            let x = ((i as f32 / 1000.0) * 2.0 - 1.0) * 6.0;
            x.exp() / (x.exp() + 1.0)
        })
        .collect();
    let mut u = vec![0.5f32, -1.0];
    let mut w_out = vec![1.0f32, 0.5, -0.5, 0.25];
    let mut scratch = vec![0f32; 2];
    let loss = tgcn::text::skipgram::sgd_pair(&mut u, &mut w_out, &[0, 1], 0.1, &table, &mut scratch, true).unwrap();
    let (g_o, g_n) = (0.05f64, -0.1 / (1.0 + 0.504f64.exp()));
    let want_v = [1.0 + g_o * 0.5, 0.5 - g_o, -0.5 + g_n * 0.5, 0.25 - g_n];
    let want_u = [0.5 + g_o * 1.0 + g_n * -0.5, -1.0 + g_o * 0.5 + g_n * 0.25];
    let got = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    crate::common::assert_close(&got(&w_out), &want_v, 1e-6, "output rows");
    crate::common::assert_close(&got(&u), &want_u, 1e-6, "input row (updated with the old output rows)");
    let want_loss = 2f64.ln() + (1.0 + (-0.5f64).exp()).ln(); // −log σ(0) − log σ(0.5)
    assert!((loss - want_loss).abs() < 1e-6, "loss {loss} vs {want_loss}");
    // A repeated target is taken twice, in turn (the second sees the first's update).
    let (mut u2, mut w2) = (vec![0.5f32, -1.0], vec![1.0f32, 0.5, -0.5, 0.25]);
    tgcn::text::skipgram::sgd_pair(&mut u2, &mut w2, &[0, 1, 1], 0.1, &table, &mut scratch, false);
    assert!(w2[2] < w_out[2], "the second visit moved the negative row further");
}

/// A score just below the table's end (6 − ½ ulp: (s + 6)·1000/12 rounds to 1000 in f32)
/// takes the table's last cell; it indexed one past the end and panicked, which stopped a
/// 50-epoch skip-gram run on Eng-Wiki (seed 3).
#[test]
fn skipgram_score_at_the_table_end_takes_the_last_cell() {
    let table: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect(); // cell i holds i/1000
    let s = 6.0f32.next_down();
    assert_eq!(((s + 6.0) * (1000.0f32 / 6.0 / 2.0)) as usize, 1000, "the rounding this test is about");
    let (mut u, mut w_out, mut scratch) = (vec![s], vec![1.0f32], vec![0f32]);
    tgcn::text::skipgram::sgd_pair(&mut u, &mut w_out, &[0], 0.1, &table, &mut scratch, false);
    let g = (1.0 - 0.999f64) * 0.1; // label 1, σ from cell 999
    crate::common::assert_close(&[w_out[0] as f64], &[1.0 + g * s as f64], 1e-6, "output row");
    crate::common::assert_close(&[u[0] as f64], &[s as f64 + g], 1e-6, "input row");
}

/// The AVX2 build of the SGD step rounds exactly as the portable one (no FMA): the same
/// bits after many steps on 50-d rows with repeated targets.
#[test]
#[cfg(target_arch = "x86_64")]
fn skipgram_avx2_step_is_bit_identical() {
    use rand::{Rng, SeedableRng};
    use tgcn::text::skipgram::{sgd_pair, sgd_pair_avx2};
    if !std::arch::is_x86_feature_detected!("avx2") {
        eprintln!("SKIP: this CPU has no AVX2");
        return;
    }
    let table: Vec<f32> = (0..1000).map(|i| 1.0 / (1.0 + (-(((i as f32) / 1000.0) * 12.0 - 6.0)).exp())).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let init: Vec<f32> = (0..20 * 50).map(|_| rng.gen_range(-0.5..0.5)).collect();
    let (mut a_in, mut a_out, mut b_in, mut b_out) = (init.clone(), init.clone(), init.clone(), init);
    let mut scratch = vec![0f32; 50];
    for step in 0..500 {
        let c = step % 20;
        let targets: Vec<u32> = (0..6).map(|_| rng.gen_range(0..20)).collect();
        let la = sgd_pair(&mut a_in[c * 50..(c + 1) * 50], &mut a_out, &targets, 0.3, &table, &mut scratch, true);
        // SAFETY: AVX2 was detected above.
        let lb = unsafe {
            sgd_pair_avx2(&mut b_in[c * 50..(c + 1) * 50], &mut b_out, &targets, 0.3, &table, &mut scratch, true)
        };
        assert_eq!(la.map(f64::to_bits), lb.map(f64::to_bits), "loss at step {step}");
    }
    assert!(a_in == b_in && a_out == b_out, "the two builds gave different vectors");
}

#[test]
fn skipgram_is_reproducible_with_a_seed() {
    let (_, texts) = topic_corpus(1);
    let refs: Vec<&[String]> = texts.iter().map(|t| t.as_slice()).collect();
    let cfg = SkipgramConfig { epochs: 2, sample: 1e-2, ..small_cfg() };
    let a = train_skipgram(&refs, &cfg, 7).unwrap();
    let b = train_skipgram(&refs, &cfg, 7).unwrap();
    assert_eq!(a.words, b.words);
    assert!(a.data == b.data, "same seed, different vectors");
    let c = train_skipgram(&refs, &cfg, 8).unwrap();
    assert!(a.data != c.data, "another seed gave the same vectors");
    assert_eq!((a.words.len(), a.dim, a.data.len()), (24, 16, 24 * 16));
    assert!(a.data.iter().all(|x| x.is_finite()));
}

#[test]
fn skipgram_places_cooccurring_words_closer() {
    let (topics, texts) = topic_corpus(2);
    let refs: Vec<&[String]> = texts.iter().map(|t| t.as_slice()).collect();
    let wv = train_skipgram(&refs, &small_cfg(), 3).unwrap();
    let idx = wv.index();
    let row = |w: &String| wv.row(idx[w.as_str()]);
    let (mut same, mut cross) = (Vec::new(), Vec::new());
    for (ti, t) in topics.iter().enumerate() {
        for (i, a) in t.iter().enumerate() {
            for b in &t[i + 1..] {
                same.push(cosine(row(a), row(b)));
            }
            for u in &topics[ti + 1..] {
                for b in u {
                    cross.push(cosine(row(a), row(b)));
                }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (s, c) = (mean(&same), mean(&cross));
    println!("mean cosine: co-occurring {s:.3}, across topics {c:.3}");
    assert!(s > c + 0.3, "co-occurring pairs {s:.3} are not clearly closer than others {c:.3}");
}

#[test]
fn skipgram_rejects_bad_input() {
    let one = vec!["a".to_string(); 5];
    let e = train_skipgram(&[one.as_slice()], &small_cfg(), 0).unwrap_err();
    assert!(e.to_string().contains("at least 2 distinct words"), "{e}");
    let cfg = SkipgramConfig { lr: 0.0, ..small_cfg() };
    assert!(train_skipgram(&[one.as_slice()], &cfg, 0).is_err());
}

#[test]
fn nus_wide_tag_vectors_read_as_300d() {
    let Some(root) = shared_data("nus-wide") else { return };
    let tags_text = std::fs::read_to_string(root.join("TagList1k.txt")).unwrap();
    // CRLF lines: `lines()` strips the '\n', the '\r' must go too.
    let tags: Vec<String> = tags_text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    assert_eq!(tags.len(), 1000);
    assert!(tags.iter().all(|t| !t.is_empty() && !t.contains(char::is_whitespace)));
    let path = root.join("TagList1k.glove300.vec");
    assert_eq!(detect_format(&path).unwrap(), VectorFormat::Word2vecText);
    let keep: HashSet<String> = tags.iter().cloned().collect();
    let wv = read_vectors(&path, VectorFormat::Word2vecText, Some(&keep)).unwrap();
    let cov = Coverage::of(&tags, &wv);
    println!("NUS-WIDE TagList1k: {cov}");
    assert_eq!(wv.dim, 300);
    assert_eq!(wv.data.len(), wv.words.len() * 300);
    assert!(cov.found >= 900, "only {cov}");
    assert!((0..wv.words.len()).all(|i| wv.row(i).iter().any(|&x| x != 0.0)), "an all-zero vector");
}

/// The converted GloVe file of `make glove`, when present: the first values of "the" are
/// Stanford's glove.6B.50d.txt ones.
#[test]
fn glove6b50_file_when_converted() {
    let path = project_root().join(GLOVE6B50_PATH);
    if !path.exists() {
        eprintln!("SKIP: {} is absent (run `make glove`)", path.display());
        return;
    }
    // "sandberger" is the last of the 400000 rows.
    let vocab = words(&["the", "king", "queen", "notawordinglove", "sandberger"]);
    let cfg = VectorsConfig { source: VectorSource::Glove6b50, path: Some(path), ..VectorsConfig::default() };
    let t0 = std::time::Instant::now();
    let wv = vectors_for(&cfg, &vocab, &[], None, 0).unwrap();
    println!("read 5 of 400000 GloVe words in {:.2}s", t0.elapsed().as_secs_f64());
    assert_eq!((wv.words.len(), wv.dim), (4, 50));
    assert_eq!(wv.words[3], "sandberger");
    assert_eq!(&wv.row(0)[..3], &[0.418, 0.24968, -0.41242]);
    let (king, queen, the) = (wv.row(1), wv.row(2), wv.row(0));
    assert!(cosine(king, queen) > cosine(king, the), "king is not closer to queen than to `the`");
}

/// The conversion script on a tiny stand-in for the package's files (needs the venv's
/// numpy and pyarrow).
#[test]
fn glove_script_converts_npy_and_parquet() {
    let Some(py) = crate::common::venv_python() else { return };
    let dir = temp_dir("wordvec_glove_script");
    let make = "import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq\n\
        d = sys.argv[1]\n\
        np.save(d + '/glove_6B_50d_emb.npy', np.array([[0.5, -1.25], [2.0, 1e-3], [3.0, -0.125]], dtype=np.float32))\n\
        pq.write_table(pa.table({'index': ['the', 'naïve', ',']}), d + '/glove_6B_index.parquet')\n";
    let out = std::process::Command::new(&py).args(["-c", make, dir.to_str().unwrap()]).output().unwrap();
    if !out.status.success() {
        eprintln!("SKIP: the venv lacks numpy or pyarrow: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let bin = dir.join("out.bin");
    let script = project_root().join("scripts/glove_to_vec.py");
    crate::common::run_python(&py, &script, &[bin.to_str().unwrap(), "--root", dir.to_str().unwrap()]);
    let wv = read_vectors(&bin, VectorFormat::Word2vecBinary, None).unwrap();
    assert_eq!(wv.words, ["the", "naïve", ","]);
    assert_eq!((wv.dim, wv.data.clone()), (2, vec![0.5, -1.25, 2.0, 1e-3, 3.0, -0.125]));
    assert_eq!(detect_format(&bin).unwrap(), VectorFormat::Word2vecBinary);
}

fn eng_wiki_train_texts() -> Option<Vec<Vec<String>>> {
    let root = shared_data("eng-wiki")?;
    let list = std::fs::read_to_string(root.join("trainset_txt_img_cat.list")).unwrap();
    let mut texts = Vec::new();
    for line in list.lines() {
        let id = line.split('\t').next().unwrap().trim();
        let path = root.join("text_seqs").join(format!("{id}.xml"));
        let bytes = std::fs::read(&path).unwrap();
        // One sentence per line, then a TAB and the class id.
        let toks = String::from_utf8_lossy(&bytes)
            .lines()
            .flat_map(|l| l.split('\t').next().unwrap_or("").split_whitespace().map(str::to_lowercase))
            .collect::<Vec<_>>();
        texts.push(toks);
    }
    Some(texts)
}

/// The authors' recipe on Eng-Wiki's train split; prints the speed (tokens/s) and a few
/// neighbours, and checks that related words are closer than unrelated ones.
#[test]
#[ignore = "real data, about a minute on 2 cores"]
fn skipgram_on_eng_wiki() {
    let Some(texts) = eng_wiki_train_texts() else { return };
    let refs: Vec<&[String]> = texts.iter().map(|t| t.as_slice()).collect();
    let wv = train_skipgram(&refs, &SkipgramConfig::default(), 1).unwrap();
    let idx = wv.index();
    let cos = |a: &str, b: &str| cosine(wv.row(idx[a]), wv.row(idx[b]));
    for q in ["football", "music", "king", "species"] {
        let mut s: Vec<(f64, &str)> =
            wv.words.iter().filter(|w| w.as_str() != q).map(|w| (cos(q, w), w.as_str())).collect();
        s.sort_by(|x, y| y.0.total_cmp(&x.0));
        println!("{q}: {:?}", &s[..6]);
    }
    let related = [("football", "basketball"), ("king", "throne"), ("music", "guitar"), ("species", "fauna")];
    let unrelated = [("football", "throne"), ("king", "guitar"), ("music", "fauna"), ("species", "basketball")];
    let mean = |p: &[(&str, &str)]| p.iter().map(|(a, b)| cos(a, b)).sum::<f64>() / p.len() as f64;
    let (r, u) = (mean(&related), mean(&unrelated));
    println!("mean cosine: related {r:.3}, unrelated {u:.3}");
    assert!(r > u + 0.1, "related {r:.3} vs unrelated {u:.3}");
}
