//! Config layering and the errors for bad keys, types and values.

use crate::common::{project_root, temp_dir};
use tgcn::config::{Config, Layer, PairMode};

fn base() -> Layer {
    Layer::from_file(&project_root().join("configs/synthetic.yaml")).unwrap()
}

pub fn err(layers: &[Layer]) -> String {
    format!("{:#}", Config::from_layers(layers).unwrap_err())
}

/// Every `configs/<dataset>.yaml` parses alone; an overlay `configs/<dataset>-<name>.yaml`
/// (e.g. `eng-wiki-best.yaml`) parses over its dataset's config.
#[test]
fn shipped_configs_parse() {
    let dir = project_root().join("configs");
    let mut overlays = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        let base = stem.rsplit_once('-').map(|(b, _)| dir.join(format!("{b}.yaml"))).filter(|b| b.exists());
        let mut layers = Vec::new();
        if let Some(b) = &base {
            layers.push(Layer::from_file(b).unwrap());
            overlays += 1;
        }
        layers.push(Layer::from_file(&p).unwrap());
        Config::from_layers(&layers).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
    assert!(overlays >= 1, "configs/eng-wiki-best.yaml is an overlay");
}

#[test]
fn set_overrides_and_extra_file_layer() {
    let dir = temp_dir("config_layers");
    let extra = dir.join("extra.yaml");
    std::fs::write(&extra, "train:\n  epochs: 3\n  pairs: in_batch\n").unwrap();
    let cfg = Config::from_layers(&[
        base(),
        Layer::from_file(&extra).unwrap(),
        Layer::from_set("train.lr=1e-4").unwrap(),
        Layer::from_set("train.epochs=5").unwrap(),
    ])
    .unwrap();
    assert_eq!(cfg.train.lr, 1e-4);
    assert_eq!(cfg.train.epochs, 5, "--set comes after --config");
    assert_eq!(cfg.train.pairs, PairMode::InBatch);
    // The resolved config round-trips through YAML unchanged.
    assert_eq!(Config::from_yaml_str(&cfg.to_yaml().unwrap(), "roundtrip").unwrap(), cfg);
}

#[test]
fn unknown_key_names_key_and_source() {
    let e = err(&[base(), Layer::from_set("train.lrr=1").unwrap()]);
    assert!(e.contains("lrr") && e.contains("--set train.lrr"), "{e}");
    let dir = temp_dir("config_unknown");
    let extra = dir.join("bad.yaml");
    std::fs::write(&extra, "graph:\n  kk: 3\n").unwrap();
    let e = err(&[base(), Layer::from_file(&extra).unwrap()]);
    assert!(e.contains("kk") && e.contains("bad.yaml"), "{e}");
}

/// The keys of your own pairs and instance-level retrieval: a misspelling or a bad value
/// is an error that names the key; their defaults leave an existing config's hash alone.
#[test]
fn pairs_and_relevance_keys_are_checked() {
    for (set, key) in [
        ("loss.positive=pair", "positive"),
        ("loss.positives=diagonal", "loss.positives"),
        ("eval.relevence=pair", "relevence"),
        ("eval.relevance=instance", "eval.relevance"),
        ("train.select_on=r2", "train.select_on"),
    ] {
        let e = err(&[base(), Layer::from_set(set).unwrap()]);
        assert!(e.contains(key), "{set}: {e}");
    }
    let example = Layer::from_file(&crate::common::project_root().join("configs/pairs-example.yaml")).unwrap();
    let e = err(&[example.clone(), Layer::from_set("data.pairs.fle=x.csv").unwrap()]);
    assert!(e.contains("fle") && e.contains("data.pairs"), "{e}");
    let e = err(&[example, Layer::from_set("data.pairs.file=pairs.tsv").unwrap()]);
    assert!(e.contains("data.pairs.file") && e.contains(".jsonl"), "{e}");
    // Defaults are not written: configs from before these keys keep their hash.
    let cfg = tgcn::config::Config::from_layers(&[base()]).unwrap();
    let yaml = cfg.to_yaml().unwrap();
    assert!(!yaml.contains("positives") && !yaml.contains("relevance"), "{yaml}");
}

/// The word-graph options (relations, PMI, WordNet, transductive text, rare-word inputs,
/// fixed smoothing): a misspelled key or a bad value names the key; their defaults are not
/// written, so every existing config keeps its hash.
#[test]
fn graph_option_keys_are_checked() {
    for (set, key) in [
        ("graph.relation=[knn]", "relation"),
        ("graph.relations=[knn, lexicon]", "graph.relations"),
        ("graph.relations=[]", "graph.relations"),
        ("graph.relations=[pmi, pmi]", "names pmi twice"),
        ("graph.combin=separate", "combin"),
        ("graph.combine=apart", "graph.combine"),
        ("graph.combine=separate", "names only one"),
        ("graph.pmi.windw=10", "windw"),
        ("graph.pmi.window=1", "graph.pmi.window"),
        ("graph.pmi.k=0", "graph.pmi.k"),
        ("graph.pmi.min_count=0", "graph.pmi.min_count"),
        ("graph.wordnet.hypernym=true", "hypernym"),
        ("graph.wordnet.hypernyms=maybe", "graph.wordnet.hypernyms"),
        ("text.transductiv=true", "transductiv"),
        ("model.text.own_input_min_cnt=2", "own_input_min_cnt"),
        ("model.text.own_input_min_count=-1", "model.text.own_input_min_count"),
        ("model.text.smoth=true", "smoth"),
        ("model.text.smooth=true", "model.text.smooth"),
    ] {
        let e = err(&[base(), Layer::from_set(set).unwrap()]);
        assert!(e.contains(key), "{set}: {e}");
    }
    let cfg = Config::from_layers(&[
        base(),
        Layer::from_set("graph.relations=[knn, pmi, wordnet]").unwrap(),
        Layer::from_set("graph.pmi.window=10").unwrap(),
        Layer::from_set("graph.combine=separate").unwrap(),
        Layer::from_set("model.text.kind=mlp").unwrap(),
        Layer::from_set("model.text.smooth=true").unwrap(),
        Layer::from_set("model.text.own_input_min_count=3").unwrap(),
        Layer::from_set("text.transductive=true").unwrap(),
    ])
    .unwrap();
    assert_eq!(Config::from_yaml_str(&cfg.to_yaml().unwrap(), "roundtrip").unwrap(), cfg);
    let yaml = Config::from_layers(&[base()]).unwrap().to_yaml().unwrap();
    for key in ["relations", "combine", "pmi", "wordnet", "transductive", "own_input_min_count", "smooth"] {
        assert!(!yaml.contains(key), "{key} written with its default: {yaml}");
    }
}

#[test]
fn bad_type_names_key() {
    let e = err(&[base(), Layer::from_set("train.epochs=many").unwrap()]);
    assert!(e.contains("train.epochs"), "{e}");
    let e = err(&[base(), Layer::from_set("model.scorer=dot").unwrap()]);
    assert!(e.contains("model.scorer") && e.contains("product"), "{e}");
}

#[test]
fn out_of_range_values_name_key() {
    for (set, key) in [
        ("model.text.cheb=[{k: 0, filters: 1}]", "model.text.cheb[0].k"),
        ("train.lr=0", "train.lr"),
        ("model.dropout=1.5", "model.dropout"),
        ("graph.k=0", "graph.k"),
        ("train.lr_decay=1.5", "train.lr_decay"),
    ] {
        let e = err(&[base(), Layer::from_set(set).unwrap()]);
        assert!(e.contains(key), "{set}: {e}");
    }
}

#[test]
fn missing_file_and_bad_set_syntax() {
    let e = format!("{:#}", Layer::from_file(std::path::Path::new("/nonexistent/x.yaml")).unwrap_err());
    assert!(e.contains("/nonexistent/x.yaml"), "{e}");
    assert!(Layer::from_set("train.lr").is_err());
    let e = format!("{:#}", tgcn::config::dataset_config_path(&project_root().join("configs"), "nope").unwrap_err());
    assert!(e.contains("nope.yaml") && e.contains("synthetic"), "{e}");
}
