//! `tgcn report --html RUN`: `RUN/report.html`, one self-contained page (inline CSS,
//! inline SVG plots, thumbnails as data URIs) that opens from disk.
//!
//! It holds the config summary, the test MAP table for both protocols, the training
//! curves from `metrics.csv`, the 11-point PR and precision@k curves from `curves/`, and
//! retrieval examples: seeded test text queries with their top-5 images and test image
//! queries with their top-5 texts, each hit marked relevant or not. The examples are
//! drawn in a seeded order and kept so that both successes (most of the top 5 relevant)
//! and failures (the first hit wrong) are shown.

use super::search::{image_paths, search_in, Hit, Query, SearchResult, Side};
use super::{Against, Database, Trained};
use crate::config::{Config, Schedule};
use crate::data::Split;
use crate::eval::Retrieval;
use crate::run::summary::Summary;
use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Examples per direction: successes and failures wanted.
const SUCCESSES: usize = 3;
const FAILURES: usize = 2;
const TOP: usize = 5;
const THUMB: u32 = 96;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for (j, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if j <= c.len() {
                out.push(A[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PNG thumbnail as a data URI, decoded by content with the featurizer's decoder
/// ([`crate::image::prep::decode_rgb`]: a PNG named `.jpg` shows); None when the file
/// cannot be decoded (the report counts those).
pub fn thumbnail(path: &Path) -> Option<String> {
    let bytes = crate::image::prep::read_image_file(path).ok()?;
    let rgb = crate::image::prep::decode_rgb(&bytes).ok()?;
    let img = image::DynamicImage::ImageRgb8(rgb).thumbnail(THUMB, THUMB);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).ok()?;
    Some(format!("data:image/png;base64,{}", base64(&png)))
}

/// The line on images that could not be shown (their paths stand in their place), if any.
fn undisplayable_note(thumbs: &HashMap<PathBuf, Option<String>>) -> Option<String> {
    let mut bad: Vec<String> =
        thumbs.iter().filter(|(_, t)| t.is_none()).map(|(p, _)| p.display().to_string()).collect();
    bad.sort();
    (!bad.is_empty()).then(|| {
        format!(
            "{} image(s) could not be decoded and are shown by their path: {}",
            bad.len(),
            crate::data::listed::first_few(&bad)
        )
    })
}

/// A named line of (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// One line chart as inline SVG: each series is (name, points).
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
    let (w, h, l, r, t, b) = (420.0, 250.0, 52.0, 24.0, 26.0, 40.0);
    let pts: Vec<&(f64, f64)> =
        series.iter().flat_map(|(_, p)| p).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape(title),
        w / 2.0,
        escape(title)
    );
    if pts.is_empty() {
        svg += "<text x=\"20\" y=\"60\" font-size=\"12\">no data</text></svg>";
        return svg;
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        pts.iter().map(|p| f(p)).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let (mut x0, mut x1) = fold(|p| p.0);
    let (mut y0, mut y1) = fold(|p| p.1);
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let sx = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let sy = |y: f64| h - b - (y - y0) / (y1 - y0) * (h - t - b);
    let _ = write!(
        svg,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        w - l - r,
        h - t - b
    );
    for k in 0..=4 {
        let fy = y0 + (y1 - y0) * k as f64 / 4.0;
        let fx = x0 + (x1 - x0) * k as f64 / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            l - 4.0,
            sy(fy) + 3.0,
            tick(fy),
            sx(fx),
            h - b + 13.0,
            tick(fx)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
        l + (w - l - r) / 2.0,
        h - 6.0,
        escape(x_label)
    );
    for (j, (name, p)) in series.iter().enumerate() {
        let c = COLORS[j % COLORS.len()];
        let path: Vec<String> = p
            .iter()
            .filter(|q| q.0.is_finite() && q.1.is_finite())
            .map(|q| format!("{:.1},{:.1}", sx(q.0), sy(q.1)))
            .collect();
        let _ =
            write!(svg, "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.8\" points=\"{}\"/>", path.join(" "));
        if path.len() <= 30 {
            for q in &path {
                let (x, y) = q.split_once(',').expect("x,y");
                let _ = write!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.2\" fill=\"{c}\"/>");
            }
        }
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"3\" fill=\"{c}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\">{}</text>",
            l + 8.0,
            t + 8.0 + 13.0 * j as f64,
            l + 22.0,
            t + 12.0 + 13.0 * j as f64,
            escape(name)
        );
    }
    svg + "</svg>"
}

fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `metrics.csv` as metric → [(step, value)].
fn read_metrics(path: &Path) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut r = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let field = |k: usize| {
            rec.get(k).with_context(|| format!("{}: row {} has {} fields", path.display(), i + 2, rec.len()))
        };
        let num = |k: usize| -> Result<f64> {
            let s = field(k)?;
            s.parse().with_context(|| format!("{}: row {}: {s:?} is not a number", path.display(), i + 2))
        };
        out.entry(field(2)?.to_string()).or_default().push((num(0)?, num(3)?));
    }
    Ok(out)
}

/// A `curves/*.csv` with columns x, i2t, t2i, as two series.
fn read_curve(path: &Path) -> Result<Vec<Series>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let v: Vec<f64> = rec
            .iter()
            .map(|s| s.parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{}: row {} is not three numbers", path.display(), i + 2))?;
        anyhow::ensure!(v.len() == 3, "{}: row {} has {} fields, want 3", path.display(), i + 2, v.len());
        a.push((v[0], v[1]));
        b.push((v[0], v[2]));
    }
    Ok(vec![("image→text".into(), a), ("text→image".into(), b)])
}

/// Examples of one direction: seeded order of the test items, keeping successes
/// (≥ 3 of the top 5 relevant) and failures (the first hit not relevant).
fn pick_examples(
    t: &Trained,
    db: &Database,
    paths: &HashMap<String, PathBuf>,
    side: Side,
    seed: u64,
) -> Result<Vec<SearchResult>> {
    let n = t.data.test.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ if side == Side::Text { 0x7465 } else { 0x696d }));
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for i in order {
        if ok.len() >= SUCCESSES && bad.len() >= FAILURES {
            break;
        }
        let q = Query::Item { split: Split::Test, id: t.data.test.ids[i].clone(), side };
        let r = search_in(t, db, paths, &q, Against::Test, TOP)?;
        let rel = r.hits.iter().filter(|h| h.relevant == Some(true)).count();
        if r.hits.first().is_some_and(|h| h.relevant == Some(false)) {
            if bad.len() < FAILURES {
                bad.push(r);
            }
        } else if rel * 5 >= 3 * r.hits.len() && ok.len() < SUCCESSES {
            ok.push(r);
        }
    }
    ok.extend(bad);
    Ok(ok)
}

fn hit_cell(h: &Hit, thumbs: &mut HashMap<PathBuf, Option<String>>) -> String {
    let mark = match h.relevant {
        Some(true) => "<span class=\"rel yes\">✓ relevant</span>",
        Some(false) => "<span class=\"rel no\">✗ not relevant</span>",
        None => "",
    };
    let body = if let Some(s) = &h.snippet {
        format!("<div class=\"snip\">{}</div>", escape(s))
    } else if let Some(p) = &h.image {
        match thumbs.entry(p.clone()).or_insert_with(|| thumbnail(p)) {
            Some(uri) => {
                format!("<img src=\"{uri}\" alt=\"{}\" title=\"{}\">", escape(&h.id), escape(&p.display().to_string()))
            }
            None => format!("<div class=\"noimg\">{}</div>", escape(&p.display().to_string())),
        }
    } else {
        format!("<div class=\"noimg\">image {}</div>", escape(&h.id))
    };
    format!(
        "<td class=\"hit {}\">{body}<div class=\"meta\">#{} {} · {:.3} · {}</div>{mark}</td>",
        match h.relevant {
            Some(true) => "good",
            Some(false) => "bad",
            None => "",
        },
        h.rank,
        escape(&h.id),
        h.score,
        escape(&h.labels.join(", "))
    )
}

fn examples_table(
    t: &Trained,
    results: &[SearchResult],
    paths: &HashMap<String, PathBuf>,
    side: Side,
    thumbs: &mut HashMap<PathBuf, Option<String>>,
) -> String {
    let mut s = String::from("<table class=\"examples\">");
    for r in results {
        let id = r.query.query.trim_start_matches("test:");
        let i = t.data.test.ids.iter().position(|x| x == id);
        let query_cell = match side {
            Side::Text => {
                format!("<div class=\"snip\">{}</div>", escape(i.map_or("", |i| t.data.test.snippets[i].as_str())))
            }
            Side::Image => match paths.get(id) {
                Some(p) => match thumbs.entry(p.clone()).or_insert_with(|| thumbnail(p)) {
                    Some(uri) => format!("<img src=\"{uri}\" alt=\"{}\">", escape(id)),
                    None => format!("<div class=\"noimg\">{}</div>", escape(&p.display().to_string())),
                },
                None => format!("<div class=\"noimg\">image {}</div>", escape(id)),
            },
        };
        let ok = r.hits.first().is_some_and(|h| h.relevant == Some(true));
        let _ = write!(
            s,
            "<tr class=\"example {}\"><th class=\"query\">{query_cell}<div class=\"meta\">query test:{} · {}</div><div class=\"verdict\">{}</div></th>",
            if ok { "success" } else { "failure" },
            escape(id),
            escape(&r.query.labels.clone().unwrap_or_default().join(", ")),
            if ok { "success" } else { "failure" }
        );
        for h in &r.hits {
            s += &hit_cell(h, thumbs);
        }
        s += "</tr>";
    }
    s + "</table>"
}

fn map_table(test: &[Retrieval], untrained: Option<&Retrieval>) -> String {
    let k = test.first().map_or(0, |r| r.i2t.k);
    let mut s = format!(
        "<table class=\"maps\"><thead><tr><th>protocol</th><th>i2t MAP@all</th><th>t2i MAP@all</th><th>mean MAP@all</th>\
         <th>i2t MAP@{k}</th><th>t2i MAP@{k}</th><th>mean MAP@{k}</th></tr></thead><tbody>"
    );
    let row = |name: &str, r: &Retrieval| {
        format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td><b>{:.4}</b></td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            escape(name),
            r.i2t.map_all,
            r.t2i.map_all,
            r.map_all_mean(),
            r.i2t.map_k,
            r.t2i.map_k,
            r.map_k_mean()
        )
    };
    for r in test {
        s += &row(&r.protocol, r);
    }
    if let Some(u) = untrained {
        s += &row(&format!("untrained, {}", u.protocol), u);
    }
    s += "</tbody></table>";
    s + &recall_table(test, untrained)
}

/// Recall@K and the median rank in both directions, one row per protocol.
fn recall_table(test: &[Retrieval], untrained: Option<&Retrieval>) -> String {
    let Some(first) = test.first() else { return String::new() };
    let ks: Vec<usize> = first.i2t.recall.iter().map(|(k, _)| *k).collect();
    if ks.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "<p class=\"meta\">Instance-level: the rank of each query's first relevant item (relevance: {}).</p>\
         <table class=\"recalls\"><thead><tr><th>protocol</th>",
        escape(&first.relevance)
    );
    for dir in ["i2t", "t2i"] {
        for k in &ks {
            s += &format!("<th>{dir} R@{k}</th>");
        }
        s += &format!("<th>{dir} median rank</th>");
    }
    s += "</tr></thead><tbody>";
    let row = |name: &str, r: &Retrieval| {
        let mut t = format!("<tr><td>{}</td>", escape(name));
        for d in [&r.i2t, &r.t2i] {
            for (_, v) in &d.recall {
                t += &format!("<td>{v:.4}</td>");
            }
            t += &format!("<td>{:.1}</td>", d.median_rank);
        }
        t + "</tr>"
    };
    for r in test {
        s += &row(&r.protocol, r);
    }
    if let Some(u) = untrained {
        s += &row(&format!("untrained, {}", u.protocol), u);
    }
    s + "</tbody></table>"
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
table.maps td,table.recalls td{text-align:right}table.kv td:first-child{font-weight:bold}\
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{border:1px solid #eee;background:#fff}\
table.examples td,table.examples th{width:150px;font-weight:normal;text-align:left}\
.snip{font-size:12px;font-family:ui-monospace,monospace;max-height:110px;overflow:hidden}\
.meta{font-size:11px;color:#555;margin-top:3px}.rel{font-size:11px;font-weight:bold}\
.rel.yes{color:#1a7f37}.rel.no{color:#c62828}td.good{background:#effaf1}td.bad{background:#fdf0f0}\
tr.failure th{background:#fff4e0}tr.success th{background:#eef4ff}.verdict{font-size:11px;font-weight:bold}\
.noimg{width:96px;height:72px;background:#eee;font-size:11px;display:flex;align-items:center;justify-content:center;text-align:center;word-break:break-all}\
pre{background:#f6f6f6;padding:8px;font-size:12px;max-height:400px;overflow:auto}";

/// Every loss term with a non-zero weight, as the run trained it.
pub fn loss_terms(cfg: &Config, multi_label: bool) -> String {
    let l = &cfg.loss;
    let mut terms = Vec::new();
    if l.global > 0.0 {
        terms.push(format!("global loss × {} (λ {}, margin {})", l.global, l.lambda, l.margin));
    }
    if l.contrastive > 0.0 {
        let tau = match l.learn_temperature {
            true => format!("learned, from {}", l.temperature),
            false => l.temperature.to_string(),
        };
        terms.push(format!("contrastive (in-batch InfoNCE) × {}, temperature τ {tau}", l.contrastive));
    }
    if l.label > 0.0 {
        let head = if multi_label { "sigmoid per class" } else { "softmax" };
        terms.push(format!("label classifier × {} ({head})", l.label));
    }
    if l.invariance > 0.0 {
        terms.push(format!("invariance × {}", l.invariance));
    }
    if l.l2 > 0.0 {
        terms.push(format!("L2 {}{}", l.l2, if l.l2_biases { " (biases too)" } else { "" }));
    }
    terms.join(" + ")
}

/// The optimizer, schedule, stopping rule and refit, as the run trained.
pub fn training_schedule(cfg: &Config) -> String {
    let t = &cfg.train;
    let mut parts = vec![format!("{} epochs, {:?} pairs, batch {}", t.epochs, t.pairs, t.batch_size)];
    if let Some(n) = t.steps_per_epoch {
        parts.push(format!("{n} steps per epoch"));
    }
    let optimizer =
        if t.weight_decay > 0.0 { format!("AdamW (weight decay {})", t.weight_decay) } else { "Adam".into() };
    let schedule = match t.schedule {
        Schedule::Cosine => "cosine".to_string(),
        Schedule::Exp => format!("exponential, × {} per epoch", t.lr_decay),
    };
    let warmup = if t.warmup_epochs > 0 { format!("{} warm-up epochs, then ", t.warmup_epochs) } else { String::new() };
    parts.push(format!("{optimizer}, lr {}: {warmup}{schedule}", t.lr));
    parts.push(match t.patience {
        Some(p) => format!("early stopping after {p} validations without gain (every {} epochs)", t.eval_every),
        None => format!("validated every {} epochs, no early stopping", t.eval_every),
    });
    if let Some(d) = t.ema {
        parts.push(format!("moving average of the weights (decay {d})"));
    }
    parts.push(if t.refit { "refit on train ∪ validation".into() } else { "no refit".into() });
    parts.join("; ")
}

/// Writes `RUN/report.html` and returns its path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let t = Trained::load(run_dir)?;
    let run = &t.run;
    let summary = Summary::read(&run.path)?.with_context(|| {
        format!(
            "{} has no summary.json: the run has not finished (continue it with `tgcn train --resume {}`)",
            run.path.display(),
            run.path.display()
        )
    })?;
    // Its examples would rank test items: a validation-only run must not be shown them.
    anyhow::ensure!(
        !summary.validation_only,
        "{} is a validation-only run (a sweep trial): it has no test numbers and its report would show test \
         items; train the chosen setting with `tgcn train` for a report",
        run.path.display()
    );
    let Summary { test, untrained_test: untrained, best_val_map_mean, selected_on, .. } = summary;
    let cfg = &t.cfg;

    let mut h = String::new();
    let title = format!(
        "{} — {}",
        t.data.dataset_name,
        run.path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
    );
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>", escape(&title));
    let _ = write!(h, "<h1>{}</h1>", escape(&title));
    if cfg.data.dataset == crate::config::DatasetKind::Synthetic {
        h += "<p><b>Synthetic data</b>: these numbers only show that the pipeline learns.</p>";
    }

    // Config summary.
    h += "<h2 id=\"config\">Configuration</h2><table class=\"kv\">";
    let cheb: Vec<String> = cfg.model.text.cheb.iter().map(|c| format!("K={} F={}", c.k, c.filters)).collect();
    for (k, v) in [
        ("run", run.path.display().to_string()),
        (
            "dataset",
            format!(
                "{} ({} classes; train {}, val {}{}, test {})",
                t.data.dataset_name,
                t.data.classes.len(),
                t.data.train_items(),
                t.data.val.len(),
                if t.data.val_in_train { " (trained on by the refit)" } else { "" },
                t.data.test.len()
            ),
        ),
        ("seed", cfg.seed.to_string()),
        (
            "text tower",
            format!("{:?}; Chebyshev layers [{}]; FC {:?}", cfg.model.text.kind, cheb.join(", "), cfg.model.text.fc),
        ),
        ("image tower", format!("hidden {:?}; embedding {}", cfg.model.image.hidden, cfg.model.embed_dim)),
        ("scorer", format!("{:?}", cfg.model.scorer)),
        ("ranking", t.ranker.describe()),
        (
            "vocabulary / graph",
            format!("{} words; k = {}; {} edges", t.data.vocab.len(), cfg.graph.k, t.data.graph.undirected_edges),
        ),
        ("loss", loss_terms(cfg, t.data.multi_label)),
        ("training", training_schedule(cfg)),
        ("checkpoint", format!("{} (best validation {} {:.4})", t.describe(), selected_on.label(), best_val_map_mean)),
    ] {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(&v));
    }
    h += "</table>";
    let _ = write!(h, "<details><summary>config.yaml</summary><pre>{}</pre></details>", escape(&cfg.to_yaml()?));

    // MAP table.
    h += "<h2 id=\"map\">Test retrieval (MAP)</h2>";
    h += &map_table(&test, untrained.as_ref());
    let relevance = match test.first().map(|r| r.relevance.as_str()) {
        Some("pair") => "a query's own pair (its one relevant item, so AP is the reciprocal rank)",
        _ => "sharing a label",
    };
    let _ = write!(
        h,
        "<p class=\"meta\">AP@k divides by the relevant items retrieved in the top k; MAP@all ranks the whole database. \
         Relevance: {relevance}.</p>"
    );

    // Training curves.
    h += "<h2 id=\"curves\">Training</h2><div class=\"plots\">";
    let metrics = read_metrics(&run.join("metrics.csv"))?;
    let series = |names: &[(&str, &str)]| -> Vec<Series> {
        names.iter().filter_map(|(m, label)| metrics.get(*m).map(|p| (label.to_string(), p.clone()))).collect()
    };
    h += &line_chart("training loss", "step", &series(&[("train/loss", "loss")]));
    h += &line_chart("score gap (mean S+ − mean S−)", "step", &series(&[("train/gap", "gap")]));
    h += &line_chart(
        "validation MAP@all",
        "step",
        &series(&[("val/map_mean", "mean"), ("val/map_i2t", "image→text"), ("val/map_t2i", "text→image")]),
    );
    h += &line_chart(
        "validation Recall@K (mean of both directions)",
        "step",
        &series(&[("val/r1_mean", "R@1"), ("val/r5_mean", "R@5"), ("val/r10_mean", "R@10")]),
    );
    h += "</div>";

    // PR and precision@k.
    h += "<h2 id=\"pr\">Precision–recall and precision@k</h2><div class=\"plots\">";
    for r in &test {
        let pr = run.join(&format!("curves/pr11_{}.csv", r.protocol));
        let ps = run.join(&format!("curves/precision_scope_{}.csv", r.protocol));
        if pr.is_file() {
            h += &line_chart(&format!("11-point PR, {}", r.protocol), "recall", &read_curve(&pr)?);
        }
        if ps.is_file() {
            h += &line_chart(&format!("precision@k, {}", r.protocol), "k", &read_curve(&ps)?);
        }
    }
    h += "</div>";

    // Retrieval examples.
    let db = Database::build(&t, &[Split::Test]);
    let mut thumbs = HashMap::new();
    let paths = image_paths(&t)?;
    let texts = pick_examples(&t, &db, &paths, Side::Text, cfg.seed)?;
    let images = pick_examples(&t, &db, &paths, Side::Image, cfg.seed)?;
    let _ = write!(
        h,
        "<h2 id=\"t2i\">Text → image examples</h2><p class=\"meta\">Test texts against the test images, top {TOP}; \
         drawn in a seeded order (seed {}), successes first, then failures (first hit wrong).</p>",
        cfg.seed
    );
    h += &examples_table(&t, &texts, &paths, Side::Text, &mut thumbs);
    let _ = write!(
        h,
        "<h2 id=\"i2t\">Image → text examples</h2><p class=\"meta\">Test images against the test texts, top {TOP}.</p>"
    );
    h += &examples_table(&t, &images, &paths, Side::Image, &mut thumbs);
    if let Some(note) = undisplayable_note(&thumbs) {
        eprintln!("report: {note}");
        let _ = write!(h, "<p class=\"meta noimg-count\">{}</p>", escape(&note));
    }
    let _ = writeln!(
        h,
        "<p class=\"meta\">Written by tgcn {} from {}.</p></body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(&run.path.display().to_string())
    );
    let out = run.join("report.html");
    crate::files::write_atomic(&out, h.as_bytes())?;
    Ok(out)
}
