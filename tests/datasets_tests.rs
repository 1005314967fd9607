//! The dataset configs wired through the pipeline on the real data in ../shared/data
//! (skipped with a message where it is absent; `#[ignore]`d, run by `make test-slow`).
//! Cargo runs tests in the package root, so the configs' relative paths resolve.

use crate::common::{dataset_cfg, project_root, run_python, shared_data, temp_dir, venv_python};
use tch::Device;
use tgcn::config::{Config, Layer};

#[test]
#[ignore = "real data: make test-slow"]
fn eng_wiki_prepares_vocabulary_graph_and_sift() {
    if shared_data("eng-wiki").is_none() || !project_root().join("models/glove.6B.50d.bin").exists() {
        eprintln!("SKIP: needs ../shared/data/eng-wiki and models/glove.6B.50d.bin (make glove)");
        return;
    }
    let cfg = dataset_cfg("eng-wiki", &["vectors.source=glove6b50", "graph.missing_vectors=isolate", "device=cpu"]);
    let data = tgcn::prepare::prepare(&cfg, Device::Cpu, None).unwrap();
    assert_eq!(data.classes.len(), 10);
    assert_eq!(data.train.len() + data.val.len(), 2173);
    assert_eq!(data.test.len(), 693);
    assert_eq!(data.image_dim, 128);
    // The vocabulary: train words seen at least 9 times; GloVe is lowercase, so capitalised
    // words stay as isolated vertices.
    assert!(data.vocab.len() > 5000, "vocabulary {}", data.vocab.len());
    assert!(data.isolated_no_vector > 0 && data.graph.isolated == data.isolated_no_vector);
    assert!(data.graph.degree_min == 0 && data.graph.degree_max >= 8);
    eprintln!("{}", data.summary());
}

#[test]
#[ignore = "real data: make test-slow"]
fn pascal_from_raw_images_through_the_featurizer() {
    let (Some(_), Some(py)) = (shared_data("pascal-sentences/images"), venv_python()) else { return };
    let dir = temp_dir("datasets_pascal_from_images");
    let model = dir.join("tiny_cnn.pt");
    run_python(&py, &project_root().join("scripts/make_tiny_cnn.py"), &["make", model.to_str().unwrap()]);
    let m = model.to_str().unwrap();
    let cfg = dataset_cfg(
        "pascal",
        &[
            "device=cpu",
            "data.pascal.on_missing=skip",
            &format!(
                "data.from_images.featurize={{backbone: {m}, resize: 20, crop: 16, batch_size: 8, on_bad_image: skip}}"
            ),
        ],
    );
    let cache = dir.join("cache");
    let ds = tgcn::prepare::load_dataset(&cfg, Some(&cache), Device::Cpu).unwrap();
    // 49 JPEGs of class aeroplane, two of them empty files: 47 items with features.
    assert_eq!(ds.items.len(), 47, "items with a readable image");
    assert!(ds.items.iter().all(|it| ds.classes[it.labels[0]] == "aeroplane"));
    assert!(ds.images.iter().all(|v| v.is_finite()));
    // With the default stop mode the two empty files are reported by path.
    let stop = dataset_cfg(
        "pascal",
        &["device=cpu", &format!("data.from_images.featurize={{backbone: {m}, resize: 20, crop: 16}}")],
    );
    let e = format!("{:#}", tgcn::prepare::load_dataset(&stop, Some(&cache), Device::Cpu).unwrap_err());
    assert!(e.contains("2008_001971.jpg") && e.contains("2008_008501.jpg"), "{e}");
}

#[test]
#[ignore = "slow real training: make test-engwiki"]
fn eng_wiki_short_training_beats_random() {
    if shared_data("eng-wiki").is_none() {
        eprintln!("SKIP: needs ../shared/data/eng-wiki");
        return;
    }
    let root = temp_dir("datasets_engwiki_train");
    // The configuration chosen on validation (configs/eng-wiki-best.yaml), shortened to 8
    // epochs (class-posterior ranking, then the refit on train ∪ validation for the best
    // epoch's 8): its validation mean MAP@all was 0.225 after epoch 2 and 0.239 after epoch 4 (seed 1).
    let mut layers = vec![
        Layer::from_file(&project_root().join("configs/eng-wiki.yaml")).unwrap(),
        Layer::from_file(&project_root().join("configs/eng-wiki-best.yaml")).unwrap(),
    ];
    for s in ["device=cpu", "train.epochs=8", "export.enabled=false"] {
        layers.push(Layer::from_set(s).unwrap());
    }
    let cfg = Config::from_layers(&layers).unwrap();
    let s = tgcn::train::train(&cfg, &root, &Default::default()).unwrap().summary().unwrap();
    // Random ranking scores about 0.12 MAP@all here (REFERENCE-NOTES). Ranked by class
    // posteriors, the untrained model is already at about 0.22 (nearest class means of
    // random features), so training must also beat it clearly (0.307 vs 0.222 with the
    // config of 176770e, on an AMD EPYC; 0.303 with its contrastive τ at 0.1; 0.296 vs
    // 0.224 with 5 skip-gram passes, 0.288 of it without the refit).
    let got = s.test[0].map_all_mean();
    let untrained = s.untrained_test.as_ref().unwrap().map_all_mean();
    assert!(
        got > 0.25 && got > untrained + 0.04,
        "Eng-Wiki test mean MAP@all {got:.4} after 8 epochs (untrained {untrained:.4}, chance 0.12)"
    );
}
