//! Text stage: a dataset's tokens (the data stage tokenizes, `data::tokenize`) → the
//! train-split vocabulary and bag-of-words vertex signals (`vocab`) → word vectors for
//! the graph (`skipgram` trains them, `wordvec` reads files and picks the source).
//! [`TextConfig`] holds the tokenizer and vocabulary settings.
//!
//! Input: a [`crate::data::Dataset`]'s tokens. Output: [`vocab::Vocab`] and
//! [`crate::data::WordVectors`].

pub mod vocab;
pub mod skipgram;
pub mod wordvec;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Tokenizer for raw texts: `en` (alphabetic, lowercase) or `zh` (jieba). Pre-tokenized
    /// inputs (synthetic, Eng-Wiki `text_seqs`, NUS-WIDE tags) are taken as they are.
    pub language: crate::data::tokenize::Language,
    /// Drop English stop words (NLTK's list).
    pub stop_words: bool,
    /// Snowball (Porter 2) stemming for English.
    pub stem: bool,
    /// Keep words seen at least this many times in the train split.
    pub min_freq: usize,
    /// Keep at most this many words (most frequent first); null keeps all.
    pub max_vocab: Option<usize>,
    /// Short-text studies: only the first N tokens of each text (every split, and a search
    /// query) make its bag of words. The vocabulary, word vectors and graph still come from
    /// the full training texts. Absent: whole texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Lowercase every token, pre-tokenized texts (Eng-Wiki `text_seqs` keep case) and a
    /// search query included, so that "Army" and "army" are one word and a case-folded
    /// vector file (GloVe 6B) covers them. The `en` tokenizer lowercases raw texts anyway.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub lowercase: bool,
    /// Transductive: the vocabulary, skip-gram vectors and PMI co-occurrences come from the
    /// texts of every split (train, validation and the unlabeled test texts), as TextGCN
    /// does. Tokens only: no label outside the train split is read. Off (inductive): the
    /// train split alone. Results with it are reported apart from inductive ones.
    #[serde(default, skip_serializing_if = "crate::files::is_false")]
    pub transductive: bool,
}
