//! Tokenizers that turn raw text into the word tokens of the vocabulary.
//!
//! English: lowercase, maximal runs of alphabetic characters, tokens of at least two
//! letters, an English stop-word list (NLTK's), and optional Snowball (Porter 2)
//! stemming. Chinese: jieba segmentation (`jieba-rs`, its built-in dictionary), keeping
//! segments that contain a letter or a CJK ideograph. Pre-tokenized inputs (Eng-Wiki's
//! `text_seqs`, the synthetic texts) bypass this module.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    En,
    Zh,
}

/// NLTK's English stop words (179), lowercase, apostrophes removed from contractions
/// so that they match the alphabetic runs this tokenizer produces.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "youre",
    "youve",
    "youll",
    "youd",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "shes",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "thatll",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "dont",
    "should",
    "shouldve",
    "now",
    "d",
    "ll",
    "m",
    "o",
    "re",
    "ve",
    "y",
    "ain",
    "aren",
    "arent",
    "couldn",
    "couldnt",
    "didn",
    "didnt",
    "doesn",
    "doesnt",
    "hadn",
    "hadnt",
    "hasn",
    "hasnt",
    "haven",
    "havent",
    "isn",
    "isnt",
    "ma",
    "mightn",
    "mightnt",
    "mustn",
    "mustnt",
    "needn",
    "neednt",
    "shan",
    "shant",
    "shouldn",
    "shouldnt",
    "wasn",
    "wasnt",
    "weren",
    "werent",
    "won",
    "wont",
    "wouldn",
    "wouldnt",
];

pub struct Tokenizer {
    language: Language,
    stop: HashSet<&'static str>,
    stemmer: Option<rust_stemmers::Stemmer>,
    jieba: Option<jieba_rs::Jieba>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2EBEF)
}

impl Tokenizer {
    pub fn new(language: Language, stop_words: bool, stem: bool) -> Tokenizer {
        let stop = if stop_words && language == Language::En {
            ENGLISH_STOP_WORDS.iter().copied().collect()
        } else {
            HashSet::new()
        };
        Tokenizer {
            language,
            stop,
            stemmer: (stem && language == Language::En)
                .then(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English)),
            jieba: (language == Language::Zh).then(jieba_rs::Jieba::new),
        }
    }

    pub fn tokenize(&self, text: &str) -> Vec<String> {
        match self.language {
            Language::En => {
                let lower = text.to_lowercase();
                lower
                    .split(|c: char| !c.is_alphabetic())
                    .filter(|w| w.chars().count() >= 2 && !self.stop.contains(w))
                    .map(|w| match &self.stemmer {
                        Some(s) => s.stem(w).into_owned(),
                        None => w.to_string(),
                    })
                    .collect()
            }
            Language::Zh => {
                let jieba = self.jieba.as_ref().expect("jieba for zh");
                jieba
                    .cut(text, false)
                    .into_iter()
                    .map(|t| t.word.trim())
                    .filter(|w| w.chars().any(|c| is_cjk(c) || c.is_alphabetic()))
                    .map(str::to_lowercase)
                    .collect()
            }
        }
    }
}
