//! `tgcn sweep`: its tables are ranked by the numbers of its own trials, `best.yaml` is an
//! overlay that gives back the best trial's config, an interrupted sweep continues to the
//! same table, no trial holds a test result and changing the test labels changes nothing,
//! a failed trial is recorded and the sweep goes on, and bad input fails before training.
//!
//! Sweeps run as separate processes: libtorch's RNG is per process, and the tests of this
//! binary run in parallel threads.

use crate::common::{project_root, temp_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use tgcn::config::{Config, Layer};
use tgcn::train::sweep::{parse_grid, parse_seeds, plan, Axis, SweepSpec};

/// Over `configs/synthetic.yaml`: trials of well under a second on 2 cores.
const SMALL: &str = "device: cpu
data:
  synthetic: {train: 200, val: 60, test: 60, words_per_class: 20, shared_words: 60}
model: {embed_dim: 32}
train: {epochs: 2, pairs_per_epoch: 1000, batch_size: 100}
export: {enabled: false}
";

/// One libtorch thread per process: the sweeps of parallel tests share 2 cores, where
/// spinning intra-op threads made them 5× slower.
fn tgcn(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    c.current_dir(project_root()).env("OMP_NUM_THREADS", "1").args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(args: &[&str]) -> String {
    let o = tgcn(args);
    assert!(o.status.success(), "{args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn small_overlay(dir: &Path) -> PathBuf {
    let p = dir.join("small.yaml");
    std::fs::write(&p, SMALL).unwrap();
    p
}

/// The 2 × 1 grid over 2 seeds that several tests use, into `out`.
fn grid_args(overlay: &Path, out: &Path) -> Vec<String> {
    [
        "sweep",
        "--dataset",
        "synthetic",
        "--config",
        overlay.to_str().unwrap(),
        "--grid",
        "train.lr=1e-3,3e-3",
        "--grid",
        "loss.margin=0.8",
        "--seeds",
        "1,2",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A CSV as (header, rows of column → value).
fn read_table(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records().map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(String::from)).collect()).collect()
}

fn without(rows: &[BTreeMap<String, String>], col: &str) -> Vec<BTreeMap<String, String>> {
    rows.iter().map(|r| r.iter().filter(|(k, _)| *k != col).map(|(k, v)| (k.clone(), v.clone())).collect()).collect()
}

fn num(r: &BTreeMap<String, String>, col: &str) -> f64 {
    r[col].parse().unwrap_or_else(|_| panic!("{col} = {:?} in {r:?}", r[col]))
}

struct Baseline {
    out: PathBuf,
    overlay: PathBuf,
    stdout: String,
}

/// One uninterrupted sweep, shared by the tests that compare against it.
fn baseline() -> &'static Baseline {
    static B: OnceLock<Baseline> = OnceLock::new();
    B.get_or_init(|| {
        let dir = temp_dir("sweep_baseline");
        let overlay = small_overlay(&dir);
        let out = dir.join("sweep");
        let stdout = ok(&strs(&grid_args(&overlay, &out)));
        Baseline { out, overlay, stdout }
    })
}

fn trial_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(out.join("runs/synthetic")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn sweep_writes_ranked_tables_and_a_best_overlay() {
    let b = baseline();
    for k in 1..=4 {
        assert!(b.stdout.contains(&format!("trial {k}/4 (setting train.lr=")), "{}", b.stdout);
    }
    assert!(b.stdout.contains("seed 2): val mean MAP@all 0."), "{}", b.stdout);

    let trials = read_table(&b.out.join("trials.csv"));
    assert_eq!(trials.len(), 4);
    assert!(trials.iter().all(|r| r["status"] == "finished" && r["error"].is_empty()), "{trials:?}");
    let seeds: Vec<&str> = trials.iter().map(|r| r["seed"].as_str()).collect();
    assert_eq!(seeds, ["1", "2", "1", "2"], "setting-major order");
    for r in &trials {
        assert_eq!(r["loss.margin"], "0.8");
        assert!(["1e-3", "3e-3"].contains(&r["train.lr"].as_str()), "{r:?}");
        assert_eq!(r["trial"], format!("{}-seed{}", r["setting"], r["seed"]));
        let (mean, i2t, t2i) = (num(r, "val_map_mean"), num(r, "val_map_i2t"), num(r, "val_map_t2i"));
        assert!((mean - (i2t + t2i) / 2.0).abs() < 1e-12, "{r:?}");
        assert!(num(r, "best_epoch") >= 1.0 && num(r, "epochs_run") == 2.0 && num(r, "train_seconds") > 0.0);
    }

    // Mean ± sample std per setting, computed here from trials.csv; best first.
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &trials {
        by.entry(r["setting"].clone()).or_default().push(num(r, "val_map_mean"));
    }
    let mut want: Vec<(String, f64, f64)> = by
        .into_iter()
        .map(|(s, v)| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
            (s, m, sd)
        })
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results = read_table(&b.out.join("results.csv"));
    assert_eq!(results.len(), 2);
    for (k, (r, (s, m, sd))) in results.iter().zip(&want).enumerate() {
        assert_eq!((r["rank"].as_str(), &r["setting"]), ((k + 1).to_string().as_str(), s), "{results:?}");
        assert!((num(r, "val_map_mean") - m).abs() < 1e-12 && (num(r, "val_map_mean_std") - sd).abs() < 1e-12);
        assert_eq!((r["seeds_finished"].as_str(), r["seeds"].as_str()), ("2", "2"));
        let of = |col: &str| trials.iter().filter(|t| &t["setting"] == s).map(|t| num(t, col)).sum::<f64>() / 2.0;
        assert!((num(r, "val_map_i2t") - of("val_map_i2t")).abs() < 1e-12);
        assert!((num(r, "val_map_t2i") - of("val_map_t2i")).abs() < 1e-12);
        assert!((num(r, "wall_seconds") - of("train_seconds")).abs() < 1e-9);
    }

    let md = std::fs::read_to_string(b.out.join("results.md")).unwrap();
    assert!(md.starts_with("# Sweep "), "{md}");
    for needle in
        ["Validation only", "configs/synthetic.yaml", "small.yaml", "`train.lr` ∈ {1e-3, 3e-3}", "seeds: 1, 2"]
    {
        assert!(md.contains(needle), "results.md lacks {needle:?}:\n{md}");
    }
    assert!(md.contains("- command: `tgcn sweep --dataset synthetic"), "{md}");
    let first = md.lines().find(|l| l.starts_with("| 1 |")).unwrap();
    assert!(first.contains(&want[0].0) && first.contains(&format!("{:.4} ± {:.4}", want[0].1, want[0].2)), "{md}");

    // best.yaml over the same base gives the best trial's config (but for seed and name).
    let best = std::fs::read_to_string(b.out.join("best.yaml")).unwrap();
    assert!(best.starts_with("# Best setting of the sweep in ") && best.contains(&b.out.display().to_string()));
    assert!(best.contains(&format!("validation mean MAP@all {:.4}", want[0].1)), "{best}");
    assert!(best.contains("train:\n  lr:") && best.contains("loss:\n  margin: 0.8"), "{best}");
    let layers = [
        Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap(),
        Layer::from_file(&b.overlay).unwrap(),
        Layer::from_file(&b.out.join("best.yaml")).unwrap(),
    ];
    let from_best = Config::from_layers(&layers).unwrap();
    let trial = b.out.join(format!("runs/synthetic/{}-seed1", want[0].0));
    let cfg = tgcn::run::RunDir::open(&trial).unwrap().config().unwrap();
    assert_eq!(cfg.name, want[0].0);
    assert_eq!(Config { seed: cfg.seed, name: cfg.name.clone(), ..from_best }, cfg);
}

/// Validation only: no trial folder holds a test number, curve or export, and
/// `tgcn report` says so rather than fail.
#[test]
fn sweep_trials_hold_no_test_results() {
    let b = baseline();
    let dirs = trial_dirs(&b.out);
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for d in &dirs {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["test"], serde_json::json!([]), "{}", d.display());
        assert!(s.get("untrained_test").is_none() && s["validation_only"] == true, "{s}");
        let metrics = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        assert!(!metrics.contains("test"), "{}: {metrics}", d.display());
        assert!(metrics.contains(",val/map_mean,"));
        for absent in ["curves", "export", "untrained.json"] {
            assert!(!d.join(absent).exists(), "{} has {absent}", d.display());
        }
        let env: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("env.json")).unwrap()).unwrap();
        assert_eq!(env["validation_only"], true);
    }
    let args: Vec<&str> = std::iter::once("report").chain(dirs.iter().map(|d| d.to_str().unwrap())).collect();
    let out = ok(&args);
    assert!(out.contains("No test numbers to report") && out.matches("validation-only run").count() == 4, "{out}");
    let e = text(&tgcn(&["report", "--html", dirs[0].to_str().unwrap()]));
    assert!(e.contains("validation-only run"), "{e}");
}

#[test]
fn sweep_resumes_where_it_was_stopped_and_ends_with_the_same_table() {
    let b = baseline();
    let dir = temp_dir("sweep_resume");
    let out = dir.join("sweep");
    let args = grid_args(&b.overlay, &out);
    // Trials 1 and 2 finish; trial 3 is paused after epoch 1, as a kill would leave it.
    let stopped = ok(&[strs(&args), vec!["--stop-after", "3:1"]].concat());
    assert!(stopped.contains("sweep stopped during trial 3/4"), "{stopped}");
    let partial = read_table(&out.join("trials.csv"));
    let status: Vec<&str> = partial.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(status, ["finished", "finished", "paused", "pending"]);
    assert!(out.join("results.md").is_file() && out.join("best.yaml").is_file());
    let dirs = trial_dirs(&out);
    let path = |k: usize| out.join("runs/synthetic").join(&partial[k]["trial"]);
    assert_eq!(dirs.len(), 3);
    assert!(path(2).join("checkpoints/last.json").is_file() && !path(2).join("summary.json").exists());
    // Trial 2 as if killed before its first checkpoint: it starts again.
    std::fs::remove_file(path(1).join("summary.json")).unwrap();
    std::fs::remove_dir_all(path(1).join("checkpoints")).unwrap();
    let kept = std::fs::metadata(path(0).join("summary.json")).unwrap().modified().unwrap();

    let again = ok(&strs(&args));
    assert!(again.contains("trial 1/4") && again.lines().next().unwrap().ends_with("finished earlier"), "{again}");
    assert_eq!(again.matches("finished earlier").count(), 1, "{again}");
    assert!(again.lines().any(|l| l.starts_with("trial 3/4") && l.ends_with("(resumed)")), "{again}");
    assert!(again.lines().any(|l| l.starts_with("trial 2/4") && l.contains(" s") && !l.contains("resumed")));
    assert_eq!(std::fs::metadata(path(0).join("summary.json")).unwrap().modified().unwrap(), kept);

    // The same numbers, to the digit, as the uninterrupted sweep (wall times aside).
    let t = |o: &Path| without(&read_table(&o.join("trials.csv")), "train_seconds");
    assert_eq!(t(&out), t(&b.out));
    let r = |o: &Path| without(&read_table(&o.join("results.csv")), "wall_seconds");
    assert_eq!(r(&out), r(&b.out));
    let body = |o: &Path| {
        let y = std::fs::read_to_string(o.join("best.yaml")).unwrap();
        y.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(body(&out), body(&b.out));
    // A third run has nothing left to do.
    let third = ok(&strs(&args));
    assert_eq!(third.matches("finished earlier").count(), 4, "{third}");
}

/// A Ch-Wiki/TVGraz-style list layout made from the synthetic generator, so that the
/// test list's categories (the test labels) can change while nothing else does.
fn listed_fixture(root: &Path, rotate_test_labels: bool) {
    let mut layers = vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()];
    for s in ["data.synthetic.train=150", "data.synthetic.val=50", "data.synthetic.test=60", "data.synthetic.classes=4"]
    {
        layers.push(Layer::from_set(s).unwrap());
    }
    let cfg = Config::from_layers(&layers).unwrap();
    let ds = tgcn::data::synthetic::generate(cfg.data.synthetic.as_ref().unwrap(), 3);
    let c = ds.classes.len();
    let line = |i: usize, rotate: bool| {
        let it = &ds.items[i];
        let l = if rotate { (it.labels[0] + 1) % c } else { it.labels[0] };
        format!("{}\timg-{}\t{}\n", it.id, it.id, l + 1)
    };
    let train: String = ds.train.iter().chain(&ds.val).map(|&i| line(i, false)).collect();
    let test: String = ds.test.iter().map(|&i| line(i, rotate_test_labels)).collect();
    std::fs::create_dir_all(root.join("texts")).unwrap();
    std::fs::write(root.join("trainset_txt_img_cat.list"), train).unwrap();
    std::fs::write(root.join("testset_txt_img_cat.list"), test).unwrap();
    std::fs::write(root.join("categories.list"), ds.classes.join("\n") + "\n").unwrap();
    for it in &ds.items {
        std::fs::write(root.join(format!("texts/{}.txt", it.id)), it.tokens.join(" ")).unwrap();
    }
    let ids = ds.items.iter().map(|it| format!("img-{}", it.id)).collect();
    let f = tgcn::data::features::Features { ids, dim: ds.image_dim, data: ds.images.clone() };
    tgcn::data::features::write_features(&root.join("features.npy"), &f).unwrap();
    let wv = ds.word_vectors.as_ref().unwrap();
    let vectors: String = (0..wv.words.len())
        .map(|i| {
            let row: Vec<String> = wv.row(i).iter().map(|v| v.to_string()).collect();
            format!("{} {}\n", wv.words[i], row.join(" "))
        })
        .collect();
    std::fs::write(root.join("vectors.txt"), vectors).unwrap();
}

#[test]
fn sweep_results_do_not_depend_on_the_test_labels() {
    let dir = temp_dir("sweep_test_labels");
    let root = dir.join("data");
    let overlay = dir.join("listed.yaml");
    let r = root.display();
    std::fs::write(
        &overlay,
        format!(
            "device: cpu\nname: fixture\ndata:\n  listed:\n    root: {r}\n    text_file: \"texts/{{id}}.txt\"\n    \
             markup: plain\n    image_features: {{kind: file, path: {r}/features.npy}}\n    val_fraction: 0.25\n\
             text: {{min_freq: 1, stop_words: false}}\n\
             vectors: {{source: file, path: {r}/vectors.txt, format: glove_text}}\n\
             model: {{embed_dim: 32}}\ntrain: {{epochs: 2, pairs_per_epoch: 1000, batch_size: 100}}\n\
             export: {{enabled: false}}\n"
        ),
    )
    .unwrap();
    let sweep = |out: &Path| {
        let o = overlay.to_str().unwrap();
        let out = out.to_str().unwrap();
        ok(&[
            "sweep",
            "--dataset",
            "tvgraz",
            "--config",
            o,
            "--grid",
            "train.lr=1e-3,3e-3",
            "--seeds",
            "1",
            "--out",
            out,
        ]);
    };
    listed_fixture(&root, false);
    sweep(&dir.join("a"));
    listed_fixture(&root, true);
    sweep(&dir.join("b"));

    let t = |o: &str| without(&read_table(&dir.join(o).join("trials.csv")), "train_seconds");
    let (a, b) = (t("a"), t("b"));
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|r| r["status"] == "finished"), "{a:?}");
    assert_eq!(a, b, "validation numbers moved with the test labels");
    // The two datasets do differ: the fingerprints of their labels do.
    let fp = |o: &str| {
        let d = dir.join(o).join("runs/tvgraz").join(&a[0]["trial"]);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("data.json")).unwrap()).unwrap();
        (v["splits"].clone(), v["features"].clone())
    };
    let (fa, fb) = (fp("a"), fp("b"));
    assert!(fa.0 == fb.0 && fa.1 != fb.1, "{fa:?} vs {fb:?}");
}

#[test]
fn sweep_records_a_failed_trial_and_goes_on() {
    let dir = temp_dir("sweep_failure");
    let overlay = small_overlay(&dir);
    let out = dir.join("sweep");
    let chosen = dir.join("chosen.yaml");
    let args = [
        "sweep",
        "--config",
        overlay.to_str().unwrap(),
        "--set",
        "train.lr_decay=1.0",
        "--set",
        "loss.l2=0",
        "--grid",
        "train.lr=1e30,1e-3",
        "--seeds",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--best-out",
        chosen.to_str().unwrap(),
    ];
    let stdout = ok(&args);
    assert!(stdout.contains("trial 1/2 (setting train.lr=1e30, seed 4): FAILED after"), "{stdout}");
    let trials = read_table(&out.join("trials.csv"));
    assert_eq!(trials[0]["status"], "failed");
    assert!(trials[0]["error"].contains("diverged") && trials[0]["val_map_mean"].is_empty(), "{trials:?}");
    assert_eq!(trials[1]["status"], "finished");
    let results = read_table(&out.join("results.csv"));
    assert_eq!(results[0]["train.lr"], "1e-3");
    assert_eq!((results[1]["seeds_finished"].as_str(), results[1]["val_map_mean"].as_str()), ("0", ""));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("Failed trials") && md.contains("diverged"), "{md}");
    let best = std::fs::read_to_string(out.join("best.yaml")).unwrap();
    assert!(best.contains("lr: 0.001"), "{best}");
    assert_eq!(std::fs::read_to_string(&chosen).unwrap(), best);
}

/// A withheld test split is empty and refuses evaluation.
#[test]
fn sweep_withheld_test_split_cannot_be_evaluated() {
    let mut layers = vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()];
    for s in ["device=cpu", "data.synthetic.train=120", "data.synthetic.val=40", "data.synthetic.test=40"] {
        layers.push(Layer::from_set(s).unwrap());
    }
    layers.push(Layer::from_set("train.batch_size=100").unwrap());
    let cfg = Config::from_layers(&layers).unwrap();
    let mut data = tgcn::prepare::prepare(&cfg, tch::Device::Cpu, None).unwrap();
    let (_vs, m) = tgcn::train::build_model(&cfg, &data);
    let ranker = tgcn::eval::Ranker::new(&m, &data, &cfg.eval, 64).unwrap();
    assert!(tgcn::eval::evaluate_test(&m, &ranker, &data, &cfg.eval, cfg.eval.protocol, 64).is_ok());
    data.withhold_test();
    assert!(data.test.is_empty() && data.test.label_lists.is_empty() && !data.test.labels.defined());
    let e =
        format!("{:#}", tgcn::eval::evaluate_test(&m, &ranker, &data, &cfg.eval, cfg.eval.protocol, 64).unwrap_err());
    assert!(e.contains("withheld"), "{e}");
    assert!(data.summary().contains("test  withheld"), "{}", data.summary());
    assert!(tgcn::eval::evaluate_val(&m, &data, &cfg.eval, 64).is_ok());
}

#[test]
fn sweep_bad_input_fails_at_once_naming_the_problem() {
    let dir = temp_dir("sweep_bad_input");
    let overlay = small_overlay(&dir);
    let out = dir.join("sweep");
    let o = overlay.to_str().unwrap();
    for (extra, needle) in [
        (vec!["--grid", "train.lr", "--seeds", "1"], "--grid \"train.lr\": no `=`"),
        (vec!["--grid", "model.image.hidden=[512", "--seeds", "1"], "unclosed bracket"),
        (vec!["--grid", "train.lr=1e-3,,3e-3", "--seeds", "1"], "value 2 of \"1e-3,,3e-3\" is empty"),
        (vec!["--grid", "train.lr=1e-3,0.001", "--seeds", "1"], "1e-3 and 0.001 are the same value"),
        (vec!["--grid", "train.lrr=1e-3,3e-3", "--seeds", "1"], "`train.lrr` in --grid train.lrr=1e-3"),
        (vec!["--grid", "train.lr=1e-3,-1", "--seeds", "1"], "`train.lr` must be positive, got -1"),
        (vec!["--grid", "seed=1,2", "--seeds", "1"], "give seeds with --seeds"),
        (vec!["--grid", "train.lr=1e-3", "--seeds", ""], "--seeds is empty"),
        (vec!["--grid", "train.lr=1e-3", "--seeds", "1,x"], "\"x\" is not a seed"),
        (vec!["--grid", "train.lr=1e-3", "--seeds", "1,1"], "seed 1 is given twice"),
        (vec!["--grid", "train.lr=1e-3,3e-3", "--random", "3", "--seeds", "1"], "--random 3: the grid has 2 settings"),
        (vec!["--grid", "train.lr=1e-3", "--set", "train.lr=1e-4", "--seeds", "1"], "overlaps --set train.lr=1e-4"),
        (vec!["--grid", "train=1", "--grid", "train.lr=1e-3", "--seeds", "1"], "overlap"),
    ] {
        let args: Vec<&str> = [vec!["sweep", "--config", o, "--out", out.to_str().unwrap()], extra.clone()].concat();
        let r = tgcn(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        let last = err.lines().last().unwrap_or("");
        assert!(!r.status.success() && last.starts_with("error: ") && last.contains(needle), "{extra:?}: {err}");
        assert!(!out.join("runs").exists(), "{extra:?} created {}", out.join("runs").display());
    }
}

#[test]
fn sweep_grid_values_split_on_commas_outside_brackets_and_quotes() {
    let a = parse_grid("model.image.hidden=[],[512],[1024, 512]").unwrap();
    assert_eq!(
        a,
        Axis { key: "model.image.hidden".into(), values: vec!["[]".into(), "[512]".into(), "[1024, 512]".into()] }
    );
    let a = parse_grid("model.text.cheb=[{k: 3, filters: 1}], [{k: 2, filters: 2}, {k: 2, filters: 1}]").unwrap();
    assert_eq!(a.values, ["[{k: 3, filters: 1}]", "[{k: 2, filters: 2}, {k: 2, filters: 1}]"]);
    let a = parse_grid("name_like='a,b',\"c,\\\"d\",e").unwrap();
    assert_eq!(a.values, ["'a,b'", "\"c,\\\"d\"", "e"]);
    assert_eq!(parse_grid(" loss.temperature = 0.05, 0.1 ").unwrap().values, ["0.05", "0.1"]);
    for (bad, needle) in [
        ("=1,2", "empty key"),
        ("train.lr=", "value 1 of \"\" is empty"),
        ("train.lr=1,", "value 2"),
        ("a=[1]]", "closes nothing"),
        ("a='x", "unclosed quote"),
        ("a=1,@x", "cannot parse value \"@x\""),
    ] {
        let e = parse_grid(bad).map(|a| format!("{a:?}")).unwrap_or_else(|e| format!("{e:#}"));
        assert!(e.contains(needle), "{bad}: {e}");
    }
    assert_eq!(parse_seeds(" 3, 1,2").unwrap(), [3, 1, 2]);
}

fn spec(grid: &[&str], random: Option<usize>, sweep_seed: u64, out: &Path) -> SweepSpec {
    SweepSpec {
        base: vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()],
        sets: vec!["device=cpu".into()],
        grid: grid.iter().map(|g| parse_grid(g).unwrap()).collect(),
        random,
        sweep_seed,
        seeds: vec![1, 2],
        out: out.to_path_buf(),
        best_out: None,
        command: String::new(),
        stop_after: None,
    }
}

/// Plans resolve every trial without training: the names follow the setting only, the
/// folders are fixed, and `--random` draws distinct settings reproducibly.
#[test]
fn sweep_plans_fixed_folders_and_reproducible_random_draws() {
    let out = temp_dir("sweep_plan");
    let grid = ["train.lr=1e-3,3e-3,1e-2", "model.image.hidden=[],[64],[128, 64]", "loss.margin=0.5,0.8"];
    let p = plan(&spec(&grid, None, 0, &out)).unwrap();
    assert_eq!((p.settings.len(), p.trials.len()), (18, 36));
    assert_eq!(p.label(0), "train.lr=1e-3 model.image.hidden=[] loss.margin=0.5");
    assert_eq!(p.label(1), "train.lr=1e-3 model.image.hidden=[] loss.margin=0.8", "the last key varies fastest");
    assert!(p.settings[4].name.starts_with("lr1e-3_hidden128x64_margin0.5-"), "{}", p.settings[4].name);
    let t = &p.trials[9];
    assert_eq!(t.cfg.model.image.hidden, [128, 64]);
    assert_eq!((t.seed, t.cfg.seed, &t.cfg.name), (2, 2, &p.settings[4].name));
    assert_eq!(t.dir, out.join("runs/synthetic").join(format!("{}-seed2", p.settings[4].name)));
    let names = |p: &tgcn::train::sweep::Plan| p.settings.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let all = names(&p);
    let again = plan(&spec(&grid, None, 0, &out)).unwrap();
    assert_eq!(names(&again), all, "names are deterministic");

    let r = plan(&spec(&grid, Some(5), 7, &out)).unwrap();
    let drawn = names(&r);
    assert_eq!(drawn.len(), 5);
    assert!(drawn.iter().all(|n| all.contains(n)));
    let idx: Vec<usize> = r.settings.iter().map(|s| s.index).collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "distinct, in grid order: {idx:?}");
    assert_eq!(names(&plan(&spec(&grid, Some(5), 7, &out)).unwrap()), drawn, "same sweep seed, same draw");
    let other: Vec<Vec<String>> = (8..12).map(|s| names(&plan(&spec(&grid, Some(5), s, &out)).unwrap())).collect();
    assert!(other.iter().any(|o| *o != drawn), "other sweep seeds draw other settings");
    // A setting keeps its name when the grid around it changes.
    let p2 = plan(&spec(&["train.lr=3e-3,1e-3", "model.image.hidden=[]", "loss.margin=0.5"], None, 0, &out)).unwrap();
    assert_eq!(p2.settings[1].name, all[0]);
}
