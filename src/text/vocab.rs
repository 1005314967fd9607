//! Vocabulary fitted on the train split, and bag-of-words vertex signals.
//!
//! Words are ordered by train-split frequency (descending), ties by the word itself, so
//! the vertex order is deterministic. A text's signal is its count of each vocabulary
//! word; out-of-vocabulary tokens are counted, not silently lost.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    pub words: Vec<String>,
    pub counts: Vec<usize>,
    index: HashMap<String, usize>,
}

impl Vocab {
    /// Keeps words with train frequency ≥ `min_freq`, the `max_size` most frequent at most.
    pub fn fit<'a, I>(texts: I, min_freq: usize, max_size: Option<usize>) -> Vocab
    where
        I: IntoIterator<Item = &'a [String]>,
    {
        let mut freq: HashMap<&str, usize> = HashMap::new();
        for t in texts {
            for w in t {
                *freq.entry(w.as_str()).or_insert(0) += 1;
            }
        }
        let mut entries: Vec<(&str, usize)> = freq.into_iter().filter(|&(_, c)| c >= min_freq).collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        if let Some(m) = max_size {
            entries.truncate(m);
        }
        Vocab::from_words(
            entries.iter().map(|(w, _)| w.to_string()).collect(),
            entries.iter().map(|&(_, c)| c).collect(),
        )
    }

    pub fn from_words(words: Vec<String>, counts: Vec<usize>) -> Vocab {
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i)).collect();
        Vocab { words, counts, index }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn get(&self, w: &str) -> Option<usize> {
        self.index.get(w).copied()
    }

    /// The same words in the same order, with their counts in `texts` (0 for a word that
    /// `texts` lacks).
    pub fn recount<'a, I>(&self, texts: I) -> Vocab
    where
        I: IntoIterator<Item = &'a [String]>,
    {
        let mut counts = vec![0; self.len()];
        for t in texts {
            for w in t {
                if let Some(i) = self.get(w) {
                    counts[i] += 1;
                }
            }
        }
        Vocab::from_words(self.words.clone(), counts)
    }

    /// Keeps the words whose flag is set, in their order.
    pub fn retain(&self, keep: &[bool]) -> Vocab {
        let (words, counts) = self
            .words
            .iter()
            .zip(&self.counts)
            .zip(keep)
            .filter(|(_, &k)| k)
            .map(|((w, &c), _)| (w.clone(), c))
            .unzip();
        Vocab::from_words(words, counts)
    }

    /// Writes the count of each vocabulary word of `tokens` into `row` (length = vocab size)
    /// and returns how many tokens were out of vocabulary.
    pub fn bow_into(&self, tokens: &[String], row: &mut [f32]) -> usize {
        debug_assert_eq!(row.len(), self.len());
        let mut oov = 0;
        for t in tokens {
            match self.get(t) {
                Some(i) => row[i] += 1.0,
                None => oov += 1,
            }
        }
        oov
    }

    /// Row-major `[texts, vocab]` counts, and the total out-of-vocabulary token count.
    pub fn bow_matrix<'a, I>(&self, texts: I) -> (Vec<f32>, usize, usize)
    where
        I: IntoIterator<Item = &'a [String]>,
    {
        let v = self.len();
        let mut data = Vec::new();
        let (mut oov, mut total) = (0, 0);
        for t in texts {
            let start = data.len();
            data.resize(start + v, 0.0);
            oov += self.bow_into(t, &mut data[start..]);
            total += t.len();
        }
        (data, oov, total)
    }
}
