//! The MAT v5 reader and the list-layout loaders (Eng-Wiki, TVGraz, Ch-Wiki): fixtures in
//! the official layout written by each test, every documented error, and the real Eng-Wiki.

use crate::common::{dataset_cfg, shared_data, temp_dir};
use std::path::{Path, PathBuf};
use tgcn::config::Config;
use tgcn::data::features::{write_features, Features};
use tgcn::data::listed::{load_full, ListedConfig, Loaded};
use tgcn::data::mat5::{mat5_bytes, parse_matrices, read_matrix, MatClass, Matrix};
use tgcn::data::tokenize::{Language, Tokenizer};
use tgcn::data::OnMissing;
use tgcn::data::Split;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Written by scipy 1.17 (an independent writer), with
/// `A = [[1.5, -2, 3.25], [4, 5.5, -6]]` (double), `long_name_B = [[.5], [1], [2]]` (single),
/// `C = -arange(12).reshape(3, 4)` (int16) and `note = 'hi'` (char):
/// `scipy.io.savemat(f, {...}, do_compression=c, oned_as='column')`, then `f.getvalue().hex()`.
const SCIPY_PLAIN: &str = "4d41544c414220352e30204d41542d66696c6520506c6174666f726d3a20706f7369782c2043726561746564206f6e3a2053756e204e6f762032392031323a35313a313720323032360000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001494d0e00000060000000060000000800000006000000000000000500000008000000020000000300000001000100410000000900000030000000000000000000f83f000000000000104000000000000000c000000000000016400000000000000a4000000000000018c00e000000500000000600000008000000070000000000000005000000080000000300000001000000010000000b0000006c6f6e675f6e616d655f420000000000070000000c0000000000003f0000803f00000040000000000e0000004800000006000000080000000a0000000000000005000000080000000300000004000000010001004300000003000000180000000000fcfff8fffffffbfff7fffefffafff6fffdfff9fff5ff0e000000300000000600000008000000040000000000000005000000080000000100000002000000010004006e6f74651000020068690000";
const SCIPY_COMPRESSED: &str = "4d41544c414220352e30204d41542d66696c6520506c6174666f726d3a20706f7369782c2043726561746564206f6e3a2053756e204e6f762032392031323a35313a313720323032360000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001494d0f0000003a000000789ce36360604800623620e680d220c00ae533013133103302a12390e60462030618f8610fa1051ca0020720941894cf05a5250e0000accd04d00f0000003c000000789ce36360600800623620e600627606086085f2998198118ab98138273f2f3d3e2f313735de09ac0ea49e07a2c59e81a10188191c401c00d12406330f0000003f000000789ce3636060f000623620e600622e06086085f299819805881981d019ca9700abf8f3ffc7ffffff7ffffffeffdfff5fffbffdfffbffe7ffafff012ae816960f0000002b000000789ce36360603000623620e600621606086085f2198198094cb330e4e597a40a007919990c0c00279902ff";

#[test]
fn mat5_reads_scipy_files_plain_and_compressed() {
    for (label, h) in [("plain", SCIPY_PLAIN), ("compressed", SCIPY_COMPRESSED)] {
        let m = parse_matrices(&hex(h), &["C", "A", "long_name_B"], label).unwrap();
        assert_eq!((m[1].rows, m[1].cols), (2, 3), "{label}");
        assert_eq!(m[1].data, vec![1.5, -2.0, 3.25, 4.0, 5.5, -6.0], "{label}: A row-major");
        assert_eq!((m[2].rows, m[2].cols, m[2].data.clone()), (3, 1, vec![0.5, 1.0, 2.0]), "{label}: B");
        let c: Vec<f64> = (0..12).map(|v| -(v as f64)).collect();
        assert_eq!((m[0].rows, m[0].cols, m[0].data.clone()), (3, 4, c), "{label}: C int16");
        let e = format!("{:#}", parse_matrices(&hex(h), &["note"], label).unwrap_err());
        assert!(e.contains("`note`") && e.contains("char"), "{e}");
    }
}

fn grid(name: &str, rows: usize, cols: usize) -> Matrix {
    // Element (r, c) = 10r + c + 0.5 tells a transpose from the right order.
    let data = (0..rows * cols).map(|i| (10 * (i / cols) + i % cols) as f64 + 0.5).collect();
    Matrix { name: name.into(), rows, cols, data }
}

#[test]
fn mat5_roundtrip_is_row_major_for_each_storage() {
    let a = grid("I_tr", 3, 5);
    let b = grid("longer_name", 4, 2);
    for class in [MatClass::Double, MatClass::Single] {
        for compress in [false, true] {
            let bytes = mat5_bytes(&[&a, &b], class, compress);
            let m = parse_matrices(&bytes, &["longer_name", "I_tr"], "rt").unwrap();
            assert_eq!(m[1], a, "{class:?} compress={compress}");
            assert_eq!(m[0], b, "{class:?} compress={compress}");
            assert_eq!(m[1].row(2), &[20.5, 21.5, 22.5, 23.5, 24.5]);
        }
    }
    // A 4-character name is written as a small element, as MATLAB does.
    let bytes = mat5_bytes(&[&a], MatClass::Double, false);
    assert!(bytes.windows(8).any(|w| w == [1, 0, 4, 0, b'I', b'_', b't', b'r']));
}

#[test]
fn mat5_truncation_corruption_and_missing_variable_are_errors() {
    let dir = temp_dir("mat5_errors");
    let (a, b) = (grid("I_tr", 6, 4), grid("I_te", 3, 4));
    for compress in [false, true] {
        let bytes = mat5_bytes(&[&a, &b], MatClass::Double, compress);
        let path = dir.join(format!("cut-{compress}.mat"));
        // Cut inside the second variable: the first is whole, the file still is not.
        for cut in [bytes.len() - 5, bytes.len() - 30, 140, 60] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = format!("{:#}", read_matrix(&path, "I_tr").unwrap_err());
            assert!(e.contains("truncated") && e.contains(&*path.to_string_lossy()), "cut {cut}: {e}");
        }
        std::fs::write(&path, &bytes).unwrap();
        let e = format!("{:#}", read_matrix(&path, "T_tr").unwrap_err());
        assert!(e.contains("`T_tr`") && e.contains("I_tr, I_te") && e.contains("cut-"), "{e}");
    }
    // A corrupt zlib stream of the right length.
    let mut bytes = mat5_bytes(&[&a], MatClass::Double, true);
    let n = bytes.len();
    bytes[n - 12..n - 4].copy_from_slice(&[0xff; 8]);
    let e = format!("{:#}", parse_matrices(&bytes, &["I_tr"], "corrupt.mat").unwrap_err());
    assert!(e.contains("corrupt.mat") && e.contains("inflate"), "{e}");
    let mut v73 = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".to_vec();
    v73.resize(512, 0);
    let e = format!("{:#}", parse_matrices(&v73, &["I_tr"], "new.mat").unwrap_err());
    assert!(e.contains("7.3") && e.contains("-v7"), "{e}");
    let e = format!("{:#}", parse_matrices(&[b' '; 200], &["I_tr"], "v4.mat").unwrap_err());
    assert!(e.contains("not a MAT v5"), "{e}");
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// (text id, image id, category) of the Eng-Wiki fixture: 9 train pairs, 3 per class, and 3 test.
const TRAIN: [(&str, &str, usize); 9] = [
    ("t01", "i01", 1),
    ("t02", "i02", 2),
    ("t03", "i03", 1),
    ("t04", "i04", 3),
    ("t05", "i05", 2),
    ("t06", "i06", 1),
    ("t07", "i07", 3),
    ("t08", "i08", 2),
    ("t09", "i09", 3),
];
const TEST: [(&str, &str, usize); 3] = [("s01", "j01", 2), ("s02", "j02", 1), ("s03", "j03", 3)];

fn list_text(pairs: &[(&str, &str, usize)]) -> String {
    pairs.iter().map(|(t, i, c)| format!("{t}\t{i}\t{c}\r\n")).collect()
}

/// Row k of `I_tr` starts with k + 0.25 and of `I_te` with 100 + k, so rows identify pairs.
fn sift(name: &str, base: f64, n: usize) -> Matrix {
    let data = (0..n).flat_map(|k| [base + k as f64, -(k as f64), 0.5, 7.0]).collect();
    Matrix { name: name.into(), rows: n, cols: 4, data }
}

/// The official Eng-Wiki layout with `text_seqs`, CRLF lists and a compressed `.mat`.
fn eng_wiki_fixture(name: &str) -> PathBuf {
    let root = temp_dir(name);
    write(&root.join("trainset_txt_img_cat.list"), list_text(&TRAIN));
    write(&root.join("testset_txt_img_cat.list"), list_text(&TEST));
    write(&root.join("categories.list"), "art\r\nbiology\r\ngeography\r\n");
    for (t, _, c) in TRAIN.iter().chain(&TEST) {
        let l = c - 1;
        write(
            &root.join(format!("text_seqs/{t}.xml")),
            format!("{t} Goebbels wa army\t{l}\n\ndanced.Stearns x-ray\t{l}\n"),
        );
    }
    let mats = [sift("I_tr", 0.25, TRAIN.len()), sift("I_te", 100.0, TEST.len())];
    write(&root.join("raw_features.mat"), mat5_bytes(&[&mats[0], &mats[1]], MatClass::Double, true));
    root
}

fn config(yaml: &str, root: &Path) -> ListedConfig {
    let text = format!("root: {}\n{yaml}", root.display());
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const SEQS_MAT: &str = "texts: text_seqs\nimage_features: {kind: mat}\nval_fraction: 0.34\non_missing: error\n";

fn en() -> Tokenizer {
    Tokenizer::new(Language::En, true, false)
}

fn load_err(cfg: &ListedConfig) -> String {
    format!("{:#}", load_full("fixture", cfg, &en(), 7).unwrap_err())
}

#[test]
fn eng_wiki_fixture_loads_text_seqs_and_mat_rows_in_list_order() {
    let root = eng_wiki_fixture("listed_eng_wiki");
    let cfg = config(SEQS_MAT, &root);
    let Loaded { dataset: ds, image_ids, skipped } = load_full("eng-wiki", &cfg, &en(), 7).unwrap();
    assert_eq!(ds.classes, ["art", "biology", "geography"]);
    assert!(!ds.multi_label && ds.word_vectors.is_none());
    assert_eq!((ds.items.len(), ds.image_dim, skipped.total()), (12, 4, 0));
    // The official test list is untouched, in list order; val is one per class of train.
    let test_ids: Vec<&str> = ds.test.iter().map(|&i| ds.items[i].id.as_str()).collect();
    assert_eq!(test_ids, ["s01", "s02", "s03"]);
    assert_eq!((ds.train.len(), ds.val.len()), (6, 3));
    assert_eq!(ds.class_counts(Split::Val), [1, 1, 1]);
    for (i, it) in ds.items.iter().enumerate() {
        let (k, base, pairs) = match it.id.strip_prefix('t') {
            Some(n) => (n.parse::<usize>().unwrap() - 1, 0.25, &TRAIN[..]),
            None => (it.id[1..].parse::<usize>().unwrap() - 1, 100.0, &TEST[..]),
        };
        assert_eq!(ds.image(i), &[(base + k as f64) as f32, -(k as f32), 0.5, 7.0], "{}", it.id);
        assert_eq!(image_ids[i], pairs[k].1);
        assert_eq!(it.labels, [pairs[k].2 - 1]);
        // Tokens as written: case, lemmas and punctuation inside words are kept.
        assert_eq!(it.tokens, [it.id.as_str(), "Goebbels", "wa", "army", "danced.Stearns", "x-ray"]);
    }
    // The carve is seeded: same seed, same split; another seed, another split here.
    let again = load_full("eng-wiki", &cfg, &en(), 7).unwrap().dataset;
    assert_eq!(again.val, ds.val);
    let other: Vec<Vec<usize>> = (8..20).map(|s| load_full("e", &cfg, &en(), s).unwrap().dataset.val).collect();
    assert!(other.iter().any(|v| *v != ds.val), "the seed does not move the validation carve");
}

#[test]
fn list_line_missing_field_or_bad_category_names_file_and_line() {
    let root = eng_wiki_fixture("listed_bad_list");
    let cfg = config(SEQS_MAT, &root);
    let list = root.join("trainset_txt_img_cat.list");
    let good = std::fs::read_to_string(&list).unwrap();
    let mut lines: Vec<&str> = good.split_inclusive('\n').collect();
    lines[2] = "t03\ti03\r\n";
    write(&list, lines.concat());
    let e = load_err(&cfg);
    assert!(e.contains("trainset_txt_img_cat.list:3") && e.contains("text_id<TAB>image_id<TAB>category"), "{e}");
    lines[2] = "t03\ti03\t4\r\n";
    write(&list, lines.concat());
    let e = load_err(&cfg);
    assert!(e.contains("trainset_txt_img_cat.list:3") && e.contains("category 4") && e.contains("3 classes"), "{e}");
    lines[2] = "s02\ti03\t1\r\n";
    write(&list, lines.concat());
    let e = load_err(&cfg);
    assert!(e.contains("trainset_txt_img_cat.list:3") && e.contains("testset_txt_img_cat.list:2"), "{e}");
}

#[test]
fn missing_text_is_an_error_or_a_counted_skip() {
    let root = eng_wiki_fixture("listed_missing_text");
    std::fs::remove_file(root.join("text_seqs/t05.xml")).unwrap();
    let e = load_err(&config(SEQS_MAT, &root));
    assert!(e.contains("trainset_txt_img_cat.list:5") && e.contains("t05.xml") && e.contains("on_missing"), "{e}");
    let mut cfg = config(SEQS_MAT, &root);
    cfg.on_missing = OnMissing::Skip;
    let l = load_full("fixture", &cfg, &en(), 7).unwrap();
    assert_eq!((l.skipped.no_text, l.skipped.total()), (1, 1));
    assert_eq!(l.dataset.items.len(), 11);
    // The rows after the skipped pair still belong to their own pairs.
    let t06 = l.dataset.items.iter().position(|it| it.id == "t06").unwrap();
    assert_eq!(l.dataset.image(t06)[0], 5.25);
    assert_eq!(l.image_ids[t06], "i06");
}

#[test]
fn nan_row_row_count_and_truncated_mat_are_errors() {
    let root = eng_wiki_fixture("listed_bad_mat");
    let cfg = config(SEQS_MAT, &root);
    let mat = root.join("raw_features.mat");
    let mut tr = sift("I_tr", 0.25, TRAIN.len());
    tr.data[2 * 4 + 1] = f64::NAN;
    let te = sift("I_te", 100.0, TEST.len());
    write(&mat, mat5_bytes(&[&tr, &te], MatClass::Single, false));
    let e = load_err(&cfg);
    assert!(e.contains("raw_features.mat") && e.contains("`I_tr` row 3 column 2") && e.contains("i03"), "{e}");
    let short = sift("I_tr", 0.25, TRAIN.len() - 1);
    write(&mat, mat5_bytes(&[&short, &te], MatClass::Double, true));
    let e = load_err(&cfg);
    assert!(e.contains("`I_tr` has 8 rows") && e.contains("lists 9 pairs"), "{e}");
    let good = mat5_bytes(&[&sift("I_tr", 0.25, 9), &te], MatClass::Double, true);
    write(&mat, &good[..good.len() - 9]);
    let e = load_err(&cfg);
    assert!(e.contains("raw_features.mat") && e.contains("truncated"), "{e}");
    write(&mat, &good);
    let e = load_err(&config(&SEQS_MAT.replace("{kind: mat}", "{kind: mat, test_var: T_te}"), &root));
    assert!(e.contains("no variable `T_te`"), "{e}");
}

#[test]
fn text_seqs_label_mismatch_and_non_utf8_name_the_line() {
    let root = eng_wiki_fixture("listed_bad_seqs");
    let cfg = config(SEQS_MAT, &root);
    write(&root.join("text_seqs/t04.xml"), "fine words\t2\nwrong label\t0\n");
    let e = load_err(&cfg);
    assert!(e.contains("t04.xml:2") && e.contains("category 1") && e.contains("category 3"), "{e}");
    write(&root.join("text_seqs/t04.xml"), b"fine words\t2\nbad \xff byte\t2\n");
    let e = load_err(&cfg);
    assert!(e.contains("t04.xml:2") && e.contains("not UTF-8") && e.contains("0xff"), "{e}");
    write(&root.join("text_seqs/t04.xml"), "no tab here\n");
    let e = load_err(&cfg);
    assert!(e.contains("t04.xml:1") && e.contains("no TAB"), "{e}");
    // Nothing but blank lines: no tokens, an error or a counted skip.
    write(&root.join("text_seqs/t04.xml"), "\r\n\r\n");
    let e = load_err(&cfg);
    assert!(e.contains("trainset_txt_img_cat.list:4") && e.contains("no tokens"), "{e}");
    let mut cfg = cfg;
    cfg.on_missing = OnMissing::Skip;
    assert_eq!(load_full("fixture", &cfg, &en(), 7).unwrap().skipped.no_tokens, 1);
}

/// Features keyed by image id, rows in an order unrelated to the lists: row of `iNN` is
/// [NN, -NN], of `jNN` [100 + NN, 0]; plus an id no list names.
/// An id as a word the English tokenizer keeps: digits become letters (`t01` → `tab`).
fn spell(id: &str) -> String {
    id.chars().map(|c| c.to_digit(10).map_or(c, |d| (b'a' + d as u8) as char)).collect()
}

fn keyed_features(path: &Path, drop: Option<&str>, nan: Option<&str>) {
    let mut ids: Vec<String> = TRAIN.iter().chain(&TEST).map(|p| p.1.to_string()).collect();
    ids.push("unused".into());
    ids.reverse();
    ids.retain(|i| Some(i.as_str()) != drop);
    let data = ids
        .iter()
        .flat_map(|id| {
            let n: f32 = id[1..].parse().unwrap_or(0.0);
            let row = if id.starts_with('j') { [100.0 + n, 0.0] } else { [n, -n] };
            if Some(id.as_str()) == nan {
                [f32::NAN, 0.0]
            } else {
                row
            }
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_features(path, &Features { ids, dim: 2, data }).unwrap();
}

#[test]
fn eng_wiki_raw_xml_texts_with_features_keyed_by_image_id() {
    let root = eng_wiki_fixture("listed_eng_wiki_raw");
    for (t, _, _) in TRAIN.iter().chain(&TEST) {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<document>\r\n<title>Ignored Heading</title>\r\n\
             <text>Rome &amp; Carthage fought<br/>wars &#x41;ncient {} & tail</text>\r\n</document>\r\n",
            spell(t)
        );
        write(&root.join(format!("texts/{t}.xml")), xml);
    }
    let feats = root.join("features/resnet.npy");
    keyed_features(&feats, None, None);
    let yaml = format!(
        "texts: raw\nimage_features: {{kind: file, path: {}}}\nval_fraction: 0.34\non_missing: error\n",
        feats.display()
    );
    let l = load_full("eng-wiki", &config(&yaml, &root), &en(), 7).unwrap();
    let ds = &l.dataset;
    assert_eq!((ds.items.len(), ds.image_dim), (12, 2));
    for (i, it) in ds.items.iter().enumerate() {
        // Only the <text> element, tags as spaces, entities decoded, a bare `&` left alone.
        assert_eq!(
            it.tokens,
            ["rome", "carthage", "fought", "wars", "ancient", spell(&it.id).as_str(), "tail"],
            "{}",
            it.id
        );
        let n: f32 = l.image_ids[i][1..].parse().unwrap();
        let want = if l.image_ids[i].starts_with('j') { [100.0 + n, 0.0] } else { [n, -n] };
        assert_eq!(ds.image(i), &want, "{}", it.id);
    }
    keyed_features(&feats, Some("i07"), None);
    let e = format!("{:#}", load_full("e", &config(&yaml, &root), &en(), 7).unwrap_err());
    assert!(e.contains("trainset_txt_img_cat.list:7") && e.contains("image i07 has no features"), "{e}");
    let skip = config(&yaml.replace("on_missing: error", "on_missing: skip"), &root);
    let l = load_full("e", &skip, &en(), 7).unwrap();
    assert_eq!((l.skipped.no_features, l.dataset.items.len()), (1, 11));
    keyed_features(&feats, None, Some("j02"));
    let e = format!("{:#}", load_full("e", &config(&yaml, &root), &en(), 7).unwrap_err());
    assert!(e.contains("resnet.npy") && e.contains("j02") && e.contains("non-finite"), "{e}");
}

#[test]
fn tvgraz_html_texts_without_categories_list() {
    let root = temp_dir("listed_tvgraz");
    let train = [("a1", "p1", 1), ("a2", "p2", 2), ("a3", "p3", 1), ("a4", "p4", 2), ("a5", "p5", 2)];
    let test = [("b1", "q1", 2), ("b2", "q2", 1)];
    write(&root.join("trainset_txt_img_cat.list"), list_text(&train));
    write(&root.join("testset_txt_img_cat.list"), list_text(&test));
    for (t, _, c) in train.iter().chain(&test) {
        let html = format!(
            "<!DOCTYPE html>\r\n<HTML><head><title>Brain page</title><style>body {{ color: red }}</style>\r\n\
             <script type=\"text/javascript\">var hidden = \"<b>javascript</b>\";</script></head>\r\n\
             <body><P>Neurons&amp;synapses in the&nbsp;cortex {}</P><!-- secret comment --></body></HTML>\r\n",
            spell(t)
        );
        write(&root.join(format!("pages/{c}/{t}.html")), html);
    }
    let feats = root.join("feat.npy");
    let ids: Vec<String> = train.iter().chain(&test).map(|p| p.1.to_string()).collect();
    let data = (0..ids.len()).flat_map(|k| [k as f32, 1.0]).collect();
    write_features(&feats, &Features { ids, dim: 2, data }).unwrap();
    let yaml = format!(
        "texts: raw\ntext_file: \"pages/{{category}}/{{id}}.html\"\nimage_features: {{kind: file, path: {}}}\n\
         val_fraction: 0.4\non_missing: error\n",
        feats.display()
    );
    let cfg = config(&yaml, &root);
    let ds = load_full("tvgraz", &cfg, &en(), 3).unwrap().dataset;
    assert_eq!(ds.classes, ["1", "2"], "named by number without categories.list");
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (3, 2, 2));
    for it in &ds.items {
        assert_eq!(it.tokens, ["brain", "page", "neurons", "synapses", "cortex", spell(&it.id).as_str()], "{}", it.id);
    }
    // A page that is all script has no tokens.
    write(&root.join("pages/2/a4.html"), "<html><script>only(code)</script></html>");
    let e = format!("{:#}", load_full("tvgraz", &cfg, &en(), 3).unwrap_err());
    assert!(e.contains("trainset_txt_img_cat.list:4") && e.contains("no tokens") && e.contains("a4.html"), "{e}");
    std::fs::remove_file(root.join("pages/1/b2.html")).unwrap();
    let mut skip = cfg.clone();
    skip.on_missing = OnMissing::Skip;
    let l = load_full("tvgraz", &skip, &en(), 3).unwrap();
    assert_eq!((l.skipped.no_tokens, l.skipped.no_text, l.dataset.test.len()), (1, 1, 1));
}

#[test]
fn ch_wiki_chinese_texts_are_segmented_and_non_utf8_is_an_error() {
    let root = temp_dir("listed_ch_wiki");
    let train = [("c1", "m1", 1), ("c2", "m2", 2), ("c3", "m3", 1), ("c4", "m4", 2)];
    let test = [("d1", "n1", 1), ("d2", "n2", 2)];
    write(&root.join("trainset_txt_img_cat.list"), list_text(&train));
    write(&root.join("testset_txt_img_cat.list"), list_text(&test));
    write(&root.join("categories.list"), "艺术\n生物\n");
    for (t, _, _) in train.iter().chain(&test) {
        write(&root.join(format!("texts/{t}.txt")), "我们在北京大学学习计算机科学。\r\n长城很长。\r\n");
    }
    let mats = [sift("I_tr", 0.0, 4), sift("I_te", 100.0, 2)];
    write(&root.join("img.mat"), mat5_bytes(&[&mats[0], &mats[1]], MatClass::Single, true));
    let yaml = "texts: raw\ntext_file: \"texts/{id}.txt\"\nimage_features: {kind: mat, file: img.mat}\n\
                val_fraction: 0.5\non_missing: error\n";
    let cfg = config(yaml, &root);
    let zh = Tokenizer::new(Language::Zh, false, false);
    let ds = load_full("ch-wiki", &cfg, &zh, 1).unwrap().dataset;
    assert_eq!(ds.classes, ["艺术", "生物"]);
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (2, 2, 2));
    let toks = &ds.items[0].tokens;
    // Segmented (the text has no spaces), punctuation dropped.
    assert!(
        toks.len() >= 5 && toks.iter().any(|t| t.contains("北京")) && toks.contains(&"长城".to_string()),
        "{toks:?}"
    );
    assert!(toks.iter().all(|t| !t.contains('。') && !t.contains('\r')), "{toks:?}");
    // GBK bytes for 中文 on line 2.
    write(&root.join("texts/c3.txt"), b"\xe6\x88\x91\xe4\xbb\xac\n\xd6\xd0\xce\xc4\n");
    let e = format!("{:#}", load_full("ch-wiki", &cfg, &zh, 1).unwrap_err());
    assert!(e.contains("c3.txt:2") && e.contains("not UTF-8"), "{e}");
}

#[test]
fn config_yaml_defaults_and_rejections() {
    let root = Path::new("../shared/data/eng-wiki");
    let cfg = config(SEQS_MAT, root);
    assert_eq!(cfg.train_list, Path::new("trainset_txt_img_cat.list"));
    assert_eq!(cfg.text_template(), "text_seqs/{id}.xml");
    assert_eq!(config(&SEQS_MAT.replace("text_seqs", "raw"), root).text_template(), "texts/{id}.xml");
    let round: ListedConfig = serde_yaml::from_str(&serde_yaml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(round, cfg);
    let bad = |yaml: &str| {
        serde_yaml::from_str::<ListedConfig>(&format!("root: x\n{yaml}")).map(|_| ()).unwrap_err().to_string()
    };
    assert!(bad(&format!("{SEQS_MAT}colour: red\n")).contains("colour"));
    assert!(bad(&SEQS_MAT.replace("{kind: mat}", "{kind: mat, varr: I_tr}")).contains("varr"));
    assert!(bad(&SEQS_MAT.replace("{kind: mat}", "{kind: file}")).contains("path"));
    assert!(bad(&SEQS_MAT.replace("error", "ignore")).contains("ignore"));
    for (change, want) in [
        (SEQS_MAT.replace("0.34", "0"), "val_fraction"),
        (format!("{SEQS_MAT}markup: html\n"), "markup"),
        (format!("{SEQS_MAT}text_file: texts/x.xml\n"), "{id}"),
        (format!("{SEQS_MAT}text_file: \"texts/{{id}}-{{lang}}.xml\"\n"), "placeholder"),
    ] {
        let e = format!("{:#}", config(&change, root).validate().unwrap_err());
        assert!(e.contains(want), "{e}");
    }
}

#[test]
#[ignore = "real data: ../shared/data/eng-wiki (make test-slow)"]
fn real_eng_wiki_loads_2173_693_with_sift_rows_in_list_order() {
    let Some(root) = shared_data("eng-wiki") else { return };
    let cfg = config(&SEQS_MAT.replace("0.34", "0.1"), &root);
    let l = load_full("eng-wiki", &cfg, &en(), 7).unwrap();
    let ds = &l.dataset;
    assert_eq!((ds.train.len() + ds.val.len(), ds.test.len(), ds.classes.len()), (2173, 693, 10));
    assert_eq!((ds.classes[0].as_str(), ds.classes[9].as_str(), ds.image_dim), ("art", "warfare", 128));
    let per_class = [138, 272, 244, 248, 202, 178, 186, 144, 214, 347];
    let train_val: Vec<usize> =
        ds.class_counts(Split::Train).iter().zip(ds.class_counts(Split::Val)).map(|(a, b)| a + b).collect();
    assert_eq!(train_val, per_class);
    let want_val: Vec<usize> = per_class.iter().map(|&n| (0.1 * n as f64).round() as usize).collect();
    assert_eq!(ds.class_counts(Split::Val), want_val, "stratified carve");
    // First and last pairs of each list, and values read independently with scipy.io.loadmat.
    let first = &ds.items[0];
    assert_eq!(
        (first.id.as_str(), l.image_ids[0].as_str()),
        ("b3150b0c281960b6a6d33407824fd40a-3", "ceb47321a83dd824cec2d5d3f2034765")
    );
    assert_eq!(first.labels, [5]);
    let near = |a: &[f32], b: &[f64]| a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() <= 1e-7 * y.abs().max(1e-3));
    assert!(near(&ds.image(0)[..4], &[0.037323039025068, 0.0038610037881881, 0.052767053246498, 0.0]));
    assert_eq!(ds.items[2172].id, "f4507409bcd05764e54e0a018453c7ec-2.4");
    assert!(near(&ds.image(2172)[125..], &[0.036036036908627, 0.006435006391257, 0.0038610037881881]));
    assert_eq!(ds.items[ds.test[0]].id, "6d6ead4cf7fd78eea820ac94d101f602-5");
    assert_eq!(l.image_ids[ds.test[0]], "7e214fda4b30c95084e94fbec71ebde1");
    assert!(near(&ds.image(ds.test[0])[..4], &[0.25, 0.0016891892300919, 0.048986487090588, 0.0050675673410296]));
    // Normalised bag-of-visual-words histograms: every row sums to 1.
    for i in 0..ds.items.len() {
        let s: f64 = ds.image(i).iter().map(|&v| v as f64).sum();
        assert!((s - 1.0).abs() < 1e-5 && ds.image(i).iter().all(|&v| v >= 0.0), "{}: sum {s}", ds.items[i].id);
    }
    // Whitespace tokens of text_seqs, counted independently with Python: 551 700, 70..=926 a text.
    let lens: Vec<usize> = ds.items.iter().map(|it| it.tokens.len()).collect();
    assert_eq!(lens.iter().sum::<usize>(), 551_700);
    assert_eq!((*lens.iter().min().unwrap(), *lens.iter().max().unwrap()), (70, 926));
    assert_eq!(l.skipped.total(), 0);
}

#[test]
fn npy_with_zero_columns_is_rejected_at_load_naming_file_and_shape() {
    let root = eng_wiki_fixture("listed_npy_zero_cols");
    let feats = root.join("features/empty-cols.npy");
    std::fs::create_dir_all(feats.parent().unwrap()).unwrap();
    let ids: Vec<String> = TRAIN.iter().chain(&TEST).map(|p| p.1.to_string()).collect();
    write_features(&feats, &Features { ids, dim: 0, data: vec![] }).unwrap();
    let e = format!("{:#}", tgcn::data::features::read_features(&feats).unwrap_err());
    assert!(e.contains("empty-cols.npy") && e.contains("(12, 0)"), "{e}");
    // Through the loader (what `tgcn data` runs): the same error, before any training.
    let yaml = format!(
        "texts: text_seqs\nimage_features: {{kind: file, path: {}}}\nval_fraction: 0.34\non_missing: error\n",
        feats.display()
    );
    let e = load_err(&config(&yaml, &root));
    assert!(e.contains("empty-cols.npy") && e.contains("(12, 0)"), "{e}");
    // The same shape from a `.mat` is caught by the dataset check, naming the dataset.
    let empty = |name: &str, rows| Matrix { name: name.into(), rows, cols: 0, data: vec![] };
    let (tr, te) = (empty("I_tr", TRAIN.len()), empty("I_te", TEST.len()));
    write(&root.join("raw_features.mat"), mat5_bytes(&[&tr, &te], MatClass::Double, false));
    let e = load_err(&config(SEQS_MAT, &root));
    assert!(e.contains("fixture") && e.contains("0 dimensions"), "{e}");
    // A shard where every image was skipped is (0, 0): still readable.
    let none = root.join("features/none.npy");
    write_features(&none, &Features { ids: vec![], dim: 0, data: vec![] }).unwrap();
    assert_eq!(tgcn::data::features::read_features(&none).unwrap().ids.len(), 0);
}

#[test]
fn npy_header_whose_size_overflows_is_an_error_naming_the_file() {
    let root = eng_wiki_fixture("listed_npy_overflow");
    let feats = root.join("features/crafted.npy");
    std::fs::create_dir_all(feats.parent().unwrap()).unwrap();
    // 2866 × 2^61 × 4 bytes wraps to 0 in 64 bits: an empty body "matches".
    let bytes = tgcn::data::features::npy_bytes(&[], 2866, 1 << 61);
    std::fs::write(&feats, &bytes).unwrap();
    let ids: String = (0..2866).map(|k| format!("i{k:02}\n")).collect();
    std::fs::write(tgcn::data::features::ids_path(&feats), ids).unwrap();
    let e = format!("{:#}", tgcn::data::features::parse_npy(&bytes, "crafted.npy").unwrap_err());
    assert!(e.contains("crafted.npy") && e.contains("2305843009213693952"), "{e}");
    let yaml = format!(
        "texts: text_seqs\nimage_features: {{kind: file, path: {}}}\nval_fraction: 0.34\non_missing: error\n",
        feats.display()
    );
    let e = load_err(&config(&yaml, &root));
    assert!(e.contains("crafted.npy") && e.contains("2305843009213693952"), "{e}");
    // Other header fields: a shape whose `)` comes before its `(`, and a header length past the end.
    let mut swapped = tgcn::data::features::npy_bytes(&[1.0], 1, 1);
    let h = String::from_utf8_lossy(&swapped).into_owned();
    let (open, close) = (h.find('(').unwrap(), h.find(')').unwrap());
    swapped[open] = b')';
    swapped[close] = b'(';
    let e = format!("{:#}", tgcn::data::features::parse_npy(&swapped, "swapped.npy").unwrap_err());
    assert!(e.contains("swapped.npy") && e.contains("shape"), "{e}");
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = format!("{:#}", tgcn::data::features::parse_npy(&v2, "long.npy").unwrap_err());
    assert!(e.contains("long.npy") && e.contains("truncated"), "{e}");
}

#[test]
fn mat5_negative_dimensions_whose_product_overflows_are_an_error() {
    // A 1×1 double, then its dimensions patched to (-1, -1): as usize their product wraps to 1.
    let one = Matrix { name: "I_tr".into(), rows: 1, cols: 1, data: vec![2.5] };
    let good = mat5_bytes(&[&one], MatClass::Double, false);
    let dims = [5u8, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0];
    let at = good.windows(16).position(|w| w == dims).expect("the dimensions sub-element");
    for (r, c) in [(-1i32, -1i32), (-1, 1), (65536, 65536)] {
        let mut bad = good.clone();
        bad[at + 8..at + 12].copy_from_slice(&r.to_le_bytes());
        bad[at + 12..at + 16].copy_from_slice(&c.to_le_bytes());
        let e = format!("{:#}", parse_matrices(&bad, &["I_tr"], "dims.mat").unwrap_err());
        assert!(e.contains("dims.mat") && e.contains("I_tr") && e.contains(&r.to_string()), "({r}, {c}): {e}");
    }
}

/// configs/eng-wiki.yaml on the fixture at `root`, with `sets` applied last.
fn eng_wiki_config(root: &Path, sets: &[&str]) -> Config {
    let root_set = format!("data.listed.root={}", root.display());
    let all: Vec<&str> =
        [root_set.as_str(), "data.listed.val_fraction=0.34"].into_iter().chain(sets.iter().copied()).collect();
    dataset_cfg("eng-wiki", &all)
}

#[test]
fn text_lowercase_folds_every_token_and_the_query_and_is_off_by_default() {
    let root = eng_wiki_fixture("listed_lowercase");
    let (plain, cased, folded) = (
        eng_wiki_config(&root, &[]),
        eng_wiki_config(&root, &["text.lowercase=false"]),
        eng_wiki_config(&root, &["text.lowercase=true"]),
    );
    let cpu = tch::Device::Cpu;
    let a = tgcn::prepare::load_dataset(&cased, None, cpu).unwrap();
    let b = tgcn::prepare::load_dataset(&folded, None, cpu).unwrap();
    assert_eq!(a.items[0].tokens, ["t01", "Goebbels", "wa", "army", "danced.Stearns", "x-ray"]);
    assert_eq!(b.items[0].tokens, ["t01", "goebbels", "wa", "army", "danced.stearns", "x-ray"]);
    assert_eq!(a.items.len(), b.items.len());
    for (x, y) in a.items.iter().zip(&b.items) {
        let lower: Vec<String> = x.tokens.iter().map(|t| t.to_lowercase()).collect();
        assert_eq!(y.tokens, lower, "{}", x.id);
    }
    assert_eq!(tgcn::prepare::tokenize_query(&folded, "Army  RIVER x-Ray"), ["army", "river", "x-ray"]);
    assert_eq!(tgcn::prepare::tokenize_query(&cased, "Army"), ["Army"]);
    // Off is the default, and it leaves the config (and so run and cache hashes) as before.
    assert_eq!(plain, cased);
    assert_eq!(plain.hash().unwrap(), cased.hash().unwrap());
    assert_ne!(plain.hash().unwrap(), folded.hash().unwrap());
}
