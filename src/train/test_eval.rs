//! The test evaluation of a trained model: both protocols (the configured one first), their
//! curves in `curves/`, and the plain-text table that training and `tgcn eval` print.

use crate::config::{Config, Protocol, RelevanceMode};
use crate::eval::{self, Ranker, Retrieval, EVAL_BATCH};
use crate::files::write_atomic;
use crate::model::Model;
use crate::prepare::Prepared;
use crate::run::summary::Summary;
use crate::run::RunDir;
use anyhow::{Context, Result};

/// Test retrieval under both protocols (the configured one first), with curves saved
/// to `curves/`.
pub fn test_report(cfg: &Config, m: &Model, ranker: &Ranker, data: &Prepared, run: &RunDir) -> Result<Vec<Retrieval>> {
    let out = test_retrievals(cfg, m, ranker, data)?;
    for r in &out {
        write_curves(run, r)?;
    }
    Ok(out)
}

/// Test retrieval under both protocols, the configured one first. Under `pair` relevance
/// only test vs test: a test item's pair is not in the train split.
pub fn test_retrievals(cfg: &Config, m: &Model, ranker: &Ranker, data: &Prepared) -> Result<Vec<Retrieval>> {
    let pair = cfg.eval.relevance_for(data.classes.len()) == RelevanceMode::Pair;
    let mut protocols = vec![cfg.eval.protocol];
    protocols.extend(
        [Protocol::TestVsTest, Protocol::TestVsTrain]
            .into_iter()
            .filter(|p| *p != cfg.eval.protocol && !(pair && *p == Protocol::TestVsTrain)),
    );
    protocols.into_iter().map(|p| eval::evaluate_test(m, ranker, data, &cfg.eval, p, EVAL_BATCH)).collect()
}

/// Writes the curves of `test` where the run folder allows; a read-only run keeps the
/// numbers already printed, with a warning.
pub(crate) fn write_curves_or_warn(run: &RunDir, test: &[Retrieval]) {
    for r in test {
        if let Err(e) = write_curves(run, r) {
            eprintln!("warning: curves of {} not written: {e:#}", r.protocol);
        }
    }
}

fn write_curves(run: &RunDir, r: &Retrieval) -> Result<()> {
    let dir = run.join("curves");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut s = String::from("k,precision_i2t,precision_t2i\n");
    for ((k, a), (_, b)) in r.i2t.precision_scope.iter().zip(&r.t2i.precision_scope) {
        s += &format!("{k},{a},{b}\n");
    }
    write_atomic(&run.join(&format!("curves/precision_scope_{}.csv", r.protocol)), s.as_bytes())?;
    let mut s = String::from("recall,precision_i2t,precision_t2i\n");
    for (j, (a, b)) in r.i2t.pr11.iter().zip(&r.t2i.pr11).enumerate() {
        s += &format!("{:.1},{a},{b}\n", j as f64 / 10.0);
    }
    write_atomic(&run.join(&format!("curves/pr11_{}.csv", r.protocol)), s.as_bytes())
}

/// A plain-text table of Recall@1/5/10 and the median rank in both directions.
pub fn recall_table(test: &[Retrieval]) -> String {
    let Some(first) = test.first() else { return String::new() };
    let ks: Vec<usize> = first.i2t.recall.iter().map(|(k, _)| *k).collect();
    if ks.is_empty() {
        return String::new(); // a summary written before these figures existed
    }
    let mut out =
        format!("instance-level (rank of the first relevant item; relevance: {})\n{:<14}", first.relevance, "protocol");
    for dir in ["i2t", "t2i"] {
        for k in &ks {
            out += &format!(" {:>8}", format!("{dir} R@{k}"));
        }
        out += &format!(" {:>9}", format!("{dir} medR"));
    }
    out.push('\n');
    for r in test {
        out += &format!("{:<14}", r.protocol);
        for d in [&r.i2t, &r.t2i] {
            for (_, v) in &d.recall {
                out += &format!(" {v:>8.4}");
            }
            out += &format!(" {:>9.1}", d.median_rank);
        }
        out.push('\n');
    }
    out
}

/// A plain-text table of test MAPs, then the instance-level figures.
pub fn report_table(dataset: &str, synthetic: bool, test: &[Retrieval], s: Option<&Summary>) -> String {
    let k = test.first().map_or(0, |r| r.i2t.k);
    let mut out = format!(
        "\n{dataset}{} — test retrieval (MAP; AP@k divides by relevant retrieved in the top k)\n",
        if synthetic { " [SYNTHETIC DATA]" } else { "" }
    );
    out += &format!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        "protocol",
        "i2t@all",
        "t2i@all",
        "mean@all",
        format!("i2t@{k}"),
        format!("t2i@{k}"),
        format!("mean@{k}")
    );
    for r in test {
        out += &format!(
            "{:<14} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>10.4}\n",
            r.protocol,
            r.i2t.map_all,
            r.t2i.map_all,
            r.map_all_mean(),
            r.i2t.map_k,
            r.t2i.map_k,
            r.map_k_mean()
        );
    }
    out += &recall_table(test);
    if let Some(s) = s {
        let untrained = s.untrained_test.as_ref().map_or("untrained: not tested".to_string(), |u| {
            format!("untrained {} mean MAP@all {:.4}", u.protocol, u.map_all_mean())
        });
        out += &format!(
            "{untrained}; best epoch {} (val {} {:.4}){}; {:.1}s training, {:.0} pairs/s\nrun folder: {}",
            s.best_epoch,
            s.selected_on.label(),
            s.best_val_map_mean,
            s.refit_epochs
                .map_or(String::new(), |e| format!(", tested after a refit on train ∪ validation for {e} epochs")),
            s.train_seconds,
            s.pairs_per_s,
            s.run.display()
        );
    }
    out
}
