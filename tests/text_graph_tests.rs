//! Vocabulary, kNN graph and Laplacian properties.

use tch::{Device, Kind, Tensor};
use tgcn::graph::knn::cosine_knn;
use tgcn::graph::laplacian::LambdaMax;
use tgcn::graph::laplacian::{normalized_laplacian, power_iteration, rescaled_laplacian};
use tgcn::graph::word_graph::EdgeWeighting;
use tgcn::graph::word_graph::Graph;
use tgcn::text::vocab::Vocab;

fn toks(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn vocab_fit_orders_and_filters() {
    let texts = [toks("b a c a"), toks("a b d"), toks("e")];
    let v = Vocab::fit(texts.iter().map(|t| t.as_slice()), 2, None);
    assert_eq!(v.words, vec!["a", "b"]); // a:3, b:2; c, d, e below min_freq
    let v = Vocab::fit(texts.iter().map(|t| t.as_slice()), 1, Some(3));
    assert_eq!(v.words, vec!["a", "b", "c"]); // ties (c, d, e: 1) broken alphabetically
    let (m, oov, total) = v.bow_matrix([toks("a a z c").as_slice()]);
    assert_eq!(m, vec![2.0, 0.0, 1.0]);
    assert_eq!((oov, total), (1, 4));
}

fn random_graph(n: usize, dim: usize, k: usize, seed: i64) -> Graph {
    tch::manual_seed(seed);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(n * dim) as i64], (Kind::Float, Device::Cpu))).unwrap();
    let knn = cosine_knn(&x, n, dim, k, 7, Device::Cpu).unwrap();
    Graph::from_knn(&knn, EdgeWeighting::Binary, false)
}

#[test]
fn knn_matches_brute_force_and_chunking() {
    tch::manual_seed(3);
    let (n, d, k) = (50usize, 6usize, 4usize);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(n * d) as i64], (Kind::Float, Device::Cpu))).unwrap();
    let a = cosine_knn(&x, n, d, k, 7, Device::Cpu).unwrap();
    let b = cosine_knn(&x, n, d, k, 1000, Device::Cpu).unwrap();
    assert_eq!(a.indices, b.indices, "chunk size must not change the result");
    let cos = |i: usize, j: usize| {
        let (u, v) = (&x[i * d..(i + 1) * d], &x[j * d..(j + 1) * d]);
        let dot: f32 = u.iter().zip(v).map(|(p, q)| p * q).sum();
        dot / (u.iter().map(|p| p * p).sum::<f32>().sqrt() * v.iter().map(|p| p * p).sum::<f32>().sqrt())
    };
    for i in 0..n {
        let mut all: Vec<(f32, usize)> = (0..n).filter(|&j| j != i).map(|j| (cos(i, j), j)).collect();
        all.sort_by(|p, q| q.0.partial_cmp(&p.0).unwrap());
        let want: Vec<usize> = all[..k].iter().map(|p| p.1).collect();
        assert_eq!(&a.indices[i * k..(i + 1) * k], want.as_slice(), "row {i}");
    }
    assert!(cosine_knn(&x, n, d, n, 7, Device::Cpu).is_err(), "k >= n must be an error");
}

#[test]
fn graph_is_symmetric_without_self_loops() {
    let g = random_graph(80, 8, 5, 1);
    let set: std::collections::HashSet<(usize, usize)> = g.entries.iter().map(|e| (e.0, e.1)).collect();
    for &(i, j, w) in &g.entries {
        assert_ne!(i, j, "self loop");
        assert!(set.contains(&(j, i)), "edge {i}-{j} not symmetric");
        assert_eq!(w, 1.0);
    }
    assert!(g.degrees().iter().all(|&d| d >= 5), "every vertex keeps its k neighbours");
    let s = g.stats();
    assert_eq!(s.undirected_edges * 2, g.entries.len());
    assert_eq!(s.isolated, 0);
}

#[test]
fn self_loops_and_gaussian_weights() {
    tch::manual_seed(2);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([240], (Kind::Float, Device::Cpu))).unwrap();
    let knn = cosine_knn(&x, 40, 6, 3, 16, Device::Cpu).unwrap();
    let g = Graph::from_knn(&knn, EdgeWeighting::Gaussian, true);
    assert_eq!(g.stats().self_loops, 40);
    for &(i, j, w) in &g.entries {
        if i == j {
            assert_eq!(w, 1.0);
        } else {
            assert!(w > 0.0 && w < 1.0, "gaussian weight {w}");
        }
    }
}

fn eigenvalues(dense: Vec<f64>, n: usize) -> Vec<f64> {
    let t = Tensor::from_slice(&dense).view([n as i64, n as i64]);
    Vec::try_from(t.linalg_eigvalsh("L")).unwrap()
}

#[test]
fn rescaled_spectrum_lies_in_unit_interval() {
    let g = random_graph(60, 5, 4, 5);
    for lm in [LambdaMax::Fixed, LambdaMax::PowerIteration] {
        let (lt, lmax) = rescaled_laplacian(&g, lm).unwrap();
        let ev = eigenvalues(lt.to_dense(), g.n);
        let (lo, hi) = (ev[0], ev[ev.len() - 1]);
        assert!(lo >= -1.0 - 1e-9 && hi <= 1.0 + 1e-9, "{lm:?}: spectrum [{lo}, {hi}]");
        if lm == LambdaMax::PowerIteration {
            // The estimate is the true λmax (to the safety margin), so L̃ reaches ~1.
            let true_max = *eigenvalues(normalized_laplacian(&g).unwrap().to_dense(), g.n).last().unwrap();
            assert!((lmax / 1.0001 - true_max).abs() < 1e-5, "power {lmax} vs eig {true_max}");
            assert!(hi > 0.999, "{hi}");
        }
    }
}

#[test]
fn laplacian_is_symmetric_with_unit_diagonal() {
    let g = random_graph(30, 4, 3, 9);
    let l = normalized_laplacian(&g).unwrap();
    let d = l.to_dense();
    for i in 0..g.n {
        assert!((d[i * g.n + i] - 1.0).abs() < 1e-12);
        for j in 0..g.n {
            assert!((d[i * g.n + j] - d[j * g.n + i]).abs() < 1e-12);
        }
    }
    // Rows sorted and unique: the COO data is coalesced.
    let keys: Vec<(i64, i64)> = l.rows.iter().zip(&l.cols).map(|(&r, &c)| (r, c)).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let lmax = power_iteration(&l, 1000, 1e-10);
    assert!(lmax <= 2.0 + 1e-9);
}

#[test]
fn laplacian_of_an_out_of_range_or_non_finite_entry_is_an_error() {
    let ok = Graph { n: 3, entries: vec![(0, 1, 1.0), (1, 0, 1.0)] };
    assert!(rescaled_laplacian(&ok, LambdaMax::Fixed).is_ok());
    for (entry, want) in [
        ((2, 7, 1.0), ["(2, 7)", "3 vertices"]),
        ((9, 0, 1.0), ["(9, 0)", "3 vertices"]),
        ((1, 2, f32::INFINITY), ["(1, 2)", "inf"]),
        ((1, 2, f32::NAN), ["(1, 2)", "NaN"]),
    ] {
        let mut g = ok.clone();
        g.entries.push(entry);
        let e = format!("{:#}", rescaled_laplacian(&g, LambdaMax::Fixed).unwrap_err());
        assert!(want.iter().all(|w| e.contains(w)), "{entry:?}: {e}");
    }
}

fn small_synthetic() -> tgcn::config::Config {
    use tgcn::config::{Config, Layer};
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut layers = vec![Layer::from_file(&root.join("configs/synthetic.yaml")).unwrap()];
    for s in [
        "data.synthetic.train=80",
        "data.synthetic.val=20",
        "data.synthetic.test=20",
        "data.synthetic.words_per_class=8",
        "data.synthetic.shared_words=20",
        "train.batch_size=16",
        "device=cpu",
    ] {
        layers.push(Layer::from_set(s).unwrap());
    }
    Config::from_layers(&layers).unwrap()
}

/// The one cache file under `dir`, parsed.
fn cache_file(dir: &std::path::Path) -> (std::path::PathBuf, serde_json::Value) {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("text-graph-"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let v = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    (files[0].clone(), v)
}

#[test]
fn valid_json_cache_with_bad_contents_is_rebuilt() {
    let dir = crate::common::temp_dir("text_graph_bad_cache");
    let cfg = small_synthetic();
    let first = tgcn::prepare::prepare(&cfg, Device::Cpu, Some(&dir)).unwrap();
    let (path, good) = cache_file(&dir);
    let v = good["words"].as_array().unwrap().len();
    type Edit = fn(&mut serde_json::Value, usize);
    let edits: [(&str, Edit); 5] = [
        ("index past the vocabulary", |c, v| c["entries"][0][1] = (v + 5).into()),
        ("row past the vocabulary", |c, v| c["entries"][3][0] = v.into()),
        ("weight beyond f32", |c, _| c["entries"][0][2] = 1e39.into()),
        ("fewer counts than words", |c, _| {
            c["counts"].as_array_mut().unwrap().pop();
        }),
        ("no words", |c, _| {
            c["words"] = serde_json::json!([]);
            c["counts"] = serde_json::json!([]);
            c["entries"] = serde_json::json!([]);
        }),
    ];
    for (what, edit) in edits {
        let mut bad = good.clone();
        edit(&mut bad, v);
        std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
        let again = tgcn::prepare::prepare(&cfg, Device::Cpu, Some(&dir)).unwrap();
        assert_eq!(again.laplacian, first.laplacian, "{what}: the rebuilt graph differs");
        assert_eq!(again.vocab.words, first.vocab.words, "{what}");
        assert_eq!(cache_file(&dir).1, good, "{what}: the cache was not rewritten");
    }
}

/// `text.max_tokens`: each bag of words counts only the first N tokens of its text (in every
/// split, and in a search query), while the vocabulary and graph stay those of full texts.
#[test]
fn max_tokens_truncates_bags_of_words_only() {
    let cfg = |extra: &[&str]| {
        let mut layers = vec![tgcn::config::Layer::from_file(
            &crate::common::project_root().join("configs/synthetic.yaml"),
        )
        .unwrap()];
        for s in [
            "device=cpu",
            "data.synthetic.train=120",
            "data.synthetic.val=40",
            "data.synthetic.test=60",
            "train.batch_size=32",
        ]
        .iter()
        .chain(extra)
        {
            layers.push(tgcn::config::Layer::from_set(s).unwrap());
        }
        tgcn::config::Config::from_layers(&layers).unwrap()
    };
    let (full_cfg, short_cfg) = (cfg(&[]), cfg(&["text.max_tokens=3"]));
    let full = tgcn::prepare::prepare(&full_cfg, Device::Cpu, None).unwrap();
    let short = tgcn::prepare::prepare(&short_cfg, Device::Cpu, None).unwrap();
    assert_eq!(full.vocab.len(), short.vocab.len(), "same vocabulary");
    assert_eq!(full.laplacian.vals, short.laplacian.vals, "same graph");
    let ds = tgcn::data::synthetic::generate(full_cfg.data.synthetic.as_ref().unwrap(), full_cfg.seed);
    for (sp, split) in [(tgcn::data::Split::Test, &short.test), (tgcn::data::Split::Train, &short.train)] {
        let sums: Vec<f64> = Vec::try_from(split.bow.sum_dim_intlist(1, false, Kind::Double)).unwrap();
        for (row, &i) in ds.split(sp).iter().enumerate() {
            // By hand: the first 3 tokens that are in the vocabulary.
            let want = ds.items[i].tokens.iter().take(3).filter(|t| full.vocab.get(t).is_some()).count();
            assert_eq!(sums[row] as usize, want, "{sp:?} row {row}");
        }
    }
    let q = tgcn::prepare::tokenize_query(&short_cfg, "a b c d e");
    assert_eq!(q, ["a", "b", "c"]);
}

/// The graph and L̃ built by sorting triplets equal a map-based construction written here
/// (edge both ways, the later write of an edge wins; L = I − D^−1/2 A D^−1/2 dense;
/// L̃ = L − I for λmax = 2), with Gaussian weights and self-loops so that every entry differs.
#[test]
fn graph_and_laplacian_match_a_map_based_reference() {
    use std::collections::BTreeMap;
    tch::manual_seed(11);
    let (n, k) = (30, 4);
    let x: Vec<f32> = Vec::try_from(Tensor::randn([(n * 5) as i64], (Kind::Float, Device::Cpu))).unwrap();
    let knn = cosine_knn(&x, n, 5, k, 8, Device::Cpu).unwrap();
    for (weighting, self_loops) in [(EdgeWeighting::Binary, false), (EdgeWeighting::Gaussian, true)] {
        let g = Graph::from_knn(&knn, weighting, self_loops);
        let plain = Graph::from_knn(&knn, EdgeWeighting::Gaussian, false);
        let mut m: BTreeMap<(usize, usize), f32> = BTreeMap::new();
        for i in 0..n {
            for r in 0..k {
                let j = knn.indices[i * k + r];
                let w = match weighting {
                    EdgeWeighting::Binary => 1.0,
                    // The weights themselves come from from_knn (σ is its business).
                    EdgeWeighting::Gaussian => plain.entries.iter().find(|e| (e.0, e.1) == (i, j)).unwrap().2,
                };
                m.insert((i, j), w);
                m.insert((j, i), w);
            }
        }
        if self_loops {
            for i in 0..n {
                m.insert((i, i), 1.0);
            }
        }
        let want: Vec<(usize, usize, f32)> = m.into_iter().map(|((i, j), w)| (i, j, w)).collect();
        if weighting == EdgeWeighting::Binary {
            assert_eq!(g.entries, want, "binary graph");
        } else {
            let keys = |v: &[(usize, usize, f32)]| v.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>();
            assert_eq!(keys(&g.entries), keys(&want), "gaussian graph: the same edges");
        }
        let mut deg = vec![0.0f64; n];
        g.entries.iter().for_each(|&(i, _, w)| deg[i] += w as f64);
        let mut dense = vec![0.0f64; n * n];
        for i in 0..n {
            dense[i * n + i] = 1.0;
        }
        for &(i, j, w) in &g.entries {
            dense[i * n + j] -= w as f64 / (deg[i].sqrt() * deg[j].sqrt());
        }
        let l = normalized_laplacian(&g).unwrap();
        let diff = l.to_dense().iter().zip(&dense).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-12, "L differs by {diff}");
        let (lt, _) = rescaled_laplacian(&g, LambdaMax::Fixed).unwrap();
        (0..n).for_each(|i| dense[i * n + i] -= 1.0);
        let diff = lt.to_dense().iter().zip(&dense).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-12, "L̃ differs by {diff}");
        let sorted = lt.rows.iter().zip(&lt.cols).collect::<Vec<_>>();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "L̃ entries sorted, no duplicates");
        assert!(lt.vals.iter().all(|&v| v != 0.0), "no stored zeros");
    }
}

/// A small labelled corpus: train texts about animals and vehicles (with words that the
/// WordNet fixture relates: dog, puppy, canine, geese, goose), validation and test texts
/// with words the train split lacks ("zebra", "stripes").
fn small_dataset() -> tgcn::data::Dataset {
    let texts = [
        ("dog puppy pet fur dog canine", 0),
        ("dog pet fur bark puppy canine", 0),
        ("canine pet fur puppy dog geese", 0),
        ("car road wheel engine car bus", 1),
        ("bus road wheel engine bus car goose", 1),
        ("car wheel engine road drive bus", 1),
        ("dog fur zebra", 0),
        ("car bus road zebra zebra", 1),
        ("dog fur zebra stripes", 0),
    ];
    let items = texts
        .iter()
        .enumerate()
        .map(|(i, (t, c))| tgcn::data::Item { id: format!("t{i}"), tokens: toks(t), labels: vec![*c] })
        .collect();
    tgcn::data::Dataset {
        name: "small".into(),
        classes: vec!["animal".into(), "vehicle".into()],
        multi_label: false,
        items,
        images: vec![0.0; 9],
        image_dim: 1,
        train: (0..6).collect(),
        val: vec![6],
        test: vec![7, 8],
        word_vectors: None,
    }
}

fn small_cfg(sets: &[&str]) -> tgcn::config::Config {
    let mut all = vec![
        "vectors.source=skipgram",
        "vectors.skipgram={dim: 8, window: 2, negatives: 2, epochs: 3, lr: 0.025, min_count: 1, sample: 0.0}",
        "graph.k=2",
        "text.min_freq=1",
    ];
    all.extend_from_slice(sets);
    crate::common::dataset_cfg("synthetic", &all)
}

/// `text.transductive` fits the vocabulary on every split's texts (the test-only "zebra"
/// and "stripes" become words, with train count 0) and reads no label: giving the validation
/// and test items other labels, or none, leaves the vocabulary and graph unchanged.
#[test]
fn transductive_text_never_reads_labels_outside_train() {
    let cfg = small_cfg(&[
        "text.transductive=true",
        "graph.relations=[knn, pmi]",
        "graph.pmi={window: 3, k: 2, min_count: 1}",
    ]);
    let ds = small_dataset();
    let tg = tgcn::prepare::text_graph(&cfg, &ds, Device::Cpu, None).unwrap();
    let zebra = tg.words.iter().position(|w| w == "zebra").expect("a test-only word is in the vocabulary");
    assert_eq!(tg.counts[zebra], 0, "counts are train counts");
    assert!(tg.entries.iter().any(|e| e.0 == zebra), "the test-only word has neighbours");
    let dog = tg.words.iter().position(|w| w == "dog").unwrap();
    assert_eq!(tg.counts[dog], 4);
    for relabel in [vec![1usize], vec![], vec![0, 1]] {
        let mut other = ds.clone();
        for &i in other.val.iter().chain(&other.test) {
            other.items[i].labels = relabel.clone();
        }
        assert_eq!(tgcn::prepare::text_graph(&cfg, &other, Device::Cpu, None).unwrap(), tg, "labels {relabel:?}");
    }
    // Changing a test text does change it: the texts are read.
    let mut other = ds.clone();
    other.items[8].tokens = toks("cat car");
    assert_ne!(tgcn::prepare::text_graph(&cfg, &other, Device::Cpu, None).unwrap().words, tg.words);
    // Inductive (the default): the train split alone.
    let inductive = small_cfg(&[]);
    let tg = tgcn::prepare::text_graph(&inductive, &ds, Device::Cpu, None).unwrap();
    assert!(!tg.words.iter().any(|w| w == "zebra" || w == "stripes"), "{:?}", tg.words);
}

/// The relations are joined by the union of their neighbour lists: every kNN, PMI and
/// WordNet edge is in the union, the union has nothing else, and it is symmetric.
#[test]
fn relations_are_joined_by_union() {
    let ds = small_dataset();
    let wn = crate::common::project_root().join("tests/fixtures/wordnet");
    let wordnet = format!("graph.wordnet={{path: {}, hypernyms: true}}", wn.display());
    let edges = |rel: &str| {
        let cfg =
            small_cfg(&[&format!("graph.relations=[{rel}]"), "graph.pmi={window: 3, k: 2, min_count: 1}", &wordnet]);
        let tg = tgcn::prepare::text_graph(&cfg, &ds, Device::Cpu, None).unwrap();
        let set: std::collections::HashSet<(usize, usize)> = tg.entries.iter().map(|e| (e.0, e.1)).collect();
        (tg.words, set)
    };
    let (words, knn) = edges("knn");
    let (w2, pmi) = edges("pmi");
    let (w3, lex) = edges("wordnet");
    let (w4, all) = edges("knn, pmi, wordnet");
    assert!(words == w2 && w2 == w3 && w3 == w4, "one vocabulary");
    let id = |w: &str| words.iter().position(|x| x == w).unwrap();
    // The fixture relates dog to its hypernym canine and to its hyponym puppy, and geese
    // (noun.exc) to goose.
    let both = |a: &str, b: &str| [(id(a), id(b)), (id(b), id(a))];
    let want: std::collections::HashSet<(usize, usize)> =
        [both("dog", "canine"), both("puppy", "dog"), both("geese", "goose")].concat().into_iter().collect();
    assert_eq!(lex, want);
    assert!(!pmi.is_empty() && !knn.is_empty());
    let union: std::collections::HashSet<(usize, usize)> = knn.union(&pmi).chain(&lex).copied().collect();
    assert_eq!(all, union);
    assert!(all.iter().all(|&(i, j)| all.contains(&(j, i)) && i != j));
    // `graph.combine: separate` keeps the union and each relation's own graph, in the order
    // the config names them.
    let cfg = small_cfg(&[
        "graph.relations=[wordnet, knn, pmi]",
        "graph.combine=separate",
        "graph.pmi={window: 3, k: 2, min_count: 1}",
        &wordnet,
    ]);
    let tg = tgcn::prepare::text_graph(&cfg, &ds, Device::Cpu, None).unwrap();
    let set = |e: &[(usize, usize, f32)]| e.iter().map(|e| (e.0, e.1)).collect::<std::collections::HashSet<_>>();
    assert_eq!(set(&tg.entries), all);
    assert_eq!(tg.relation_entries.len(), 3);
    assert_eq!((set(&tg.relation_entries[0]), set(&tg.relation_entries[1])), (lex, knn));
    assert_eq!(set(&tg.relation_entries[2]), pmi);
}
