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

/// A Pascal-layout dataset of 24 small raw images (12 `cat`, 12 `car`, alternating) under
/// `root/images` with two captions each, `captions(words)` for the class's `words`
/// (`words[0]` for cats, `words[1]` for cars); and its config over `configs/pascal.yaml`:
/// features from the TorchScript `model` (the tiny CNN), a 12/4/8 split, one short epoch,
/// then `sets`.
pub fn raw_pascal_cfg(
    root: &Path,
    model: &Path,
    words: [&str; 2],
    captions: fn(&str) -> [String; 2],
    sets: &[&str],
) -> tgcn::config::Config {
    use tgcn::config::Layer;
    std::fs::create_dir_all(root.join("images")).unwrap();
    let mut json = serde_json::Map::new();
    for i in 0..24u32 {
        let (class, words, colour) =
            if i % 2 == 0 { ("cat", words[0], [200u8, 40, 40]) } else { ("car", words[1], [40u8, 40, 200]) };
        let name = format!("2008_{i:06}.png");
        let img = image::RgbImage::from_fn(24, 20, |x, y| {
            let n = ((x * 7 + y * 13 + i * 5) % 23) as u8;
            image::Rgb([colour[0].saturating_add(n), colour[1].saturating_add(n), colour[2].saturating_add(n)])
        });
        img.save(root.join("images").join(&name)).unwrap();
        json.insert(name, serde_json::json!({"category": class, "captions": captions(words)}));
    }
    std::fs::write(root.join("pascal_sentences.json"), serde_json::Value::Object(json).to_string()).unwrap();
    let m = model.to_str().unwrap();
    let mut layers = vec![Layer::from_file(&project_root().join("configs/pascal.yaml")).unwrap()];
    let base = [
        "device=cpu".to_string(),
        format!("data.pascal.root={}", root.display()),
        "data.pascal.split=[12, 4, 8]".to_string(),
        format!("data.from_images.featurize={{backbone: {m}, resize: 20, crop: 16, batch_size: 8}}"),
        "text.min_freq=1".to_string(),
        "vectors.skipgram.epochs=1".to_string(),
        "model.embed_dim=16".to_string(),
        "train.epochs=1".to_string(),
        "train.pairs_per_epoch=200".to_string(),
        "train.batch_size=8".to_string(),
    ];
    for s in base.iter().map(String::as_str).chain(sets.iter().copied()) {
        layers.push(Layer::from_set(s).unwrap());
    }
    tgcn::config::Config::from_layers(&layers).unwrap()
}

/// A small tmpfs at a fresh folder, unmounted when dropped; None, with a message, where
/// mounting is refused (not root).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let mnt = temp_dir(name);
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("SKIP: cannot mount a tmpfs at {} (not root, or no mount permission)", mnt.display());
            return None;
        }
        Some(Tmpfs(mnt))
    }

    /// Fills the file system but for about `leave` bytes.
    pub fn fill(&self, leave: u64) {
        let path = self.0.join("filler");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let chunk = vec![0u8; 16 << 10];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        drop(f);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }

    pub fn empty(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
