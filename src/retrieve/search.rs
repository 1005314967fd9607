//! `tgcn search --run RUN`: one query (free text, an image file, or a dataset item)
//! against a run's splits, ranked by the trained scorer.
//!
//! A text query is cut into tokens as the dataset's texts were
//! ([`crate::prepare::tokenize_query`]) and counted on the run's vocabulary; words not in
//! it are reported, and a query with no known word is an error, not an empty list. An
//! image query goes through the backbone and preprocessing the run's features came from
//! (`data.from_images`), then the train-split normalisation and the image tower. An item
//! query (`test:ID`) takes the item's text (or, with `--side image`, its image) from the
//! same embedding the evaluation used.

use super::{Against, Database, Trained};
use crate::config::FromImages;
use crate::data::Split;
use crate::eval::ranking_order;
use crate::image::featurize::forward;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::Module;
use tch::{CModule, Device, Kind, Tensor};

/// Which modality of a dataset item is the query; the hits are of the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Text,
    Image,
}

#[derive(Debug, Clone)]
pub enum Query {
    Text(String),
    Image(PathBuf),
    Item { split: Split, id: String, side: Side },
}

impl Query {
    /// `test:ID`, `train:ID` or `val:ID`.
    pub fn item(spec: &str, side: Side) -> Result<Query> {
        let (split, id) =
            spec.split_once(':').with_context(|| format!("--item {spec:?}: expected SPLIT:ID, e.g. test:42"))?;
        let split = match split {
            "test" => Split::Test,
            "train" => Split::Train,
            "val" => Split::Val,
            _ => bail!("--item {spec:?}: the split must be test, train or val, not {split:?}"),
        };
        ensure!(!id.is_empty(), "--item {spec:?}: the id is empty");
        Ok(Query::Item { split, id: id.to_string(), side })
    }
}

/// What the query was, as the run saw it.
#[derive(Debug, Clone, Serialize)]
pub struct QueryInfo {
    /// `text`, `image` or `item`.
    pub kind: &'static str,
    /// The modality of the query (the hits are of the other one).
    pub side: Side,
    /// The query text, the image path, or `split:id`.
    pub query: String,
    /// Text queries: tokens found in the vocabulary, and those not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_words: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_words: Option<Vec<String>>,
    /// Item queries: the item's labels (relevance is sharing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub rank: usize,
    pub id: String,
    pub split: &'static str,
    pub score: f64,
    pub labels: Vec<String>,
    /// Shares a label with the query (under `eval.relevance: pair`: is the item query's own
    /// pair); None for a free-text or image-file query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relevant: Option<bool>,
    /// Text hits: the first tokens of the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// Image hits: the raw image file, where the run's features came from raw images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub run: PathBuf,
    pub query: QueryInfo,
    /// `t2i` or `i2t`.
    pub direction: &'static str,
    pub against: Vec<&'static str>,
    pub database_size: usize,
    pub hits: Vec<Hit>,
}

/// Raw image files of a run whose features came from `data.from_images`, keyed by the ids
/// a dataset may use for them ([`crate::prepare::image_stem`], as features are keyed, and
/// the file name, as Pascal's items are named; files sharing an id resolved as featurizing
/// resolved them); empty otherwise.
pub fn image_paths(t: &Trained) -> Result<HashMap<String, PathBuf>> {
    let Some(fi) = crate::prepare::from_images(&t.cfg)? else { return Ok(HashMap::new()) };
    let mut out = HashMap::new();
    for (id, p) in crate::prepare::dataset_images(&t.cfg, &fi, false)? {
        if let Some(name) = p.file_name() {
            out.insert(name.to_string_lossy().into_owned(), p.clone());
        }
        out.insert(crate::prepare::image_stem(&id), p);
    }
    Ok(out)
}

/// Raw features `[1, F]` of one image file, through the backbone and preprocessing of
/// `from_images`, exactly as `tgcn featurize` computes them.
pub fn image_file_features(fi: &FromImages, path: &Path, device: Device) -> Result<Tensor> {
    let cfg = &fi.featurize;
    ensure!(
        cfg.backbone.is_file(),
        "the run's backbone {} does not exist (run `make backbone`?)",
        cfg.backbone.display()
    );
    let pixels = cfg.preprocess().file(path).with_context(|| format!("cannot read image {}", path.display()))?;
    let mut module = CModule::load_on_device(&cfg.backbone, device)
        .with_context(|| format!("cannot load TorchScript backbone {}", cfg.backbone.display()))?;
    module.set_eval();
    let (v, dim) = forward(&module, &pixels, 1, cfg.crop as usize, device)?;
    Ok(Tensor::from_slice(&v).view([1, dim as i64]))
}

/// Runs one query against `against` and returns the best `top` hits.
pub fn search(t: &Trained, q: &Query, against: Against, top: usize) -> Result<SearchResult> {
    ensure!(top >= 1, "--top must be at least 1");
    let db = Database::build(t, against.splits());
    let finds_images = match q {
        Query::Text(_) => true,
        Query::Image(_) => false,
        Query::Item { side, .. } => *side == Side::Text,
    };
    let paths = if finds_images { image_paths(t)? } else { HashMap::new() };
    search_in(t, &db, &paths, q, against, top)
}

/// [`search`] against an already embedded database and the [`image_paths`] of the run
/// (reports run many queries: the database is embedded and the image folder read once).
pub fn search_in(
    t: &Trained,
    db: &Database,
    paths: &HashMap<String, PathBuf>,
    q: &Query,
    against: Against,
    top: usize,
) -> Result<SearchResult> {
    let data = &t.data;
    let m = &t.model;
    let names = |labels: &[usize]| labels.iter().map(|&l| data.classes[l].clone()).collect::<Vec<_>>();
    // The query as the ranker represents it `[1, D]` (or `[1, C]` posteriors), its side,
    // and its labels if it has any.
    let (emb, info, q_labels): (Tensor, QueryInfo, Option<Vec<usize>>) = match q {
        Query::Text(text) => {
            let tokens = crate::prepare::tokenize_query(&t.cfg, text);
            let (known, unknown): (Vec<String>, Vec<String>) =
                tokens.iter().cloned().partition(|w| data.vocab.get(w).is_some());
            if tokens.is_empty() {
                bail!(
                    "the query {text:?} has no words once tokenized as the dataset's texts are \
                     (stop words, punctuation and numbers are dropped); search with content words"
                );
            }
            if known.is_empty() {
                bail!(
                    "none of the query's {} words is in the run's vocabulary of {} words{}; nothing to search with",
                    tokens.len(),
                    data.vocab.len(),
                    if unknown.is_empty() {
                        String::new()
                    } else {
                        format!(" (unknown: {})", unknown.iter().take(20).cloned().collect::<Vec<_>>().join(", "))
                    }
                );
            }
            let mut row = vec![0f32; data.vocab.len()];
            data.vocab.bow_into(&tokens, &mut row);
            let bow = Tensor::from_slice(&row).view([1, row.len() as i64]).to_device(data.device);
            let emb = tch::no_grad(|| t.ranker.represent_text(&m.text.forward(&bow)));
            let info = QueryInfo {
                kind: "text",
                side: Side::Text,
                query: text.clone(),
                known_words: Some(known),
                unknown_words: Some(unknown),
                labels: None,
            };
            (emb, info, None)
        }
        Query::Image(path) => {
            let Some(fi) = crate::prepare::from_images(&t.cfg)? else {
                bail!(
                    "run {} has no record of how its image features were made (its config has no \
                     `data.from_images`: its features came with the dataset), so an image file cannot be \
                     embedded like them; query with --item or --text instead",
                    t.run.path.display()
                )
            };
            let raw = image_file_features(&fi, path, data.device)?.to_device(data.device);
            ensure!(
                raw.size()[1] as usize == data.image_dim,
                "the backbone gives {}-d features but the run was trained on {}-d ones",
                raw.size()[1],
                data.image_dim
            );
            let emb = tch::no_grad(|| t.ranker.represent_image(&m.image.forward(&data.image_norm.apply(&raw))));
            let info = QueryInfo {
                kind: "image",
                side: Side::Image,
                query: path.display().to_string(),
                known_words: None,
                unknown_words: None,
                labels: None,
            };
            (emb, info, None)
        }
        Query::Item { split, id, side } => {
            let st = data.split(*split);
            let Some(i) = st.ids.iter().position(|x| x == id) else {
                let example = match st.ids.first() {
                    Some(first) => format!("e.g. --item {}:{first}", split.name()),
                    None => "the split is empty".to_string(),
                };
                bail!("no item {id:?} in the {} split ({} items; {example})", split.name(), st.len())
            };
            // The item's row of the same embedding the database (and the evaluation) uses,
            // when its split is searched; otherwise its split embedded the same way.
            let row = db.rows.iter().position(|r| *r == (*split, i));
            let own;
            let (e, r) = match row {
                Some(r) => (&db.emb, r),
                None => {
                    own = t.ranker.represent(crate::eval::embed(m, st, crate::eval::EVAL_BATCH));
                    (&own, i)
                }
            };
            let emb = match side {
                Side::Text => e.text.narrow(0, r as i64, 1),
                Side::Image => e.image.narrow(0, r as i64, 1),
            };
            let labels = st.label_lists[i].clone();
            let info = QueryInfo {
                kind: "item",
                side: *side,
                query: format!("{}:{id}", split.name()),
                known_words: None,
                unknown_words: None,
                labels: Some(names(&labels)),
            };
            (emb, info, Some(labels))
        }
    };
    // Scores `[1, n_db]`, with the evaluation's orientation of the scorer.
    let scores = tch::no_grad(|| match info.side {
        Side::Text => t.ranker.matrix(m, &emb, &db.emb.image),
        Side::Image => t.ranker.matrix(m, &db.emb.text, &emb).tr(),
    });
    let order = ranking_order(&scores);
    let k = top.min(db.len());
    let idx: Vec<i64> = Vec::try_from(order.narrow(1, 0, k as i64).flatten(0, -1).to_device(Device::Cpu))?;
    let vals: Vec<f64> = Vec::try_from(
        scores
            .gather(1, &order.narrow(1, 0, k as i64), false)
            .flatten(0, -1)
            .to_kind(Kind::Double)
            .to_device(Device::Cpu),
    )?;
    // Under `eval.relevance: pair` an item query's one relevant hit is its own pair.
    let own = match q {
        Query::Item { split, id, .. }
            if t.cfg.eval.relevance_for(data.classes.len()) == crate::config::RelevanceMode::Pair =>
        {
            Some((split.name(), id.as_str()))
        }
        _ => None,
    };
    let hits = idx
        .iter()
        .zip(vals)
        .enumerate()
        .map(|(r, (&j, score))| {
            let (split, i) = db.rows[j as usize];
            let st = data.split(split);
            let labels = &st.label_lists[i];
            let relevant = match own {
                Some((s, id)) => q_labels.as_ref().map(|_| s == split.name() && id == st.ids[i]),
                None => q_labels.as_ref().map(|ql| ql.iter().any(|l| labels.contains(l))),
            };
            Hit {
                rank: r + 1,
                id: st.ids[i].clone(),
                split: split.name(),
                score,
                labels: names(labels),
                relevant,
                snippet: (info.side == Side::Image).then(|| st.snippets[i].clone()),
                image: (info.side == Side::Text).then(|| paths.get(&st.ids[i]).cloned()).flatten(),
            }
        })
        .collect();
    Ok(SearchResult {
        run: t.run.path.clone(),
        direction: if info.side == Side::Text { "t2i" } else { "i2t" },
        query: info,
        against: against.splits().iter().map(|s| s.name()).collect(),
        database_size: db.len(),
        hits,
    })
}

/// The result as a terminal table.
pub fn format_result(r: &SearchResult) -> String {
    let q = &r.query;
    let list = |words: &[String], sep: &str| printable(&words.join(sep));
    let mut out = format!(
        "{} query {:?} ({}) against {} ({} items)\n",
        q.kind,
        q.query,
        r.direction,
        r.against.join("+"),
        r.database_size
    );
    if let (Some(k), Some(u)) = (&q.known_words, &q.unknown_words) {
        out += &format!("  {} known words: {}\n", k.len(), list(k, " "));
        if !u.is_empty() {
            out += &format!("  {} not in the vocabulary (ignored): {}\n", u.len(), list(u, " "));
        }
    }
    if let Some(l) = &q.labels {
        out += &format!("  labels: {}\n", list(l, ", "));
    }
    out += &format!("{:>4}  {:<3} {:<24} {:>10}  {:<20} {}\n", "rank", "rel", "id", "score", "labels", "text / image");
    for h in &r.hits {
        let rel = match h.relevant {
            Some(true) => "+",
            Some(false) => "-",
            None => "",
        };
        let shown = h.snippet.clone().or_else(|| h.image.as_ref().map(|p| p.display().to_string())).unwrap_or_default();
        out += &format!(
            "{:>4}  {:<3} {:<24} {:>10.4}  {:<20} {}\n",
            h.rank,
            rel,
            printable(&format!("{}:{}", h.split, h.id)),
            h.score,
            list(&h.labels, ","),
            printable(&shown)
        );
    }
    out
}

/// `s` safe to print to a terminal: control characters (ESC, OSC and CSI sequences' lead
/// bytes, carriage returns, …) as `\u{…}` escapes, so that a dataset's ids, labels or
/// texts can neither clear the screen nor retitle the window.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}
