//! Seeded random mutations of the files a user hands over: config YAML layers, `.npy`
//! feature files (and MAT-files), Eng-Wiki-style list files and text-graph cache files.
//! Each reader must return `Ok` or `Err`, never panic. The mutations are byte flips,
//! truncations, inserted bytes, swapped numbers, huge numbers, negative numbers and
//! emptied fields, one to three per case.
//!
//! Bounded: a fixed number of cases per kind (a few seconds in all on 2 cores). The seed
//! and the number of cases can be changed for a longer hunt:
//! `TGCN_FUZZ_SEED=7 TGCN_FUZZ_SCALE=20 cargo test --release fuzz -- --nocapture`.
//! A panicking input is written to `target/test-tmp/fuzz_failures/` and named in the failure.

use crate::common::{project_root, temp_dir};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tgcn::data::features::{ids_path, npy_bytes, parse_npy, read_features, write_features, Features};
use tgcn::data::mat5::{mat5_bytes, parse_matrices, MatClass, Matrix};

fn seed() -> u64 {
    std::env::var("TGCN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11)
}

/// Cases per kind: `base` times `TGCN_FUZZ_SCALE` (default 1).
fn cases(base: usize) -> usize {
    base * std::env::var("TGCN_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

const HUGE: [&str; 10] = [
    "18446744073709551615",
    "18446744073709551616",
    "2305843009213693952",
    "4611686018427387904",
    "9223372036854775808",
    "9223372036854775807",
    "4294967296",
    "1e308",
    "1e39",
    "99999999999999999999999999",
];

/// Byte ranges of the runs of ASCII digits in `b`.
fn numbers(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Ranges between field separators (TAB, comma, colon, newline, space), for emptying.
fn fields(b: &[u8]) -> Vec<(usize, usize)> {
    let sep = |c: u8| matches!(c, b'\t' | b',' | b':' | b'\n' | b'\r' | b' ');
    let mut out = Vec::new();
    let mut s = 0;
    for i in 0..=b.len() {
        if i == b.len() || sep(b[i]) {
            if i > s {
                out.push((s, i));
            }
            s = i + 1;
        }
    }
    out
}

/// One random mutation of `b`.
fn mutate_once(rng: &mut ChaCha8Rng, b: &mut Vec<u8>) {
    let pick = |rng: &mut ChaCha8Rng, v: &[(usize, usize)]| -> Option<(usize, usize)> {
        (!v.is_empty()).then(|| v[rng.gen_range(0..v.len())])
    };
    match rng.gen_range(0..8) {
        // A binary number (an aligned 32-bit word, as in MAT tags and dimensions) made
        // huge or negative.
        7 if b.len() >= 4 => {
            let at = 4 * rng.gen_range(0..b.len() / 4);
            let words = [u32::MAX, 0x8000_0000, 0x7fff_ffff, 0x0001_0000, 0xffff_fff4, 0];
            b[at..at + 4].copy_from_slice(&words[rng.gen_range(0..words.len())].to_le_bytes());
        }
        // Byte flip.
        0 if !b.is_empty() => {
            let i = rng.gen_range(0..b.len());
            if rng.gen_bool(0.5) {
                b[i] ^= 1 << rng.gen_range(0..8);
            } else {
                b[i] = rng.gen();
            }
        }
        // Truncation.
        1 if !b.is_empty() => {
            let n = rng.gen_range(0..b.len());
            b.truncate(n);
        }
        // Inserted bytes: random ones or a structural character.
        2 => {
            let at = rng.gen_range(0..=b.len());
            let ins: Vec<u8> = if rng.gen_bool(0.5) {
                (0..rng.gen_range(1..8)).map(|_| rng.gen()).collect()
            } else {
                let pool: [&[u8]; 9] = [b"\t", b"\n", b"\r\n", b":", b",", b"{", b"[", b"\"", b"\xef\xbb\xbf"];
                pool[rng.gen_range(0..pool.len())].to_vec()
            };
            b.splice(at..at, ins);
        }
        // Two numbers swapped.
        3 => {
            let ns = numbers(b);
            if ns.len() >= 2 {
                let (mut x, mut y) = (ns[rng.gen_range(0..ns.len())], ns[rng.gen_range(0..ns.len())]);
                if x.0 > y.0 {
                    std::mem::swap(&mut x, &mut y);
                }
                if x != y {
                    let (xs, ys) = (b[x.0..x.1].to_vec(), b[y.0..y.1].to_vec());
                    b.splice(y.0..y.1, xs);
                    b.splice(x.0..x.1, ys);
                }
            }
        }
        // A huge number.
        4 => {
            if let Some((s, e)) = pick(rng, &numbers(b)) {
                let h = HUGE[rng.gen_range(0..HUGE.len())];
                b.splice(s..e, h.bytes());
            }
        }
        // A negative number.
        5 => {
            if let Some((s, e)) = pick(rng, &numbers(b)) {
                if rng.gen_bool(0.5) {
                    b.insert(s, b'-');
                } else {
                    b.splice(s..e, b"-1".iter().copied());
                }
            }
        }
        // An emptied field.
        _ => {
            if let Some((s, e)) = pick(rng, &fields(b)) {
                b.drain(s..e);
            }
        }
    }
}

fn mutate(rng: &mut ChaCha8Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        mutate_once(rng, &mut b);
    }
    b
}

/// Tallies one kind and fails on the first panic, saving the input that caused it.
struct Tally {
    kind: &'static str,
    ok: usize,
    err: usize,
    start: Instant,
}

impl Tally {
    fn new(kind: &'static str) -> Tally {
        Tally { kind, ok: 0, err: 0, start: Instant::now() }
    }

    fn run<T>(&mut self, case: usize, input: &[(&str, &[u8])], f: impl FnOnce() -> anyhow::Result<T>) {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(_)) => self.ok += 1,
            Ok(Err(_)) => self.err += 1,
            Err(_) => {
                let dir = project_root().join("target/test-tmp/fuzz_failures");
                std::fs::create_dir_all(&dir).unwrap();
                let mut saved = Vec::new();
                for (name, bytes) in input {
                    let p = dir.join(format!("{}-seed{}-case{case}-{name}", self.kind, seed()));
                    std::fs::write(&p, bytes).unwrap();
                    saved.push(p.display().to_string());
                }
                panic!("{} case {case} (seed {}) panicked; input saved as {}", self.kind, seed(), saved.join(", "));
            }
        }
    }

    fn report(&self) {
        eprintln!(
            "fuzz {:<12} {:>5} cases: {:>5} Ok, {:>5} Err, no panic ({:.2}s)",
            self.kind,
            self.ok + self.err,
            self.ok,
            self.err,
            self.start.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn fuzz_config_layers() {
    use tgcn::config::{Config, Layer};
    let mut rng = ChaCha8Rng::seed_from_u64(seed());
    let dir = temp_dir("fuzz_config");
    let bases: Vec<Vec<u8>> = ["synthetic", "eng-wiki", "pascal"]
        .iter()
        .map(|n| std::fs::read(project_root().join(format!("configs/{n}.yaml"))).unwrap())
        .collect();
    let base_layer = Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap();
    let sets: [&[u8]; 6] = [
        b"train.lr=1e-4",
        b"model.text.cheb=[{k: 3, filters: 2}, {k: 2, filters: 1}]",
        b"graph.k=8",
        b"data.synthetic.train=1500",
        b"eval.scope=[1, 5, 10, 100]",
        b"train.batch_size=256",
    ];
    let mut files = Tally::new("config-file");
    let file = dir.join("layer.yaml");
    for case in 0..cases(1000) {
        let text = mutate(&mut rng, &bases[case % bases.len()]);
        std::fs::write(&file, &text).unwrap();
        files.run(case, &[("layer.yaml", &text)], || Config::from_layers(&[Layer::from_file(&file)?]));
    }
    files.report();
    let mut set = Tally::new("config-set");
    for case in 0..cases(5000) {
        let text = mutate(&mut rng, sets[case % sets.len()]);
        set.run(case, &[("set.txt", &text)], || {
            let s = String::from_utf8_lossy(&text);
            Config::from_layers(&[base_layer.clone(), Layer::from_set(&s)?])
        });
    }
    set.report();
}

/// Mutates only the header text of a `.npy` (shape, dtype, lengths); half the time the
/// body is dropped too, so that a shape whose size wraps around could "match" it.
fn mutate_npy_header(rng: &mut ChaCha8Rng, npy: &[u8], hlen: usize) -> Vec<u8> {
    let mut b = mutate(rng, &npy[..hlen]);
    if rng.gen_bool(0.5) {
        b.extend_from_slice(&npy[hlen..]);
    }
    b
}

fn matrix(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect()
}

#[test]
fn fuzz_npy_and_mat_files() {
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 1);
    let dir = temp_dir("fuzz_npy");
    // Header-only mutations hit the shape and lengths; whole-file ones hit the body too.
    let npy = npy_bytes(&matrix(3, 4), 3, 4);
    let hlen = 10 + u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let header = &npy[10..hlen];
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(header);
    v2.extend_from_slice(&npy[hlen..]);
    let mut parse = Tally::new("npy-bytes");
    for case in 0..cases(30000) {
        let bytes = match case % 3 {
            0 => mutate(&mut rng, &npy),
            1 => mutate_npy_header(&mut rng, &npy, hlen),
            _ => mutate(&mut rng, &v2),
        };
        // What the reader accepts is consistent: rows × cols values.
        parse.run(case, &[("x.npy", &bytes)], || {
            let (data, rows, cols) = parse_npy(&bytes, "x.npy")?;
            assert_eq!(data.len(), rows * cols, "shape ({rows}, {cols})");
            Ok(())
        });
    }
    parse.report();

    // Two rows: 2 × 2^61 × 4 bytes wraps to an empty body in 64 bits.
    let two = npy_bytes(&matrix(2, 4), 2, 4);
    let path = dir.join("f.npy");
    let ids = b"a\nb\n".to_vec();
    let mut files = Tally::new("npy-file");
    for case in 0..cases(900) {
        let (bytes, id_text) = match case % 3 {
            0 => (mutate_npy_header(&mut rng, &two, hlen), ids.clone()),
            1 => (mutate(&mut rng, &two), ids.clone()),
            _ => (two.clone(), mutate(&mut rng, &ids)),
        };
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(ids_path(&path), &id_text).unwrap();
        // Every row the reader accepts can be sliced as the loaders slice it.
        files.run(case, &[("f.npy", &bytes), ("f.ids.txt", &id_text)], || {
            let f = read_features(&path)?;
            for r in 0..f.ids.len() {
                assert!(f.data[r * f.dim..(r + 1) * f.dim].iter().all(|v| v.is_finite()));
            }
            Ok(())
        });
    }
    files.report();

    let grid = |name: &str, rows, cols| Matrix {
        name: name.into(),
        rows,
        cols,
        data: (0..rows * cols).map(|i| i as f64 - 2.5).collect(),
    };
    let (a, b) = (grid("I_tr", 3, 4), grid("I_te", 2, 4));
    let (one, te) = (grid("I_tr", 1, 1), grid("I_te", 1, 1));
    let mats = [
        mat5_bytes(&[&a, &b], MatClass::Double, false),
        mat5_bytes(&[&a, &b], MatClass::Single, true),
        mat5_bytes(&[&one, &te], MatClass::Double, false),
    ];
    let mut mat = Tally::new("mat-bytes");
    for case in 0..cases(30000) {
        let bytes = mutate(&mut rng, &mats[case % mats.len()]);
        mat.run(case, &[("x.mat", &bytes)], || parse_matrices(&bytes, &["I_tr", "I_te"], "x.mat"));
    }
    mat.report();
}

/// A small Eng-Wiki layout: lists, categories, `text_seqs`, a `.mat` and a keyed `.npy`;
/// returns the files the fuzzer mutates with their contents.
fn listed_fixture(root: &Path) -> [(PathBuf, Vec<u8>); 5] {
    let train: Vec<(String, String, usize)> = (0..9).map(|k| (format!("t{k}"), format!("i{k}"), 1 + k % 3)).collect();
    let test: Vec<(String, String, usize)> = (0..3).map(|k| (format!("s{k}"), format!("j{k}"), 1 + k % 3)).collect();
    let list = |p: &[(String, String, usize)]| -> Vec<u8> {
        p.iter().map(|(t, i, c)| format!("{t}\t{i}\t{c}\r\n")).collect::<String>().into_bytes()
    };
    std::fs::create_dir_all(root.join("text_seqs")).unwrap();
    for (t, _, c) in train.iter().chain(&test) {
        let l = c - 1;
        std::fs::write(root.join(format!("text_seqs/{t}.xml")), format!("{t} army wa\t{l}\nx-ray\t{l}\n")).unwrap();
    }
    let m = |name: &str, n: usize| Matrix { name: name.into(), rows: n, cols: 2, data: vec![0.5; n * 2] };
    std::fs::write(root.join("raw_features.mat"), mat5_bytes(&[&m("I_tr", 9), &m("I_te", 3)], MatClass::Double, true))
        .unwrap();
    let ids: Vec<String> = train.iter().chain(&test).map(|p| p.1.clone()).collect();
    let n = ids.len();
    write_features(&root.join("feat.npy"), &Features { ids, dim: 2, data: matrix(n, 2) }).unwrap();
    let npy = std::fs::read(root.join("feat.npy")).unwrap();
    let files = [
        (root.join("feat.npy"), npy),
        (root.join("trainset_txt_img_cat.list"), list(&train)),
        (root.join("testset_txt_img_cat.list"), list(&test)),
        (root.join("categories.list"), b"art\r\nbiology\r\ngeography\r\n".to_vec()),
        (root.join("text_seqs/t4.xml"), b"t4 army wa\t1\nx-ray\t1\n".to_vec()),
    ];
    for (p, b) in &files[1..] {
        std::fs::write(p, b).unwrap();
    }
    files
}

#[test]
fn fuzz_listed_loader() {
    use tgcn::data::listed::{load_full, ListedConfig};
    use tgcn::data::tokenize::{Language, Tokenizer};
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 2);
    let root = temp_dir("fuzz_listed");
    let files = listed_fixture(&root);
    let cfg = |features: &str, on_missing: &str| -> ListedConfig {
        let yaml = format!(
            "root: {}\ntexts: text_seqs\nimage_features: {features}\nval_fraction: 0.34\non_missing: {on_missing}\n",
            root.display()
        );
        serde_yaml::from_str(&yaml).unwrap()
    };
    let feat = format!("{{kind: file, path: {}}}", root.join("feat.npy").display());
    let cfgs = [cfg("{kind: mat}", "error"), cfg(&feat, "skip"), cfg("{kind: mat}", "skip"), cfg(&feat, "error")];
    let tok = Tokenizer::new(Language::En, true, false);
    load_full("fixture", &cfgs[0], &tok, 1).expect("the unmutated fixture loads");
    let mut t = Tally::new("list-files");
    for case in 0..cases(600) {
        // Mostly the two lists; sometimes the class names, a text or the keyed features
        // (then read through a `kind: file` config).
        let k = [1, 1, 2, 2, 3, 4, 0][rng.gen_range(0..7)];
        let bytes = mutate(&mut rng, &files[k].1);
        std::fs::write(&files[k].0, &bytes).unwrap();
        let name = files[k].0.file_name().unwrap().to_string_lossy().into_owned();
        let c = if k == 0 { 1 + 2 * (case % 2) } else { case % cfgs.len() };
        t.run(case, &[(&name, &bytes)], || load_full("fixture", &cfgs[c], &tok, case as u64));
        std::fs::write(&files[k].0, &files[k].1).unwrap();
    }
    t.report();
}

#[test]
fn fuzz_text_graph_cache() {
    use tgcn::graph::laplacian::{rescaled_laplacian, LambdaMax};
    use tgcn::graph::word_graph::Graph;
    use tgcn::prepare::{read_text_graph_cache, TextGraph};
    let mut rng = ChaCha8Rng::seed_from_u64(seed() ^ 3);
    let dir = temp_dir("fuzz_cache");
    // A ring of 12 words, each joined to its two neighbours, plus one self-loop.
    let n = 12;
    let mut entries: Vec<(usize, usize, f32)> =
        (0..n).flat_map(|i| [(i, (i + 1) % n, 1.0), (i, (i + n - 1) % n, 0.5)]).collect();
    entries.push((3, 3, 1.0));
    entries.sort_by_key(|e| (e.0, e.1));
    let tg = TextGraph {
        words: (0..n).map(|i| format!("w{i}")).collect(),
        counts: (0..n).map(|i| 10 + i).collect(),
        entries,
        relation_entries: Vec::new(),
        without_vector: 1,
        vector_dim: 50,
    };
    let good = serde_json::to_vec(&tg).unwrap();
    let path = dir.join("text-graph-0123456789abcdef01234567.json");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(read_text_graph_cache(&path).unwrap(), Some(tg));
    let mut t = Tally::new("cache-file");
    for case in 0..cases(1200) {
        let bytes = mutate(&mut rng, &good);
        std::fs::write(&path, &bytes).unwrap();
        // What the reader accepts must also make a Laplacian and a vocabulary without a panic.
        t.run(case, &[("cache.json", &bytes)], || {
            let Some(tg) = read_text_graph_cache(&path)? else { anyhow::bail!("no cache") };
            let g = Graph { n: tg.words.len(), entries: tg.entries.clone() };
            rescaled_laplacian(&g, LambdaMax::PowerIteration)?;
            let vocab = tgcn::text::vocab::Vocab::from_words(tg.words, tg.counts);
            let text: Vec<String> = vec!["w1".into(), "w3".into(), "zz".into()];
            vocab.bow_matrix([text.as_slice()]);
            let _ = g.stats();
            Ok(())
        });
    }
    t.report();
}
