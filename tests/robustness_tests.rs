//! Bad input and misuse that once gave wrong numbers silently, a panic, or a confusing
//! message (issue 11): report grouping, dataset paths following the root, degenerate
//! image features, data fingerprints, run locks, the cache path, read-only runs, C++
//! backtraces, range messages, list keys in --set, --stop-after-epoch, run names,
//! --source, resumed summaries and closed pipes.

use crate::common::{copy_dir, project_root, temp_dir};
use crate::retrieve_tests::trained_run;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use tgcn::config::{Config, Layer};
use tgcn::data::{Dataset, Item};

fn cfg_with(file: &str, sets: &[&str]) -> anyhow::Result<Config> {
    let mut layers = vec![Layer::from_file(&project_root().join(file)).unwrap()];
    for s in sets {
        layers.push(Layer::from_set(s)?);
    }
    Config::from_layers(&layers)
}

fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// A copy of the shared trained run, to tamper with.
fn run_copy(name: &str) -> PathBuf {
    let dst = temp_dir(name).join("run");
    copy_dir(&trained_run(), &dst);
    dst
}

fn tgcn_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    c.current_dir(project_root());
    c
}

#[test]
fn report_separates_configs_flags_repeated_seeds_and_refuses_non_runs() {
    let base = trained_run();
    let dir = temp_dir("robust_report");
    // Three copies: the same config twice (seed 42 counted twice), and one with other epochs.
    let mut runs = Vec::new();
    for (i, epochs) in [(1, None), (2, None), (3, Some(9))] {
        let r = dir.join(format!("run{i}"));
        copy_dir(&base, &r);
        if let Some(e) = epochs {
            let mut cfg = tgcn::run::RunDir::open(&r).unwrap().config().unwrap();
            cfg.train.epochs = e;
            std::fs::write(r.join("config.yaml"), cfg.to_yaml().unwrap()).unwrap();
        }
        runs.push(r);
    }
    let table = tgcn::run::report::report(&runs).unwrap();
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("| test_vs_test |")).collect();
    assert_eq!(rows.len(), 2, "different configs are different rows:\n{table}");
    assert!(rows.iter().any(|r| r.contains("| 42 ×2 ⚠ |")), "{table}");
    assert!(rows.iter().any(|r| r.contains("| 42 |")), "{table}");
    assert!(table.contains("seed 42 is counted 2 times"), "{table}");

    let e = err(tgcn::run::report::report(&[dir.join("no-such-run")]));
    assert!(e.contains("no-such-run") && e.contains("not a run folder"), "{e}");
    let e = err(tgcn::run::report::report(&[]));
    assert!(e.contains("no run folders"), "{e}");
    let out = tgcn_bin().args(["report"]).arg(dir.join("typo*")).output().unwrap();
    assert!(!out.status.success(), "a path that is not a run must fail the command");
}

#[test]
fn range_list_name_and_source_messages() {
    let e = err(cfg_with("configs/synthetic.yaml", &["train.lr_decay=0"]));
    assert!(e.contains("`train.lr_decay` must be in (0, 1], got 0") && e.len() < 200, "{e}");
    let e = err(cfg_with("configs/synthetic.yaml", &["loss.margin=-1"]));
    assert!(e.contains("`loss.margin` must be ≥ 0, got -1"), "{e}");

    let e = err(Layer::from_set("model.text.cheb[0].k=3"));
    assert!(e.contains("lists are set whole") && e.contains("model.text.cheb=["), "{e}");

    for bad in ["a/b", "../x", ".hidden", ""] {
        let e = err(cfg_with("configs/synthetic.yaml", &[&format!("name='{bad}'")]));
        assert!(e.contains("must be a plain folder name"), "{bad}: {e}");
    }
    assert!(cfg_with("configs/synthetic.yaml", &["name=my-run_2.b"]).is_ok());

    let mut cfg = cfg_with("configs/pascal.yaml", &[]).unwrap();
    let e = err(tgcn::prepare::set_dataset_root(&mut cfg, project_root().join("Cargo.toml")));
    assert!(e.contains("is a file"), "{e}");
}

/// Every path of a dataset follows its root: Pascal's image folder included.
#[test]
fn pascal_images_follow_the_root() {
    let mut cfg = cfg_with("configs/pascal.yaml", &[]).unwrap();
    let fi = tgcn::prepare::from_images(&cfg).unwrap().unwrap();
    assert_eq!(fi.images, PathBuf::from("../shared/data/pascal-sentences/images"));
    tgcn::prepare::set_dataset_root(&mut cfg, PathBuf::from("/elsewhere/pascal")).unwrap();
    assert_eq!(tgcn::prepare::from_images(&cfg).unwrap().unwrap().images, PathBuf::from("/elsewhere/pascal/images"));
    // Given on its own, a folder stays where it is.
    let own = cfg_with("configs/pascal.yaml", &["data.from_images.images=/my/images", "data.pascal.root=/x"]).unwrap();
    assert_eq!(tgcn::prepare::from_images(&own).unwrap().unwrap().images, PathBuf::from("/my/images"));
}

fn dataset(images: Vec<f32>, dim: usize) -> Dataset {
    let n = images.len().checked_div(dim).unwrap_or(3);
    Dataset {
        name: "t".into(),
        classes: vec!["a".into()],
        multi_label: false,
        items: (0..n).map(|i| Item { id: format!("{i}"), tokens: vec!["w".into()], labels: vec![0] }).collect(),
        images,
        image_dim: dim,
        train: (0..n).collect(),
        val: vec![],
        test: vec![],
        word_vectors: None,
    }
}

#[test]
fn degenerate_image_features_are_refused_naming_the_file() {
    let check = |images: Vec<f32>, dim: usize| tgcn::prepare::check_image_features(&dataset(images, dim), "feats.npy");
    let e = err(check(vec![0.0; 12], 4));
    assert!(e.contains("feats.npy") && e.contains("all zero"), "{e}");
    let e = err(check([1.0, 2.0, 3.0].repeat(4), 3));
    assert!(e.contains("feats.npy") && e.contains("identical"), "{e}");
    let e = err(check(vec![1.0, 2.0, 1e30, 4.0, 5.0, 6.0], 3));
    assert!(e.contains("feats.npy") && e.contains("absurd") && e.contains("row 0, column 2"), "{e}");
    let e = err(check(vec![], 0));
    assert!(e.contains("feats.npy") && e.contains("0 columns"), "{e}");
    // A constant column is a warning only.
    check(vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0], 2).unwrap();
}

/// Resume, eval and search refuse data that no longer matches the run, naming what changed
/// (the vocabulary here, before any libtorch shape error).
#[test]
fn changed_data_is_caught_by_the_fingerprint() {
    let run = run_copy("robust_fingerprint");
    let p = run.join("data.json");
    let mut fp: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    tgcn::train::eval_run(&run).unwrap();
    fp["vocab"] = "0000".into();
    fp["vocab_size"] = 5.into();
    std::fs::write(&p, fp.to_string()).unwrap();
    let e = err(tgcn::train::eval_run(&run));
    assert!(e.contains("no longer matches") && e.contains("vocabulary (5 words, now"), "{e}");
    let e = err(tgcn::retrieve::Trained::load(&run).map(|_| ()));
    assert!(e.contains("vocabulary"), "{e}");
    let e = err(tgcn::train::export_existing(&run));
    assert!(e.contains("vocabulary"), "{e}");
}

/// A run folder is locked while a process trains in it; a stale lock is taken over.
#[test]
fn a_second_trainer_is_refused_by_the_run_lock() {
    let run = run_copy("robust_lock");
    let lock = run.join("train.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let e = err(tgcn::train::resume(&run, &Default::default()));
    assert!(e.contains("is in use") && e.contains(&std::process::id().to_string()), "{e}");
    // A pid that cannot be running: the lock is taken over (the run is finished, so
    // resume then stops with that message instead).
    std::fs::write(&lock, "2147483646\n").unwrap();
    let e = err(tgcn::train::resume(&run, &Default::default()));
    assert!(e.contains("already finished"), "{e}");
    assert!(!lock.exists(), "the lock is released when the session ends");
}

/// eval of a run copied elsewhere (or run from inside it) writes no `cache/` outside it;
/// a run whose curves cannot be written still prints its numbers.
#[test]
fn copied_and_read_only_runs_evaluate_without_writing_outside() {
    let run = run_copy("robust_cache");
    let env_path = run.join("env.json");
    let mut env: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&env_path).unwrap()).unwrap();
    env["cache_dir"] = "/nonexistent/runs/cache".into();
    std::fs::write(&env_path, env.to_string()).unwrap();
    // curves/ replaced by a file: its CSVs cannot be written.
    std::fs::remove_dir_all(run.join("curves")).unwrap();
    std::fs::write(run.join("curves"), "not a folder").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tgcn")).args(["eval", "--run", "."]).current_dir(&run).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("test_vs_test"), "the numbers are printed");
    assert!(stderr.contains("warning: curves of"), "{stderr}");
    let parent = run.parent().unwrap();
    assert!(
        !run.join("runs").exists()
            && !parent.join("cache").exists()
            && !parent.parent().unwrap().join("cache").exists()
    );
}

#[test]
fn libtorch_errors_show_one_line_without_cpp_frames() {
    let dir = temp_dir("robust_cpp");
    let img = dir.join("imgs");
    std::fs::create_dir_all(&img).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])).save(img.join("a.png")).unwrap();
    let bad = dir.join("bad.pt");
    std::fs::write(&bad, "not a TorchScript archive").unwrap();
    let out = tgcn_bin()
        .args(["featurize", "--device", "cpu", "--images"])
        .arg(&img)
        .arg("--backbone")
        .arg(&bad)
        .arg("--out")
        .arg(dir.join("o.npy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("frame #") && !err.contains("Exception raised from"), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("error: cannot load TorchScript backbone") && last.contains("bad.pt"), "{err}");
}

#[test]
fn stop_after_epoch_outside_the_run_is_refused() {
    let cfg = cfg_with("configs/synthetic.yaml", &["device=cpu", "train.epochs=3"]).unwrap();
    let root = temp_dir("robust_stop");
    for e in [0, 4] {
        let opts = tgcn::train::TrainOptions { stop_after_epoch: Some(e), ..Default::default() };
        let msg = err(tgcn::train::train(&cfg, &root, &opts).map(|_| ()));
        assert!(msg.contains(&format!("--stop-after-epoch {e} is outside 1..=3")), "{msg}");
    }
}

/// After a pause and a resume, summary.json's wall time and pairs/s cover the whole run.
#[test]
fn resumed_summary_counts_every_session() {
    let cfg = cfg_with(
        "configs/synthetic.yaml",
        &[
            "device=cpu",
            "data.synthetic.train=200",
            "data.synthetic.val=60",
            "data.synthetic.test=60",
            "model.embed_dim=32",
            "train.epochs=2",
            "train.pairs_per_epoch=2000",
            "train.batch_size=100",
            "export.enabled=false",
        ],
    )
    .unwrap();
    let root = temp_dir("robust_resume_summary");
    let opts = tgcn::train::TrainOptions { stop_after_epoch: Some(1), ..Default::default() };
    let run = match tgcn::train::train(&cfg, &root, &opts).unwrap() {
        tgcn::train::Outcome::Paused { run, .. } => run,
        o => panic!("expected a pause, got {o:?}"),
    };
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
    let first = last["train_seconds"].as_f64().unwrap();
    assert!(first > 0.0 && last["pairs"].as_u64().unwrap() == 4000, "{last}");
    let s = tgcn::train::resume(&run, &Default::default()).unwrap().summary().unwrap();
    assert!(s.train_seconds > first, "summary {} s must include the first session's {first} s", s.train_seconds);
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints/last.json")).unwrap()).unwrap();
    assert_eq!(last["pairs"].as_u64().unwrap(), 8000);
    let pps = last["pairs"].as_f64().unwrap() / last["pair_seconds"].as_f64().unwrap();
    assert!((s.pairs_per_s - pps).abs() < 1e-6 * pps, "pairs/s {} vs {pps}", s.pairs_per_s);
}

/// Writing into a closed pipe ends the process quietly: no panic, no exit code 101.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let run = trained_run();
    let t = tgcn::retrieve::Trained::load(&run).unwrap();
    let id = format!("test:{}", t.data.test.ids[0]);
    let mut child = tgcn_bin()
        .args(["search", "--run", run.to_str().unwrap(), "--item", &id, "--top", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is printed
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && out.status.code() != Some(101), "{:?}: {err}", out.status);
}

/// A run saved before the batched skip-gram trainer was removed names the commit that can
/// still rebuild it; any other bad key keeps its plain message.
#[test]
fn an_old_run_config_with_skipgram_batch_names_the_commit_that_made_it() {
    let r = temp_dir("old-skipgram-run").join("run");
    std::fs::create_dir_all(&r).unwrap();
    let cfg = cfg_with("configs/synthetic.yaml", &[]).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&cfg.to_yaml().unwrap()).unwrap();
    v["vectors"]["skipgram"]["batch"] = serde_yaml::Value::from(4096);
    std::fs::write(r.join("config.yaml"), serde_yaml::to_string(&v).unwrap()).unwrap();
    std::fs::write(r.join("env.json"), r#"{"git_commit": "1536055d"}"#).unwrap();
    let e = err(tgcn::run::RunDir::open(&r).unwrap().config());
    assert!(e.contains("batched skip-gram trainer") && e.contains("commit 1536055d"), "{e}");
    assert!(e.contains("vectors.skipgram.batch") && e.contains("unknown field `batch`"), "{e}");

    v["vectors"]["skipgram"].as_mapping_mut().unwrap().remove("batch");
    v["vectors"]["skipgram"]["windw"] = serde_yaml::Value::from(5);
    std::fs::write(r.join("config.yaml"), serde_yaml::to_string(&v).unwrap()).unwrap();
    let e = err(tgcn::run::RunDir::open(&r).unwrap().config());
    assert!(e.contains("unknown field `windw`") && !e.contains("skip-gram trainer"), "{e}");
}

/// Messages that name the cause and the next step: a batch of one with in-batch pairs is
/// refused when the config is read (it would contrast nothing), an infinite temperature
/// is not called "not positive", and a report of unfinished runs says so instead of
/// printing an empty table.
#[test]
fn messages_name_the_cause_and_the_next_step() {
    let e = err(cfg_with("configs/synthetic.yaml", &["train.pairs=in_batch", "train.batch_size=1"]));
    assert!(e.contains("`train.batch_size` must be at least 2 with `train.pairs: in_batch`"), "{e}");
    let e = err(cfg_with("configs/synthetic.yaml", &["loss.temperature=.inf"]));
    assert!(e.contains("`loss.temperature` must be a positive, finite number, got inf"), "{e}");

    let cfg = crate::common::debug_cfg("tiny", &["train.epochs=2", "export.enabled=false"]);
    let opts = tgcn::train::TrainOptions { stop_after_epoch: Some(1), ..Default::default() };
    let run = match tgcn::train::train(&cfg, &temp_dir("report_unfinished"), &opts).unwrap() {
        tgcn::train::Outcome::Paused { run, .. } => run,
        o => panic!("expected a pause, got {o:?}"),
    };
    let table = tgcn::run::report::report(&[run]).unwrap();
    assert!(table.starts_with("No finished run among the 1 given") && table.contains("--resume"), "{table}");
    assert!(!table.contains("MAP@0"), "{table}");
}

/// A run of one seed reports its figures without a ± of a spread it does not have; an
/// item that is not in the split is answered with an id that is; a query with no words
/// left after tokenization says so.
#[test]
fn one_seed_items_and_empty_queries_read_plainly() {
    let run = trained_run();
    let table = tgcn::run::report::report(std::slice::from_ref(&run)).unwrap();
    assert!(!table.contains('±'), "{table}");
    let t = tgcn::retrieve::Trained::load(&run).unwrap();
    let q = tgcn::retrieve::search::Query::item("test:nope", tgcn::retrieve::search::Side::Text).unwrap();
    let e = err(tgcn::retrieve::search::search(&t, &q, tgcn::retrieve::Against::Test, 3));
    assert!(e.contains("e.g. --item test:") && !e.contains("Some("), "{e}");
    let q = tgcn::retrieve::search::Query::Text("   ".into());
    let e = err(tgcn::retrieve::search::search(&t, &q, tgcn::retrieve::Against::Test, 3));
    assert!(e.contains("has no words once tokenized") && !e.contains("0 words"), "{e}");
}

/// A model and optimizer whose weights are all `value`, for the checkpoint tests.
fn filled_model(value: f64) -> (tch::nn::VarStore, tgcn::train::optim::Adam) {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let w = vs.root().var("w", &[256, 256], tch::nn::Init::Const(value));
    let opt = tgcn::train::optim::Adam::new(&vs);
    drop(w);
    (vs, opt)
}

fn checkpoint_meta(epoch: usize) -> tgcn::run::checkpoint::CheckpointMeta {
    tgcn::run::checkpoint::CheckpointMeta {
        epoch,
        step: epoch * 10,
        val_map_mean: None,
        best: None,
        config_hash: "h".into(),
        weights_sha256: String::new(),
        optim_sha256: None,
        train_seconds: 0.0,
        pairs: 0,
        pair_seconds: 0.0,
    }
}

/// Loads checkpoint `last` of `run` into a fresh model: (epoch, the weights' value).
fn load_last(run: &tgcn::run::RunDir) -> anyhow::Result<(usize, f64)> {
    let (mut vs, mut opt) = filled_model(0.0);
    let meta = tgcn::run::checkpoint::load_checkpoint(
        &mut vs,
        Some(&mut opt as &mut dyn tgcn::run::checkpoint::OptimizerState),
        run,
        "last",
        "h",
    )?;
    let w = vs.variables()["w"].double_value(&[0, 0]);
    Ok((meta.epoch, w))
}

/// A checkpoint never goes backwards: at every point of a save interrupted by a kill,
/// the newest complete set loads (the previous one until the new one is complete), and
/// the next save finishes or clears what the interrupted one left.
#[test]
fn checkpoints_survive_a_kill_at_every_step_of_a_save() {
    use tgcn::run::checkpoint::{save_checkpoint, OptimizerState};
    let root = temp_dir("checkpoint_kill");
    let save = |dir: &str, value: f64, epoch: usize| -> tgcn::run::RunDir {
        let run = tgcn::run::RunDir::create_at(&root.join(dir)).unwrap();
        let (vs, opt) = filled_model(value);
        save_checkpoint(&vs, Some(&opt as &dyn OptimizerState), &run, "last", &mut checkpoint_meta(epoch)).unwrap();
        run
    };
    let (a, b) = (save("a", 1.0, 1), save("b", 2.0, 2));
    let file = |run: &tgcn::run::RunDir, name: &str| run.join("checkpoints").join(name);
    // The states a kill can leave, from set A in place and set B being saved: which of
    // B's files are staged (`next`) or already renamed into place.
    let staged = ["last.next.safetensors", "last.next.optim.safetensors", "last.next.json"];
    let placed = ["last.safetensors", "last.optim.safetensors", "last.json"];
    for (case, (n_staged, n_placed, want)) in
        [(1, 0, 1), (2, 0, 1), (3, 0, 2), (2, 1, 2), (1, 2, 2), (0, 3, 2)].into_iter().enumerate()
    {
        let run = tgcn::run::RunDir::create_at(&root.join(format!("case{case}"))).unwrap();
        for name in placed {
            std::fs::copy(file(&a, name), file(&run, name)).unwrap();
        }
        // B's files in save order: the first n_placed are renamed, the next are staged.
        for (k, name) in placed.iter().enumerate() {
            if k < n_placed {
                std::fs::copy(file(&b, name), file(&run, name)).unwrap();
            } else if k < n_placed + n_staged {
                std::fs::copy(file(&b, name), file(&run, staged[k])).unwrap();
            }
        }
        let (epoch, w) = load_last(&run).unwrap_or_else(|e| panic!("case {case}: {e:#}"));
        assert_eq!((epoch, w), (want, want as f64), "case {case}: staged {n_staged}, placed {n_placed}");
        // The next save settles the interrupted one and then stands on its own.
        let (vs, opt) = filled_model(3.0);
        save_checkpoint(&vs, Some(&opt as &dyn OptimizerState), &run, "last", &mut checkpoint_meta(3)).unwrap();
        assert_eq!(load_last(&run).unwrap(), (3, 3.0), "case {case}");
        assert!(staged.iter().all(|n| !file(&run, n).exists()), "case {case}: staged files left");
    }
    // Weights that match no sidecar are refused with the reason.
    let run = tgcn::run::RunDir::create_at(&root.join("torn")).unwrap();
    for name in placed {
        std::fs::copy(file(&a, name), file(&run, name)).unwrap();
    }
    std::fs::write(file(&run, "last.safetensors"), b"torn").unwrap();
    let e = format!("{:#}", load_last(&run).unwrap_err());
    assert!(e.contains("does not match its sidecar"), "{e}");
}

/// A full disk while a checkpoint is saved (on a small tmpfs): the save fails with an
/// error that names the checkpoint and says the previous one is intact, the previous one
/// still loads, and once there is room the same save succeeds.
#[test]
fn a_full_disk_during_a_save_keeps_the_previous_checkpoint() {
    use tgcn::run::checkpoint::{save_checkpoint, OptimizerState};
    let Some(fs) = crate::common::Tmpfs::mount("checkpoint_tmpfs", "2m") else { return };
    let run = tgcn::run::RunDir::create_at(&fs.0.join("run")).unwrap();
    let (vs, opt) = filled_model(1.0);
    save_checkpoint(&vs, Some(&opt as &dyn OptimizerState), &run, "last", &mut checkpoint_meta(1)).unwrap();
    // One set is ~0.25 MB of weights + ~0.5 MB of optimizer state: leave room for the
    // new weights but not for its optimizer state.
    fs.fill(400 << 10);
    let (vs2, opt2) = filled_model(2.0);
    let e = save_checkpoint(&vs2, Some(&opt2 as &dyn OptimizerState), &run, "last", &mut checkpoint_meta(2))
        .expect_err("the disk is full");
    let e = format!("{e:#}");
    assert!(e.contains("checkpoint `last` of epoch 2 was not saved") && e.contains("(epoch 1) is intact"), "{e}");
    assert_eq!(load_last(&run).unwrap(), (1, 1.0));
    assert!(!run.join("checkpoints/last.next.safetensors").exists(), "staged files are cleared");
    fs.empty();
    save_checkpoint(&vs2, Some(&opt2 as &dyn OptimizerState), &run, "last", &mut checkpoint_meta(2)).unwrap();
    assert_eq!(load_last(&run).unwrap(), (2, 2.0));
}
