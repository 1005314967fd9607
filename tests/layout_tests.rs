//! The source layout: one folder per pipeline stage, declared in `src/lib.rs` in
//! data-flow order, and no module importing from a later stage or in a circle.
//!
//! The checker reads the source as text (no libtorch): it walks the `mod` declarations
//! from `lib.rs`, collects every `crate::…`, `super::…` and child-relative `use` path of
//! each module file, resolves it to the longest module prefix, and then checks:
//! - a module imports only from its own stage or an earlier one (`lib.rs` order);
//! - between siblings, only from one declared earlier in the parent's `mod` list;
//! - the module graph has no cycle (parent ↔ child included).

use crate::common::{project_root, temp_dir};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["data", "listed"]`; the crate root is `[]`) and its file.
#[derive(Debug)]
struct Module {
    path: Vec<String>,
    file: PathBuf,
    /// Children, in declaration order.
    children: Vec<String>,
}

fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| !l.trim_start().starts_with("//"))
}

fn mod_decls(text: &str) -> Vec<String> {
    code_lines(text)
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(|n| n.trim().to_string())
        })
        .collect()
}

fn collect(path: Vec<String>, file: PathBuf, out: &mut Vec<Module>) {
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let children = mod_decls(&text);
    // Children of `a/mod.rs` or `lib.rs` sit in the same folder; of `a.rs`, in `a/`.
    let dir = match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") => file.parent().unwrap().to_path_buf(),
        _ => file.with_extension(""),
    };
    for c in &children {
        let flat = dir.join(format!("{c}.rs"));
        let nested = dir.join(c).join("mod.rs");
        let f = if flat.is_file() { flat } else { nested };
        let mut p = path.clone();
        p.push(c.clone());
        collect(p, f, out);
    }
    out.push(Module { path, file, children });
}

fn ident_segments(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => rest = r,
            _ => break,
        }
    }
    segs
}

/// Every path this module's code names: `crate::a::b`, `super::a`, `use child::x`.
fn referenced_paths(m: &Module, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in code_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            out.push(ident_segments(rest));
        }
        let mut rest = line;
        while let Some(i) = rest.find("super::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "super::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut p = m.path.clone();
            p.pop();
            p.extend(ident_segments(rest));
            out.push(p);
        }
        let t = line.trim_start();
        if let Some(u) = t.strip_prefix("pub use ").or_else(|| t.strip_prefix("use ")) {
            let segs = ident_segments(u);
            if segs.first().is_some_and(|s| m.children.contains(s)) {
                let mut p = m.path.clone();
                p.extend(segs);
                out.push(p);
            }
        }
    }
    out
}

/// Layering violations of the crate under `src`, one line each; empty when clean.
fn violations(src: &Path) -> Vec<String> {
    let mut mods = Vec::new();
    collect(Vec::new(), src.join("lib.rs"), &mut mods);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|m| m.path.clone()).collect();
    let root = mods.iter().find(|m| m.path.is_empty()).expect("lib.rs");
    let stage_of = |p: &[String]| root.children.iter().position(|c| Some(c) == p.first());
    let children: BTreeMap<Vec<String>, Vec<String>> =
        mods.iter().map(|m| (m.path.clone(), m.children.clone())).collect();
    let name = |p: &[String]| if p.is_empty() { "crate".to_string() } else { p.join("::") };

    let mut bad = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for m in &mods {
        let text = std::fs::read_to_string(&m.file).unwrap();
        for p in referenced_paths(m, &text) {
            // The longest module prefix of the path is what it imports from.
            let Some(target) = (0..=p.len()).rev().map(|n| p[..n].to_vec()).find(|q| known.contains(q)) else {
                continue;
            };
            if target == m.path || target.is_empty() {
                continue;
            }
            edges.entry(m.path.clone()).or_default().insert(target.clone());
            if let (Some(a), Some(b)) = (stage_of(&m.path), stage_of(&target)) {
                if b > a {
                    bad.push(format!(
                        "{} ({}) imports {} from the later stage `{}`",
                        name(&m.path),
                        m.file.display(),
                        name(&target),
                        root.children[b]
                    ));
                }
            }
            // Siblings: only one declared earlier in the parent's `mod` list.
            let common = m.path.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < m.path.len() && common < target.len() && common > 0 {
                let parent = m.path[..common].to_vec();
                let order = &children[&parent];
                let (i, j) =
                    (order.iter().position(|c| *c == m.path[common]), order.iter().position(|c| *c == target[common]));
                if let (Some(i), Some(j)) = (i, j) {
                    if j > i {
                        bad.push(format!(
                            "{} imports {}, declared after it in {}",
                            name(&m.path),
                            name(&target),
                            name(&parent)
                        ));
                    }
                }
            }
        }
    }
    // Cycles, by depth-first search.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        bad: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for t in edges.get(n).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, edges, state, stack, bad),
                1 => {
                    let from = stack.iter().position(|s| s == t).unwrap();
                    let cycle: Vec<String> = stack[from..].iter().chain([t]).map(|p| p.join("::")).collect();
                    bad.push(format!("circle: {}", cycle.join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for m in &mods {
        if !state.contains_key(&m.path) {
            visit(&m.path, &edges, &mut state, &mut Vec::new(), &mut bad);
        }
    }
    bad
}

#[test]
fn no_module_imports_from_a_later_stage_or_in_a_circle() {
    let bad = violations(&project_root().join("src"));
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn stages_are_folders_in_data_flow_order() {
    let lib = std::fs::read_to_string(project_root().join("src/lib.rs")).unwrap();
    let stages = mod_decls(&lib);
    assert_eq!(
        stages,
        [
            "files", "stop", "data", "image", "text", "graph", "model", "config", "prepare", "eval", "run", "train",
            "retrieve", "bench"
        ]
    );
    for s in ["data", "image", "text", "graph", "model", "prepare", "eval", "run", "train", "retrieve"] {
        let m = project_root().join("src").join(s).join("mod.rs");
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.starts_with("//!"), "{} has no module doc stating its input and output", m.display());
        assert!(
            text.contains("Input") && text.contains("Output"),
            "{} does not state its input and output",
            m.display()
        );
    }
}

/// The checker itself catches what it should: a backwards import, a sibling declared
/// later, and a parent ↔ child circle.
#[test]
fn layout_checker_catches_violations() {
    let d = temp_dir("layout_checker");
    let w = |rel: &str, text: &str| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("lib.rs", "pub mod a;\npub mod b;\n");
    w("a/mod.rs", "//! a\npub mod x;\npub mod y;\nuse crate::b::Thing;\n");
    w("a/x.rs", "use super::y::Y;\n// use crate::b::InAComment;\n");
    w("a/y.rs", "pub struct Y;\n");
    w("b/mod.rs", "pub mod z;\npub use z::Z;\n");
    w("b/z.rs", "use crate::a::x::X;\nuse crate::b::Z;\n");
    let bad = violations(&d);
    let has = |s: &str| bad.iter().any(|b| b.contains(s));
    assert!(has("a (") && has("imports b from the later stage `b`"), "{bad:?}");
    assert!(has("a::x imports a::y, declared after it in a"), "{bad:?}");
    assert!(has("circle: b -> b::z -> b"), "{bad:?}");
    assert!(!has("InAComment"), "{bad:?}");
    assert_eq!(bad.len(), 3, "{bad:?}");

    // The same tree with the imports reversed is clean.
    w("a/mod.rs", "//! a\npub mod x;\npub mod y;\n");
    w("a/y.rs", "use super::x::X;\n");
    w("a/x.rs", "pub struct X;\n");
    w("b/mod.rs", "pub mod z;\nuse crate::a::y::Y;\n");
    w("b/z.rs", "use crate::a::x::X;\n");
    assert_eq!(violations(&d), Vec::<String>::new());
}
