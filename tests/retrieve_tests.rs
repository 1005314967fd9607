//! After training: `tgcn search` ranks exactly as the evaluation did, `tgcn embed`
//! reproduces the model's scores under the inner product, FAISS's exact index agrees
//! with search, and `tgcn report --html` writes a page with the MAP table, plots and
//! retrieval examples (checked with Python's HTML parser; rendered by headless Chromium
//! in a slow test).

use crate::common::{project_root, run_python, temp_dir, venv_python};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};
use tgcn::config::{Config, Layer};
use tgcn::data::Split;
use tgcn::retrieve::search::{search, Query, Side};
use tgcn::retrieve::{Against, Trained};

/// One small synthetic run, trained once for this test binary.
pub(crate) fn trained_run() -> PathBuf {
    static RUN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUN.get_or_init(|| small_run("retrieve_runs", &["export.enabled=false"])).clone()
}

/// The same run ranked by class posteriors (selected on them too), with its export.
fn posterior_run() -> PathBuf {
    static RUN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        small_run("retrieve_posterior_runs", &["eval.ranking=class_posterior", "eval.posterior_temperature=0.2"])
    })
    .clone()
}

fn small_run(folder: &str, extra: &[&str]) -> PathBuf {
    let sets = [
        "data.synthetic.train=300",
        "data.synthetic.test=150",
        "model.embed_dim=64",
        "train.epochs=2",
        "train.pairs_per_epoch=3000",
    ];
    let sets: Vec<&str> = sets.iter().chain(extra).copied().collect();
    let cfg = crate::common::debug_cfg("small", &sets);
    let root = temp_dir(folder);
    tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap().run
}

fn tgcn_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    c.current_dir(project_root());
    c
}

/// AP over a whole ranking: (1/R) Σ_r P(r)·rel(r); 0 when nothing is relevant.
fn ap_all(rel: &[bool]) -> f64 {
    let (mut hits, mut sum) = (0usize, 0f64);
    for (r, &x) in rel.iter().enumerate() {
        if x {
            hits += 1;
            sum += hits as f64 / (r + 1) as f64;
        }
    }
    if hits == 0 {
        0.0
    } else {
        sum / hits as f64
    }
}

fn summary_test_vs_test(run: &Path) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    s["test"].as_array().unwrap().iter().find(|r| r["protocol"] == "test_vs_test").unwrap().clone()
}

/// Searching every test item against the test set, with the whole ranking, gives back
/// the evaluation's MAP@all in both directions; and the top 10 of one query is the
/// score matrix's row sorted independently here.
#[test]
fn search_ranks_exactly_as_the_evaluation() {
    let run = trained_run();
    let t = Trained::load(&run).unwrap();
    let n = t.data.test.len();
    let want = summary_test_vs_test(&run);
    for (side, dir) in [(Side::Text, "t2i"), (Side::Image, "i2t")] {
        let mut aps = Vec::new();
        for id in &t.data.test.ids {
            let q = Query::Item { split: Split::Test, id: id.clone(), side };
            let r = search(&t, &q, Against::Test, n).unwrap();
            assert_eq!(r.hits.len(), n);
            assert_eq!(r.direction, dir);
            aps.push(ap_all(&r.hits.iter().map(|h| h.relevant.unwrap()).collect::<Vec<_>>()));
        }
        let map = aps.iter().sum::<f64>() / n as f64;
        let eval = want[dir]["map_all"].as_f64().unwrap();
        assert!((map - eval).abs() < 1e-9, "{dir}: MAP@all from search {map} vs evaluation {eval}");
    }

    // An independent ranking of one score-matrix row: sort (score desc, index asc).
    let e = tgcn::eval::embed(&t.model, &t.data.test, 512);
    let s = tch::no_grad(|| t.model.scorer.matrix(&e.text, &e.image, false));
    let q = 7usize;
    let row: Vec<f32> = Vec::try_from(s.get(q as i64)).unwrap();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
    let r = search(
        &t,
        &Query::Item { split: Split::Test, id: t.data.test.ids[q].clone(), side: Side::Text },
        Against::Test,
        10,
    )
    .unwrap();
    let got: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    let want: Vec<&str> = idx[..10].iter().map(|&i| t.data.test.ids[i].as_str()).collect();
    assert_eq!(got, want);
    for (h, &i) in r.hits.iter().zip(&idx) {
        assert!((h.score - row[i] as f64).abs() < 1e-6, "score of {}: {} vs {}", h.id, h.score, row[i]);
        assert_eq!(h.labels, t.data.test.label_lists[i].iter().map(|&l| t.data.classes[l].clone()).collect::<Vec<_>>());
    }

    // Against all splits: train, val and test rows; the query item is found among them.
    let all = search(
        &t,
        &Query::Item { split: Split::Test, id: t.data.test.ids[q].clone(), side: Side::Image },
        Against::All,
        5,
    )
    .unwrap();
    assert_eq!(all.database_size, t.data.train.len() + t.data.val.len() + n);
    assert!(all.hits.iter().all(|h| h.snippet.as_ref().is_some_and(|s| !s.is_empty())), "text hits carry snippets");
}

/// Free-text queries: tokenized like the training texts; unknown words are reported,
/// and a query with no known word is an error, not an empty list.
#[test]
fn text_queries_report_unknown_words_and_refuse_empty_ones() {
    let run = trained_run();
    let t = Trained::load(&run).unwrap();
    let words: Vec<String> = t.data.test.snippets[0].split_whitespace().take(5).map(str::to_string).collect();
    let text = format!("{} qqqzzz", words.join(" "));
    let r = search(&t, &Query::Text(text), Against::Test, 3).unwrap();
    assert_eq!(r.query.unknown_words.as_deref(), Some(&["qqqzzz".to_string()][..]));
    assert_eq!(r.query.known_words.as_ref().unwrap().len(), words.len());
    assert_eq!(r.hits.len(), 3);
    assert!(r.hits.iter().all(|h| h.relevant.is_none()), "a free-text query has no labels");
    let e = format!("{:#}", search(&t, &Query::Text("qqqzzz xxyyzz".into()), Against::Test, 3).unwrap_err());
    assert!(e.contains("none of the query's 2 words") && e.contains("qqqzzz"), "{e}");

    // The CLI: the same errors on one line and non-zero; --image needs data.from_images.
    let r = run.to_str().unwrap();
    for (args, want) in [
        (vec!["--text", "qqqzzz"], "vocabulary"),
        (vec!["--image", "x.jpg"], "data.from_images"),
        (vec!["--item", "test:nope"], "no item \"nope\""),
        (vec!["--item", "nope"], "SPLIT:ID"),
    ] {
        let out = tgcn_bin().args(["search", "--run", r]).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        let last = err.lines().last().unwrap_or("");
        assert!(last.starts_with("error: ") && last.contains(want), "{args:?}: {err}");
    }
}

/// `tgcn embed`: ⟨text, image⟩ + bias reproduces the model's scores; the CLI's `--json`
/// search agrees with the library; FAISS's exact inner-product index returns the same
/// top 10 as `tgcn search`.
#[test]
fn embeddings_reproduce_scores_and_faiss_agrees_with_search() {
    let run = trained_run();
    let t = Trained::load(&run).unwrap();
    let dir = temp_dir("retrieve_embed");
    let out = dir.join("emb");
    let m = tgcn::retrieve::embed::write_embeddings(&t, &[Split::Test], &out).unwrap();
    assert_eq!((m.count, m.scorer), (t.data.test.len(), "product"));
    let text = Tensor::read_npy(out.join("text.npy")).unwrap();
    let image = Tensor::read_npy(out.join("image.npy")).unwrap();
    let labels = Tensor::read_npy(out.join("labels.npy")).unwrap();
    let e = tgcn::eval::embed(&t.model, &t.data.test, 512);
    let want = tch::no_grad(|| t.model.scorer.matrix(&e.text, &e.image, false));
    let got = text.mm(&image.tr()) + m.bias;
    let diff = (got - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "inner product + bias vs model scores: max |diff| {diff}");
    assert_eq!(labels.size(), [t.data.test.len() as i64, t.data.classes.len() as i64]);
    let ids = std::fs::read_to_string(out.join("ids.txt")).unwrap();
    assert_eq!(ids.lines().collect::<Vec<_>>(), t.data.test.ids);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["scorer"], "product");
    assert!((manifest["bias"].as_f64().unwrap() - m.bias).abs() < 1e-12);

    // An --out folder with other files in it is refused, not replaced.
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let err = format!("{:#}", tgcn::retrieve::embed::write_embeddings(&t, &[Split::Test], &dir).unwrap_err());
    assert!(err.contains("not an earlier `tgcn embed` folder") && dir.join("keep.txt").is_file(), "{err}");

    // The cosine scorer: both sides normalised, no bias, same identity.
    let sc = tgcn::model::Scorer { kind: tgcn::model::ScorerKind::Cosine, fc: None, dropout: 0.0 };
    let (a, b) = (Tensor::randn([5, 8], (Kind::Float, Device::Cpu)), Tensor::randn([7, 8], (Kind::Float, Device::Cpu)));
    let (ta, tb, bias) = sc.inner_product_sides(&a, &b);
    assert!(bias.is_none());
    assert!((ta.mm(&tb.tr()) - sc.matrix(&a, &b, false)).abs().max().double_value(&[]) < 1e-6);
    assert!((ta.norm_scalaropt_dim(2, [1], false) - 1.0).abs().max().double_value(&[]) < 1e-6);

    // The CLI's JSON equals the library's result.
    let q = t.data.test.ids[3].clone();
    let cli = tgcn_bin()
        .args(["search", "--run", run.to_str().unwrap(), "--item", &format!("test:{q}"), "--top", "10", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let lib =
        search(&t, &Query::Item { split: Split::Test, id: q.clone(), side: Side::Text }, Against::Test, 10).unwrap();
    let cli_ids: Vec<&str> = cli["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap()).collect();
    let lib_ids: Vec<&str> = lib.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(cli_ids, lib_ids);

    // FAISS (IndexFlatIP) over the exported embeddings: the same top 10 for every query.
    let Some(py) = venv_python() else { return };
    let probe = Command::new(&py).args(["-c", "import faiss"]).output().unwrap();
    if !probe.status.success() {
        eprintln!("SKIP: faiss is not installed in .venv (make faiss)");
        return;
    }
    let json = dir.join("faiss.json");
    let script = project_root().join("scripts/faiss_index.py");
    let args =
        ["query", "--db", out.to_str().unwrap(), "--direction", "t2i", "--k", "10", "--json", json.to_str().unwrap()];
    run_python(&py, &script, &args);
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = f["results"].as_array().unwrap();
    assert_eq!(results.len(), t.data.test.len());
    for r in results {
        let id = r["query_id"].as_str().unwrap().to_string();
        let s = search(&t, &Query::Item { split: Split::Test, id: id.clone(), side: Side::Text }, Against::Test, 10)
            .unwrap();
        let faiss_ids: Vec<&str> = r["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let ours: Vec<&str> = s.hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(faiss_ids, ours, "query {id}");
    }
}

/// Posteriors written out with loops in f64 (independent of the tensor code):
/// p(c | x) ∝ exp(cos(x, μ_c) / τ), μ_c the normalised sum of the unit train rows of class c.
fn loop_posteriors(
    train: &[Vec<f64>],
    train_labels: &[Vec<usize>],
    x: &[Vec<f64>],
    classes: usize,
    tau: f64,
) -> Vec<Vec<f64>> {
    let unit = |v: &[f64]| {
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter().map(|a| a / n).collect::<Vec<f64>>()
    };
    let d = train[0].len();
    let mut means = vec![vec![0.0; d]; classes];
    for (row, labels) in train.iter().zip(train_labels) {
        let u = unit(row);
        for &c in labels {
            for (m, a) in means[c].iter_mut().zip(&u) {
                *m += a;
            }
        }
    }
    let means: Vec<Vec<f64>> = means.iter().map(|m| unit(m)).collect();
    x.iter()
        .map(|row| {
            let u = unit(row);
            let z: Vec<f64> = means.iter().map(|m| m.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>() / tau).collect();
            let top = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - top).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        })
        .collect()
}

/// `eval.ranking: class_posterior`: the run's test MAP@all equals MAP over posteriors
/// computed here with loops from the train split's embeddings; `tgcn search` ranks
/// exactly as that evaluation; `tgcn embed` writes the [n, C] posteriors whose inner
/// product is the ranking score; Python's `torch.jit.load` runs the exported scorer
/// (the class means are constants inside it) and matches Rust.
#[test]
fn class_posterior_ranking_matches_loops_search_embed_and_export() {
    let run = posterior_run();
    let t = Trained::load(&run).unwrap();
    assert_eq!(t.ranker.name(), "class_posterior");
    let (tr, te) = (tgcn::eval::embed(&t.model, &t.data.train, 512), tgcn::eval::embed(&t.model, &t.data.test, 512));
    let c = t.data.classes.len();
    let post =
        |train: &Tensor, test: &Tensor| loop_posteriors(&rows(train), &t.data.train.label_lists, &rows(test), c, 0.2);
    let (pt, pi) = (post(&tr.text, &te.text), post(&tr.image, &te.image));
    check_posterior_ranking(&run, &t, &pt, &pi, true);
}

/// `eval.ranking: classifier` on multi-label data: the posteriors are the sigmoid of the
/// shared label classifier's logits, computed here with loops from its weights; the
/// evaluation, `tgcn search`, `tgcn embed` and the exported scorer all rank by their
/// inner product, as for class posteriors. Without the label loss it is a config error.
#[test]
fn classifier_ranking_matches_loops_search_embed_and_export() {
    let run = small_run(
        "retrieve_classifier_runs",
        &["data.synthetic.max_labels=3", "loss.label=1.0", "eval.ranking=classifier"],
    );
    let t = Trained::load(&run).unwrap();
    assert_eq!(t.ranker.name(), "classifier");
    assert!(t.data.multi_label);
    let lin = t.model.classifier.as_ref().unwrap();
    let (w, b) = (rows(&lin.ws), Vec::<f64>::try_from(lin.bs.as_ref().unwrap().to_kind(Kind::Double)).unwrap());
    let post = |x: &Tensor| -> Vec<Vec<f64>> {
        rows(x)
            .iter()
            .map(|e| {
                w.iter()
                    .zip(&b)
                    .map(|(wc, bc)| 1.0 / (1.0 + (-(wc.iter().zip(e).map(|(a, b)| a * b).sum::<f64>() + bc)).exp()))
                    .collect()
            })
            .collect()
    };
    let te = tgcn::eval::embed(&t.model, &t.data.test, 512);
    check_posterior_ranking(&run, &t, &post(&te.text), &post(&te.image), false);

    let mut layers = vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()];
    layers.push(Layer::from_set("eval.ranking=classifier").unwrap());
    let e = format!("{:#}", Config::from_layers(&layers).unwrap_err());
    assert!(e.contains("eval.ranking: classifier") && e.contains("loss.label"), "{e}");
}

/// The rows of a 2-d tensor in f64.
fn rows(x: &Tensor) -> Vec<Vec<f64>> {
    (0..x.size()[0]).map(|i| Vec::try_from(x.get(i).to_kind(Kind::Double)).unwrap()).collect()
}

/// A run ranked by posteriors: `pt`, `pi` are the test split's text and image posteriors
/// computed independently in f64. MAP@all from loops over their inner products matches
/// the run's evaluation; `tgcn search` gives the evaluation's MAP exactly; `tgcn embed`
/// writes these posteriors (rows summing to 1 when `softmax`); the export's manifest
/// names the ranking and Python runs its scorer.
fn check_posterior_ranking(run: &Path, t: &Trained, pt: &[Vec<f64>], pi: &[Vec<f64>], softmax: bool) {
    let want = summary_test_vs_test(run);
    let n = t.data.test.len();
    let labels = &t.data.test.label_lists;
    for (dir, q, db) in [("t2i", pt, pi), ("i2t", pi, pt)] {
        let mut aps = Vec::new();
        for (a, qa) in q.iter().enumerate() {
            let s: Vec<f64> = db.iter().map(|d| d.iter().zip(qa).map(|(x, y)| x * y).sum()).collect();
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&x, &y| s[y].partial_cmp(&s[x]).unwrap().then(x.cmp(&y)));
            aps.push(ap_all(&idx.iter().map(|&b| labels[b].iter().any(|l| labels[a].contains(l))).collect::<Vec<_>>()));
        }
        let map = aps.iter().sum::<f64>() / n as f64;
        let eval = want[dir]["map_all"].as_f64().unwrap();
        // f32 against f64: near-equal scores may swap, so a small tolerance.
        assert!((map - eval).abs() < 2e-3, "{dir}: MAP@all from loops {map} vs evaluation {eval}");

        // `tgcn search`, every test item, the whole ranking: the evaluation's MAP exactly.
        let side = if dir == "t2i" { Side::Text } else { Side::Image };
        let mut aps = Vec::new();
        for id in &t.data.test.ids {
            let r = search(t, &Query::Item { split: Split::Test, id: id.clone(), side }, Against::Test, n).unwrap();
            aps.push(ap_all(&r.hits.iter().map(|h| h.relevant.unwrap()).collect::<Vec<_>>()));
        }
        let map = aps.iter().sum::<f64>() / n as f64;
        assert!((map - eval).abs() < 1e-9, "{dir}: MAP@all from search {map} vs evaluation {eval}");
    }

    // `tgcn embed`: [n, C] posteriors, as the loops give them.
    let name = t.ranker.name();
    let c = t.data.classes.len();
    let out = temp_dir(&format!("retrieve_{name}_embed")).join("emb");
    let m = tgcn::retrieve::embed::write_embeddings(t, &[Split::Test], &out).unwrap();
    assert_eq!((m.ranking, m.dim, m.bias), (name, c, 0.0));
    let text = rows(&Tensor::read_npy(out.join("text.npy")).unwrap());
    let image = rows(&Tensor::read_npy(out.join("image.npy")).unwrap());
    for (got, want) in [(&text, pt), (&image, pi)] {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(!softmax || (g.iter().sum::<f64>() - 1.0).abs() < 1e-5);
            assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-5), "{g:?} vs {w:?}");
        }
    }

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("export/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ranking"], name);
    if let Some(py) = venv_python() {
        let out = run_python(
            &py,
            &project_root().join("tests/python/check_export.py"),
            &[run.join("export").to_str().unwrap(), "1e-5"],
        );
        eprintln!("export check: {out}");
    }
}

fn check_report(html: &Path) -> serde_json::Value {
    let py = venv_python().expect("the venv (make venv)");
    let out = run_python(&py, &project_root().join("tests/python/check_report.py"), &[html.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap()
}

/// The HTML report, read back with a real HTML parser.
#[test]
fn html_report_holds_the_map_table_plots_and_examples() {
    let run = trained_run();
    let html = tgcn::retrieve::html::write_report(&run).unwrap();
    assert_eq!(html, run.join("report.html"));
    let Some(_) = venv_python() else { return };
    let r = check_report(&html);
    let want = summary_test_vs_test(&run);
    let rows = r["maps"].as_array().unwrap();
    let tvt = rows.iter().find(|row| row[0] == "test_vs_test").expect("a test_vs_test row");
    assert_eq!(
        tvt[3].as_str().unwrap(),
        format!("{:.4}", (want["i2t"]["map_all"].as_f64().unwrap() + want["t2i"]["map_all"].as_f64().unwrap()) / 2.0)
    );
    assert!(rows.iter().any(|row| row[0] == "test_vs_train"));
    assert!(r["svgs"].as_u64().unwrap() >= 5, "training, PR and precision@k plots: {}", r["svgs"]);
    assert_eq!(r["external"].as_array().unwrap().len(), 0, "self-contained: {:?}", r["external"]);
    let ex = r["examples"].as_array().unwrap();
    for section in ["t2i", "i2t"] {
        let rows: Vec<&serde_json::Value> = ex.iter().filter(|e| e["section"] == section).collect();
        assert!(!rows.is_empty(), "{section} examples");
        assert!(rows.iter().all(|e| e["hits"].as_array().unwrap().len() == 5), "top 5 per example");
        assert!(rows.iter().any(|e| e["verdict"] == "success"), "{section}: a success");
        // Relevance marks are set on every hit (item queries have labels).
        assert!(rows.iter().all(|e| e["hits"].as_array().unwrap().iter().all(|h| h == "good" || h == "bad")));
    }
    assert!(ex.iter().any(|e| e["verdict"] == "failure"), "failures are shown too");
    // The same seed picks the same examples.
    let again = tgcn::retrieve::html::write_report(&run).unwrap();
    assert_eq!(check_report(&again)["examples"], r["examples"]);
}

/// Headless Chromium (Debian's `chromium`) renders the report to a screenshot.
#[test]
#[ignore = "slow: make test-slow (needs chromium)"]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) =
        ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("SKIP: chromium is not installed (apt-get install chromium)");
        return;
    };
    let run = trained_run();
    let html = tgcn::retrieve::html::write_report(&run).unwrap();
    let png = temp_dir("retrieve_chromium").join("report.png");
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,2400"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", std::fs::canonicalize(&html).unwrap().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1400, 2400));
    // Not a blank page: many distinct colours (text, plots, the relevance marks).
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().step_by(7).map(|p| p.0).collect();
    assert!(colours.len() > 50, "{} colours: a blank render?", colours.len());
    // The DOM Chromium built holds the MAP table and the example rows.
    let dom = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", std::fs::canonicalize(&html).unwrap().display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("class=\"maps\"") && dom.contains("<td>test_vs_test</td>"),
        "no MAP table in the rendered page"
    );
    assert!(dom.matches("class=\"example ").count() >= 4, "too few example rows in the rendered page");
}

/// A Pascal-layout run made from raw images (tiny TorchScript CNN): `--image` queries
/// through the run's backbone, image hits carry their files, and the report shows them
/// as inline thumbnails.
#[test]
fn raw_image_runs_search_by_image_and_show_thumbnails() {
    let Some(py) = venv_python() else { return };
    let dir = temp_dir("retrieve_pascal_raw");
    let model = dir.join("tiny_cnn.pt");
    run_python(&py, &project_root().join("scripts/make_tiny_cnn.py"), &["make", model.to_str().unwrap()]);
    let root = dir.join("pascal");
    let cfg = crate::common::raw_pascal_cfg(
        &root,
        &model,
        ["cat whiskers fur meow tail", "car wheel engine road drive"],
        |w| [format!("a {w}"), format!("the {w} here")],
        &["export.enabled=false"],
    );
    let run = tgcn::train::train(&cfg, &dir.join("runs"), &Default::default()).unwrap().summary().unwrap().run;

    let t = Trained::load(&run).unwrap();
    let file = root.join("images/2008_000000.png");
    let r = search(&t, &Query::Image(file.clone()), Against::Test, 3).unwrap();
    assert_eq!((r.direction, r.hits.len()), ("i2t", 3));
    assert!(r.hits.iter().all(|h| h.snippet.is_some()), "image queries find texts");
    let q = Query::Item { split: Split::Test, id: t.data.test.ids[0].clone(), side: Side::Text };
    let r = search(&t, &q, Against::Test, 4).unwrap();
    for h in &r.hits {
        let p = h.image.as_ref().unwrap_or_else(|| panic!("hit {} has no image file", h.id));
        assert!(p.is_file() && p.file_name().unwrap().to_string_lossy() == h.id, "{} -> {}", h.id, p.display());
    }
    let html = std::fs::read_to_string(tgcn::retrieve::html::write_report(&run).unwrap()).unwrap();
    let thumbs = html.matches("src=\"data:image/png;base64,").count();
    assert!(thumbs >= 5, "{thumbs} inline thumbnails");
}

/// The report's configuration table states what the run trained with: for a contrastive
/// run with a cosine schedule, the contrastive weight and temperature, the label term,
/// the schedule, AdamW and early stopping; and no term of the global loss it did not use.
#[test]
fn html_report_states_the_objective_and_schedule_the_run_used() {
    let cfg = crate::common::debug_cfg(
        "tiny",
        &[
            "train.pairs=in_batch",
            "train.epochs=2",
            "train.schedule=cosine",
            "train.weight_decay=1e-4",
            "train.patience=3",
            "loss.global=0",
            "loss.contrastive=0.7",
            "loss.temperature=0.3",
            "loss.label=0.5",
            "export.enabled=false",
        ],
    );
    let root = temp_dir("html_objective");
    let run = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap().run;
    let html = std::fs::read_to_string(tgcn::retrieve::html::write_report(&run).unwrap()).unwrap();
    let table = &html[html.find("id=\"config\"").unwrap()..html.find("id=\"map\"").unwrap()];
    let row = |key: &str| -> String {
        let at = table.find(&format!("<td>{key}</td><td>")).unwrap_or_else(|| panic!("no {key} row in {table}"));
        let rest = &table[at + key.len() + 13..];
        rest[..rest.find("</td>").unwrap()].to_string()
    };
    let loss = row("loss");
    assert!(loss.contains("contrastive (in-batch InfoNCE) × 0.7") && loss.contains("τ 0.3"), "{loss}");
    assert!(loss.contains("label classifier × 0.5 (softmax)"), "{loss}");
    assert!(!loss.contains("global") && !loss.contains('λ') && !loss.contains("L2"), "{loss}");
    let training = row("training");
    assert!(training.contains("cosine") && !training.contains("per epoch"), "{training}");
    assert!(training.contains("AdamW (weight decay 0.0001)"), "{training}");
    assert!(training.contains("early stopping after 3 validations"), "{training}");
    assert!(training.contains("no refit"), "{training}");
}

/// `tgcn search`'s text output escapes control characters in ids, labels, texts and
/// words: a dataset cannot clear the user's screen or retitle the window.
#[test]
fn search_output_escapes_terminal_control_sequences() {
    use tgcn::retrieve::search::{format_result, printable, Hit, QueryInfo, SearchResult};
    let esc = "\u{1b}[2J\u{1b}]0;owned\u{7}";
    let r = SearchResult {
        run: PathBuf::from("run"),
        query: QueryInfo {
            kind: "text",
            side: Side::Text,
            query: format!("q{esc}"),
            known_words: Some(vec![format!("w{esc}")]),
            unknown_words: Some(vec![format!("u{esc}")]),
            labels: Some(vec![format!("l{esc}")]),
        },
        direction: "t2i",
        against: vec!["test"],
        database_size: 1,
        hits: vec![Hit {
            rank: 1,
            id: format!("id{esc}"),
            split: "test",
            score: 0.5,
            labels: vec![format!("c{esc}")],
            relevant: Some(true),
            snippet: Some(format!("text{esc}\r")),
            image: None,
        }],
    };
    let out = format_result(&r);
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    assert!(out.contains("id\\u{1b}[2J") && out.contains("c\\u{1b}") && out.contains("text\\u{1b}"), "{out}");
    assert_eq!(printable("plain é"), "plain é");
}
