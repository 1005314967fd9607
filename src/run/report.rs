//! `tgcn report RUN...`: a markdown table of finished runs, grouped by run name (the
//! `name` config key) over seeds, as mean ± sample std. This is how the README's result
//! tables are made: train each variant with several `--set seed=N`, then report.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(serde::Deserialize)]
struct Saved {
    test: Vec<crate::eval::Retrieval>,
    train_seconds: f64,
    synthetic: bool,
    dataset: String,
}

/// (dataset, run name, protocol) -> per-seed (seed, six MAPs, k, train seconds).
type Groups = BTreeMap<(String, String, String), Vec<(u64, [f64; 6], usize, f64)>>;

fn runs_k(g: &Groups) -> usize {
    g.values().flat_map(|rows| rows.iter().map(|r| r.2)).next().unwrap_or(0)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Reads `summary.json` and `config.yaml` of each run folder and returns the table.
pub fn report(runs: &[PathBuf]) -> Result<String> {
    // (dataset, name, protocol) -> per-seed rows
    let mut groups: Groups = BTreeMap::new();
    let mut synthetic = false;
    for r in runs {
        let p = r.join("summary.json");
        if !p.exists() {
            eprintln!("skipping {}: no summary.json (unfinished run)", r.display());
            continue;
        }
        let s: Saved =
            serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?)
                .with_context(|| format!("{} is not a run summary", p.display()))?;
        let cfg = crate::run::RunDir::open(r)?.config()?;
        synthetic |= s.synthetic;
        for t in &s.test {
            let m = [t.i2t.map_all, t.t2i.map_all, t.map_all_mean(), t.i2t.map_k, t.t2i.map_k, t.map_k_mean()];
            groups.entry((s.dataset.clone(), cfg.name.clone(), t.protocol.clone())).or_default().push((
                cfg.seed,
                m,
                t.i2t.k,
                s.train_seconds,
            ));
        }
    }
    let k = runs_k(&groups);
    let mut out = String::new();
    if synthetic {
        out += "(includes SYNTHETIC-data runs)\n\n";
    }
    out += &format!(
        "| dataset | run name | protocol | seeds | i2t MAP@all | t2i MAP@all | mean MAP@all | i2t MAP@{k} | t2i MAP@{k} | mean MAP@{k} | train s |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for ((dataset, name, protocol), rows) in &groups {
        let seeds: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let mut cells = Vec::new();
        for j in 0..6 {
            let (m, s) = mean_std(&rows.iter().map(|r| r.1[j]).collect::<Vec<_>>());
            cells.push(format!("{m:.4} ± {s:.4}"));
        }
        let (t, _) = mean_std(&rows.iter().map(|r| r.3).collect::<Vec<_>>());
        out += &format!("| {dataset} | {name} | {protocol} | {} | {} | {t:.0} |\n", seeds.join(","), cells.join(" | "));
    }
    Ok(out)
}
