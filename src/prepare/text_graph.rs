//! The cached part of preparation: the vocabulary and the kNN word graph over it, keyed
//! by everything they depend on (train tokens, text/vectors/graph settings, seed).

use crate::config::Config;
use crate::data::Dataset;
use crate::graph::knn::cosine_knn;
use crate::graph::word_graph::Graph;
use crate::graph::{Combine, MissingVectors, Relation};
use crate::text::vocab::Vocab;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;
use tch::Device;

/// Graph entries (i, j, w) over vocabulary indices.
type Entries = Vec<(usize, usize, f32)>;

/// The cached part of preparation: vocabulary and word graph (their inputs are the train
/// tokens and the text/vectors/graph settings; word vectors and kNN are the slow steps).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextGraph {
    pub words: Vec<String>,
    pub counts: Vec<usize>,
    /// Graph entries (i, j, w) over vocabulary indices, symmetric.
    pub entries: Vec<(usize, usize, f32)>,
    /// With `graph.combine: separate`, each relation's own entries, in `graph.relations`
    /// order; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relation_entries: Vec<Vec<(usize, usize, f32)>>,
    /// Vocabulary words without a vector: dropped, or kept as isolated vertices.
    pub without_vector: usize,
    pub vector_dim: usize,
}

impl TextGraph {
    /// What the rest of preparation relies on, checked on whatever a cache file yields:
    /// a non-empty vocabulary of distinct words with one count each, graph entries
    /// between vocabulary words, and finite, non-negative weights. `what` names the source.
    pub fn validate(&self, what: &str) -> Result<()> {
        let v = self.words.len();
        ensure!(v > 0, "{what}: the vocabulary is empty");
        ensure!(self.counts.len() == v, "{what}: {} counts for {v} words", self.counts.len());
        let mut seen = std::collections::HashSet::with_capacity(v);
        if let Some(w) = self.words.iter().find(|w| !seen.insert(w.as_str())) {
            bail!("{what}: the word {w:?} is in the vocabulary twice");
        }
        for entries in std::iter::once(&self.entries).chain(&self.relation_entries) {
            for (k, &(i, j, w)) in entries.iter().enumerate() {
                ensure!(i < v && j < v, "{what}: graph entry {k} is ({i}, {j}) but the vocabulary has {v} words");
                ensure!(w.is_finite() && w >= 0.0, "{what}: graph entry {k} ({i}, {j}) has weight {w}");
            }
        }
        Ok(())
    }
}

/// Reads a text-graph cache file: `Ok(None)` when there is none, an error when it cannot
/// be read, is not a [`TextGraph`] in JSON or fails [`TextGraph::validate`].
pub fn read_text_graph_cache(path: &Path) -> Result<Option<TextGraph>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read cache {}", path.display())),
    };
    let tg: TextGraph =
        serde_json::from_str(&text).with_context(|| format!("{} is not a text-graph cache", path.display()))?;
    tg.validate(&path.display().to_string())?;
    Ok(Some(tg))
}

/// A hex key over everything the text graph depends on.
fn cache_key(cfg: &Config, ds: &Dataset) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"tgcn-text-graph-v1\0");
    h.update(serde_yaml::to_string(&(&cfg.text, &cfg.vectors, &cfg.graph, cfg.seed))?.as_bytes());
    for t in fitting_texts(cfg, ds) {
        for w in t {
            h.update(w.as_bytes());
            h.update(b" ");
        }
        h.update(b"\n");
    }
    if cfg.text.transductive {
        // Train counts are stored beside a vocabulary fitted on every split.
        h.update(ds.train.len().to_le_bytes());
    }
    if let Some(wv) = &ds.word_vectors {
        h.update(wv.words.join(" ").as_bytes());
        h.update(wv.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    Ok(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

/// The texts the vocabulary, the skip-gram vectors and the co-occurrences come from: the
/// train split, or with `text.transductive` every split's texts, train, validation then
/// test. Only tokens are read; no label of any split is.
fn fitting_texts<'a>(cfg: &Config, ds: &'a Dataset) -> Vec<&'a [String]> {
    let splits: &[&[usize]] = if cfg.text.transductive { &[&ds.train, &ds.val, &ds.test] } else { &[&ds.train] };
    splits.iter().flat_map(|s| s.iter().map(|&i| ds.items[i].tokens.as_slice())).collect()
}

fn build_text_graph(cfg: &Config, ds: &Dataset, device: Device) -> Result<TextGraph> {
    let train_texts: Vec<&[String]> = ds.train.iter().map(|&i| ds.items[i].tokens.as_slice()).collect();
    let texts = fitting_texts(cfg, ds);
    let vocab = Vocab::fit(texts.iter().copied(), cfg.text.min_freq, cfg.text.max_vocab);
    ensure!(
        !vocab.is_empty(),
        "the vocabulary is empty: no {} word occurs `text.min_freq` = {} times",
        if cfg.text.transductive { "" } else { "train" },
        cfg.text.min_freq
    );
    // The counts stay train-split counts (what `model.text.own_input_min_count` reads): a
    // word only the other splits have counts 0.
    let vocab = if cfg.text.transductive { vocab.recount(train_texts.iter().copied()) } else { vocab };
    let relations = &cfg.graph.relations;
    let KnnRelation { vocab, mut entries, without_vector, vector_dim } = if relations.contains(&Relation::Knn) {
        knn_relation(cfg, ds, &texts, vocab, device)?
    } else {
        KnnRelation { vocab, entries: Vec::new(), without_vector: 0, vector_dim: 0 }
    };
    let mut counts = vec![("knn", entries.iter().filter(|e| e.0 < e.1).count())];
    let mut separate: Vec<(Relation, Entries)> = vec![(Relation::Knn, entries.clone())];
    let mut lists: Vec<(Relation, Vec<Vec<usize>>)> = Vec::new();
    if relations.contains(&Relation::Pmi) {
        let ids: Vec<Vec<usize>> = texts.iter().map(|t| t.iter().filter_map(|w| vocab.get(w)).collect()).collect();
        lists.push((Relation::Pmi, crate::graph::pmi::pmi_neighbours(&ids, vocab.len(), &cfg.graph.pmi)?));
    }
    if relations.contains(&Relation::Wordnet) {
        lists.push((Relation::Wordnet, crate::graph::wordnet::wordnet_neighbours(&vocab.words, &cfg.graph.wordnet)?));
    }
    // The union of the neighbour lists (SCKR): an edge already present keeps its weight.
    let mut have: std::collections::HashSet<(usize, usize)> = entries.iter().map(|e| (e.0, e.1)).collect();
    for (rel, l) in &lists {
        let mut own = std::collections::HashSet::new();
        for (i, js) in l.iter().enumerate() {
            for &j in js {
                own.insert((i.min(j), i.max(j)));
                if i != j && have.insert((i, j)) {
                    have.insert((j, i));
                    entries.push((i, j, 1.0));
                    entries.push((j, i, 1.0));
                }
            }
        }
        counts.push((rel.name(), own.len()));
        let mut e: Vec<(usize, usize, f32)> =
            own.iter().filter(|p| p.0 != p.1).flat_map(|&(i, j)| [(i, j, 1.0), (j, i, 1.0)]).collect();
        e.sort_by_key(|e| (e.0, e.1));
        separate.push((*rel, e));
    }
    // Each relation's own graph, in the order `graph.relations` names them.
    let relation_entries = match cfg.graph.combine {
        Combine::Separate => relations
            .iter()
            .map(|r| separate.iter().find(|(s, _)| s == r).map(|(_, e)| e.clone()).unwrap_or_default())
            .collect(),
        Combine::Union => Vec::new(),
    };
    entries.sort_by_key(|e| (e.0, e.1));
    if relations.len() > 1 || relations[0] != Relation::Knn {
        let shown: Vec<String> = counts
            .iter()
            .filter(|(n, _)| relations.iter().any(|r| r.name() == *n))
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        let union = entries.iter().filter(|e| e.0 < e.1).count();
        eprintln!("word graph edges by relation: {}; union {union}", shown.join(", "));
    }
    Ok(TextGraph {
        words: vocab.words.clone(),
        counts: vocab.counts.clone(),
        entries,
        relation_entries,
        without_vector,
        vector_dim,
    })
}

/// The kNN relation over the word vectors.
struct KnnRelation {
    /// The vocabulary, less the words without a vector under `missing_vectors: drop`.
    vocab: Vocab,
    entries: Vec<(usize, usize, f32)>,
    without_vector: usize,
    vector_dim: usize,
}

fn knn_relation(cfg: &Config, ds: &Dataset, texts: &[&[String]], vocab: Vocab, device: Device) -> Result<KnnRelation> {
    let wv = crate::text::wordvec::vectors_for(&cfg.vectors, &vocab.words, texts, ds.word_vectors.as_ref(), cfg.seed)?;
    let coverage = crate::text::wordvec::Coverage::of(&vocab.words, &wv);
    eprintln!("word vectors ({}): {coverage}", cfg.vectors.source.name());
    let idx = wv.index();
    let has: Vec<bool> = vocab.words.iter().map(|w| idx.contains_key(w.as_str())).collect();
    let without = has.iter().filter(|&&h| !h).count();
    let vocab = match cfg.graph.missing_vectors {
        MissingVectors::Drop if without > 0 => vocab.retain(&has),
        _ => vocab,
    };
    // Vertices with a vector take part in the kNN search; the rest stay isolated.
    let with: Vec<usize> = (0..vocab.len()).filter(|&i| idx.contains_key(vocab.words[i].as_str())).collect();
    ensure!(!with.is_empty(), "no vocabulary word has a word vector ({})", cfg.vectors.source.name());
    if cfg.graph.k >= with.len() {
        bail!("`graph.k` = {} must be below the number of words with a vector ({})", cfg.graph.k, with.len());
    }
    let mut vectors = Vec::with_capacity(with.len() * wv.dim);
    for &i in &with {
        vectors.extend_from_slice(wv.row(idx[vocab.words[i].as_str()]));
    }
    let knn = cosine_knn(&vectors, with.len(), wv.dim, cfg.graph.k, cfg.graph.knn_chunk, device)?;
    let sub = Graph::from_knn(&knn, cfg.graph.weighting, cfg.graph.self_loops);
    let mut entries: Vec<(usize, usize, f32)> = sub.entries.iter().map(|&(i, j, w)| (with[i], with[j], w)).collect();
    if cfg.graph.self_loops {
        let isolated = (0..vocab.len()).filter(|i| !idx.contains_key(vocab.words[*i].as_str()));
        entries.extend(isolated.map(|i| (i, i, 1.0)));
    }
    entries.sort_by_key(|e| (e.0, e.1));
    Ok(KnnRelation { vocab, entries, without_vector: without, vector_dim: wv.dim })
}

/// The text graph from `cache/text-graph-<key>.json` when present, else built and stored
/// there, under the lock `locks/text-graph-<key>.lock` that concurrent runs share.
pub fn text_graph(cfg: &Config, ds: &Dataset, device: Device, cache: Option<&Path>) -> Result<TextGraph> {
    let Some(dir) = cache else {
        return build_text_graph(cfg, ds, device);
    };
    let key = cache_key(cfg, ds)?;
    let path = dir.join(format!("text-graph-{key}.json"));
    // Another run preparing the same graph writes it once; this one then reads it.
    let lock = dir.join("locks").join(format!("text-graph-{key}.lock"));
    let _lock = crate::files::lock(&lock, "this vocabulary and word graph")?;
    match read_text_graph_cache(&path) {
        Ok(Some(tg)) => {
            eprintln!("vocabulary and word graph from cache {}", path.display());
            return Ok(tg);
        }
        Ok(None) => {}
        Err(e) => eprintln!("ignoring unusable cache ({e:#}); rebuilding it"),
    }
    let tg = build_text_graph(cfg, ds, device)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create cache folder {}", dir.display()))?;
    crate::files::write_atomic(&path, serde_json::to_string(&tg)?.as_bytes())?;
    Ok(tg)
}
