"""The Python tokenizer (tgcn_torch) against the Rust one. CASES.json is either a list of
{stop_words, stem, texts, tokens} (Rust's Tokenizer::tokenize), or {run, texts, tokens}
(Rust's tokenize_query for that run): then the run's bag of words is checked too.
Usage: check_tokenizer.py CASES.json"""
import json
import sys
from collections import Counter

from tgcn_torch import Tokenizer, load_run

cases = json.load(open(sys.argv[1]))
checked = 0
if isinstance(cases, dict):
    run = load_run(cases["run"])
    in_vocab = 0.0
    for text, want in zip(cases["texts"], cases["tokens"]):
        got = run.tokenize(text)
        assert got == want, f"{text!r}: Python {got} vs Rust {want}"
        bow = run.bow(text)[0]
        expect = [0.0] * len(run.vocab)
        for w, c in Counter(want).items():
            if w in run.word_index:
                expect[run.word_index[w]] = float(c)
        assert bow.tolist() == expect, f"{text!r}: bag of words differs"
        checked += 1
        in_vocab += float(bow.sum())
    assert in_vocab > 0, "no text has a word of the vocabulary: the bag-of-words check saw only zeros"
else:
    for case in cases:
        tok = Tokenizer("en", case["stop_words"], case["stem"])
        for text, want in zip(case["texts"], case["tokens"]):
            got = tok.tokenize(text)
            assert got == want, f"stop_words={case['stop_words']} stem={case['stem']} {text!r}: Python {got} vs Rust {want}"
            checked += 1
print(f"{checked} texts tokenized as Rust does")
