//! Pascal Sentences and NUS-WIDE loaders: fixtures written by the tests in the official
//! layouts (CRLF lines, missing files, NaN rows), the documented errors, and the real files.

use crate::common::{project_root, shared_data, temp_dir};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use tgcn::data::features::{ids_path, write_features, Features};
use tgcn::data::nus_wide::{self, NusFeatures, NusWideConfig};
use tgcn::data::pascal::{self, PascalConfig, PascalEntry, PascalLayout};
use tgcn::data::tokenize::{Language, Tokenizer};
use tgcn::data::OnMissing;
use tgcn::data::{Dataset, Split};

fn err_text<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should mention {p:?}");
    }
}

fn crlf<S: AsRef<str>>(lines: &[S]) -> String {
    lines.iter().map(|l| format!("{}\r\n", l.as_ref())).collect()
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The YAML block of a module's docs, parsed (keeps the documented examples honest).
fn doc_yaml(src: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(project_root().join(src)).unwrap();
    let block: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```yaml")
        .skip(1)
        .take_while(|l| *l != "```")
        .collect();
    assert!(!block.is_empty(), "{src} has no ```yaml block in its docs");
    serde_yaml::from_str(&block.join("\n")).unwrap()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::new(Language::En, true, false)
}

// ---------------------------------------------------------------- Pascal Sentences

const ANIMALS: [&str; 3] = ["dog", "cat", "bird"];

/// 10 images per category in file order dog, cat, bird; image `i` is `2008_{i:06}.jpg`.
fn pascal_entries() -> Vec<PascalEntry> {
    let mut out = Vec::new();
    for (c, cat) in ANIMALS.iter().enumerate() {
        for k in 0..10 {
            let i = c * 10 + k;
            out.push(PascalEntry {
                id: format!("2008_{i:06}.jpg"),
                category: cat.to_string(),
                captions: vec![format!("A small {cat} sits on the mat."), format!("The {cat} number{k} is brown.")],
            });
        }
    }
    out
}

fn write_pascal_json(dir: &Path, entries: &[PascalEntry]) -> PathBuf {
    let mut map = serde_json::Map::new();
    for e in entries {
        map.insert(e.id.clone(), serde_json::json!({"category": e.category, "captions": e.captions}));
    }
    // serde_json's map is sorted, the real file is not: write in entry order by hand, with CRLF.
    let body: Vec<String> = entries
        .iter()
        .map(|e| {
            format!("  {}: {}", serde_json::to_string(&e.id).unwrap(), serde_json::to_string(&map[&e.id]).unwrap())
        })
        .collect();
    let path = dir.join(pascal::JSON_FILE);
    write(&path, format!("{{\r\n{}\r\n}}\r\n", body.join(",\r\n")));
    path
}

fn write_pascal_folders(dir: &Path, entries: &[PascalEntry]) {
    for e in entries {
        let stem = e.id.trim_end_matches(".jpg");
        // A blank line between captions, as hand-edited files have; it is not a caption.
        let mut lines = e.captions.clone();
        lines.insert(1.min(lines.len()), String::new());
        write(&dir.join(format!("sentence/{}/{stem}.txt", e.category)), crlf(&lines));
        write(&dir.join(format!("image/{}/{}", e.category, e.id)), b"");
    }
}

/// Feature value of image number `i`: row = [i, -i, 0.5], so a test can tell rows apart.
fn feat_row(i: usize) -> Vec<f32> {
    vec![i as f32, -(i as f32), 0.5]
}

fn image_number(id: &str) -> usize {
    id.trim_end_matches(".jpg").rsplit(['_', '/']).next().unwrap().parse().unwrap()
}

/// Features for `ids` in reverse order; even numbers by file name, odd ones by stem, plus
/// an id that names no item.
fn write_pascal_features(path: &Path, ids: &[String]) {
    let mut f = Features { ids: Vec::new(), dim: 3, data: Vec::new() };
    for id in ids.iter().rev() {
        let i = image_number(id);
        f.ids.push(if i.is_multiple_of(2) { id.clone() } else { id.trim_end_matches(".jpg").to_string() });
        f.data.extend(feat_row(i));
    }
    f.ids.push("2099_999999.jpg".into());
    f.data.extend([9.0, 9.0, 9.0]);
    write_features(path, &f).unwrap();
}

fn pascal_cfg(dir: &Path, layout: PascalLayout) -> PascalConfig {
    PascalConfig {
        root: dir.to_path_buf(),
        layout,
        image_features: dir.join("feats/pascal.npy"),
        split: [8, 1, 1],
        on_missing: OnMissing::Error,
    }
}

fn pascal_fixture(name: &str, layout: PascalLayout) -> (PathBuf, PascalConfig, Vec<PascalEntry>) {
    let dir = temp_dir(name);
    let entries = pascal_entries();
    match layout {
        PascalLayout::Json => {
            write_pascal_json(&dir, &entries);
        }
        PascalLayout::Folders => write_pascal_folders(&dir, &entries),
    }
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    std::fs::create_dir_all(dir.join("feats")).unwrap();
    write_pascal_features(&dir.join("feats/pascal.npy"), &ids);
    let cfg = pascal_cfg(&dir, layout);
    (dir, cfg, entries)
}

fn split_ids(ds: &Dataset, s: Split) -> Vec<&str> {
    ds.split(s).iter().map(|&i| ds.items[i].id.as_str()).collect()
}

#[test]
fn pascal_json_fixture_loads_stratified_split_and_features() {
    let (_dir, cfg, entries) = pascal_fixture("pascal_json_ok", PascalLayout::Json);
    let read = pascal::read_pascal_json(&cfg.root.join(pascal::JSON_FILE)).unwrap();
    assert_eq!(read, entries, "the JSON is read in file order");

    let (ds, stats) = pascal::load_with_stats(&cfg, &tokenizer(), 7).unwrap();
    assert_eq!(ds.classes, vec!["bird", "cat", "dog"], "classes sorted by name");
    assert!(!ds.multi_label);
    assert!(ds.word_vectors.is_none());
    assert_eq!((stats.entries, stats.items, stats.missing_features, stats.empty_text), (30, 30, 0, 0));
    let it = &ds.items[3];
    assert_eq!(it.id, "2008_000003.jpg");
    assert_eq!(it.labels, vec![2], "dog is class 2");
    assert_eq!(it.tokens, vec!["small", "dog", "sits", "mat", "dog", "number", "brown"]);
    for (i, it) in ds.items.iter().enumerate() {
        assert_eq!(ds.image(i), feat_row(image_number(&it.id)).as_slice(), "features of {}", it.id);
    }
    // 8/1/1 of each class of 10.
    assert_eq!(ds.class_counts(Split::Train), vec![8, 8, 8]);
    assert_eq!(ds.class_counts(Split::Val), vec![1, 1, 1]);
    assert_eq!(ds.class_counts(Split::Test), vec![1, 1, 1]);

    let (again, _) = pascal::load_with_stats(&cfg, &tokenizer(), 7).unwrap();
    assert_eq!(split_ids(&again, Split::Test), split_ids(&ds, Split::Test), "same seed, same split");
    let (other, _) = pascal::load_with_stats(&cfg, &tokenizer(), 8).unwrap();
    assert_ne!(split_ids(&other, Split::Test), split_ids(&ds, Split::Test), "another seed, another split");
}

#[test]
fn pascal_folders_layout_matches_json_layout() {
    let (_d1, json_cfg, _) = pascal_fixture("pascal_same_json", PascalLayout::Json);
    let (dir, cfg, entries) = pascal_fixture("pascal_same_folders", PascalLayout::Folders);
    let read = pascal::read_pascal_folders(&dir).unwrap();
    assert_eq!(read.len(), 30);
    for e in &read {
        let want = entries.iter().find(|w| w.id == e.id).unwrap();
        assert_eq!(e, want, "CRLF and blank lines are not part of the captions");
    }
    let (a, _) = pascal::load_with_stats(&json_cfg, &tokenizer(), 3).unwrap();
    let (b, _) = pascal::load_with_stats(&cfg, &tokenizer(), 3).unwrap();
    type ById = BTreeMap<String, (Vec<String>, Vec<usize>, Vec<f32>)>;
    let by_id = |ds: &Dataset| -> ById {
        ds.items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.id.clone(), (it.tokens.clone(), it.labels.clone(), ds.image(i).to_vec())))
            .collect()
    };
    assert_eq!(by_id(&a), by_id(&b));
    assert_eq!(a.classes, b.classes);
}

#[test]
fn pascal_folders_errors_and_missing_text() {
    let (dir, mut cfg, _) = pascal_fixture("pascal_folders_bad", PascalLayout::Folders);
    // An image without a sentence file is an item with missing text.
    write(&dir.join("image/dog/2008_000099.jpg"), b"");
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["2008_000099.jpg has no caption", "on_missing: skip"]);
    cfg.on_missing = OnMissing::Skip;
    let (ds, stats) = pascal::load_with_stats(&cfg, &tokenizer(), 1).unwrap();
    assert_eq!((stats.entries, stats.missing_text, stats.items, ds.items.len()), (31, 1, 30, 30));

    // Non-UTF-8 on the second line of a sentence file.
    let bad = dir.join("sentence/cat/2008_000012.txt");
    write(&bad, b"A cat.\r\nA \xff cat.\r\n");
    let msg = err_text(pascal::read_pascal_folders(&dir));
    assert_has(&msg, &["2008_000012.txt", "line 2 is not UTF-8"]);
    write(&bad, crlf(&["A cat."]));

    // The image sits in another category than its sentences.
    write(&dir.join("image/bird/2008_000012.jpg"), b"");
    let msg = err_text(pascal::read_pascal_folders(&dir));
    assert_has(&msg, &["2008_000012.jpg", "category bird", "in cat"]);
    std::fs::remove_file(dir.join("image/bird/2008_000012.jpg")).unwrap();

    std::fs::remove_dir_all(dir.join("sentence")).unwrap();
    let msg = err_text(pascal::read_pascal_folders(&dir));
    assert_has(&msg, &["sentence", "is not a folder", "layout: json"]);
}

#[test]
fn pascal_json_errors_name_file_and_line() {
    let dir = temp_dir("pascal_json_bad");
    let cfg = pascal_cfg(&dir, PascalLayout::Json);
    let json = dir.join(pascal::JSON_FILE);
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["cannot read", "pascal_sentences.json"]);

    // A missing field, on line 3.
    write(&json, "{\r\n  \"a.jpg\": {\"category\": \"dog\", \"captions\": [\"x\"]},\r\n  \"b.jpg\": {\"category\": \"dog\"}\r\n}\r\n");
    let msg = err_text(pascal::read_pascal_json(&json));
    assert_has(&msg, &["pascal_sentences.json", "missing field `captions`", "line 3"]);
    // A repeated id would silently overwrite the first one in a map.
    write(&json, "{\r\n  \"a.jpg\": {\"category\": \"dog\", \"captions\": [\"x\"]},\r\n  \"a.jpg\": {\"category\": \"cat\", \"captions\": [\"y\"]}\r\n}\r\n");
    let msg = err_text(pascal::read_pascal_json(&json));
    assert_has(&msg, &["duplicate image id \"a.jpg\"", "line 3"]);
    write(&json, b"{\"a.jpg\": {\"category\": \"dog\", \"captions\": [\"caf\xe9\"]}}");
    let msg = err_text(pascal::read_pascal_json(&json));
    assert_has(&msg, &["pascal_sentences.json", "line 1"]);
}

#[test]
fn pascal_feature_errors_and_skips() {
    let (dir, mut cfg, entries) = pascal_fixture("pascal_feats_bad", PascalLayout::Json);
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let npy = cfg.image_features.clone();

    // An image without a feature row.
    write_pascal_features(&npy, &ids[1..]);
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["image 2008_000000.jpg", "pascal.ids.txt", "on_missing: skip"]);
    cfg.on_missing = OnMissing::Skip;
    let (ds, stats) = pascal::load_with_stats(&cfg, &tokenizer(), 1).unwrap();
    assert_eq!((stats.missing_features, stats.items), (1, 29));
    assert!(ds.items.iter().all(|it| it.id != "2008_000000.jpg"));

    // Missing text, and a text of stop words only (always skipped, counted).
    let mut e2 = entries.clone();
    e2[4].captions.clear();
    e2[5].captions = vec!["It is what it is.".into()];
    write_pascal_json(&dir, &e2);
    write_pascal_features(&npy, &ids);
    let (_, stats) = pascal::load_with_stats(&cfg, &tokenizer(), 1).unwrap();
    assert_eq!((stats.missing_text, stats.empty_text, stats.items), (1, 1, 28));
    cfg.on_missing = OnMissing::Error;
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["2008_000004.jpg has no caption"]);
    write_pascal_json(&dir, &entries);

    // A NaN row, a row count that disagrees with the ids, a missing ids file.
    let mut f =
        Features { ids: ids.clone(), dim: 3, data: ids.iter().flat_map(|id| feat_row(image_number(id))).collect() };
    f.data[2 * 3 + 1] = f32::NAN;
    write_features(&npy, &f).unwrap();
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["pascal.npy", "row 2", "2008_000002.jpg", "non-finite"]);
    f.data[2 * 3 + 1] = 0.0;
    write_features(&npy, &f).unwrap();
    write(&ids_path(&npy), ids[1..].join("\n"));
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["pascal.ids.txt has 29 ids", "30 rows"]);
    std::fs::remove_file(ids_path(&npy)).unwrap();
    let msg = err_text(pascal::load(&cfg, &tokenizer(), 1));
    assert_has(&msg, &["cannot read feature ids", "pascal.ids.txt", "featurizer"]);
}

#[test]
fn pascal_config_yaml_and_validation() {
    let doc = doc_yaml("src/data/pascal.rs");
    let cfg: PascalConfig = serde_yaml::from_value(doc["data"]["pascal"].clone()).unwrap();
    assert_eq!(cfg.layout, PascalLayout::Json);
    assert_eq!(cfg.split, [800, 100, 100]);
    cfg.validate("data.pascal").unwrap();
    let back: PascalConfig = serde_yaml::from_str(&serde_yaml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);

    let mut v = doc["data"]["pascal"].clone();
    v["splits"] = serde_yaml::Value::from(1);
    let e = serde_yaml::from_value::<PascalConfig>(v).unwrap_err().to_string();
    assert!(e.contains("unknown field `splits`"), "{e}");
    let mut v = doc["data"]["pascal"].clone();
    v["layout"] = "tree".into();
    assert!(serde_yaml::from_value::<PascalConfig>(v).is_err(), "layout is a closed choice");

    let mut bad = cfg.clone();
    bad.split = [800, 0, 100];
    assert_has(&err_text(bad.validate("data.pascal")), &["data.pascal.split", "val"]);
    let mut bad = cfg.clone();
    bad.image_features = "feats.bin".into();
    assert_has(&err_text(bad.validate("data.pascal")), &["data.pascal.image_features", ".npy"]);
}

#[test]
#[ignore = "real data: ../shared/data/pascal-sentences (make test-slow)"]
fn pascal_real_json_and_load() {
    let Some(root) = shared_data("pascal-sentences") else { return };
    let entries = pascal::read_pascal_json(&root.join(pascal::JSON_FILE)).unwrap();
    assert_eq!(entries.len(), 1000);
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_count: BTreeMap<usize, usize> = BTreeMap::new();
    for e in &entries {
        *per_class.entry(&e.category).or_default() += 1;
        *per_count.entry(e.captions.len()).or_default() += 1;
    }
    assert_eq!(per_class.len(), 20);
    assert!(per_class.values().all(|&n| n == 50), "{per_class:?}");
    assert_eq!(per_count, BTreeMap::from([(4, 3), (5, 996), (6, 1)]));
    assert!(entries.iter().all(|e| e.id.ends_with(".jpg")));

    // The real texts with generated features keyed by stem (Pascal ships none).
    let dir = temp_dir("pascal_real");
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let f = Features {
        ids: ids.iter().map(|id| id.trim_end_matches(".jpg").to_string()).collect(),
        dim: 4,
        data: (0..ids.len() * 4).map(|v| v as f32).collect(),
    };
    write_features(&dir.join("pascal.npy"), &f).unwrap();
    let cfg = PascalConfig {
        root: root.clone(),
        layout: PascalLayout::Json,
        image_features: dir.join("pascal.npy"),
        split: [800, 100, 100],
        on_missing: OnMissing::Error,
    };
    let (ds, stats) = pascal::load_with_stats(&cfg, &tokenizer(), 42).unwrap();
    assert_eq!((stats.items, stats.empty_text), (1000, 0));
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (800, 100, 100));
    assert_eq!(ds.class_counts(Split::Train), vec![40; 20]);
    assert_eq!(ds.class_counts(Split::Test), vec![5; 20]);
    let i = ds.items.iter().position(|it| it.id == "2008_000716.jpg").unwrap();
    assert!(ds.items[i].tokens.contains(&"airport".to_string()), "{:?}", ds.items[i].tokens);
    assert_eq!(ds.classes[ds.items[i].labels[0]], "aeroplane");
    let tokens: usize = ds.items.iter().map(|it| it.tokens.len()).sum();
    eprintln!("pascal-sentences real: {} tokens, {:.1} per image", tokens, tokens as f64 / 1000.0);
}

// ---------------------------------------------------------------- NUS-WIDE

/// The real tag and concept names when ../shared/data/nus-wide is present, else made-up ones.
fn nus_names() -> (Vec<String>, Vec<String>) {
    match shared_data("nus-wide") {
        Some(d) => (nus_wide::read_tag_list(&d).unwrap(), nus_wide::read_concepts(&d).unwrap()),
        None => {
            ((0..1000).map(|i| format!("tag{i:04}")).collect(), (0..81).map(|i| format!("concept{i:02}")).collect())
        }
    }
}

const N_IMAGES: usize = 24;
/// Concepts (by Concepts81 index) that get positives: A, B, C are the three largest.
const A: usize = 5;
const B: usize = 40;
const C: usize = 70;
const D: usize = 60;

struct Nus {
    dir: PathBuf,
    tags: Vec<String>,
    concepts: Vec<String>,
}

impl Nus {
    fn id(r: usize) -> String {
        format!("{}/{r:04}_{}.jpg", ["actor", "airport", "zebra"][r % 3], 1000 + r)
    }
    fn windows_path(r: usize) -> String {
        format!("C:\\ImageData\\Flickr\\{}", Nus::id(r).replace('/', "\\"))
    }
    /// Kept labels by row: rows 0-7 A, 8-13 B, 14-17 C, 18-19 A+B, 20 A+C, 21 only D,
    /// 22 A without tags, 23 nothing. Sizes: A 12, B 8, C 5, D 1.
    fn labels(r: usize) -> Vec<usize> {
        match r {
            0..=7 | 22 => vec![A],
            8..=13 => vec![B],
            14..=17 => vec![C],
            18 | 19 => vec![A, B],
            20 => vec![A, C],
            21 => vec![D],
            _ => vec![],
        }
    }
    fn tag_set(r: usize) -> Vec<usize> {
        if r == 22 {
            vec![]
        } else {
            vec![r % 7, 10 + r % 5]
        }
    }
    fn dat_row(r: usize) -> Vec<f32> {
        vec![r as f32, r as f32 + 0.5, -(r as f32), 1.0, 2.0]
    }
    /// Official split: even rows train, odd rows test.
    fn is_train(r: usize) -> bool {
        r.is_multiple_of(2)
    }

    fn write(name: &str) -> Nus {
        let dir = temp_dir(name);
        let (tags, concepts) = nus_names();
        let nus = Nus { dir, tags, concepts };
        let rows: Vec<usize> = (0..N_IMAGES).collect();
        nus.put("ImageList/Imagelist.txt", crlf(&rows.iter().map(|&r| Nus::windows_path(r)).collect::<Vec<_>>()));
        // The split lists: train without the drive prefix, test with it; both forms occur.
        let train: Vec<String> =
            rows.iter().filter(|&&r| Nus::is_train(r)).map(|&r| Nus::id(r).replace('/', "\\")).collect();
        let test: Vec<String> = rows.iter().filter(|&&r| !Nus::is_train(r)).map(|&r| Nus::windows_path(r)).collect();
        nus.put("ImageList/TrainImagelist.txt", crlf(&train));
        nus.put("ImageList/TestImagelist.txt", crlf(&test));
        nus.put("NUS_WID_Tags/TagList1k.txt", crlf(&nus.tags));
        nus.put("ConceptsList/Concepts81.txt", crlf(&nus.concepts));
        let tag_rows: Vec<String> = rows
            .iter()
            .map(|&r| {
                let set = Nus::tag_set(r);
                (0..nus.tags.len()).map(|j| if set.contains(&j) { "1" } else { "0" }).collect::<Vec<_>>().join("\t")
            })
            .collect();
        nus.put("NUS_WID_Tags/AllTags1k.txt", crlf(&tag_rows));
        for (c, name) in nus.concepts.iter().enumerate() {
            let col: Vec<&str> = rows.iter().map(|&r| if Nus::labels(r).contains(&c) { "1" } else { "0" }).collect();
            nus.put(&format!("Groundtruth/AllLabels/Labels_{name}.txt"), crlf(&col));
        }
        let dat: Vec<String> =
            rows.iter().map(|&r| Nus::dat_row(r).iter().map(|v| format!("{v} ")).collect::<String>()).collect();
        nus.put("Low_Level_Features/BoW_int.dat", crlf(&dat));
        nus
    }

    fn put(&self, rel: &str, text: impl AsRef<[u8]>) {
        write(&self.dir.join(rel), text);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// `Groundtruth/TrainTestLabels/`, consistent with AllLabels, for every concept: line k of
    /// `Labels_<c>_Train.txt` is the label of the k-th image of TrainImagelist.txt.
    fn put_split_labels(&self) {
        for (c, name) in self.concepts.iter().enumerate() {
            for (part, train) in [("Train", true), ("Test", false)] {
                let col: Vec<&str> = (0..N_IMAGES)
                    .filter(|&r| Nus::is_train(r) == train)
                    .map(|r| if Nus::labels(r).contains(&c) { "1" } else { "0" })
                    .collect();
                self.put(&format!("Groundtruth/TrainTestLabels/Labels_{name}_{part}.txt"), crlf(&col));
            }
        }
    }

    fn split_label_file(&self, c: usize, part: &str) -> String {
        format!("Groundtruth/TrainTestLabels/Labels_{}_{part}.txt", self.concepts[c])
    }

    fn label_file(&self, c: usize) -> String {
        format!("Groundtruth/AllLabels/Labels_{}.txt", self.concepts[c])
    }

    /// Replaces line `row` (0-based) of a fixture file.
    fn edit_line(&self, rel: &str, row: usize, new: &str) {
        let text = std::fs::read_to_string(self.path(rel)).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[row] = new.to_string();
        self.put(rel, crlf(&lines));
    }

    fn cfg(&self) -> NusWideConfig {
        NusWideConfig {
            root: self.dir.clone(),
            top_concepts: 3,
            single_label: false,
            per_concept: None,
            image_features: NusFeatures::Dat { file: "BoW_int.dat".into() },
            val_fraction: 0.25,
            on_missing: OnMissing::Error,
        }
    }
}

fn row_of(id: &str) -> usize {
    image_number(id) - 1000
}

#[test]
fn nus_fixture_multi_label_subset() {
    let nus = Nus::write("nus_multi");
    let (ds, stats) = nus_wide::load_with_stats(&nus.cfg(), 5).unwrap();
    let names = |cs: &[usize]| cs.iter().map(|&c| nus.concepts[c].clone()).collect::<Vec<_>>();
    assert_eq!(ds.classes, names(&[A, B, C]), "the 3 largest concepts, in Concepts81 order");
    assert_eq!(stats.concepts.iter().map(|c| c.1).collect::<Vec<_>>(), vec![12, 8, 5]);
    assert_eq!((stats.images, stats.with_label, stats.no_tag, stats.items), (24, 22, 1, 21));
    assert!(ds.multi_label && ds.word_vectors.is_none());
    let rows: Vec<usize> = ds.items.iter().map(|it| row_of(&it.id)).collect();
    assert_eq!(rows, (0..=20).collect::<Vec<_>>(), "rows 21 (no kept label), 22 (no tag), 23 (no label) are out");
    assert_eq!(ds.items[3].id, "actor/0003_1003.jpg");
    for (i, it) in ds.items.iter().enumerate() {
        let r = rows[i];
        let want: Vec<usize> = Nus::labels(r).iter().map(|c| [A, B, C].iter().position(|k| k == c).unwrap()).collect();
        assert_eq!(it.labels, want, "labels of row {r}");
        let tags: Vec<String> = Nus::tag_set(r).iter().map(|&t| nus.tags[t].clone()).collect();
        assert_eq!(it.tokens, tags, "tags of row {r}");
        assert_eq!(ds.image(i), Nus::dat_row(r).as_slice(), "features of row {r}");
    }
    // Test = the official test list; train + val = the official train list.
    assert!(ds.test.iter().all(|&i| !Nus::is_train(rows[i])));
    let mut train_val: Vec<usize> = ds.train.iter().chain(&ds.val).copied().collect();
    train_val.sort_unstable();
    assert_eq!(train_val, (0..ds.items.len()).filter(|&i| Nus::is_train(rows[i])).collect::<Vec<_>>());
    // First-label strata of the 11 train images: A 6, B 3, C 2 → val round(¼·n) = 2 + 1 + 1.
    assert_eq!(ds.val.len(), 4);
    let (again, _) = nus_wide::load_with_stats(&nus.cfg(), 5).unwrap();
    assert_eq!(again.val, ds.val, "seeded");

    let mut two = nus.cfg();
    two.top_concepts = 2;
    let (ds2, _) = nus_wide::load_with_stats(&two, 5).unwrap();
    assert_eq!(ds2.classes, names(&[A, B]));
    assert!(ds2.items.iter().all(|it| !(14..=17).contains(&row_of(&it.id))), "C-only images drop out");
}

#[test]
fn nus_fixture_single_label_per_concept_sampling() {
    let nus = Nus::write("nus_single");
    let mut cfg = nus.cfg();
    cfg.single_label = true;
    cfg.per_concept = Some(4);
    cfg.val_fraction = 0.5;
    let (ds, stats) = nus_wide::load_with_stats(&cfg, 11).unwrap();
    assert!(!ds.multi_label);
    assert_eq!(stats.multi_label, 3, "rows 18-20 have two kept labels");
    assert_eq!((stats.sampled_out, stats.items), (18 - 12, 12));
    let per_class = ds.items.iter().fold(vec![0; 3], |mut c, it| {
        assert_eq!(it.labels.len(), 1);
        c[it.labels[0]] += 1;
        c
    });
    assert_eq!(per_class, vec![4, 4, 4]);
    let ids = |seed| nus_wide::load(&cfg, seed).unwrap().items.into_iter().map(|it| it.id).collect::<Vec<_>>();
    assert_eq!(ids(11), ids(11));
    assert!((12..20).any(|s| ids(s) != ids(11)), "the draw depends on the seed");
}

#[test]
fn nus_fixture_npy_features_by_id_file_name_or_stem() {
    let nus = Nus::write("nus_npy");
    let npy = nus.path("feats/nus.npy");
    std::fs::create_dir_all(npy.parent().unwrap()).unwrap();
    let write_npy = |skip: Option<usize>| {
        let mut f = Features { ids: Vec::new(), dim: 5, data: Vec::new() };
        for r in (0..N_IMAGES).rev().filter(|&r| Some(r) != skip) {
            let id = Nus::id(r);
            let file = id.rsplit('/').next().unwrap().to_string();
            f.ids.push(match r % 3 {
                0 => id,
                1 => file,
                _ => file.trim_end_matches(".jpg").to_string(),
            });
            f.data.extend(Nus::dat_row(r).iter().map(|v| v * 2.0));
        }
        write_features(&npy, &f).unwrap();
    };
    write_npy(None);
    let mut cfg = nus.cfg();
    cfg.image_features = NusFeatures::Npy { path: npy.clone() };
    // The .dat must not be read in this mode.
    std::fs::remove_file(nus.path("Low_Level_Features/BoW_int.dat")).unwrap();
    let (ds, _) = nus_wide::load_with_stats(&cfg, 5).unwrap();
    for (i, it) in ds.items.iter().enumerate() {
        let want: Vec<f32> = Nus::dat_row(row_of(&it.id)).iter().map(|v| v * 2.0).collect();
        assert_eq!(ds.image(i), want.as_slice(), "{}", it.id);
    }

    write_npy(Some(5));
    let msg = err_text(nus_wide::load(&cfg, 5));
    assert_has(&msg, &["image zebra/0005_1005.jpg", "Imagelist.txt line 6", "nus.ids.txt", "on_missing: skip"]);
    cfg.on_missing = OnMissing::Skip;
    let (ds, stats) = nus_wide::load_with_stats(&cfg, 5).unwrap();
    assert_eq!((stats.missing_features, stats.items), (1, 20));
    assert!(ds.items.iter().all(|it| row_of(&it.id) != 5));
}

/// Loads a fresh fixture after `edit`, expecting an error that mentions every part.
fn nus_error(name: &str, edit: impl FnOnce(&Nus), parts: &[&str]) {
    let nus = Nus::write(name);
    edit(&nus);
    let msg = err_text(nus_wide::load(&nus.cfg(), 5));
    assert_has(&msg, parts);
}

#[test]
fn nus_fixture_bad_input_errors() {
    let zeros_999 = vec!["0"; 999].join(" ");
    nus_error(
        "nus_bad_tag_cols",
        |n| n.edit_line("NUS_WID_Tags/AllTags1k.txt", 4, &zeros_999),
        &["AllTags1k.txt: line 5", "999 columns, expected 1000"],
    );
    nus_error(
        "nus_bad_tag_cell",
        |n| n.edit_line("NUS_WID_Tags/AllTags1k.txt", 2, &format!("2 {}", zeros_999)),
        &["AllTags1k.txt: line 3", "column 1 is \"2\""],
    );
    nus_error(
        "nus_short_labels",
        |n| {
            let f = n.label_file(B);
            let text = std::fs::read_to_string(n.path(&f)).unwrap();
            n.put(&f, crlf(&text.lines().take(23).collect::<Vec<_>>()));
        },
        &["Labels_", "has 23 rows but", "Imagelist.txt lists 24 images"],
    );
    nus_error(
        "nus_missing_label_file",
        |n| std::fs::remove_file(n.path(&n.label_file(D))).unwrap(),
        &["Labels_", "does not exist", "one label file per concept"],
    );
    nus_error(
        "nus_missing_tags",
        |n| std::fs::remove_file(n.path("NUS_WID_Tags/AllTags1k.txt")).unwrap(),
        &["AllTags1k.txt does not exist", "NUS_WID_Tags.zip"],
    );
    nus_error(
        "nus_nan_row",
        |n| n.edit_line("Low_Level_Features/BoW_int.dat", 3, "3 NaN -3 1 2"),
        &["BoW_int.dat: line 4", "column 2 is NaN", "actor/0003_1003.jpg"],
    );
    nus_error(
        "nus_dat_rows",
        |n| {
            let text = std::fs::read_to_string(n.path("Low_Level_Features/BoW_int.dat")).unwrap();
            n.put("Low_Level_Features/BoW_int.dat", crlf(&text.lines().skip(1).collect::<Vec<_>>()));
        },
        &["BoW_int.dat has 23 rows but", "24 images"],
    );
    nus_error(
        "nus_dat_cols",
        |n| n.edit_line("Low_Level_Features/BoW_int.dat", 7, "1 2 3 4"),
        &["BoW_int.dat: line 8", "4 columns but row 1 has 5"],
    );
    nus_error(
        "nus_bad_utf8",
        |n| {
            let mut bytes = std::fs::read(n.path("ImageList/Imagelist.txt")).unwrap();
            let at = bytes.iter().enumerate().filter(|b| *b.1 == b'\n').nth(1).unwrap().0 + 5;
            bytes[at] = 0xff;
            n.put("ImageList/Imagelist.txt", bytes);
        },
        &["Imagelist.txt: line 3 is not UTF-8"],
    );
    nus_error(
        "nus_blank_line",
        |n| n.edit_line("ImageList/Imagelist.txt", 6, "  "),
        &["Imagelist.txt: line 7 is blank but rows follow it"],
    );
    nus_error(
        "nus_unknown_split_image",
        |n| n.edit_line("ImageList/TrainImagelist.txt", 0, "actor\\9999_1.jpg"),
        &["TrainImagelist.txt: line 1", "image actor/9999_1.jpg is not in", "Imagelist.txt"],
    );
    nus_error(
        "nus_unsplit_image",
        |n| {
            let text = std::fs::read_to_string(n.path("ImageList/TestImagelist.txt")).unwrap();
            n.put("ImageList/TestImagelist.txt", crlf(&text.lines().skip(1).collect::<Vec<_>>()));
        },
        &["image airport/0001_1001.jpg", "line 2", "in neither TrainImagelist.txt nor TestImagelist.txt"],
    );
    nus_error(
        "nus_missing_concepts",
        |n| std::fs::remove_file(n.path("ConceptsList/Concepts81.txt")).unwrap(),
        &["ConceptsList/Concepts81.txt", "Concepts81.txt exists under"],
    );

    // A NaN on a row that is not selected (row 23 has no label) is never parsed.
    let nus = Nus::write("nus_nan_unselected");
    nus.edit_line("Low_Level_Features/BoW_int.dat", 23, "23 NaN -23 1 2");
    let (ds, _) = nus_wide::load_with_stats(&nus.cfg(), 5).unwrap();
    assert_eq!(ds.items.len(), 21);
    let mut cfg = nus.cfg();
    cfg.top_concepts = 82;
    assert_has(&err_text(nus_wide::load(&cfg, 5)), &["top_concepts` is 82 but there are 81 concepts"]);
}

/// Item ids with their labels, then the train, val and test indices.
type NusSummary = (Vec<(String, Vec<usize>)>, Vec<usize>, Vec<usize>, Vec<usize>);

/// What two loads of the same images must agree on.
fn nus_summary(ds: &Dataset) -> NusSummary {
    let items = ds.items.iter().map(|it| (it.id.clone(), it.labels.clone())).collect();
    (items, ds.train.clone(), ds.val.clone(), ds.test.clone())
}

#[test]
fn nus_fixture_train_test_labels_checked() {
    let plain = Nus::write("nus_split_plain");
    let (ds0, stats0) = nus_wide::load_with_stats(&plain.cfg(), 5).unwrap();
    assert_eq!((stats0.split_label_files, stats0.bad_split_labels), (0, 0));
    assert!(stats0.to_string().contains("no TrainTestLabels/"), "{stats0}");

    let nus = Nus::write("nus_split_labels");
    nus.put_split_labels();
    let (ds, stats) = nus_wide::load_with_stats(&nus.cfg(), 5).unwrap();
    assert_eq!((stats.split_label_files, stats.bad_split_labels), (6, 0), "Train and Test of the 3 kept concepts");
    assert_eq!(nus_summary(&ds), nus_summary(&ds0), "consistent files change nothing");
    assert!(stats.to_string().contains("6 TrainTestLabels files checked, 0 bad lines skipped"), "{stats}");

    // The files of a concept that is not kept are not read.
    nus.edit_line(&nus.split_label_file(D, "Train"), 0, "7");
    nus_wide::load_with_stats(&nus.cfg(), 5).unwrap();

    // A value that is not 0/1 (the real files' corrupt line): an error naming file, line and value ...
    let a_train = nus.split_label_file(A, "Train");
    nus.edit_line(&a_train, 2, "-1130179");
    let msg = err_text(nus_wide::load(&nus.cfg(), 5));
    let file = format!("Labels_{}_Train.txt: line 3", nus.concepts[A]);
    let image = format!("image {}", Nus::id(4)); // the third train image is row 4
    assert_has(&msg, &[&file, "\"-1130179\" is not 0 or 1", &image, "data.nus_wide.on_missing: skip"]);
    // ... or, under `on_missing: skip`, skipped and counted, keeping the AllLabels value.
    let mut skip = nus.cfg();
    skip.on_missing = OnMissing::Skip;
    let (ds, stats) = nus_wide::load_with_stats(&skip, 5).unwrap();
    assert_eq!((stats.split_label_files, stats.bad_split_labels), (6, 1));
    let example = format!("Labels_{}_Train.txt line 3 is \"-1130179\"", nus.concepts[A]);
    assert_eq!(stats.bad_split_examples, vec![example.clone()]);
    assert!(stats.to_string().contains(&format!("1 bad lines skipped ({example})")), "{stats}");
    assert_eq!(nus_summary(&ds), nus_summary(&ds0));
    // Two bad lines are two skips.
    nus.edit_line(&a_train, 5, "x");
    assert_eq!(nus_wide::load_with_stats(&skip, 5).unwrap().1.bad_split_labels, 2);
}

#[test]
fn nus_fixture_train_test_label_errors() {
    // Each edit is an error under either `on_missing`.
    let check = |name: &str, edit: &dyn Fn(&Nus), parts: &[String]| {
        let nus = Nus::write(name);
        nus.put_split_labels();
        edit(&nus);
        for on_missing in [OnMissing::Error, OnMissing::Skip] {
            let cfg = NusWideConfig { on_missing, ..nus.cfg() };
            let msg = err_text(nus_wide::load(&cfg, 5));
            assert_has(&msg, &parts.iter().map(String::as_str).collect::<Vec<_>>());
        }
    };
    let names = nus_names().1;
    // Test line 1 is row 1, an A image: 0 disagrees with AllLabels.
    check(
        "nus_split_mismatch",
        &|n| n.edit_line(&n.split_label_file(A, "Test"), 0, "0"),
        &[
            format!("Labels_{}_Test.txt: line 1", names[A]),
            "0 but ".into(),
            format!("AllLabels/Labels_{}.txt line 2 says 1", names[A]),
            format!("image {}", Nus::id(1)),
            "disagree about the split".into(),
        ],
    );
    check(
        "nus_split_short",
        &|n| {
            let f = n.split_label_file(B, "Train");
            let text = std::fs::read_to_string(n.path(&f)).unwrap();
            n.put(&f, crlf(&text.lines().take(11).collect::<Vec<_>>()));
        },
        &[format!("Labels_{}_Train.txt has 11 rows but TrainImagelist.txt lists 12 images", names[B])],
    );
    check(
        "nus_split_long",
        &|n| {
            let f = n.split_label_file(C, "Test");
            let text = std::fs::read_to_string(n.path(&f)).unwrap();
            n.put(&f, format!("{text}0\r\n"));
        },
        &[format!("Labels_{}_Test.txt: line 13", names[C]), "more rows than the 12 images of TestImagelist.txt".into()],
    );
    check(
        "nus_split_missing_file",
        &|n| std::fs::remove_file(n.path(&n.split_label_file(C, "Test"))).unwrap(),
        &[format!("Labels_{}_Test.txt does not exist", names[C]), "TrainTestLabels/ is present".into()],
    );
}

#[test]
fn nus_config_yaml_and_validation() {
    let doc = doc_yaml("src/data/nus_wide.rs");
    let cfg: NusWideConfig = serde_yaml::from_value(doc["data"]["nus_wide"].clone()).unwrap();
    assert_eq!(cfg.image_features, NusFeatures::Dat { file: "BoW_int.dat".into() });
    assert_eq!((cfg.top_concepts, cfg.single_label, cfg.per_concept), (10, false, None));
    cfg.validate("data.nus_wide").unwrap();
    let back: NusWideConfig = serde_yaml::from_str(&serde_yaml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);

    let npy: NusWideConfig = serde_yaml::from_value({
        let mut v = doc["data"]["nus_wide"].clone();
        v["image_features"] = serde_yaml::from_str("{kind: npy, path: features/nus.npy}").unwrap();
        v
    })
    .unwrap();
    assert_eq!(npy.image_features, NusFeatures::Npy { path: "features/nus.npy".into() });
    let text = serde_yaml::to_string(&npy).unwrap();
    assert_eq!(serde_yaml::from_str::<NusWideConfig>(&text).unwrap(), npy, "round trip of\n{text}");

    let mut v = doc["data"]["nus_wide"].clone();
    v["image_features"] = serde_yaml::from_str("{kind: dat, file: BoW_int.dat, extra: 1}").unwrap();
    assert!(serde_yaml::from_value::<NusWideConfig>(v).is_err(), "unknown key inside image_features");
    let mut v = doc["data"]["nus_wide"].clone();
    v["top_concept"] = 3.into();
    let e = serde_yaml::from_value::<NusWideConfig>(v).unwrap_err().to_string();
    assert!(e.contains("unknown field `top_concept`"), "{e}");

    let check = |f: fn(&mut NusWideConfig), key: &str| {
        let mut bad = cfg.clone();
        f(&mut bad);
        assert_has(&err_text(bad.validate("data.nus_wide")), &[key]);
    };
    check(|c| c.val_fraction = 1.0, "data.nus_wide.val_fraction");
    check(|c| c.val_fraction = 0.0, "data.nus_wide.val_fraction");
    check(|c| c.top_concepts = 0, "data.nus_wide.top_concepts");
    check(|c| c.per_concept = Some(0), "data.nus_wide.per_concept");
    check(|c| c.image_features = NusFeatures::Npy { path: "x.dat".into() }, "data.nus_wide.image_features.path");
}

#[test]
#[ignore = "real data: ../shared/data/nus-wide (make test-slow)"]
fn nus_real_tag_and_concept_lists() {
    let Some(root) = shared_data("nus-wide") else { return };
    // The shared folder holds the lists at its top level, the official fallback location.
    let tags = nus_wide::read_tag_list(&root).unwrap();
    assert_eq!(tags.len(), 1000);
    assert_eq!(&tags[..5], ["nature", "sky", "blue", "water", "clouds"]);
    assert_eq!(tags.iter().collect::<HashSet<_>>().len(), 1000);
    assert!(tags.iter().all(|t| !t.contains('\r') && !t.is_empty()));
    let concepts = nus_wide::read_concepts(&root).unwrap();
    assert_eq!(concepts.len(), 81);
    assert_eq!((concepts[0].as_str(), concepts[80].as_str()), ("airport", "zebra"));
    // The per-image files are absent here: the loader says which and where they come from.
    let cfg = NusWideConfig { root: root.clone(), ..Nus { dir: root, tags, concepts }.cfg() };
    assert_has(&err_text(nus_wide::load(&cfg, 1)), &["Imagelist.txt does not exist", "ImageList.zip"]);
}

/// The new objectives on the NUS-WIDE layout's multi-label data: in-batch contrastive,
/// the shared classifier's binary cross-entropy and the invariance term train end to end.
#[test]
fn nus_fixture_trains_with_multilabel_objectives() {
    let nus = Nus::write("nus_objectives");
    let root = nus.dir.to_str().unwrap().to_string();
    let mut layers = vec![tgcn::config::Layer::from_file(&project_root().join("configs/nus-wide.yaml")).unwrap()];
    for s in [
        format!("data.nus_wide.root={root}"),
        "data.nus_wide.top_concepts=3".into(),
        "data.nus_wide.val_fraction=0.25".into(),
        "vectors.source=skipgram".into(),
        "vectors.path=null".into(),
        "vectors.skipgram={dim: 8, window: 2, negatives: 2, epochs: 2, lr: 0.025, min_count: 1, sample: 0}".into(),
        "device=cpu".into(),
        "graph.k=2".into(),
        "model.embed_dim=16".into(),
        "model.scorer=cosine".into(),
        "train.pairs=in_batch".into(),
        "train.batch_size=4".into(),
        "train.epochs=2".into(),
        "train.steps_per_epoch=3".into(),
        "loss.global=0".into(),
        "loss.contrastive=1".into(),
        "loss.label=1".into(),
        "loss.invariance=0.5".into(),
        "export.enabled=false".into(),
    ] {
        layers.push(tgcn::config::Layer::from_set(&s).unwrap());
    }
    let cfg = tgcn::config::Config::from_layers(&layers).unwrap();
    let runs = temp_dir("nus_objectives_runs");
    let s = tgcn::train::train(&cfg, &runs, &Default::default()).unwrap().summary().unwrap();
    assert!(s.test[0].map_all_mean().is_finite());
    let metrics = std::fs::read_to_string(s.run.join("metrics.csv")).unwrap();
    for term in ["contrastive", "label", "invariance"] {
        assert!(metrics.contains(&format!("train/loss_{term}")), "train/loss_{term} logged");
    }
}
