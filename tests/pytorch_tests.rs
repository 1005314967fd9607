//! The PyTorch side (`python/tgcn_torch`): on trained runs, the Python modules of
//! `load_run`, the `.pt2` files (`torch.export.load`) and the `.onnx` files (ONNX Runtime)
//! reproduce the Rust embeddings and scores within 1e-5 at several batch sizes, and refuse
//! wrong shapes with messages that name the expected shape; the Python tokenizer cuts raw
//! text as the Rust one; the text tower fine-tunes in PyTorch with the project's
//! contrastive loss (the same value as Rust's on the same scores).

use crate::common::{project_root, temp_dir, venv_python};
use std::path::{Path, PathBuf};
use std::process::Command;
use tgcn::config::Config;

/// The venv's Python when it imports this checkout's `tgcn_torch` and ONNX Runtime; None,
/// with a message, otherwise.
fn torch_python() -> Option<PathBuf> {
    let py = venv_python()?;
    let out = python_cmd(&py).args(["-c", "import tgcn_torch, onnxruntime, onnxscript"]).output().unwrap();
    if out.status.success() {
        Some(py)
    } else {
        eprintln!(
            "SKIP: the venv lacks tgcn_torch's packages (run `make python`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        None
    }
}

/// The venv's Python with this checkout's `python/` first on the path.
fn python_cmd(py: &Path) -> Command {
    let mut c = Command::new(py);
    c.env("PYTHONPATH", project_root().join("python"));
    c
}

/// Runs a script of `tests/python/`; panics with its output on failure, else returns it.
fn run_script(py: &Path, script: &str, args: &[&str]) -> String {
    let out = python_cmd(py).arg(project_root().join("tests/python").join(script)).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

fn tiny(sets: &[&str]) -> Config {
    let mut all = vec!["export.onnx=true", "train.epochs=2"];
    all.extend_from_slice(sets);
    crate::common::debug_cfg("tiny", &all)
}

/// Trains `cfg` (export on) and checks the export against Rust's outputs in Python.
fn check_run(py: &Path, cfg: &Config, root: &Path) -> PathBuf {
    let run = tgcn::train::train(cfg, root, &Default::default()).unwrap().summary().unwrap().run;
    for f in ["text_encoder", "image_encoder", "scorer"] {
        for ext in ["pt", "pt2", "onnx"] {
            assert!(run.join(format!("export/{f}.{ext}")).is_file(), "no export/{f}.{ext} in {}", run.display());
        }
    }
    let out = run_script(py, "check_pytorch.py", &[run.to_str().unwrap(), "1e-5"]);
    eprintln!("{}: {}", root.display(), out.lines().last().unwrap_or(""));
    run
}

/// The authors' model (two K = 3 Chebyshev layers of one filter, the product scorer).
#[test]
fn pytorch_modules_pt2_and_onnx_match_rust_on_synthetic() {
    let Some(py) = torch_python() else { return };
    check_run(&py, &tiny(&[]), &temp_dir("pytorch_synthetic"));
}

/// The other branches: several filters (the concatenated Chebyshev product), per-vertex
/// bias, leaky ReLU, log1p + L2 input beside the graph features, hidden FC layers, L2 image
/// normalisation and class-posterior ranking, rare words' own inputs left out; then the
/// cosine scorer, the `mlp` text tower with the fixed graph smoothing beside its input, and
/// the label classifier's sigmoid posteriors on multi-label data; last, separate Chebyshev
/// stacks on the kNN and PMI relations.
#[test]
fn pytorch_export_matches_rust_on_every_model_branch() {
    let Some(py) = torch_python() else { return };
    // Some words, not all, are rarer than the threshold: the export lists the others.
    let own_vertices = |run: &Path| {
        let t = tch::Tensor::read_safetensors(run.join("export/laplacian.safetensors")).unwrap();
        let (n, v) = (t.iter().find(|(k, _)| k == "own_vertices").unwrap().1.size()[0], run_vocab(run));
        assert!(0 < n && n < v, "{n} of {v} words keep their own input");
    };
    let run = check_run(
        &py,
        &tiny(&[
            "model.text.cheb=[{k: 3, filters: 2}, {k: 2, filters: 1}]",
            "model.text.bias=per_vertex",
            "model.text.activation=leaky_relu",
            "model.text.input=log1p",
            "model.text.input_l2=true",
            "model.text.concat_bow=true",
            "model.text.fc=[24]",
            "model.image.hidden=[24]",
            "data.image_norm=l2",
            "eval.ranking=class_posterior",
            "model.text.own_input_min_count=5",
        ]),
        &temp_dir("pytorch_branches"),
    );
    own_vertices(&run);
    let run = check_run(
        &py,
        &tiny(&[
            "model.text.kind=mlp",
            "model.text.smooth=true",
            "model.text.own_input_min_count=5",
            "model.scorer=cosine",
            "data.synthetic.max_labels=3",
            "loss.label=1.0",
            "eval.ranking=classifier",
        ]),
        &temp_dir("pytorch_classifier"),
    );
    own_vertices(&run);
    // One Chebyshev stack per relation, each on its own L~.
    check_run(
        &py,
        &tiny(&[
            "graph.relations=[knn, pmi]",
            "graph.combine=separate",
            "graph.pmi={window: 5, k: 4, min_count: 2}",
            "model.text.cheb=[{k: 3, filters: 2}]",
        ]),
        &temp_dir("pytorch_separate"),
    );
}

/// The vocabulary size of a run's export.
fn run_vocab(run: &Path) -> i64 {
    std::fs::read_to_string(run.join("export/vocab.txt")).unwrap().lines().count() as i64
}

/// A Pascal-layout run made from raw images through the tiny TorchScript CNN: the exported
/// image encoder takes the CNN's features, and raw captions go through the tokenizer.
#[test]
fn pytorch_export_matches_rust_on_a_raw_image_pascal_run() {
    let Some(py) = torch_python() else { return };
    let dir = temp_dir("pytorch_pascal_raw");
    let model = dir.join("tiny_cnn.pt");
    crate::common::run_python(
        &py,
        &project_root().join("scripts/make_tiny_cnn.py"),
        &["make", model.to_str().unwrap()],
    );
    let root = dir.join("pascal");
    let cfg = crate::common::raw_pascal_cfg(
        &root,
        &model,
        ["Cat's whiskers, fur & meowing tails", "A car: wheels, engines... roads; driving!"],
        |w| [format!("a {w}"), format!("The {w} here")],
        &["export.enabled=true", "export.onnx=true"],
    );
    let run = check_run(&py, &cfg, &dir.join("runs"));

    // Raw captions: the run's tokenizer and bag of words in Python equal Rust's.
    let texts = ["A cat's whiskers; the CAT, again!", "Driving cars on roads", "naïve café-au-lait ÉCOLE x y"];
    let rust: Vec<Vec<String>> = texts.iter().map(|t| tgcn::prepare::tokenize_query(&cfg, t)).collect();
    let cases = dir.join("tokens.json");
    std::fs::write(&cases, serde_json::json!({"run": run, "texts": texts, "tokens": rust}).to_string()).unwrap();
    run_script(&py, "check_tokenizer.py", &[cases.to_str().unwrap()]);
}

/// The Python tokenizer cuts raw English text as the Rust one, with and without stop words
/// and stemming, on punctuation, digits, contractions, accents and other scripts.
#[test]
fn python_tokenizer_matches_rust() {
    let Some(py) = torch_python() else { return };
    let texts = [
        "The quick brown fox's jumping over the lazy dogs, isn't it?",
        "Running runners ran; generously, nationalization & relational databases!!",
        "e-mail x2 y3 A1B2 don't won't shouldn't I'm you've",
        "Naïve café ÉCOLE Straße Ærøskøbing ﬁnancial ⅫⅩ résumé",
        "Ελληνικά κείμενα, русский текст, 中文字符 mixed",
        "tabs\tand\nnewlines\r\n  spaces   a b cc",
        "",
    ];
    let mut cases = Vec::new();
    for (stop, stem) in [(true, false), (false, false), (true, true)] {
        let tok = tgcn::data::tokenize::Tokenizer::new(tgcn::data::tokenize::Language::En, stop, stem);
        let tokens: Vec<Vec<String>> = texts.iter().map(|t| tok.tokenize(t)).collect();
        cases.push(serde_json::json!({"stop_words": stop, "stem": stem, "texts": texts, "tokens": tokens}));
    }
    let path = temp_dir("pytorch_tokenizer").join("tokens.json");
    std::fs::write(&path, serde_json::Value::Array(cases).to_string()).unwrap();
    run_script(&py, "check_tokenizer.py", &[path.to_str().unwrap()]);
}

/// Fine-tuning in PyTorch: the Python contrastive loss equals Rust's on the same scores,
/// and training the text tower of a loaded run with it for a few steps on the run's own
/// train split lowers the loss.
#[test]
fn text_tower_fine_tunes_in_pytorch() {
    let Some(py) = torch_python() else { return };
    let dir = temp_dir("pytorch_finetune");
    let run = check_run(&py, &tiny(&[]), &dir.join("runs"));
    let t = tgcn::train::trained::Trained::load(&run).unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    t.data.train.bow.write_npy(data.join("bow.npy")).unwrap();
    t.data.train.images_raw.write_npy(data.join("features.npy")).unwrap();
    t.data.train.labels.write_npy(data.join("labels.npy")).unwrap();
    // Rust's contrastive loss on a fixed score matrix and positive mask.
    tch::manual_seed(7);
    let scores = tch::Tensor::randn([6, 6], (tch::Kind::Float, tch::Device::Cpu));
    let positive = tch::Tensor::rand([6, 6], (tch::Kind::Float, tch::Device::Cpu))
        .gt(0.6)
        .logical_or(&tch::Tensor::eye(6, (tch::Kind::Bool, tch::Device::Cpu)));
    let loss = tgcn::train::loss::contrastive_loss(&scores, &positive, 0.3).double_value(&[]);
    scores.write_npy(data.join("scores.npy")).unwrap();
    positive.to_kind(tch::Kind::Uint8).write_npy(data.join("positive.npy")).unwrap();
    let out = run_script(
        &py,
        "finetune_text.py",
        &[run.to_str().unwrap(), data.to_str().unwrap(), &format!("{loss:.9}"), "0.3"],
    );
    eprintln!("fine-tuning: {}", out.lines().last().unwrap_or(""));
}

/// Without the project's Python, `tgcn export` still writes the TorchScript export and
/// says in one line how to get the .pt2/.onnx files.
#[test]
fn export_without_python_says_how_to_get_onnx() {
    let run = tgcn::train::train(&tiny(&["export.enabled=false"]), &temp_dir("pytorch_no_python"), &Default::default())
        .unwrap()
        .summary()
        .unwrap()
        .run;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgcn"));
    cmd.args(["export", "--run", run.to_str().unwrap()]).env("TGCN_PYTHON", "/nonexistent/python");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(run.join("export/text_encoder.pt").is_file() && !run.join("export/text_encoder.onnx").exists());
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(".onnx")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("make setup") && lines[0].contains("/nonexistent/python"), "{err}");

    // The Rust side wrote what load_run needs; an export older than the checkpoint is refused.
    let Some(py) = torch_python() else { return };
    let info_path = run.join("export/pytorch.json");
    let mut info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&info_path).unwrap()).unwrap();
    assert_eq!(info["weights_sha256"].as_str().map(str::len), Some(64), "{info}");
    let load = format!("from tgcn_torch import load_run; print(load_run({:?}))", run.to_str().unwrap());
    let ok = python_cmd(&py).args(["-c", &load]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    info["weights_sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(&info_path, info.to_string()).unwrap();
    let stale = python_cmd(&py).args(["-c", &load]).output().unwrap();
    let msg = String::from_utf8_lossy(&stale.stderr);
    assert!(!stale.status.success() && msg.contains("ValueError") && msg.contains("tgcn export --run"), "{msg}");
}

/// `notebooks/explore_runs.ipynb` runs headless (`jupyter nbconvert --execute`) on a
/// synthetic run and writes its figures and tables; its MAP table holds the summary's MAPs.
#[test]
fn explore_notebook_executes_headless() {
    let Some(py) = venv_python() else { return };
    let jupyter = py.with_file_name("jupyter");
    let probe = python_cmd(&py).args(["-c", "import nbconvert, ipykernel, sklearn"]).output().unwrap();
    if !jupyter.exists() || !probe.status.success() {
        eprintln!("SKIP: Jupyter is not in the venv (run `make notebook`)");
        return;
    }
    let dir = temp_dir("pytorch_notebook");
    let s = tgcn::train::train(&crate::common::debug_cfg("tiny", &[]), &dir, &Default::default())
        .unwrap()
        .summary()
        .unwrap();
    let run = std::fs::canonicalize(&s.run).unwrap();
    let out = Command::new(&jupyter)
        .args(["nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600", "--output-dir"])
        .arg(&dir)
        .arg(project_root().join("notebooks/explore_runs.ipynb"))
        .env("TGCN_RUN", &run)
        .env("TGCN_BIN", env!("CARGO_BIN_EXE_tgcn"))
        .env("TGCN_ROOT", project_root())
        .env("PATH", format!("{}:{}", py.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()))
        .output()
        .unwrap();
    assert!(out.status.success(), "the notebook failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for f in ["training.png", "retrieval.png", "retrieval_examples.png", "tsne.png"] {
        let p = run.join("notebook").join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} is missing or nearly empty ({len} bytes)", p.display());
    }
    let table = std::fs::read_to_string(run.join("notebook/map_table.md")).unwrap();
    let mean = format!("{:.4}", s.test[0].map_all_mean());
    assert!(table.contains(&mean), "the MAP table lacks the test mean MAP {mean}:\n{table}");
    let i2t = std::fs::read_to_string(run.join("notebook/image_to_text.md")).unwrap();
    assert!(i2t.matches("| 1 |").count() >= 3, "too few image → text examples:\n{i2t}");
    let executed = std::fs::read_to_string(dir.join("explore_runs.ipynb")).unwrap();
    assert!(executed.contains("image/png"), "the executed notebook shows no figure");
}
