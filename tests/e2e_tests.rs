//! End to end on the synthetic dataset: training beats the untrained model, the run
//! folder is complete, TensorBoard reads the events, Python runs the TorchScript export,
//! runs are reproducible and the CLI reports bad input on one line.

use crate::common::{project_root, run_python, temp_dir, venv_python};
use std::path::{Path, PathBuf};
use std::process::Command;
use tgcn::config::{Config, Layer};
use tgcn::train::Summary;

/// A small synthetic config that trains in seconds on 2 cores.
/// Trains `cfg` under `root`: the summary, and the test mean MAP@all (default protocol)
/// before any step and of the best checkpoint.
fn train_and_maps(cfg: &Config, root: &Path) -> (Summary, f64, f64) {
    let s = tgcn::train::train(cfg, root, &Default::default()).unwrap().summary().unwrap();
    let (before, after) = (s.untrained_test.as_ref().unwrap().map_all_mean(), s.test[0].map_all_mean());
    (s, before, after)
}

fn small_cfg(sets: &[&str]) -> Config {
    crate::common::debug_cfg("small", sets)
}

fn read_csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect()
}

fn tgcn_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    c.current_dir(project_root());
    c
}

#[test]
fn synthetic_end_to_end() {
    let root = temp_dir("e2e_runs");
    let cfg = small_cfg(&[]);
    let s: Summary = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    let run = s.run.clone();

    // Training beats the untrained model by a clear margin.
    let (before, after) = (s.untrained_test.as_ref().unwrap().map_all_mean(), s.test[0].map_all_mean());
    assert!(after > before + 0.15, "trained {after:.4} vs untrained {before:.4}");
    assert_eq!(s.test.len(), 2, "both protocols reported");

    // Every file the run promises.
    for f in [
        "config.yaml",
        "env.json",
        "metrics.csv",
        "summary.json",
        "checkpoints/best.safetensors",
        "checkpoints/best.json",
        "checkpoints/last.safetensors",
        "checkpoints/last.json",
        "curves/precision_scope_test_vs_test.csv",
        "curves/pr11_test_vs_train.csv",
        "export/text_encoder.pt",
        "export/image_encoder.pt",
        "export/scorer.pt",
        "export/manifest.json",
        "export/vocab.txt",
    ] {
        assert!(run.join(f).is_file(), "missing {f} in {}", run.display());
    }
    // env.json names the CPU: digits depend on the instruction set MKL's kernels use.
    let env: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("env.json")).unwrap()).unwrap();
    assert!(env["cpu"]["simd"].as_str().is_some_and(|s| !s.is_empty()), "{env}");
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        assert_eq!(env["cpu"]["model"].as_str(), tgcn::run::cpu_model(&info).as_deref(), "{env}");
    }
    let tb: Vec<PathBuf> = std::fs::read_dir(run.join("tb")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(tb.iter().any(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents")));
    // The saved config is the resolved one and rebuilds the same run.
    assert_eq!(tgcn::run::RunDir::open(&run).unwrap().config().unwrap(), cfg);

    let rows = read_csv_rows(&run.join("metrics.csv"));
    for tag in [
        "train/loss",
        "train/lr",
        "train/mean_pos",
        "train/mean_neg",
        "train/var_pos",
        "train/var_neg",
        "val/map_i2t",
        "val/map_t2i",
        "val/map_mean",
        "perf/pairs_per_s",
    ] {
        assert!(rows.iter().any(|r| r[2] == tag), "metrics.csv lacks {tag}");
    }

    if let Some(py) = venv_python() {
        // TensorBoard's own reader sees the same values as the CSV.
        let out =
            run_python(&py, &project_root().join("tests/python/read_events.py"), &[run.join("tb").to_str().unwrap()]);
        let ev: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        for r in &rows {
            let (step, tag, value): (u64, &str, f64) = (r[0].parse().unwrap(), &r[2], r[3].parse().unwrap());
            let series = ev[tag].as_array().unwrap_or_else(|| panic!("TensorBoard lacks {tag}"));
            let hit = series.iter().find(|p| p[0].as_u64() == Some(step)).unwrap_or_else(|| panic!("{tag}@{step}"));
            let got = hit[1].as_f64().unwrap();
            assert!((got - value).abs() <= 1e-6 * value.abs().max(1.0), "{tag}@{step}: {got} vs {value}");
        }
        // Python's torch.jit.load runs the export and matches Rust within 1e-5.
        let out = run_python(
            &py,
            &project_root().join("tests/python/check_export.py"),
            &[run.join("export").to_str().unwrap(), "1e-5"],
        );
        eprintln!("export check: {out}");
    }

    // `tgcn eval --run` reproduces the summary's test MAPs from the best checkpoint.
    let out = tgcn_bin().args(["eval", "--run", run.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{:.4}", s.test[0].map_all_mean())), "{stdout}");
    // `tgcn export --run` rewrites the export in place.
    let out = tgcn_bin().args(["export", "--run", run.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run.join("export/manifest.json").is_file() && !run.join("export.partial").exists());
}

/// Runs the binary with `args`, returns the run folder it printed.
fn train_cli(args: &[&str]) -> PathBuf {
    let out = tgcn_bin().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("run folder: ").or_else(|| l.strip_prefix("run folder ")))
        .unwrap_or_else(|| panic!("no run folder in output:\n{text}"));
    PathBuf::from(line.split_whitespace().next().unwrap())
}

fn metrics_without_perf(run: &Path) -> Vec<Vec<String>> {
    read_csv_rows(&run.join("metrics.csv")).into_iter().filter(|r| !r[2].starts_with("perf/")).collect()
}

fn summary_test(run: &Path) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    s["test"].clone()
}

#[test]
fn same_seed_gives_identical_metrics_and_resume_matches() {
    // Separate processes, as a user reruns: libtorch's global RNG is per process, and
    // tests in this binary run in parallel threads.
    let root = temp_dir("e2e_repro");
    let cfg = small_cfg(&["train.epochs=3", "train.pairs_per_epoch=1500", "export.enabled=false"]);
    let cfg_path = root.join("small.yaml");
    std::fs::write(&cfg_path, cfg.to_yaml().unwrap()).unwrap();
    let base = ["train", "--config", cfg_path.to_str().unwrap(), "--runs", root.to_str().unwrap()];
    let a = train_cli(&base);
    let b = train_cli(&base);
    assert_ne!(a, b, "a second run never reuses the first one's folder");
    let ra = metrics_without_perf(&a);
    assert!(ra.len() > 10);
    assert_eq!(ra, metrics_without_perf(&b), "metrics differ between two runs with the same seed");
    assert_eq!(summary_test(&a), summary_test(&b), "test MAPs differ between two runs with the same seed");

    // Interrupted after epoch 1, then resumed: the same numbers as the uninterrupted run.
    let c = train_cli(&[&base[..], &["--stop-after-epoch", "1"]].concat());
    assert!(!c.join("summary.json").exists());
    let c2 = train_cli(&["train", "--resume", c.to_str().unwrap()]);
    assert_eq!(c, c2, "resume continues the same folder");
    assert_eq!(metrics_without_perf(&c), ra, "resumed metrics differ from the uninterrupted run");
    assert_eq!(summary_test(&c), summary_test(&a));
    // A finished run cannot be resumed again.
    let out = tgcn_bin().args(["train", "--resume", c.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already finished"));
}

/// The contrastive objective alone (global weight 0) trains on multi-label data, and
/// each term is logged; it is refused with sampled pairs.
#[test]
fn multilabel_contrastive_trains_and_logs_its_term() {
    let root = temp_dir("e2e_contrastive");
    let cfg = small_cfg(&[
        "data.synthetic.max_labels=3",
        "train.pairs=in_batch",
        "train.batch_size=64",
        "train.epochs=6",
        "model.scorer=cosine",
        "loss.global=0",
        "loss.contrastive=1",
        "loss.temperature=0.1",
        "export.enabled=false",
    ]);
    let (s, before, after) = train_and_maps(&cfg, &root);
    assert!(after > before + 0.1, "contrastive: trained {after:.4} vs untrained {before:.4}");
    let names: std::collections::BTreeSet<String> =
        read_csv_rows(&s.run.join("metrics.csv")).into_iter().map(|r| r[2].clone()).collect();
    assert!(names.contains("train/loss_contrastive"), "{names:?}");
    assert!(!names.contains("train/loss_global"), "a term with weight 0 is not logged: {names:?}");
    assert!(names.contains("train/gap"), "the score statistics are logged whatever the objective");

    let mut layers = vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()];
    layers.push(Layer::from_set("loss.contrastive=1").unwrap());
    let e = format!("{:#}", Config::from_layers(&layers).unwrap_err());
    assert!(e.contains("needs `train.pairs: in_batch`"), "{e}");
}

/// Early stopping: with a learning rate too small to change anything, validation never
/// improves on epoch 1, so patience 2 stops after epoch 3 and tests the best checkpoint; the
/// stopped run cannot be resumed.
#[test]
fn early_stopping_stops_after_patience_evaluations() {
    let root = temp_dir("e2e_early_stop");
    let cfg = small_cfg(&["train.epochs=6", "train.lr=1e-30", "train.patience=2", "export.enabled=false"]);
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    assert_eq!((s.epochs, s.epochs_run, s.best_epoch), (6, 3, 1));
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run.join("checkpoints/last.json")).unwrap()).unwrap();
    assert_eq!(last["epoch"], 3);
    let e = format!("{:#}", tgcn::train::resume(&s.run, &Default::default()).unwrap_err());
    assert!(e.contains("already finished") && e.contains("stopped early"), "{e}");
}

#[test]
fn multilabel_in_batch_cosine_trains() {
    let root = temp_dir("e2e_multilabel");
    let cfg = small_cfg(&[
        "data.synthetic.max_labels=3",
        "train.pairs=in_batch",
        "train.batch_size=64",
        "train.epochs=10",
        "train.lr=1e-2",
        "model.scorer=cosine",
        "export.enabled=false",
    ]);
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    assert!(s.dataset.contains("multi-label"));
    let (before, after) = (s.untrained_test.as_ref().unwrap().map_all_mean(), s.test[0].map_all_mean());
    assert!(after > before + 0.1, "multi-label: trained {after:.4} vs untrained {before:.4}");
}

#[test]
fn diverging_loss_stops_with_a_clear_error() {
    let root = temp_dir("e2e_nan");
    let cfg = small_cfg(&["train.lr=1e30", "train.lr_decay=1.0", "loss.l2=0"]);
    let e = format!("{:#}", tgcn::train::train(&cfg, &root, &Default::default()).unwrap_err());
    assert!(e.contains("diverged") && (e.contains("NaN") || e.contains("inf")), "{e}");
    // No half-written checkpoint is left behind.
    let runs: Vec<PathBuf> = std::fs::read_dir(root.join("synthetic")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1);
    let ck: Vec<_> = std::fs::read_dir(runs[0].join("checkpoints")).unwrap().collect();
    assert!(ck.iter().all(|e| !e.as_ref().unwrap().file_name().to_string_lossy().contains("partial")));
}

#[test]
fn cli_bad_input_is_one_line_and_nonzero() {
    for (args, needle) in [
        (vec!["train", "--set", "train.lrr=1"], "train.lrr"),
        (vec!["train", "--set", "train.epochs=abc"], "train.epochs"),
        (vec!["train", "--set", "model.text.cheb=[{k: 0, filters: 1}]"], "model.text.cheb[0].k"),
        (vec!["train", "--set", "graph.k=100000"], "graph.k"),
        (vec!["train", "--set", "train.batch_size=100000"], "train.batch_size"),
        (vec!["train", "--config", "/nonexistent/extra.yaml"], "/nonexistent/extra.yaml"),
        (vec!["train", "--dataset", "nope"], "nope.yaml"),
        (vec!["eval", "--run", "/nonexistent/run"], "/nonexistent/run"),
        // A missing dataset says which files to put where.
        (
            vec!["data", "--dataset", "tvgraz", "--source", "/nonexistent/tv"],
            "/nonexistent/tv/trainset_txt_img_cat.list",
        ),
        (
            vec!["data", "--dataset", "nus-wide", "--source", "/nonexistent/nus"],
            "/nonexistent/nus/NUS_WID_Tags/AllTags1k.txt",
        ),
    ] {
        let runs = temp_dir("cli_bad_runs");
        let out = tgcn_bin()
            .args(&args)
            .args(["--runs", runs.to_str().unwrap()].iter().filter(|_| args[0] == "train"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        let last = err.lines().last().unwrap_or("");
        assert!(last.starts_with("error: ") && last.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn binary_runs_without_ld_library_path_and_links_torch_cuda() {
    let out = Command::new(env!("CARGO_BIN_EXE_tgcn")).arg("info").env_remove("LD_LIBRARY_PATH").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("libtorch 2.13.0"));
    let wheel_has_cuda = project_root().join(".venv/lib/python3.11/site-packages/torch/lib/libtorch_cuda.so").exists()
        || std::fs::read_dir(project_root().join(".venv/lib"))
            .into_iter()
            .flatten()
            .any(|e| e.unwrap().path().join("site-packages/torch/lib/libtorch_cuda.so").exists());
    if !wheel_has_cuda {
        eprintln!("SKIP: the venv's torch has no libtorch_cuda.so");
        return;
    }
    let ldd = Command::new("ldd").arg(env!("CARGO_BIN_EXE_tgcn")).output().unwrap();
    let text = String::from_utf8_lossy(&ldd.stdout);
    assert!(text.contains("libtorch_cuda.so"), "libtorch_cuda is not NEEDED:\n{text}");
    assert!(!text.contains("not found"), "unresolved libraries:\n{text}");
}

/// Every objective at once on multi-label data (contrastive with a learned τ, the shared
/// label classifier with BCE, invariance, L2) trains, logs each term and τ, and takes
/// exactly `train.steps_per_epoch` steps per epoch; the label loss alone also trains with
/// sampled pairs on single-label data.
#[test]
fn composed_objectives_train_with_step_budget() {
    let root = temp_dir("e2e_objectives");
    let cfg = small_cfg(&[
        "data.synthetic.max_labels=3",
        "train.pairs=in_batch",
        "train.batch_size=64",
        "train.epochs=3",
        "train.steps_per_epoch=15",
        "model.scorer=cosine",
        "model.text.input=log1p",
        "model.text.input_l2=true",
        "model.text.fc=[64]",
        "model.text.dropout=0.2",
        "model.image.hidden=[64]",
        "model.image.dropout=0.2",
        "loss.global=0",
        "loss.contrastive=1",
        "loss.learn_temperature=true",
        "loss.label=0.5",
        "loss.invariance=0.1",
        "loss.l2=1e-4",
        "export.enabled=false",
    ]);
    let (s, before, after) = train_and_maps(&cfg, &root);
    assert!(after > before + 0.08, "trained {after:.4} vs untrained {before:.4}");
    let rows = read_csv_rows(&s.run.join("metrics.csv"));
    for term in ["contrastive", "label", "invariance", "l2"] {
        let name = format!("train/loss_{term}");
        let v: Vec<f64> = rows.iter().filter(|r| r[2] == name).map(|r| r[3].parse().unwrap()).collect();
        assert_eq!(v.len(), 3, "{name} once per epoch");
        assert!(v.iter().all(|x| x.is_finite() && *x > 0.0), "{name}: {v:?}");
    }
    // The logged total is the sum of the logged terms (per-epoch means of per-step sums).
    let at = |name: &str, e: &str| rows.iter().find(|r| r[2] == name && r[1] == e).unwrap()[3].parse::<f64>().unwrap();
    for e in ["1", "2", "3"] {
        let sum: f64 =
            ["contrastive", "label", "invariance", "l2"].iter().map(|t| at(&format!("train/loss_{t}"), e)).sum();
        assert!((at("train/loss", e) - sum).abs() < 1e-4 * sum.abs().max(1.0), "epoch {e}: total vs terms");
    }
    let tau: Vec<f64> = rows.iter().filter(|r| r[2] == "train/temperature").map(|r| r[3].parse().unwrap()).collect();
    assert_eq!(tau.len(), 3);
    assert!(tau.iter().all(|t| (t - 0.1).abs() > 1e-6), "τ is learned: {tau:?}");
    let steps: Vec<String> = rows.iter().filter(|r| r[2] == "train/lr").map(|r| r[0].clone()).collect();
    assert_eq!(steps, ["15", "30", "45"], "15 steps per epoch (400 items / 64 would be 6)");

    let cfg =
        small_cfg(&["loss.global=0", "loss.label=1", "model.scorer=cosine", "train.epochs=3", "export.enabled=false"]);
    let (_, before, after) = train_and_maps(&cfg, &root);
    assert!(after > before + 0.1, "label loss alone: trained {after:.4} vs untrained {before:.4}");

    let refused = |sets: &[&str], part: &str| {
        let mut layers = vec![Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()];
        layers.extend(sets.iter().map(|s| Layer::from_set(s).unwrap()));
        let e = crate::config_tests::err(&layers);
        assert!(e.contains(part), "{sets:?}: {e}");
    };
    refused(&["loss.invariance=1"], "needs `train.pairs: in_batch`");
    refused(&["train.steps_per_epoch=5"], "`train.steps_per_epoch` is for `train.pairs: in_batch`");
    refused(&["loss.learn_temperature=true"], "needs `loss.contrastive` > 0");
    refused(&["model.text.kind=mlp", "model.text.concat_bow=true"], "concat_bow");
    refused(&["model.image.dropout=1"], "`model.image.dropout` must lie in [0, 1)");
    refused(&["loss.global=0"], "nothing to train on");
    // Synthetic image features are Gaussian: the Hellinger map refuses them, naming the row.
    let e = format!(
        "{:#}",
        tgcn::prepare::prepare(&small_cfg(&["data.image_transform=sqrt"]), tch::Device::Cpu, None).err().unwrap()
    );
    assert!(e.contains("non-negative") && e.contains("at row"), "{e}");
}

/// `train.refit`: after the selection, a fresh model trains on train ∪ validation for the
/// selected number of epochs, and it is what the run tests and `tgcn eval` evaluates again.
/// In-batch steps count the data: batches of 100 give 4 steps per epoch on the 400 train
/// items and 5 on the 500 of train ∪ validation. A refit paused after its first epoch and
/// resumed gives the uninterrupted run's metrics and test figures; a validation-only run
/// stops before the refit.
#[test]
fn refit_trains_on_train_and_validation_and_resumes() {
    let root = temp_dir("e2e_refit");
    let cfg = small_cfg(&[
        "train.pairs=in_batch",
        "train.batch_size=100",
        "train.epochs=3",
        "train.lr=1e-2",
        "model.scorer=cosine",
        "train.refit=true",
        "export.enabled=false",
    ]);
    let cfg_path = root.join("refit.yaml");
    std::fs::write(&cfg_path, cfg.to_yaml().unwrap()).unwrap();
    let base = ["train", "--config", cfg_path.to_str().unwrap(), "--runs", root.to_str().unwrap()];
    let a = train_cli(&base);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let (best, run) = (summary["best_epoch"].as_u64().unwrap(), summary["epochs_run"].as_u64().unwrap());
    assert!(best >= 2, "the pause below needs a refit of 2+ epochs; best epoch {best}");
    assert_eq!(summary["refit_epochs"].as_u64(), Some(best));

    let rows = read_csv_rows(&a.join("metrics.csv"));
    let at = |name: &str| -> Vec<(u64, u64)> {
        rows.iter().filter(|r| r[2] == name).map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect()
    };
    let select: Vec<(u64, u64)> = (1..=run).map(|e| (4 * e, e)).collect();
    assert_eq!(at("train/loss"), select, "selection: 4 steps per epoch (step, epoch)");
    let refit: Vec<(u64, u64)> = (1..=best).map(|e| (4 * run + 5 * e, run + e)).collect();
    assert_eq!(at("refit/loss"), refit, "refit: 5 steps per epoch, logged after the selection");
    if let Some(py) = venv_python() {
        // TensorBoard's own reader sees the refit's curve at the same steps.
        let out =
            run_python(&py, &project_root().join("tests/python/read_events.py"), &[a.join("tb").to_str().unwrap()]);
        let tags: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let steps: Vec<u64> = tags["refit/loss"].as_array().unwrap().iter().map(|p| p[0].as_u64().unwrap()).collect();
        assert_eq!(steps, refit.iter().map(|r| r.0).collect::<Vec<_>>());
    }
    let ck = a.join("checkpoints");
    let (w_best, w_refit) =
        (std::fs::read(ck.join("best.safetensors")).unwrap(), std::fs::read(ck.join("refit.safetensors")).unwrap());
    assert_ne!(w_best, w_refit, "the refit is a model of its own");

    // `tgcn eval` loads the refit (on train ∪ validation) and reproduces the test figures.
    let out = tgcn_bin().args(["eval", "--run", a.to_str().unwrap()]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("refit on train ∪ validation"), "{stderr}");
    for r in summary["test"].as_array().unwrap() {
        let mean = (r["i2t"]["map_all"].as_f64().unwrap() + r["t2i"]["map_all"].as_f64().unwrap()) / 2.0;
        assert!(stdout.contains(&format!("{mean:.4}")), "{} {mean:.4} not in\n{stdout}", r["protocol"]);
    }

    // Loaded again, the train split is train ∪ validation (validation last), and a database
    // of every split lists each item once, validation rows under their own split.
    let t = tgcn::retrieve::Trained::load(&a).unwrap();
    assert!(t.refit && t.data.val_in_train);
    assert_eq!(t.data.train.ids[400..], t.data.val.ids[..]);
    assert!(t.data.train.bow.narrow(0, 400, 100).equal(&t.data.val.bow));
    use tgcn::data::Split;
    let db = tgcn::retrieve::Database::build(&t, &[Split::Train, Split::Val, Split::Test]);
    assert_eq!(db.len(), 700);
    let val_rows: Vec<usize> = db.rows.iter().filter(|r| r.0 == Split::Val).map(|r| r.1).collect();
    assert_eq!(val_rows, (0..100).collect::<Vec<_>>());
    drop(t);

    // Paused after refit epoch 1, resumed: the uninterrupted run's numbers.
    let c = train_cli(&[&base[..], &["--stop-after-refit-epoch", "1"]].concat());
    assert!(!c.join("summary.json").exists() && c.join("checkpoints/refit_last.json").exists());
    // Paused mid-refit, the run has no tested model: eval, search, embed, the report and
    // the export say so and give the command that finishes it.
    let cs = c.to_str().unwrap();
    for args in [
        vec!["eval", "--run", cs],
        vec!["search", "--run", cs, "--text", "anything"],
        vec!["report", "--html", cs],
        vec!["export", "--run", cs],
    ] {
        let out = tgcn_bin().args(&args).output().unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && e.contains("in the middle of its refit")
                && e.contains("(1 refit epoch(s) saved)")
                && e.contains(&format!("tgcn train --resume {cs}")),
            "{args:?}: {e}"
        );
    }
    let out = tgcn_bin().args(["train", "--resume", c.to_str().unwrap(), "--stop-after-epoch", "2"]).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("the selection of run") && e.contains("has ended"), "{e}");
    assert_eq!(train_cli(&["train", "--resume", c.to_str().unwrap()]), c);
    assert_eq!(metrics_without_perf(&c), metrics_without_perf(&a), "resumed refit metrics differ");
    assert_eq!(summary_test(&c), summary_test(&a), "resumed refit test figures differ");

    // Validation only: no refit (a sweep selects on validation, which the refit trains on).
    let v = train_cli(&[&base[..], &["--validation-only"]].concat());
    assert!(!v.join("checkpoints/refit.safetensors").exists());
    assert!(read_csv_rows(&v.join("metrics.csv")).iter().all(|r| !r[2].starts_with("refit/")));
    let out = tgcn_bin()
        .args([&base[..], &["--validation-only", "--stop-after-refit-epoch", "1"]].concat())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("this run has no refit"), "{e}");
}

/// `train.ema`: the model validated and kept as `best`, and the tested refit, hold the
/// moving averages the optimizer state saves beside them (`ema.<param>` in
/// `last.optim.safetensors` / `refit_last.optim.safetensors` of the same epoch), not the
/// raw weights.
#[test]
fn ema_weights_are_what_is_validated_kept_and_refit() {
    let root = temp_dir("e2e_ema");
    let cfg = small_cfg(&["train.epochs=2", "train.ema=0.9", "train.refit=true", "export.enabled=false"]);
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    assert_eq!(s.best_epoch, 2, "the check below needs best = last epoch");
    let ck = s.run.join("checkpoints");
    let read = |f: &str| -> std::collections::HashMap<String, tch::Tensor> {
        tch::Tensor::read_safetensors(ck.join(f)).unwrap().into_iter().collect()
    };
    for (weights, state) in
        [("best.safetensors", "last.optim.safetensors"), ("refit.safetensors", "refit_last.optim.safetensors")]
    {
        let (w, st) = (read(weights), read(state));
        let raw = read(if weights == "best.safetensors" { "last.safetensors" } else { "refit_last.safetensors" });
        let mut compared = 0;
        for (name, t) in &w {
            if let Some(avg) = st.get(&format!("ema.{name}")) {
                assert!(t.equal(avg), "{weights}: {name} is not the moving average");
                assert!(!t.equal(&raw[name]), "{weights}: {name} is the raw weight");
                compared += 1;
            }
        }
        assert!(compared >= 4, "{weights}: {compared} tensors compared");
    }
}

#[test]
fn cpu_model_is_the_first_model_name_of_cpuinfo() {
    let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nmodel name\t: Other\n";
    assert_eq!(tgcn::run::cpu_model(info).as_deref(), Some("Intel(R) Xeon(R) Processor"));
    assert_eq!(tgcn::run::cpu_model("processor\t: 0\nmodel\t\t: 143\n"), None);
}

/// `eval.untrained: false` skips the test evaluation before training (a quarter of a
/// short run at NUS-WIDE's size) and changes nothing else: the trained model's test
/// figures are those of the same run with it on.
#[test]
fn untrained_evaluation_is_a_switch() {
    let run = |on: &str, dir: &str| {
        let cfg = crate::common::debug_cfg("tiny", &["train.epochs=2", "export.enabled=false", on]);
        tgcn::train::train(&cfg, &temp_dir(dir), &Default::default()).unwrap().summary().unwrap()
    };
    let off = run("eval.untrained=false", "untrained_off");
    let on = run("eval.untrained=true", "untrained_on");
    assert!(off.untrained_test.is_none() && !off.run.join("untrained.json").exists());
    assert!(on.untrained_test.is_some() && on.run.join("untrained.json").exists());
    assert_eq!(format!("{:?}", off.test), format!("{:?}", on.test));
    // The key is left out of the saved config when on, so older configs keep their hash.
    let saved = std::fs::read_to_string(on.run.join("config.yaml")).unwrap();
    assert!(!saved.contains("untrained"), "{saved}");
}
