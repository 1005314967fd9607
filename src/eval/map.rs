//! Ranking metrics over ranked relevance lists (pure Rust bookkeeping).
//!
//! AP@k = (1/R_k) Σ_{r ≤ k} P(r)·rel(r), where R_k is the number of relevant items
//! retrieved within the top k — the definition of the authors' code and most cross-modal
//! papers (not the number of relevant items in the whole database). AP@all uses the whole
//! ranking. A query with nothing relevant in the cut scores AP = 0 and still counts in the
//! mean. Ties in score are broken by database order (a stable sort), so results are
//! deterministic.
//!
//! Precision@k is (relevant in top k)/k; the 11-point curve is the interpolated precision
//! max_{r' ≥ r} P(r') at recall r = 0, 0.1, …, 1, averaged over queries that have at least
//! one relevant item.
//!
//! Instance-level figures come from the same positions: a query's rank is the 1-based
//! position of its first relevant item in that stable order. Recall@K is the share of
//! queries whose rank is at most K; the median rank is numpy's median of the ranks (the
//! mean of the two middle ranks for an even count). Under `eval.relevance: pair` the one
//! relevant item is the query's own pair, so these are the Flickr30k/MS-COCO figures;
//! under `label` they are "a same-label item within the top K" (hit rate). Ties in score
//! follow database order, as for MAP: an item tied with its query's pair ranks above it
//! when it comes first in the database. A query with nothing relevant counts as a miss at
//! every K and takes rank n + 1 (one past the end) in the median.

/// AP over `rel` (relevance in rank order), cut at `k` (None = the whole list).
pub fn average_precision(rel: &[bool], k: Option<usize>) -> f64 {
    let cut = k.map_or(rel.len(), |k| k.min(rel.len()));
    let (mut hits, mut sum) = (0usize, 0.0f64);
    for (r, &is_rel) in rel[..cut].iter().enumerate() {
        if is_rel {
            hits += 1;
            sum += hits as f64 / (r + 1) as f64;
        }
    }
    if hits == 0 {
        0.0
    } else {
        sum / hits as f64
    }
}

/// (relevant within the top k) / k; k beyond the list counts missing ranks as misses.
pub fn precision_at(rel: &[bool], k: usize) -> f64 {
    rel.iter().take(k).filter(|&&r| r).count() as f64 / k as f64
}

/// 11-point interpolated precision at recall 0, 0.1, …, 1; None when nothing is relevant.
pub fn interpolated_pr11(rel: &[bool]) -> Option<[f64; 11]> {
    let total = rel.iter().filter(|&&r| r).count();
    if total == 0 {
        return None;
    }
    let mut points = Vec::with_capacity(rel.len());
    let mut hits = 0;
    for (r, &is_rel) in rel.iter().enumerate() {
        hits += is_rel as usize;
        points.push((hits as f64 / total as f64, hits as f64 / (r + 1) as f64));
    }
    // Running max of precision from the end: best precision at recall ≥ the point's.
    let mut best = vec![0.0; points.len()];
    let mut m: f64 = 0.0;
    for i in (0..points.len()).rev() {
        m = m.max(points[i].1);
        best[i] = m;
    }
    let mut out = [0.0; 11];
    for (j, slot) in out.iter_mut().enumerate() {
        let level = j as f64 / 10.0;
        // First rank whose recall reaches the level (with a tolerance for 0.1·j rounding).
        if let Some(i) = points.iter().position(|&(rc, _)| rc + 1e-12 >= level) {
            *slot = best[i];
        }
    }
    Some(out)
}

/// The cut-offs of Recall@K.
pub const RECALL_AT: [usize; 3] = [1, 5, 10];

/// numpy's median of `ranks` (sorted here); 0 for no ranks.
pub fn median(ranks: &mut [usize]) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks.sort_unstable();
    let m = ranks.len() / 2;
    if ranks.len() % 2 == 1 {
        ranks[m] as f64
    } else {
        (ranks[m - 1] + ranks[m]) as f64 / 2.0
    }
}

/// Means of the ranking metrics over queries of one direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankStats {
    pub queries: usize,
    pub map_all: f64,
    pub map_k: f64,
    pub k: usize,
    /// (k, mean precision@k)
    pub precision_scope: Vec<(usize, f64)>,
    pub pr11: [f64; 11],
    /// Queries with no relevant item in the database (AP 0, left out of the PR curve).
    pub no_relevant: usize,
    /// (K, share of queries whose first relevant item ranks within the top K), K in
    /// [`RECALL_AT`]. Empty in summaries written before these figures existed.
    #[serde(default)]
    pub recall: Vec<(usize, f64)>,
    /// Median over queries of the 1-based rank of the first relevant item.
    #[serde(default)]
    pub median_rank: f64,
}

impl RankStats {
    /// Recall@`k`, if it was computed.
    pub fn recall_at(&self, k: usize) -> Option<f64> {
        self.recall.iter().find(|(c, _)| *c == k).map(|(_, r)| *r)
    }
}

/// One query's contribution to each sum of a [`RankAccumulator`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTerms {
    pub ap_all: f64,
    pub ap_k: f64,
    /// Precision at each cut of the scope.
    pub precision: Vec<f64>,
    /// The 11-point curve; None when nothing is relevant.
    pub pr11: Option<[f64; 11]>,
    /// 1-based rank of the first relevant item; None when nothing is relevant.
    pub rank: Option<usize>,
    /// Items ranked (n of the query's ranking).
    pub n: usize,
}

#[derive(Debug, Clone)]
pub struct RankAccumulator {
    k: usize,
    scope: Vec<usize>,
    n: usize,
    sum_all: f64,
    sum_k: f64,
    sum_p: Vec<f64>,
    sum_pr: [f64; 11],
    n_pr: usize,
    /// Each query's first-relevant rank, in query order (n + 1 when nothing is relevant).
    ranks: Vec<usize>,
    /// Per cut of [`RECALL_AT`]: queries with a relevant item within it.
    recall_hits: [usize; RECALL_AT.len()],
    /// Scratch of `push`: precision at each relevant rank, and hits within the top r + 1
    /// for r below the largest precision cut.
    hit_precision: Vec<f64>,
    hits_prefix: Vec<usize>,
}

impl RankAccumulator {
    pub fn new(k: usize, scope: &[usize]) -> Self {
        RankAccumulator {
            k,
            scope: scope.to_vec(),
            n: 0,
            sum_all: 0.0,
            sum_k: 0.0,
            sum_p: vec![0.0; scope.len()],
            sum_pr: [0.0; 11],
            n_pr: 0,
            ranks: Vec::new(),
            recall_hits: [0; RECALL_AT.len()],
            hit_precision: Vec::new(),
            hits_prefix: Vec::new(),
        }
    }

    /// Adds one query's ranked relevance list (the whole database, in rank order).
    ///
    /// One pass gives every metric, each summed in the same order as the one-metric
    /// functions above ([`average_precision`], [`precision_at`], [`interpolated_pr11`]), so
    /// the results are bit-identical to theirs: the 11-point curve only needs the
    /// precision at each relevant rank, since the interpolated precision at a recall level
    /// is the best precision at or after the hit that first reaches it.
    pub fn push(&mut self, rel: &[bool]) {
        self.n += 1;
        let cut_k = self.k.min(rel.len());
        let (mut hits, mut sum) = (0usize, 0.0f64);
        let (mut hits_k, mut sum_k) = (0usize, 0.0f64);
        self.hit_precision.clear();
        self.hits_prefix.clear();
        let max_cut = self.scope.iter().copied().max().unwrap_or(0);
        self.add_rank(rel.iter().position(|&r| r).map(|p| p + 1), rel.len());
        for (r, &is_rel) in rel.iter().enumerate() {
            if r == cut_k {
                (hits_k, sum_k) = (hits, sum);
            }
            if is_rel {
                hits += 1;
                let p = hits as f64 / (r + 1) as f64;
                sum += p;
                self.hit_precision.push(p);
            }
            if r < max_cut {
                self.hits_prefix.push(hits);
            }
        }
        if cut_k == rel.len() {
            (hits_k, sum_k) = (hits, sum);
        }
        self.sum_all += if hits == 0 { 0.0 } else { sum / hits as f64 };
        self.sum_k += if hits_k == 0 { 0.0 } else { sum_k / hits_k as f64 };
        for (s, &k) in self.sum_p.iter_mut().zip(&self.scope) {
            // A cut beyond the list counts the whole list (missing ranks are misses).
            let h = if k == 0 { 0 } else { self.hits_prefix.get(k - 1).copied().unwrap_or(hits) };
            *s += h as f64 / k as f64;
        }
        if hits > 0 {
            self.n_pr += 1;
            // Suffix maxima of the precision at each hit.
            let hp = &mut self.hit_precision;
            for i in (0..hp.len().saturating_sub(1)).rev() {
                hp[i] = hp[i].max(hp[i + 1]);
            }
            let mut h = 0usize;
            for (j, slot) in self.sum_pr.iter_mut().enumerate() {
                let level = j as f64 / 10.0;
                // The first hit count whose recall reaches the level (tolerance as above).
                while (h as f64 / hits as f64) + 1e-12 < level {
                    h += 1;
                }
                *slot += hp[h.saturating_sub(1)];
            }
        }
    }

    /// One query's terms of the sums, from the positions (0-based, increasing) of its
    /// relevant items in a ranking of `n` items: the same values [`RankAccumulator::push`]
    /// adds for the relevance list those positions describe, computed the same way, so
    /// adding them in query order ([`RankAccumulator::add`]) gives bit-identical means.
    /// `&self` only: rows can be worked on in parallel, each with its own `hit_precision`.
    pub fn terms(&self, positions: &[usize], n: usize, hit_precision: &mut Vec<f64>) -> QueryTerms {
        let cut_k = self.k.min(n);
        let (mut sum, mut hits_k, mut sum_k) = (0.0f64, 0usize, 0.0f64);
        hit_precision.clear();
        for (h, &r) in positions.iter().enumerate() {
            let p = (h + 1) as f64 / (r + 1) as f64;
            sum += p;
            hit_precision.push(p);
            if r < cut_k {
                (hits_k, sum_k) = (h + 1, sum);
            }
        }
        let hits = positions.len();
        let ap_all = if hits == 0 { 0.0 } else { sum / hits as f64 };
        let ap_k = if hits_k == 0 { 0.0 } else { sum_k / hits_k as f64 };
        let precision = self
            .scope
            .iter()
            .map(|&k| {
                // Hits within the top k; a cut beyond the list counts the whole list.
                let h = if k == 0 {
                    0
                } else if k <= n {
                    positions.partition_point(|&r| r < k)
                } else {
                    hits
                };
                h as f64 / k as f64
            })
            .collect();
        let mut pr11 = None;
        if hits > 0 {
            let hp = hit_precision;
            for i in (0..hp.len().saturating_sub(1)).rev() {
                hp[i] = hp[i].max(hp[i + 1]);
            }
            let mut out = [0.0; 11];
            let mut h = 0usize;
            for (j, slot) in out.iter_mut().enumerate() {
                let level = j as f64 / 10.0;
                while (h as f64 / hits as f64) + 1e-12 < level {
                    h += 1;
                }
                *slot = hp[h.saturating_sub(1)];
            }
            pr11 = Some(out);
        }
        QueryTerms { ap_all, ap_k, precision, pr11, rank: positions.first().map(|p| p + 1), n }
    }

    /// Adds one query's terms ([`RankAccumulator::terms`]).
    /// Counts one query's first-relevant rank (None: nothing relevant among `n` items).
    fn add_rank(&mut self, rank: Option<usize>, n: usize) {
        self.ranks.push(rank.unwrap_or(n + 1));
        for (h, &k) in self.recall_hits.iter_mut().zip(&RECALL_AT) {
            *h += rank.is_some_and(|r| r <= k) as usize;
        }
    }

    pub fn add(&mut self, t: &QueryTerms) {
        self.n += 1;
        self.add_rank(t.rank, t.n);
        self.sum_all += t.ap_all;
        self.sum_k += t.ap_k;
        for (s, p) in self.sum_p.iter_mut().zip(&t.precision) {
            *s += p;
        }
        if let Some(pr) = &t.pr11 {
            self.n_pr += 1;
            for (s, v) in self.sum_pr.iter_mut().zip(pr) {
                *s += v;
            }
        }
    }

    pub fn finish(&self) -> RankStats {
        let n = self.n.max(1) as f64;
        let npr = self.n_pr.max(1) as f64;
        let mut pr11 = self.sum_pr;
        pr11.iter_mut().for_each(|v| *v /= npr);
        RankStats {
            queries: self.n,
            map_all: self.sum_all / n,
            map_k: self.sum_k / n,
            k: self.k,
            precision_scope: self.scope.iter().zip(&self.sum_p).map(|(&k, &s)| (k, s / n)).collect(),
            pr11,
            no_relevant: self.n - self.n_pr,
            recall: RECALL_AT.iter().zip(&self.recall_hits).map(|(&k, &h)| (k, h as f64 / n)).collect(),
            median_rank: median(&mut self.ranks.clone()),
        }
    }
}
