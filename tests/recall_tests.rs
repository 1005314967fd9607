//! Recall@K and the median rank (instance-level retrieval) against a hand-worked ranking
//! with ties and against an independent numpy reference, under label and pair relevance.

use crate::common::{project_root, run_python, temp_dir, venv_python};
use tch::Tensor;
use tgcn::config::{EvalConfig, Protocol, RelevanceMode};
use tgcn::eval::map::{median, RankAccumulator, RankStats};
use tgcn::eval::rank;
use tgcn::eval::ranking::rank_reference;

fn cfg(relevance: Option<RelevanceMode>, chunk: usize) -> EvalConfig {
    EvalConfig {
        protocol: Protocol::TestVsTest,
        untrained: true,
        k: 2,
        scope: vec![1, 3],
        chunk,
        ranking: Default::default(),
        posterior_temperature: 0.1,
        relevance,
    }
}

/// `rank` (the fast path) and `rank_reference` (a full sort) of `scores [nq, ndb]`.
fn both(scores: &Tensor, ql: &Tensor, dl: &Tensor, c: &EvalConfig) -> (RankStats, RankStats) {
    let n = scores.size()[0] as usize;
    let score = |i: &Tensor| scores.index_select(0, i);
    (rank(score, n, ql, dl, c).unwrap(), rank_reference(score, n, ql, dl, c).unwrap())
}

#[test]
fn recall_and_median_rank_hand_worked_with_ties() {
    // 4 text queries × their 4 images; query i's pair is image i.
    let scores = Tensor::from_slice(&[
        0.5f32, 0.5, 0.1, 0.9, // own pair (0) ties with item 1 but comes first: order 3,0,1,2 → rank 2
        0.7, 0.7, 0.7, 0.2, // own pair (1) ties with item 0, which comes first: order 0,1,2,3 → rank 2
        0.3, 0.3, 0.3, 0.3, // all tied: database order, own pair (2) → rank 3
        0.1, 0.2, 0.3, 0.9, // own pair (3) on top → rank 1
    ])
    .view([4, 4]);
    let no_labels = Tensor::zeros([4, 0], (tch::Kind::Float, tch::Device::Cpu));
    for c in [cfg(None, 3), cfg(Some(RelevanceMode::Pair), 1), cfg(Some(RelevanceMode::Pair), 8)] {
        let (fast, reference) = both(&scores, &no_labels, &no_labels, &c);
        assert_eq!(fast, reference);
        // Ranks 2, 2, 3, 1.
        assert_eq!(fast.recall, vec![(1, 0.25), (5, 1.0), (10, 1.0)]);
        assert_eq!(fast.median_rank, 2.0); // numpy: median(1, 2, 2, 3) = (2 + 2) / 2
                                           // One relevant item: AP is 1 / rank, so MAP is the mean reciprocal rank.
        assert!((fast.map_all - (0.5 + 0.5 + 1.0 / 3.0 + 1.0) / 4.0).abs() < 1e-12);
        assert_eq!(fast.no_relevant, 0);
    }
    // Under label relevance the first same-label item counts; a query whose label no
    // database item has is a miss at every K and takes rank n + 1 = 5.
    let ql = Tensor::from_slice(&[1f32, 0., 0., 1., 0., 1., 0., 0.]).view([4, 2]); // A, B, B, none
    let dl = Tensor::from_slice(&[0f32, 1., 0., 1., 1., 0., 0., 1.]).view([4, 2]); // B, B, A, B
    for c in [cfg(None, 2), cfg(Some(RelevanceMode::Label), 4)] {
        let (fast, reference) = both(&scores, &ql, &dl, &c);
        assert_eq!(fast, reference);
        // Query 0 (A): order 3,0,1,2, item 2 is A → rank 4. Query 1 (B): order 0,1,2,3, item 0
        // is B → rank 1. Query 2 (B): order 0,1,2,3 → rank 1. Query 3 (no label) → rank 5.
        assert_eq!(fast.recall, vec![(1, 0.5), (5, 0.75), (10, 0.75)]);
        assert_eq!(fast.median_rank, 2.5); // median(1, 1, 4, 5)
        assert_eq!(fast.no_relevant, 1);
    }
}

#[test]
fn median_is_numpys() {
    assert_eq!(median(&mut [3, 1, 2]), 2.0);
    assert_eq!(median(&mut [4, 1, 3, 2]), 2.5);
    assert_eq!(median(&mut [7]), 7.0);
    assert_eq!(median(&mut []), 0.0);
    // push (a relevance list) and add(terms) (positions) agree.
    let mut a = RankAccumulator::new(2, &[1]);
    let mut b = RankAccumulator::new(2, &[1]);
    let mut scratch = Vec::new();
    for rel in [&[false, true, false][..], &[false, false, false], &[true, false, true]] {
        a.push(rel);
        let pos: Vec<usize> = rel.iter().enumerate().filter(|(_, &r)| r).map(|(p, _)| p).collect();
        b.add(&b.terms(&pos, rel.len(), &mut scratch));
    }
    let (a, b) = (a.finish(), b.finish());
    assert_eq!(a, b);
    assert_eq!(a.median_rank, 2.0); // ranks 2, 4, 1
    assert_eq!(a.recall[0], (1, 1.0 / 3.0));
}

#[test]
fn pair_relevance_needs_the_queries_own_split() {
    let scores = Tensor::rand([3, 5], (tch::Kind::Float, tch::Device::Cpu));
    let (ql, dl) = (Tensor::zeros([3, 0], tch::kind::FLOAT_CPU), Tensor::zeros([5, 0], tch::kind::FLOAT_CPU));
    let err = rank(|i: &Tensor| scores.index_select(0, i), 3, &ql, &dl, &cfg(None, 2)).unwrap_err().to_string();
    assert!(err.contains("eval.relevance: pair") && err.contains("3 queries against 5 items"), "{err}");
    let err = rank(|i: &Tensor| scores.index_select(0, i), 3, &ql, &dl, &cfg(Some(RelevanceMode::Label), 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("eval.relevance: label") && err.contains("has none"), "{err}");
}

fn write_csv(path: &std::path::Path, t: &Tensor) {
    let (r, c) = (t.size()[0], t.size()[1]);
    let v: Vec<f32> = Vec::try_from(t.contiguous().view([-1])).unwrap();
    let mut s = String::new();
    for i in 0..r as usize {
        let row: Vec<String> = (0..c as usize).map(|j| format!("{:?}", v[i * c as usize + j])).collect();
        s += &row.join(",");
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn recall_and_median_rank_match_numpy() {
    let Some(py) = venv_python() else { return };
    let dir = temp_dir("recall_numpy");
    tch::manual_seed(7);
    let n = 240i64;
    // Scores rounded to a coarse grid so that many ties (and long tied buckets) occur; the
    // own pair gets a boost in some rows so that small ranks occur too.
    let boost = Tensor::eye(n, tch::kind::FLOAT_CPU)
        * Tensor::rand([n, 1], tch::kind::FLOAT_CPU).gt(0.5).to_kind(tch::Kind::Float)
        * 0.6;
    let scores = ((Tensor::rand([n, n], tch::kind::FLOAT_CPU) + boost) * 12.0).round() / 12.0;
    let labels = Tensor::randint(6, [n], (tch::Kind::Int64, tch::Device::Cpu)).one_hot(6).to_kind(tch::Kind::Float);
    let sc = dir.join("scores.csv");
    write_csv(&sc, &scores);
    let lab = dir.join("labels.csv");
    write_csv(&lab, &labels);
    let pair = dir.join("pair.txt");
    std::fs::write(&pair, "pair\n").unwrap();
    let script = project_root().join("tests/python/recall_reference.py");
    let no_labels = Tensor::zeros([n, 0], tch::kind::FLOAT_CPU);
    for (ql, dl, qf, df) in [(&no_labels, &no_labels, &pair, &pair), (&labels, &labels, &lab, &lab)] {
        let out = run_python(&py, &script, &[sc.to_str().unwrap(), qf.to_str().unwrap(), df.to_str().unwrap()]);
        let want: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        for chunk in [7, 64] {
            let (fast, reference) = both(&scores, ql, dl, &cfg(None, chunk));
            assert_eq!(fast, reference);
            for (j, (k, r)) in fast.recall.iter().enumerate() {
                assert_eq!(*k as u64, want["recall"][j][0].as_u64().unwrap());
                assert!(
                    (r - want["recall"][j][1].as_f64().unwrap()).abs() < 1e-12,
                    "R@{k}: {r} vs {}",
                    want["recall"][j][1]
                );
            }
            assert_eq!(fast.median_rank, want["median_rank"].as_f64().unwrap());
            assert!((fast.map_all - want["map_all"].as_f64().unwrap()).abs() < 1e-9);
        }
    }
}
