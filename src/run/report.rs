//! `tgcn report RUN...`: a markdown table of finished runs, grouped over seeds as mean ±
//! sample std. Runs share a row only when their resolved configs are identical apart from
//! the seed (a hash of the config with the seed removed, shown beside the run name), so
//! runs that differ in anything else are never averaged. A seed counted twice in a row is
//! flagged. This is how the README's result tables are made: train each variant with
//! several `--set seed=N`, then report. A validation-only run (a `tgcn sweep` trial) has
//! no test numbers: it is named in a note below the table instead of a row. R@1, R@5, R@10
//! and medR (median rank) are the means of both directions; a `pair`-relevance protocol
//! is its own row, marked `(pair)`.

use crate::run::summary::Summary;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Figures per run: six MAPs, then Recall@1, @5, @10 and the median rank, each the mean
/// of both directions.
const FIGURES: usize = 10;

/// (dataset, run name, config hash without the seed, protocol) -> per-run (seed, the
/// [`FIGURES`], k, train seconds).
type Groups = BTreeMap<(String, String, String, String), Vec<(u64, [f64; FIGURES], usize, f64)>>;

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
    anyhow::ensure!(!runs.is_empty(), "no run folders given (e.g. tgcn report runs/eng-wiki/*)");
    let mut groups: Groups = BTreeMap::new();
    let mut synthetic = false;
    let mut no_test = Vec::new();
    for r in runs {
        // Anything that is not a run folder (a glob typo, a file) is an error, not a skip.
        let run = crate::run::RunDir::open(r)?;
        let Some(s) = Summary::read(r)? else {
            eprintln!("skipping {}: no summary.json (unfinished run)", r.display());
            continue;
        };
        if s.test.is_empty() {
            let why = if s.validation_only { "a validation-only run (tgcn sweep)" } else { "no test results" };
            no_test.push(format!("{} ({why})", r.display()));
            continue;
        }
        let cfg = run.config()?;
        let variant = crate::config::Config { seed: 0, ..cfg.clone() }.hash()?;
        synthetic |= s.synthetic;
        for t in &s.test {
            let m = [
                t.i2t.map_all,
                t.t2i.map_all,
                t.map_all_mean(),
                t.i2t.map_k,
                t.t2i.map_k,
                t.map_k_mean(),
                t.recall_mean(1),
                t.recall_mean(5),
                t.recall_mean(10),
                t.median_rank_mean(),
            ];
            // Label and pair relevance are different figures: never one row.
            let protocol = match t.relevance.as_str() {
                "label" => t.protocol.clone(),
                r => format!("{} ({r})", t.protocol),
            };
            let key = (s.dataset.clone(), cfg.name.clone(), variant[..8].to_string(), protocol);
            groups.entry(key).or_default().push((cfg.seed, m, t.i2t.k, s.train_seconds));
        }
    }
    let notes: String = no_test.iter().map(|r| format!("no test numbers: {r}\n")).collect();
    if groups.is_empty() && !notes.is_empty() {
        return Ok(format!("No test numbers to report: no run given was evaluated on the test split.\n{notes}"));
    }
    if groups.is_empty() {
        return Ok(format!(
            "No finished run among the {} given: none has a summary.json yet. Finish one with \
             `tgcn train --resume RUN`, or name finished runs.\n",
            runs.len()
        ));
    }
    let k = runs_k(&groups);
    let mut out = String::new();
    if synthetic {
        out += "(includes SYNTHETIC-data runs)\n\n";
    }
    out += &format!(
        "| dataset | run name (config) | protocol | seeds | i2t MAP@all | t2i MAP@all | mean MAP@all | i2t MAP@{k} | t2i MAP@{k} | mean MAP@{k} | R@1 | R@5 | R@10 | medR | train s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let mut warnings = Vec::new();
    for ((dataset, name, variant, protocol), rows) in &groups {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for r in rows {
            *counts.entry(r.0).or_default() += 1;
        }
        let seeds: Vec<String> =
            counts.iter().map(|(s, &c)| if c > 1 { format!("{s} ×{c} ⚠") } else { s.to_string() }).collect();
        for (seed, &c) in counts.iter().filter(|(_, &c)| c > 1) {
            let w = format!(
                "⚠ {name} ({variant}): seed {seed} is counted {c} times, so its ± is not seed variance (a rerun of the same run?)"
            );
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        let mut cells = Vec::new();
        for j in 0..FIGURES {
            let (m, s) = mean_std(&rows.iter().map(|r| r.1[j]).collect::<Vec<_>>());
            // One run has no spread to show; the median rank is a rank, shown to 0.1.
            let p = if j == FIGURES - 1 { 1 } else { 4 };
            cells.push(if rows.len() > 1 { format!("{m:.p$} ± {s:.p$}") } else { format!("{m:.p$}") });
        }
        let (t, _) = mean_std(&rows.iter().map(|r| r.3).collect::<Vec<_>>());
        out += &format!(
            "| {dataset} | {name} ({variant}) | {protocol} | {} | {} | {t:.0} |\n",
            seeds.join(","),
            cells.join(" | ")
        );
    }
    for w in warnings {
        out += &format!("\n{w}");
    }
    if !notes.is_empty() {
        out += &format!("\n{notes}");
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}
