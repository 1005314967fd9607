"""Raw English text to vocabulary tokens, by the rules of the Rust tokenizer
(src/data/tokenize.rs): lowercase, maximal runs of alphabetic characters, tokens of at
least two letters, NLTK's English stop words (apostrophes removed), optional Snowball
English (Porter 2) stemming. Chinese (jieba) is not mirrored: segment the text yourself and
pass the tokens to `bow`.

"Alphabetic" follows Python's str.isalpha (Unicode letters) plus letter numbers (Nl), which
matches Rust's char::is_alphabetic except for the few combining marks that Unicode counts as
alphabetic (e.g. Devanagari vowel signs), which split a word here.
"""
from __future__ import annotations

import unicodedata

ENGLISH_STOP_WORDS = frozenset([
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "youre", "youve",
    "youll", "youd", "your", "yours", "yourself", "yourselves", "he", "him", "his",
    "himself", "she", "shes", "her", "hers", "herself", "it", "its", "itself", "they",
    "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that",
    "thatll", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being",
    "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and",
    "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with",
    "about", "against", "between", "into", "through", "during", "before", "after", "above",
    "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again",
    "further", "then", "once", "here", "there", "when", "where", "why", "how", "all", "any",
    "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not",
    "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just",
    "don", "dont", "should", "shouldve", "now", "d", "ll", "m", "o", "re", "ve", "y", "ain",
    "aren", "arent", "couldn", "couldnt", "didn", "didnt", "doesn", "doesnt", "hadn",
    "hadnt", "hasn", "hasnt", "haven", "havent", "isn", "isnt", "ma", "mightn", "mightnt",
    "mustn", "mustnt", "needn", "neednt", "shan", "shant", "shouldn", "shouldnt", "wasn",
    "wasnt", "weren", "werent", "won", "wont", "wouldn", "wouldnt",
])


def _alphabetic(c: str) -> bool:
    return c.isalpha() or unicodedata.category(c) == "Nl"


class Tokenizer:
    """`Tokenizer(language, stop_words, stem).tokenize(text) -> list[str]`, as the run's `text` config."""

    def __init__(self, language: str = "en", stop_words: bool = True, stem: bool = False):
        if language != "en":
            raise ValueError(
                f"the {language!r} tokenizer is not mirrored in Python (jieba segmentation in Rust): "
                "segment the text yourself and pass the tokens to bow()"
            )
        self.stop = ENGLISH_STOP_WORDS if stop_words else frozenset()
        self.stemmer = None
        if stem:
            import snowballstemmer

            self.stemmer = snowballstemmer.stemmer("english")

    def tokenize(self, text: str) -> list[str]:
        out, run = [], []
        for c in text.lower() + " ":
            if _alphabetic(c):
                run.append(c)
                continue
            if run:
                w = "".join(run)
                run = []
                if len(w) >= 2 and w not in self.stop:
                    out.append(self.stemmer.stemWord(w) if self.stemmer else w)
        return out
