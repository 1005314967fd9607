//! The `pairs` layout (your own CSV/JSONL of image–text pairs) and an unlabelled run from
//! it: quirky CSV input row by row, JSONL with labels, the settings that need labels
//! refused, and train → search → embed → report on data without labels.

use crate::common::{dataset_cfg, temp_dir};
use std::path::{Path, PathBuf};
use tgcn::data::features::{write_features, Features};
use tgcn::data::pairs::{load_counted, read_rows, PairsConfig};
use tgcn::data::tokenize::Tokenizer;
use tgcn::data::OnMissing;

fn err<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// Features for images `<stem>.png` (one row each, the row index as its values).
fn features(dir: &Path, stems: &[&str]) -> PathBuf {
    let p = dir.join("feats.npy");
    let data = stems.iter().enumerate().flat_map(|(i, _)| [i as f32, 1.0, -(i as f32)]).collect();
    write_features(&p, &Features { ids: stems.iter().map(|s| s.to_string()).collect(), dim: 3, data }).unwrap();
    p
}

fn cfg(dir: &Path, file: &str, on_missing: OnMissing) -> PairsConfig {
    PairsConfig {
        root: dir.to_path_buf(),
        file: file.into(),
        image_features: dir.join("feats.npy"),
        split: [2, 1, 1],
        on_missing,
    }
}

fn tok() -> Tokenizer {
    Tokenizer::new(tgcn::data::tokenize::Language::En, false, false)
}

#[test]
fn quirky_csv_row_by_row() {
    let dir = temp_dir("pairs_quirky_csv");
    features(&dir, &["a", "b", "c", "d", "f", "g", "h", "i"]);
    // A byte-order mark, CRLF line ends, a quoted comma and a quoted line break, an image
    // with no features (e.png: missing), and later a duplicate id.
    let head = "\u{feff}id,image,text\r\n\
                1,a.png,\"red, round ball\"\r\n\
                2,b.png,\"a line\r\nbreak inside\"\r\n\
                3,e.png,a missing image\r\n\
                4,c.png,plain words here\r\n\
                5,d.png,more plain words\r\n\
                6,f.png,sixth caption text\r\n\
                7,g.png,seventh caption text\r\n\
                8,h.png,eighth caption text\r\n";
    std::fs::write(dir.join("pairs.csv"), head).unwrap();
    let rows = read_rows(&dir.join("pairs.csv")).unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0].id, "1", "the BOM is not part of the first column's name");
    assert_eq!(rows[0].text.as_deref(), Some("red, round ball"));
    assert_eq!(rows[1].text.as_deref(), Some("a line\r\nbreak inside"));
    assert_eq!(rows[0].at, "row 2");

    // The missing image: an error naming the row, the id and the image, or skipped and counted.
    let e = err(load_counted(&cfg(&dir, "pairs.csv", OnMissing::Error), &tok(), 1));
    assert!(e.contains("row 4") && e.contains("\"3\"") && e.contains("e.png has no features"), "{e}");
    let (ds, skipped) = load_counted(&cfg(&dir, "pairs.csv", OnMissing::Skip), &tok(), 1).unwrap();
    assert_eq!(skipped.missing_image, vec!["3".to_string()]);
    assert_eq!(ds.items.len(), 7);
    assert!(ds.classes.is_empty() && ds.items.iter().all(|it| it.labels.is_empty()));
    assert_eq!(ds.items[0].tokens, ["red", "round", "ball"]);
    assert_eq!(ds.image(1), &[1.0, 1.0, -1.0], "item 2's features are b.png's row");
    assert_eq!(ds.train.len() + ds.val.len() + ds.test.len(), 7);
    assert!(!ds.val.is_empty() && !ds.test.is_empty());
    ds.validate().unwrap();

    // A duplicate id names both rows.
    std::fs::write(dir.join("dup.csv"), format!("{head}4,i.png,again\r\n")).unwrap();
    let e = err(load_counted(&cfg(&dir, "dup.csv", OnMissing::Skip), &tok(), 1));
    assert!(e.contains("id \"4\" appears twice (row 5 and row 10)"), "{e}");

    // An empty text: error or skipped; an unknown column; a malformed quote; bad UTF-8.
    std::fs::write(dir.join("empty.csv"), "id,image,text\n1,a.png,   \n2,b.png,words here\n").unwrap();
    let e = err(load_counted(&cfg(&dir, "empty.csv", OnMissing::Error), &tok(), 1));
    assert!(e.contains("row 2") && e.contains("empty text"), "{e}");
    let (_, s) = load_counted(&cfg(&dir, "empty.csv", OnMissing::Skip), &tok(), 1).unwrap_or_else(|e| {
        // Two rows cannot make three splits; the skip itself is what is checked.
        panic!("{e:#}")
    });
    assert_eq!(s.empty_text, vec!["1".to_string()]);
    std::fs::write(dir.join("col.csv"), "id,image,caption\n1,a.png,x\n").unwrap();
    let e = err(read_rows(&dir.join("col.csv")));
    assert!(e.contains("unknown column \"caption\"") && e.contains("col.csv"), "{e}");
    std::fs::write(dir.join("quote.csv"), "id,image,text\n1,a.png,\"fine\"\n2,b.png,\"open, never closed\n3,c.png,x\n")
        .unwrap();
    let e = err(read_rows(&dir.join("quote.csv")));
    assert!(e.contains("row 3") && e.contains("malformed quote"), "{e}");
    std::fs::write(dir.join("utf8.csv"), b"id,image,text\n1,a.png,caf\xe9\n".as_slice()).unwrap();
    let e = err(read_rows(&dir.join("utf8.csv")));
    assert!(e.contains("row 2") && e.contains("`text` is not valid UTF-8"), "{e}");
}

#[test]
fn labels_split_column_and_jsonl() {
    let dir = temp_dir("pairs_jsonl");
    features(&dir, &["x1", "x2", "x3", "x4"]);
    std::fs::write(dir.join("t4.txt"), "text from a file").unwrap();
    let csv = "id,image,text,text_file,labels,split\n\
               1,x1.png,one cat,,cat;pet,train\n\
               2,x2.png,two dogs,,dog,train\n\
               3,x3.png,a cat again,,cat,val\n\
               4,x4.png,,t4.txt,dog ; pet,test\n";
    std::fs::write(dir.join("l.csv"), csv).unwrap();
    let (ds, _) = load_counted(&cfg(&dir, "l.csv", OnMissing::Error), &tok(), 1).unwrap();
    assert_eq!(ds.classes, ["cat", "dog", "pet"]);
    assert!(ds.multi_label);
    assert_eq!(ds.items[0].labels, [0, 2]);
    assert_eq!(ds.items[3].labels, [1, 2]);
    assert_eq!(ds.items[3].tokens, ["text", "from", "file"]); // one-letter words are dropped
    assert_eq!((ds.train.clone(), ds.val.clone(), ds.test.clone()), (vec![0, 1], vec![2], vec![3]));
    let jsonl = "{\"id\": \"1\", \"image\": \"x1.png\", \"text\": \"one cat\", \"labels\": [\"cat\", \"pet\"]}\n\
                 \n\
                 {\"id\": 2, \"image\": \"x2.png\", \"text\": \"two dogs\", \"labels\": [\"dog\"]}\n\
                 {\"id\": \"3\", \"image\": \"x3.png\", \"text\": \"a cat again\", \"labels\": \"cat\"}\n\
                 {\"id\": \"4\", \"image\": \"x4.png\", \"text_file\": \"t4.txt\", \"labels\": [\"dog\"]}\n";
    std::fs::write(dir.join("l.jsonl"), jsonl).unwrap();
    let (ds, _) = load_counted(&cfg(&dir, "l.jsonl", OnMissing::Error), &tok(), 1).unwrap();
    assert_eq!(ds.classes, ["cat", "dog", "pet"]);
    assert_eq!(ds.items[1].id, "2");
    assert_eq!(ds.items[2].labels, [0]);
    std::fs::write(dir.join("bad.jsonl"), "{\"id\": \"1\", \"image\": \"x1.png\", \"txt\": \"a\"}\n").unwrap();
    let e = err(read_rows(&dir.join("bad.jsonl")));
    assert!(e.contains("line 1") && e.contains("txt"), "{e}");
    // A text file outside the root is refused with its row.
    std::fs::write(dir.join("escape.csv"), "id,image,text_file\n1,x1.png,../../secret.txt\n").unwrap();
    let e = err(load_counted(&cfg(&dir, "escape.csv", OnMissing::Error), &tok(), 1));
    assert!(e.contains("row 2") && e.contains("outside the root"), "{e}");
    std::fs::write(dir.join("split.csv"), "id,image,text,split\n1,x1.png,a b,training\n").unwrap();
    let e = err(load_counted(&cfg(&dir, "split.csv", OnMissing::Error), &tok(), 1));
    assert!(e.contains("row 2") && e.contains("\"training\" is not train, val or test"), "{e}");
}

/// The example config with `sets`, its data cache and run folders under `root`.
fn example_cfg(sets: &[&str]) -> tgcn::config::Config {
    let mut all = vec!["train.epochs=6", "export.enabled=false"];
    all.extend_from_slice(sets);
    dataset_cfg("pairs-example", &all)
}

#[test]
fn settings_that_need_labels_are_refused() {
    let root = temp_dir("pairs_refused");
    for (set, key) in [
        ("loss.positives=label", "loss.positives: label"),
        ("loss.label=1", "loss.label"),
        ("eval.ranking=class_posterior", "eval.ranking: class_posterior"),
        ("eval.relevance=label", "eval.relevance: label"),
    ] {
        let cfg = example_cfg(&[set]);
        let e = err(tgcn::train::train(&cfg, &root, &Default::default()));
        assert!(e.contains(key) && e.contains("no class labels"), "{set}: {e}");
    }
    // Caught by the config alone.
    let layers = [
        tgcn::config::Layer::from_file(&crate::common::project_root().join("configs/pairs-example.yaml")).unwrap(),
        tgcn::config::Layer::from_set("train.pairs=sampled").unwrap(),
        tgcn::config::Layer::from_set("train.pairs_per_epoch=100").unwrap(),
        tgcn::config::Layer::from_set("loss.contrastive=0").unwrap(),
        tgcn::config::Layer::from_set("loss.global=1").unwrap(),
    ];
    let e = err(tgcn::config::Config::from_layers(&layers));
    assert!(e.contains("loss.positives: pair") && e.contains("in_batch"), "{e}");
    let layers = [layers[0].clone(), tgcn::config::Layer::from_set("eval.protocol=test_vs_train").unwrap()];
    let e = err(tgcn::config::Config::from_layers(&layers));
    assert!(e.contains("eval.relevance: pair") && e.contains("test_vs_test"), "{e}");
}

/// The example, unlabelled: trains, prints and saves instance-level figures, and search,
/// embed, the HTML report and `tgcn report` work on it.
#[test]
fn unlabelled_pairs_train_search_embed_report() {
    let root = temp_dir("pairs_unlabelled");
    let cfg = example_cfg(&["export.enabled=true"]);
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    assert_eq!(s.test.len(), 1, "pair relevance: test vs test only");
    let t = &s.test[0];
    assert_eq!((t.protocol.as_str(), t.relevance.as_str()), ("test_vs_test", "pair"));
    assert_eq!(t.i2t.recall.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 5, 10]);
    assert!(t.i2t.recall_at(10).unwrap() >= t.i2t.recall_at(1).unwrap());
    assert!(t.i2t.median_rank >= 1.0 && t.t2i.median_rank >= 1.0);
    assert_eq!(t.i2t.no_relevant, 0, "every query has its pair");
    // summary.json on disk holds the same figures.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["test"][0]["t2i"]["median_rank"].as_f64().unwrap(), t.t2i.median_rank);
    let metrics = std::fs::read_to_string(s.run.join("metrics.csv")).unwrap();
    for tag in ["val/r1_mean", "val/r10_i2t", "val/medr_t2i"] {
        assert!(metrics.contains(tag), "metrics.csv lacks {tag}");
    }
    let table = tgcn::train::test_eval::report_table("pairs", false, &s.test, Some(&s));
    assert!(table.contains("i2t R@1") && table.contains("t2i medR") && table.contains("relevance: pair"), "{table}");

    let trained = tgcn::retrieve::Trained::load(&s.run).unwrap();
    let id = trained.data.test.ids[0].clone();
    let q = tgcn::retrieve::search::Query::item(&format!("test:{id}"), tgcn::retrieve::search::Side::Text).unwrap();
    let r = tgcn::retrieve::search::search(&trained, &q, tgcn::retrieve::Against::Test, 5).unwrap();
    assert_eq!(r.hits.len(), 5);
    // Under pair relevance the one relevant hit is the query's own image.
    assert!(r.hits.iter().all(|h| h.relevant == Some(h.id == id)), "{:?}", r.hits);
    let q = tgcn::retrieve::search::Query::Text("a large red circle".into());
    assert!(!tgcn::retrieve::search::search(&trained, &q, tgcn::retrieve::Against::Test, 3).unwrap().hits.is_empty());
    let out = root.join("emb");
    tgcn::retrieve::embed::write_embeddings(&trained, &[tgcn::data::Split::Test], &out).unwrap();
    let html = std::fs::read_to_string(tgcn::retrieve::html::write_report(&s.run).unwrap()).unwrap();
    assert!(html.contains("class=\"recalls\"") && html.contains("own pair"), "the HTML report's recall table");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run.join("export/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["metrics_at_export"][0]["relevance"], "pair", "{manifest}");
    let report = tgcn::run::report::report(std::slice::from_ref(&s.run)).unwrap();
    assert!(report.contains("| test_vs_test (pair) |") && report.contains("| R@1 |"), "{report}");
}

/// `train.select_on: r1` selects the epoch with the best validation mean Recall@1, and a
/// sweep trial reads its two directions from the metrics file.
#[test]
fn selection_on_recall_at_1() {
    let root = temp_dir("pairs_select_r1");
    let cfg = example_cfg(&["train.select_on=r1", "train.eval_every=2"]);
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    assert_eq!(s.selected_on, tgcn::config::SelectOn::R1);
    let rows: Vec<Vec<String>> = std::fs::read_to_string(s.run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let r1: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r[2] == "val/r1_mean" && r[1] != "0")
        .map(|r| (r[1].parse().unwrap(), r[3].parse().unwrap()))
        .collect();
    assert_eq!(r1.len(), 3, "epochs 2, 4, 6 (epoch 0 is the untrained model)");
    // The first epoch with the highest R@1 is the one kept.
    let best = r1.iter().fold(r1[0], |b, &x| if x.1 > b.1 { x } else { b });
    assert_eq!((s.best_epoch, s.best_val_map_mean), best, "{r1:?}");
    let table = tgcn::train::test_eval::report_table("pairs", false, &s.test, Some(&s));
    assert!(table.contains("(val mean R@1 "), "{table}");
}
