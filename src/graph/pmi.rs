//! Positive-PMI co-occurrence neighbours over sliding windows, as TextGCN (Yao et al. 2019)
//! builds its word–word edges, cut to the k strongest per word so that the relation has
//! the shape of a kNN list (SCKR unions such lists).
//!
//! Every text is its sequence of vocabulary ids (other tokens removed). A text of length
//! L ≥ w gives the L − w + 1 windows of w consecutive ids; a shorter text is one window.
//! With #W the number of windows, #W(i) those holding word i and #W(i, j) those holding
//! both (a word repeated in a window counts once):
//!
//!   PMI(i, j) = log( #W(i, j) · #W / (#W(i) · #W(j)) ).
//!
//! A pair is a candidate when PMI > 0 and #W(i, j) ≥ `min_count` (PMI favours pairs that
//! met once); each word keeps its k candidates of highest PMI (ties: smaller id first).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PmiConfig {
    /// Window length in tokens (TextGCN: 20).
    pub window: usize,
    /// Neighbours kept per word, highest PMI first.
    pub k: usize,
    /// Windows a pair must share to be an edge.
    pub min_count: usize,
}

impl Default for PmiConfig {
    fn default() -> Self {
        PmiConfig { window: 20, k: 8, min_count: 3 }
    }
}

/// A multiplicative hash for the packed (i, j) keys: the window loop makes ~10⁸ lookups,
/// where SipHash would dominate.
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Window counts: #W, #W(i) and #W(i, j) for i < j.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCounts {
    pub windows: u64,
    pub word: Vec<u64>,
    pub pair: HashMap<(u32, u32), u64>,
}

/// Counts windows over `texts` (vocabulary ids below `n`).
pub fn window_counts(texts: &[Vec<usize>], n: usize, window: usize) -> Result<WindowCounts> {
    ensure!(window >= 2, "`graph.pmi.window` is {window}; a window must hold at least 2 tokens");
    let mut word = vec![0u64; n];
    let mut pair: HashMap<u64, u64, BuildHasherDefault<PairHasher>> = HashMap::default();
    let mut windows = 0u64;
    let mut seen: Vec<usize> = Vec::with_capacity(window);
    for t in texts {
        if t.is_empty() {
            continue;
        }
        let starts = if t.len() >= window { t.len() - window + 1 } else { 1 };
        for s in 0..starts {
            seen.clear();
            seen.extend_from_slice(&t[s..(s + window).min(t.len())]);
            seen.sort_unstable();
            seen.dedup();
            windows += 1;
            for (a, &i) in seen.iter().enumerate() {
                ensure!(i < n, "token id {i} outside the vocabulary of {n} words");
                word[i] += 1;
                for &j in &seen[a + 1..] {
                    *pair.entry(((i as u64) << 32) | j as u64).or_insert(0) += 1;
                }
            }
        }
    }
    let pair = pair.into_iter().map(|(k, c)| (((k >> 32) as u32, k as u32), c)).collect();
    Ok(WindowCounts { windows, word, pair })
}

impl WindowCounts {
    pub fn pmi(&self, i: usize, j: usize) -> Option<f64> {
        let key = if i < j { (i as u32, j as u32) } else { (j as u32, i as u32) };
        let c = *self.pair.get(&key)?;
        Some(((c as f64) * self.windows as f64 / (self.word[i] as f64 * self.word[j] as f64)).ln())
    }
}

/// Each word's k highest-PMI partners among the pairs with PMI > 0 and at least
/// `min_count` shared windows: `lists[i]` best first.
pub fn pmi_neighbours(texts: &[Vec<usize>], n: usize, cfg: &PmiConfig) -> Result<Vec<Vec<usize>>> {
    let counts = window_counts(texts, n, cfg.window)?;
    let mut cand: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (&(i, j), &c) in &counts.pair {
        if (c as usize) < cfg.min_count {
            continue;
        }
        let (i, j) = (i as usize, j as usize);
        let p = counts.pmi(i, j).expect("the pair was counted");
        if p > 0.0 {
            cand[i].push((p, j));
            cand[j].push((p, i));
        }
    }
    Ok(cand
        .into_iter()
        .map(|mut c| {
            c.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            c.into_iter().take(cfg.k).map(|(_, j)| j).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of 3 over [0 1 2 0 3] and the short text [1 3]:
    /// {0,1,2}, {1,2,0}, {2,0,3}, {1,3} → #W = 4;
    /// #W(0) = 3, #W(1) = 3, #W(2) = 3, #W(3) = 2;
    /// #W(0,1) = 2, #W(0,2) = 3, #W(1,2) = 2, #W(0,3) = 1, #W(2,3) = 1, #W(1,3) = 1.
    #[test]
    fn window_counts_match_a_hand_count() {
        let texts = vec![vec![0, 1, 2, 0, 3], vec![1, 3]];
        let c = window_counts(&texts, 4, 3).unwrap();
        assert_eq!(c.windows, 4);
        assert_eq!(c.word, vec![3, 3, 3, 2]);
        let want = [((0, 1), 2), ((0, 2), 3), ((1, 2), 2), ((0, 3), 1), ((2, 3), 1), ((1, 3), 1)];
        assert_eq!(c.pair.len(), want.len());
        for ((i, j), n) in want {
            assert_eq!(c.pair[&(i, j)], n, "pair ({i}, {j})");
        }
        // PMI(0, 2) = ln(3·4 / (3·3)) = ln(4/3); PMI(1, 3) = ln(1·4 / (3·2)) = ln(2/3) < 0.
        assert!((c.pmi(0, 2).unwrap() - (4.0f64 / 3.0).ln()).abs() < 1e-12);
        assert!((c.pmi(3, 1).unwrap() - (2.0f64 / 3.0).ln()).abs() < 1e-12);
        assert_eq!(c.pmi(1, 1), None);
    }

    #[test]
    fn neighbours_keep_positive_pmi_above_the_count_floor() {
        let texts = vec![vec![0, 1, 2, 0, 3], vec![1, 3]];
        // PMI: (0,1) ln(8/9) < 0, (0,2) ln(4/3), (1,2) ln(8/9), (0,3) ln(4/6), (2,3) ln(4/6),
        // (1,3) ln(4/6): only 0–2 is positive.
        let all = PmiConfig { window: 3, k: 8, min_count: 1 };
        assert_eq!(pmi_neighbours(&texts, 4, &all).unwrap(), vec![vec![2], vec![], vec![0], vec![]]);
        // 0–2 shares 3 windows: a floor of 4 removes it.
        let strict = PmiConfig { window: 3, k: 8, min_count: 4 };
        assert_eq!(pmi_neighbours(&texts, 4, &strict).unwrap(), vec![Vec::<usize>::new(); 4]);
        // Two texts far apart: 0 and 1 always together (PMI ln 2), 2 and 3 likewise; k = 1.
        let texts = vec![vec![0, 1], vec![0, 1], vec![2, 3], vec![2, 3]];
        let one = PmiConfig { window: 2, k: 1, min_count: 1 };
        assert_eq!(pmi_neighbours(&texts, 4, &one).unwrap(), vec![vec![1], vec![0], vec![3], vec![2]]);
    }

    #[test]
    fn a_window_of_one_is_refused() {
        let e = window_counts(&[vec![0]], 1, 1).unwrap_err().to_string();
        assert!(e.contains("graph.pmi.window"), "{e}");
    }
}
