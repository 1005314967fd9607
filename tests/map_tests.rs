//! MAP, precision@k and the 11-point curve against hand-worked rankings.

use tch::{Kind, Tensor};
use tgcn::config::EvalConfig;
use tgcn::config::Protocol;
use tgcn::eval::map::{average_precision, interpolated_pr11, precision_at, RankAccumulator};
use tgcn::eval::rank;

const T: bool = true;
const F: bool = false;

#[test]
fn ap_hand_worked() {
    // Relevant at ranks 1, 3, 6: AP = (1/1 + 2/3 + 3/6) / 3 = 0.722222…
    let rel = [T, F, T, F, F, T, F];
    assert!((average_precision(&rel, None) - (1.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
    // AP@3 divides by the 2 relevant retrieved in the top 3: (1 + 2/3) / 2.
    assert!((average_precision(&rel, Some(3)) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    // AP@2: only rank 1 is relevant in the cut: 1/1.
    assert!((average_precision(&rel, Some(2)) - 1.0).abs() < 1e-12);
    // Nothing relevant in the cut: 0.
    assert_eq!(average_precision(&[F, F, T], Some(2)), 0.0);
    assert_eq!(average_precision(&[F, F], None), 0.0);
    // k beyond the list is the whole list.
    assert_eq!(average_precision(&rel, Some(100)), average_precision(&rel, None));
}

#[test]
fn precision_and_pr11_hand_worked() {
    let rel = [T, F, T, F];
    assert_eq!(precision_at(&rel, 1), 1.0);
    assert_eq!(precision_at(&rel, 2), 0.5);
    assert_eq!(precision_at(&rel, 4), 0.5);
    assert_eq!(precision_at(&rel, 8), 0.25); // missing ranks count as misses
                                             // Recall/precision points: (0.5, 1), (0.5, 0.5), (1, 2/3), (1, 0.5).
                                             // Interpolated: recall ≤ 0.5 -> 1.0; recall in (0.5, 1] -> 2/3.
    let pr = interpolated_pr11(&rel).unwrap();
    for (j, &v) in pr.iter().enumerate() {
        let want = if j <= 5 { 1.0 } else { 2.0 / 3.0 };
        assert!((v - want).abs() < 1e-12, "recall {}: {v} vs {want}", j as f64 / 10.0);
    }
    assert!(interpolated_pr11(&[F, F]).is_none());
}

#[test]
fn accumulator_means_over_queries() {
    let mut acc = RankAccumulator::new(2, &[1, 2]);
    acc.push(&[T, F, T]); // AP 0.8333, AP@2 1.0, P@1 1, P@2 .5
    acc.push(&[F, T, F]); // AP 0.5, AP@2 0.5, P@1 0, P@2 .5
    acc.push(&[F, F, F]); // AP 0 (counts), no PR curve
    let s = acc.finish();
    assert_eq!(s.queries, 3);
    assert!((s.map_all - (5.0 / 6.0 + 0.5) / 3.0).abs() < 1e-12);
    assert!((s.map_k - 1.5 / 3.0).abs() < 1e-12);
    assert_eq!(s.precision_scope, vec![(1, 1.0 / 3.0), (2, 1.0 / 3.0)]);
    assert_eq!(s.no_relevant, 1);
}

fn eval_cfg(k: usize, chunk: usize) -> EvalConfig {
    EvalConfig {
        protocol: Protocol::TestVsTest,
        untrained: true,
        k,
        scope: vec![1, 3],
        chunk,
        ranking: Default::default(),
        posterior_temperature: 0.1,
        relevance: None,
    }
}

#[test]
fn ranking_with_ties_and_multilabel_through_tensors() {
    // 2 queries × 4 database items; labels multi-hot over 3 classes.
    let q_labels = Tensor::from_slice(&[1f32, 0., 0., 0., 1., 1.]).view([2, 3]);
    let db_labels = Tensor::from_slice(&[1f32, 0., 0., 0., 1., 0., 1., 0., 1., 0., 0., 1.]).view([4, 3]);
    // Query 0 (class 0): relevant db 0 and 2. Scores tie between db 1 and db 2 (0.5):
    // the stable sort keeps database order, so the ranking is db 0, db 1, db 2, db 3.
    // Query 1 (classes 1, 2): relevant db 1, 2 (shares 2), 3. Scores rank 3, 0, 1, 2.
    let scores = Tensor::from_slice(&[0.9f32, 0.5, 0.5, 0.1, 0.5, 0.2, 0.2, 0.9]).view([2, 4]);
    for chunk in [1, 2] {
        let s = rank(|idx| scores.index_select(0, idx), 2, &q_labels, &db_labels, &eval_cfg(2, chunk)).unwrap();
        // q0: rel T F T F -> AP (1 + 2/3)/2 = 5/6; AP@2 = 1.
        // q1: rel T F T T -> AP (1 + 2/3 + 3/4)/3; AP@2 = 1.
        let ap1 = (1.0 + 2.0 / 3.0 + 0.75) / 3.0;
        assert!((s.map_all - (5.0 / 6.0 + ap1) / 2.0).abs() < 1e-9, "chunk {chunk}: {}", s.map_all);
        assert!((s.map_k - 1.0).abs() < 1e-12);
        assert_eq!(s.precision_scope[0], (1, 1.0));
        assert!((s.precision_scope[1].1 - (2.0 / 3.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
    let _ = Kind::Float;
}

#[test]
fn random_scores_give_chance_map() {
    // 10 balanced classes: random ranking gives MAP@all near the relevant fraction (0.1).
    tch::manual_seed(0);
    let n = 400i64;
    let lab: Vec<i64> = (0..n).map(|i| i % 10).collect();
    let labels = Tensor::from_slice(&lab).one_hot(10).to_kind(Kind::Float);
    let scores = Tensor::rand([n, n], (Kind::Float, tch::Device::Cpu));
    let s = rank(|idx| scores.index_select(0, idx), n as usize, &labels, &labels, &eval_cfg(50, 64)).unwrap();
    assert!((s.map_all - 0.1).abs() < 0.03, "random MAP@all {}", s.map_all);
}

/// The one-pass accumulator gives bit for bit the means of the one-metric functions, on
/// random lists of many lengths (empty relevance, cuts beyond the list, a cut of 1).
#[test]
fn one_pass_accumulator_matches_the_metric_functions() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (k, scope) = (7, [1usize, 3, 10, 50]);
    let mut acc = RankAccumulator::new(k, &scope);
    let (mut all, mut at_k, mut p, mut pr, mut n_pr) = (0.0, 0.0, [0.0f64; 4], [0.0f64; 11], 0);
    let n = 300;
    for q in 0..n {
        let len = rng.gen_range(1..40);
        let share = [0.0, 0.1, 0.5, 1.0][q % 4];
        let rel: Vec<bool> = (0..len).map(|_| rng.gen::<f64>() < share).collect();
        acc.push(&rel);
        all += average_precision(&rel, None);
        at_k += average_precision(&rel, Some(k));
        for (s, &c) in p.iter_mut().zip(&scope) {
            *s += precision_at(&rel, c);
        }
        if let Some(curve) = interpolated_pr11(&rel) {
            n_pr += 1;
            pr.iter_mut().zip(curve).for_each(|(a, b)| *a += b);
        }
    }
    let got = acc.finish();
    assert_eq!(got.map_all.to_bits(), (all / n as f64).to_bits(), "MAP@all");
    assert_eq!(got.map_k.to_bits(), (at_k / n as f64).to_bits(), "MAP@k");
    for ((c, v), s) in got.precision_scope.iter().zip(p) {
        assert_eq!(v.to_bits(), (s / n as f64).to_bits(), "P@{c}");
    }
    for (j, (a, b)) in got.pr11.iter().zip(pr).enumerate() {
        assert_eq!(a.to_bits(), (b / n_pr as f64).to_bits(), "PR point {j}");
    }
    assert_eq!(got.no_relevant, n - n_pr);
}

/// Class-posterior ranking: class means of the train embeddings (a two-label item counts
/// for both classes; class 2 has no train item) and the posteriors' inner products,
/// against numpy (f64; the fixture and its script are in the comment).
///
/// ```text
/// T = [[1,0,0],[0,2,0],[1,1,0],[0,0,3]]; I = [[0,1,0],[1,0,0],[1,1,1],[0,0,1]]
/// L = [[1,0,0],[0,1,0],[1,1,0],[1,0,0]]
/// M[c] = normalise(Σ_{n: L[n,c]} E[n] / |E[n]|); z = unit(Q) @ M.T / 0.5; z[:, 2] = -inf
/// p = softmax(z); score = p_text @ p_image.T
/// ```
#[test]
fn class_posteriors_match_numpy() {
    use tgcn::eval::posterior::ClassMeans;
    let t = |rows: &[[f32; 3]]| Tensor::from_slice(rows.concat().as_slice()).view([rows.len() as i64, 3]);
    let text = t(&[[1., 0., 0.], [0., 2., 0.], [1., 1., 0.], [0., 0., 3.]]);
    let image = t(&[[0., 1., 0.], [1., 0., 0.], [1., 1., 1.], [0., 0., 1.]]);
    let labels = t(&[[1., 0., 0.], [0., 1., 0.], [1., 1., 0.], [1., 0., 0.]]);
    let c = ClassMeans::fit(&text, &image, &labels, 0.5).unwrap();
    let pt = c.text_posterior(&t(&[[2., 1., 0.], [0., 0., 1.]]));
    let pi = c.image_posterior(&t(&[[1., 2., 0.], [0., 1., 1.]]));
    let close = |got: &Tensor, want: &[f64]| {
        let got: Vec<f64> = Vec::try_from(got.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    };
    close(&pt, &[0.5605999896, 0.4394000104, 0.0, 0.7215024072, 0.2784975928, 0.0]);
    close(&pi, &[0.5182101817, 0.4817898183, 0.0, 0.7343486157, 0.2656513843, 0.0]);
    close(&pt.mm(&pi.tr()), &[0.5022070736, 0.5284030473, 0.5080671982, 0.603817565]);

    // No labelled train item: an error, not a uniform posterior.
    let e = format!("{:#}", ClassMeans::fit(&text, &image, &labels.zeros_like(), 0.5).unwrap_err());
    assert!(e.contains("no") && e.contains("labelled"), "{e}");
}

/// Classifier ranking: the shared label classifier's posteriors, softmax (single-label) or
/// sigmoid per class (multi-label), and their inner products, against numpy (f64):
///
/// ```text
/// W = [[1,0],[0,1],[1,1]]; b = [0,0.5,-1]; T = [[1,2],[0,-1]]; I = [[2,0],[-1,1]]
/// p = softmax(E @ W.T + b) (or sigmoid); score = p(T) @ p(I).T
/// ```
#[test]
fn classifier_posteriors_match_numpy() {
    use tgcn::eval::posterior::ClassifierPosterior;
    let t = |v: &[f32], cols: i64| Tensor::from_slice(v).view([-1, cols]);
    let close = |got: &Tensor, want: &[f64]| {
        let got: Vec<f64> = Vec::try_from(got.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    };
    let (text, image) = (t(&[1., 2., 0., -1.], 2), t(&[2., 0., -1., 1.], 2));
    for (multi_label, want_t, want_i, want_s) in [
        (
            false,
            [0.1219516523, 0.5465493873, 0.3314989604, 0.574096993, 0.3482074279, 0.0776955791],
            [0.6285317192, 0.1402443832, 0.2312238976, 0.0705094607, 0.8589810787, 0.0705094607],
            [0.2299514451, 0.5014481404, 0.4276373806, 0.3450611347],
        ),
        (
            true,
            [0.7310585786, 0.92414182, 0.880797078, 0.5, 0.3775406688, 0.119202922],
            [0.880797078, 0.6224593312, 0.7310585786, 0.2689414214, 0.8175744762, 0.2689414214],
            [1.863069219, 1.1890495157, 0.7625465699, 0.4751969285],
        ),
    ] {
        let c = ClassifierPosterior {
            weight: t(&[1., 0., 0., 1., 1., 1.], 2),
            bias: Tensor::from_slice(&[0f32, 0.5, -1.]),
            multi_label,
        };
        let (pt, pi) = (c.posterior(&text), c.posterior(&image));
        close(&pt, &want_t);
        close(&pi, &want_i);
        close(&pt.mm(&pi.tr()), &want_s);
    }
}

/// The fast evaluator against the reference (a stable sort of every row): every metric
/// bit for bit, on random scores, heavy ties (constant rows, duplicated database rows,
/// scores rounded to a few values, ±0), multi-label relevance, queries with nothing
/// relevant, k and scope cuts beyond the database, rows with NaN and ±∞, and chunks that
/// do not divide the queries.
#[test]
fn fast_ranking_equals_the_reference_bit_for_bit() {
    use tgcn::eval::ranking::rank_reference;
    tch::manual_seed(7);
    let dev = tch::Device::Cpu;
    let cfg = |k: usize, chunk: usize, scope: Vec<usize>| EvalConfig { scope, ..eval_cfg(k, chunk) };
    let check = |name: &str, scores: &Tensor, ql: &Tensor, dl: &Tensor, c: &EvalConfig| {
        let nq = scores.size()[0] as usize;
        let fast = rank(|idx| scores.index_select(0, idx), nq, ql, dl, c).unwrap();
        let slow = rank_reference(|idx| scores.index_select(0, idx), nq, ql, dl, c).unwrap();
        assert_eq!(fast, slow, "{name}");
        // The same bits, not only equal values (−0.0 == 0.0 would pass above).
        assert_eq!(fast.map_all.to_bits(), slow.map_all.to_bits(), "{name}");
        fast
    };
    let one_hot = |n: i64, classes: i64, offset: i64| {
        let lab: Vec<i64> = (0..n).map(|i| (i * 7 + offset) % classes).collect();
        Tensor::from_slice(&lab).one_hot(classes).to_kind(Kind::Float)
    };
    let (nq, nd) = (37i64, 211i64);
    let ql = one_hot(nq, 5, 1);
    let dl = one_hot(nd, 5, 3);
    let random = Tensor::randn([nq, nd], (Kind::Float, dev));
    for (k, chunk) in [(10, 8), (50, 37), (500, 5)] {
        check("random", &random, &ql, &dl, &cfg(k, chunk, vec![1, 5, 100, 211, 400]));
    }
    // Heavy ties.
    let constant = Tensor::full([nq, nd], 0.25, (Kind::Float, dev));
    let s = check("constant rows", &constant, &ql, &dl, &cfg(20, 16, vec![1, 10]));
    assert!(s.map_all > 0.0);
    let rounded = (&random * 2.0).round() / 2.0;
    check("rounded to a few values", &rounded, &ql, &dl, &cfg(20, 16, vec![1, 10, 50]));
    let signed_zeros = rounded.clamp(-0.0, 0.0) * -1.0; // −0.0 and +0.0 only
    check("±0 only", &signed_zeros, &ql, &dl, &cfg(20, 9, vec![3]));
    let dup_db = random.narrow(1, 0, 50).repeat([1, 4]); // database rows duplicated 4 times
    let dl_dup = one_hot(200, 5, 3);
    check("duplicated database rows", &dup_db, &ql, &dl_dup, &cfg(30, 16, vec![1, 7]));
    // Multi-label relevance, queries with nothing relevant.
    let ml_q = Tensor::rand([nq, 6], (Kind::Float, dev)).gt(0.6).to_kind(Kind::Float);
    let ml_d = Tensor::rand([nd, 6], (Kind::Float, dev)).gt(0.7).to_kind(Kind::Float);
    let s = check("multi-label", &random, &ml_q, &ml_d, &cfg(25, 10, vec![2, 20]));
    let empty_q = i64::try_from(ml_q.sum_dim_intlist(1, false, Kind::Float).eq(0.0).sum(Kind::Int64)).unwrap();
    assert!(s.no_relevant > 0 || empty_q == 0);
    let none = Tensor::zeros([nq, 5], (Kind::Float, dev));
    let s = check("nothing relevant", &random, &none, &dl, &cfg(10, 8, vec![1]));
    assert_eq!((s.map_all, s.no_relevant), (0.0, nq as usize));
    // Non-finite scores take the full-sort path: NaN first, then +∞, …, −∞.
    let odd = random.copy();
    let _ = odd.get(0).get(3).fill_(f64::NAN);
    let _ = odd.get(1).get(5).fill_(f64::INFINITY);
    let _ = odd.get(1).get(6).fill_(f64::NEG_INFINITY);
    let _ = odd.get(2).get(7).fill_(f64::NAN);
    let _ = odd.get(2).get(8).fill_(f64::NAN);
    check("NaN and infinities", &odd, &ql, &dl, &cfg(15, 4, vec![1, 2]));
    // A single item and a database of one class.
    check("one database item", &random.narrow(1, 0, 1), &ql, &dl.narrow(0, 0, 1), &cfg(5, 3, vec![1, 2]));
}

/// The positions of the relevant items, by hand: ties keep database order.
#[test]
fn relevant_positions_hand_worked() {
    use tgcn::eval::positions::RowRanker;
    let mut r = RowRanker::default();
    let mut out = Vec::new();
    // Order: db 4 (0.9), db 1 (0.5), db 3 (0.5), db 0 (0.2), db 2 (0.2), db 5 (-0.1).
    let scores = [0.2f32, 0.5, 0.2, 0.5, 0.9, -0.1];
    r.relevant_positions(&scores, &[0, 3, 5], &mut out);
    assert_eq!(out, vec![2, 3, 5]);
    r.relevant_positions(&scores, &[], &mut out);
    assert!(out.is_empty());
    r.relevant_positions(&[f32::NAN, 1.0, f32::NAN], &[1, 2], &mut out);
    assert_eq!(out, vec![1, 2], "NaN ranks first, in database order");
    // A bucket shared by several items: 0.30000001 and 0.3 differ by one ulp.
    let close = [0.3f32, 0.1, 0.3 + f32::EPSILON / 4.0, 0.3, -1.0];
    r.relevant_positions(&close, &[0, 3], &mut out);
    assert_eq!(out, vec![1, 2], "ranking 2, 0, 3, 1, 4");
}

/// Relevance lists from label masks: shared labels, multi-label rows, no label.
#[test]
fn relevance_lists_from_label_masks() {
    use tgcn::eval::positions::{masks, Relevance};
    let db = [1f32, 0., 0., 0., 1., 1., 0., 0., 0., 1., 0., 1.]; // [4, 3]
    assert_eq!(masks(&db, 3), vec![0b001, 0b110, 0b000, 0b101]);
    let mut r = Relevance::new(&db, 3).unwrap();
    assert_eq!(r.of(0b001), &[0, 3]);
    assert_eq!(r.of(0b100), &[1, 3]);
    assert_eq!(r.of(0b010), &[1]);
    assert!(r.of(0).is_empty());
    assert!(Relevance::new(&vec![0.0; 129], 129).is_none(), "more than 128 classes: label products instead");
}
