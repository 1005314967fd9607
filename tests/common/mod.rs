//! Shared test helpers: fresh temp folders, the project venv's Python, the real data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `configs/<name>.yaml` with `sets` (`--set` assignments) applied in order.
pub fn dataset_cfg(name: &str, sets: &[&str]) -> tgcn::config::Config {
    use tgcn::config::Layer;
    let mut layers = vec![Layer::from_file(&project_root().join(format!("configs/{name}.yaml"))).unwrap()];
    for s in sets {
        layers.push(Layer::from_set(s).unwrap());
    }
    tgcn::config::Config::from_layers(&layers).unwrap()
}

/// `configs/synthetic.yaml` with the debug profile `configs/debug/<profile>.yaml` over it,
/// then `sets` (`--set` assignments) in order.
pub fn debug_cfg(profile: &str, sets: &[&str]) -> tgcn::config::Config {
    use tgcn::config::Layer;
    let root = project_root();
    let mut layers = vec![
        Layer::from_file(&root.join("configs/synthetic.yaml")).unwrap(),
        Layer::from_file(&root.join(format!("configs/debug/{profile}.yaml"))).unwrap(),
    ];
    for s in sets {
        layers.push(Layer::from_set(s).unwrap());
    }
    tgcn::config::Config::from_layers(&layers).unwrap()
}

/// A fresh, empty folder under the target dir, unique to this test name.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = project_root().join("target").join("test-tmp").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The venv's Python (make test creates it); None, with a message, when absent.
pub fn venv_python() -> Option<PathBuf> {
    let p = project_root().join(".venv/bin/python");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent (run `make venv`)", p.display());
        None
    }
}

/// `../shared/data/<sub>` when present; None, with a message, when absent.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let p = project_root().join("../shared/data").join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: real data {} is absent", p.display());
        None
    }
}

/// Runs the venv's Python on a script with arguments; panics with its output on failure.
pub fn run_python(py: &Path, script: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(py).arg(script).args(args).output().expect("run python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
    text
}

pub fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y} (tol {tol})");
    }
}

/// A recursive copy of a folder (a run, to damage or move without touching the original).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}
