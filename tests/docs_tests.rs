//! The docs and the configs agree: every config file a document or script names exists
//! and parses over its dataset's config, every result row names the config that made it,
//! and every overlay in `configs/` applies to every dataset config.

use crate::common::{project_root, temp_dir};
use std::path::{Path, PathBuf};
use tgcn::config::{Config, Layer};

const DATASETS: [&str; 6] = ["synthetic", "eng-wiki", "nus-wide", "pascal", "tvgraz", "ch-wiki"];

/// The markdown files of the project: the README, the changelog and everything in docs/.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out: Vec<PathBuf> =
        ["README.md", "CHANGELOG.md"].iter().map(|f| root.join(f)).filter(|p| p.exists()).collect();
    walk(&root.join("docs"), &mut out);
    out.sort();
    out
}

/// Every `configs/….yaml` path in `text`.
fn cited_configs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("configs/") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c))).unwrap_or(tail.len());
        let path = tail[..end].trim_end_matches('.');
        if path.ends_with(".yaml") {
            out.push(path.to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out
}

/// The dataset a config file belongs to: itself for `configs/<dataset>.yaml`, the longest
/// dataset name that starts the file name for an overlay, synthetic for `configs/debug/`.
fn dataset_of(rel: &str) -> Option<&'static str> {
    if rel.starts_with("configs/debug/") {
        return Some("synthetic");
    }
    let stem = Path::new(rel).file_stem()?.to_str()?;
    DATASETS.iter().filter(|d| stem == **d || stem.starts_with(&format!("{d}-"))).max_by_key(|d| d.len()).copied()
}

/// `rel` parsed as the config it is: a dataset config alone, an overlay over its dataset's.
fn parse_config(root: &Path, rel: &str) -> Result<Config, String> {
    let path = root.join(rel);
    let dataset = dataset_of(rel).ok_or_else(|| format!("{rel}: its name does not start with a dataset name"))?;
    let mut layers =
        vec![Layer::from_file(&root.join(format!("configs/{dataset}.yaml"))).map_err(|e| format!("{e:#}"))?];
    if rel != format!("configs/{dataset}.yaml") {
        layers.push(Layer::from_file(&path).map_err(|e| format!("{e:#}"))?);
    }
    Config::from_layers(&layers).map_err(|e| format!("{rel}: {e:#}"))
}

/// A figure such as `0.331` in a table cell.
fn has_figure(line: &str) -> bool {
    let b = line.as_bytes();
    (0..b.len().saturating_sub(4)).any(|i| {
        b[i] == b'0'
            && b[i + 1] == b'.'
            && b[i + 2..i + 5].iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_digit())
    })
}

/// Result rows of a markdown file that name no config file, one line each.
fn rows_without_config(text: &str, file: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if !t.starts_with('|') || t.starts_with("|---") || t.starts_with("| ---") || !has_figure(t) {
            continue;
        }
        let first = t.trim_start_matches('|').trim_start().trim_start_matches("**").to_lowercase();
        if first.starts_with("published") {
            continue;
        }
        if cited_configs(t).is_empty() {
            bad.push(format!("{file}:{}: {t}", n + 1));
        }
    }
    bad
}

#[test]
fn every_config_a_document_or_script_names_exists_and_parses() {
    let root = project_root();
    let mut sources = markdown_files(&root);
    for dir in ["scripts"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            sources.push(e.path());
        }
    }
    sources.push(root.join("Makefile"));
    let mut bad = Vec::new();
    let mut seen = 0;
    for f in &sources {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        for rel in cited_configs(&text) {
            seen += 1;
            if !root.join(&rel).is_file() {
                bad.push(format!("{} names {rel}, which does not exist", f.display()));
            } else if let Err(e) = parse_config(&root, &rel) {
                bad.push(format!("{} names {rel}, which does not parse: {e}", f.display()));
            }
        }
    }
    assert!(seen > 10, "only {seen} config citations found: is the scan broken?");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_result_row_names_its_config() {
    let root = project_root();
    let mut files = vec![root.join("README.md")];
    if let Ok(rd) = std::fs::read_dir(root.join("docs/results")) {
        files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
    }
    let mut bad = Vec::new();
    let mut rows = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        rows += text.lines().filter(|l| l.trim().starts_with('|') && has_figure(l)).count();
        bad.extend(rows_without_config(&text, &f.display().to_string()));
    }
    assert!(rows > 0, "no result rows found in {files:?}");
    assert!(bad.is_empty(), "result rows without a config file:\n{}", bad.join("\n"));
}

/// The checker itself: a row with a figure and no config is caught, a published anchor
/// or a row with a config is not, and citations are cut at the path's end.
#[test]
fn result_row_checker_catches_a_row_without_config() {
    let text = "| method | MAP |\n|---|---|\n| TGCN | 0.331 |\n| published: ACMR | 0.322 |\n\
                | MLP (`configs/eng-wiki.yaml`) | 0.330 |\n| epochs | 40 |\n";
    let bad = rows_without_config(text, "t.md");
    assert_eq!(bad, vec!["t.md:3: | TGCN | 0.331 |".to_string()]);
    assert_eq!(
        cited_configs("see `configs/debug/tiny.yaml`, and configs/x.yaml."),
        ["configs/debug/tiny.yaml", "configs/x.yaml"]
    );
    assert_eq!(dataset_of("configs/experiments/eng-wiki-best-tau0.2.yaml"), Some("eng-wiki"));
    assert_eq!(dataset_of("configs/nus-wide.yaml"), Some("nus-wide"));
    assert_eq!(dataset_of("configs/experiments/unnamed.yaml"), None);
}

/// Every overlay in `configs/` (the best config and the frozen experiments) resolves over
/// every dataset's config, including one whose base lacks a block the overlay sets one
/// key of (`vectors.skipgram.epochs` over `nus-wide.yaml`, which has no skipgram block):
/// the rest of that block comes from the defaults.
#[test]
fn every_overlay_applies_to_every_dataset_config() {
    let root = project_root();
    let mut overlays = vec![root.join("configs/eng-wiki-best.yaml")];
    if let Ok(rd) = std::fs::read_dir(root.join("configs/experiments")) {
        overlays.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")));
    }
    let mut bad = Vec::new();
    for d in DATASETS {
        for o in &overlays {
            let layers =
                [Layer::from_file(&root.join(format!("configs/{d}.yaml"))).unwrap(), Layer::from_file(o).unwrap()];
            if let Err(e) = Config::from_layers(&layers) {
                bad.push(format!("{d} + {}: {e:#}", o.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The default fills what the overlay leaves out; the overlay's key wins.
    let d = temp_dir("overlay_partial_block");
    std::fs::write(d.join("o.yaml"), "vectors:\n  skipgram:\n    epochs: 20\n").unwrap();
    let cfg = Config::from_layers(&[
        Layer::from_file(&root.join("configs/nus-wide.yaml")).unwrap(),
        Layer::from_file(&d.join("o.yaml")).unwrap(),
    ])
    .unwrap();
    let want = tgcn::text::skipgram::SkipgramConfig { epochs: 20, ..Default::default() };
    assert_eq!(cfg.vectors.skipgram, want);
    // A misspelled key inside the partial block is still refused.
    std::fs::write(d.join("bad.yaml"), "vectors:\n  skipgram:\n    epoch: 20\n").unwrap();
    let e = Config::from_layers(&[
        Layer::from_file(&root.join("configs/nus-wide.yaml")).unwrap(),
        Layer::from_file(&d.join("bad.yaml")).unwrap(),
    ])
    .unwrap_err();
    assert!(format!("{e:#}").contains("epoch"), "{e:#}");
}
