//! Where the relevant items of one query land in its ranking, without sorting the row.
//!
//! Every metric of [`crate::eval::map`] depends only on the positions of the relevant
//! items in the stable descending order of the scores (ties keep database order), and
//! their count. This finds those positions exactly and never builds the rest of the order:
//! 1. the scores are mapped onto 2n buckets by an affine map of [min, max]; the map is
//!    monotone, so a higher bucket never holds a lower score;
//! 2. one pass counts each bucket and threads its items on a list; a prefix sum then
//!    gives how many items rank above each bucket;
//! 3. a relevant item's position is the count above its bucket plus the items of its
//!    own bucket (about one) that precede it: a higher score, or an equal score and a
//!    lower database index.
//!
//! That is three linear passes and O(relevant × bucket size) comparisons per row instead
//! of an O(n log n) sort; heavy ties only make some buckets longer (a constant row is
//! database order, found at once). Rows holding NaN or ±∞ take a full stable sort,
//! with NaN ranked first as `torch.sort(descending=True, stable=True)` ranks it.
//! Pure Rust, no libtorch: the evaluator runs it on many rows at once.

use std::cmp::Ordering;

/// Buckets per item: fewer make longer buckets to walk, more make longer passes.
const BUCKETS_PER_ITEM: usize = 2;

/// The end of a bucket's list.
const NONE: u32 = u32::MAX;

/// Buckets up to this long are walked once per relevant item in them; longer ones (ties,
/// dense score regions) are sorted once.
const WALK_MAX: usize = 16;

/// A flag on `above`: the bucket has been sorted and its relevant items placed.
const DONE: u32 = 1 << 31;

/// Scratch buffers reused across rows (one per thread).
#[derive(Debug, Default)]
pub struct RowRanker {
    /// Per bucket: its item count, then (after the prefix sum) the items above it.
    above: Vec<u32>,
    /// Per bucket: the last item put in it; `next[i]`: the item put in before i.
    head: Vec<u32>,
    next: Vec<u32>,
    /// One bit per rank: a relevant item is there.
    marks: Vec<u64>,
    /// One bit per item: it is relevant.
    is_relevant: Vec<u64>,
    /// The items of one long bucket, keyed by [`descending_key`].
    members: Vec<u64>,
    order: Vec<u32>,
}

/// Descending score order with NaN first; equal scores (−0 and +0 too) compare equal.
fn descending(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => b.partial_cmp(&a).expect("no NaN here"),
    }
}

/// A key that orders finite scores descending as integers ascending; −0 and +0 share one.
fn descending_key(s: f32) -> u32 {
    let bits = (s + 0.0).to_bits();
    let ascending = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    !ascending
}

/// (min, max, all finite) of a row, in eight lanes so that it vectorizes.
fn range(scores: &[f32]) -> (f32, f32, bool) {
    let (mut lo, mut hi, mut finite) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8], [true; 8]);
    let mut chunks = scores.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            let s = c[l];
            finite[l] &= s.is_finite();
            lo[l] = if s < lo[l] { s } else { lo[l] };
            hi[l] = if s > hi[l] { s } else { hi[l] };
        }
    }
    for &s in chunks.remainder() {
        finite[0] &= s.is_finite();
        lo[0] = if s < lo[0] { s } else { lo[0] };
        hi[0] = if s > hi[0] { s } else { hi[0] };
    }
    let lo = lo.iter().fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let hi = hi.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    (lo, hi, finite.iter().all(|&f| f))
}

impl RowRanker {
    /// Positions (0-based, increasing) of the items `relevant` (database indices,
    /// increasing) in the stable descending order of `scores`, written to `out`.
    pub fn relevant_positions(&mut self, scores: &[f32], relevant: &[u32], out: &mut Vec<usize>) {
        out.clear();
        let n = scores.len();
        assert!(n < DONE as usize, "a database of {n} items is beyond the bucket counters");
        if relevant.is_empty() {
            return;
        }
        let (lo, hi, finite) = range(scores);
        if !finite {
            return self.by_full_sort(scores, relevant, out);
        }
        if lo == hi {
            // All scores equal: database order is the ranking.
            out.extend(relevant.iter().map(|&i| i as usize));
            return;
        }
        // Bucket 0 holds the highest scores. (s − lo) · scale is monotone in s (each step
        // rounds correctly), and the clamp keeps s = hi in the last bucket's range.
        let buckets = n * BUCKETS_PER_ITEM;
        let top = (buckets - 1) as u32;
        let scale = buckets as f32 / (hi - lo);
        let bucket = |s: f32| (top - (((s - lo) * scale) as u32).min(top)) as usize;
        self.above.clear();
        self.above.resize(buckets, 0);
        self.head.clear();
        self.head.resize(buckets, NONE);
        self.next.clear();
        self.next.resize(n, NONE);
        for (i, &s) in scores.iter().enumerate() {
            let b = bucket(s);
            self.next[i] = self.head[b];
            self.head[b] = i as u32;
            self.above[b] += 1;
        }
        let mut above = 0u32;
        for c in self.above.iter_mut() {
            let here = *c;
            *c = above;
            above += here;
        }
        self.marks.clear();
        self.marks.resize(n.div_ceil(64), 0);
        self.is_relevant.clear();
        for &j in relevant {
            let sj = scores[j as usize];
            let b = bucket(sj);
            let above = self.above[b];
            if above & DONE != 0 {
                continue; // a long bucket, all of whose relevant items are placed
            }
            if self.count(b) <= WALK_MAX {
                // Walk the bucket: the items that precede j in it.
                let mut p = above as usize;
                let mut m = self.head[b];
                while m != NONE {
                    let sm = scores[m as usize];
                    p += (sm > sj || (sm == sj && m < j)) as usize;
                    m = self.next[m as usize];
                }
                self.marks[p / 64] |= 1 << (p % 64);
            } else {
                // Sort the bucket once (database order, then stably by score) and place
                // every relevant item in it: heavy ties cost a sort of the tie, not a
                // walk per relevant item.
                if self.is_relevant.is_empty() {
                    self.is_relevant.resize(n.div_ceil(64), 0);
                    for &r in relevant {
                        self.is_relevant[r as usize / 64] |= 1 << (r % 64);
                    }
                }
                // (score descending, index ascending) as one u64 per item: the sort
                // needs no comparator, and distinct keys make an unstable sort exact.
                self.members.clear();
                let mut m = self.head[b];
                while m != NONE {
                    self.members.push(((descending_key(scores[m as usize]) as u64) << 32) | m as u64);
                    m = self.next[m as usize];
                }
                self.members.sort_unstable();
                for (k, &key) in self.members.iter().enumerate() {
                    let m = key as u32;
                    if self.is_relevant[m as usize / 64] & (1 << (m % 64)) != 0 {
                        let p = above as usize + k;
                        self.marks[p / 64] |= 1 << (p % 64);
                    }
                }
                self.above[b] |= DONE;
            }
        }
        for (w, &m) in self.marks.iter().enumerate() {
            let mut m = m;
            while m != 0 {
                out.push(w * 64 + m.trailing_zeros() as usize);
                m &= m - 1;
            }
        }
    }

    /// Items in bucket `b` (after the prefix sum).
    fn count(&self, b: usize) -> usize {
        let end = self.above.get(b + 1).map_or(self.next.len() as u32, |&a| a & !DONE);
        (end - (self.above[b] & !DONE)) as usize
    }

    /// A full stable sort of the row (the path for NaN and ±∞).
    fn by_full_sort(&mut self, scores: &[f32], relevant: &[u32], out: &mut Vec<usize>) {
        self.order.clear();
        self.order.extend(0..scores.len() as u32);
        self.order.sort_by(|&x, &y| descending(scores[x as usize], scores[y as usize]));
        let mut is_relevant = vec![false; scores.len()];
        for &j in relevant {
            is_relevant[j as usize] = true;
        }
        out.extend(self.order.iter().enumerate().filter(|(_, &i)| is_relevant[i as usize]).map(|(p, _)| p));
    }
}

/// Positions of the `true` entries of a relevance list already in rank order.
pub fn positions_of(rel_in_rank_order: &[bool], out: &mut Vec<usize>) {
    out.clear();
    out.extend(rel_in_rank_order.iter().enumerate().filter(|(_, &r)| r).map(|(p, _)| p));
}

/// Which database items each query finds relevant (sharing a label), from multi-hot
/// labels as bit masks: one list per distinct label set, built once and shared by every
/// query with that set (a single-label database has one list per class).
pub struct Relevance {
    db: Vec<u128>,
    lists: std::collections::HashMap<u128, Vec<u32>>,
}

impl Relevance {
    /// None when a row has more than 128 classes (the evaluator then uses label products).
    pub fn new(db_labels: &[f32], classes: usize) -> Option<Relevance> {
        (classes <= 128).then(|| Relevance { db: masks(db_labels, classes), lists: Default::default() })
    }

    /// A list [`Relevance::of`] has built already.
    pub fn cached(&self, mask: u128) -> &[u32] {
        &self.lists[&mask]
    }

    /// The database items that share a label with a query of label `mask`, increasing.
    pub fn of(&mut self, mask: u128) -> &[u32] {
        let db = &self.db;
        self.lists.entry(mask).or_insert_with(|| (0..db.len() as u32).filter(|&i| db[i as usize] & mask != 0).collect())
    }
}

/// Bit masks of multi-hot rows `[n, classes]` (a label is on above 0.5).
pub fn masks(labels: &[f32], classes: usize) -> Vec<u128> {
    if classes == 0 {
        return Vec::new();
    }
    labels
        .chunks(classes)
        .map(|row| row.iter().enumerate().fold(0u128, |m, (c, &v)| m | (((v > 0.5) as u128) << c)))
        .collect()
}
