//! Lexicon edges from WordNet 3.0: two vocabulary words are joined when they share a
//! synset (synonyms) or, with `hypernyms`, when a synset of one is a direct hypernym
//! (`@`, or instance hypernym `@i`) of a synset of the other.
//!
//! Reads the Princeton database files as Debian's `wordnet-base` installs them
//! (`make wordnet` unpacks them into `models/wordnet/`): `data.{noun,verb,adj,adv}` (one
//! synset per line: `offset lex_filenum ss_type w_cnt word lex_id … p_cnt ptr… | gloss`,
//! see wndb(5WN); the license header's lines start with two spaces) and the exception
//! lists `{noun,verb,adj,adv}.exc` (`inflected base…`), when present.
//!
//! A vocabulary word, lowercased, is looked up as WordNet's morphy(7WN) does for each part
//! of speech: the word itself, its bases in the exception list, and the bases its
//! detachment rules give (nouns: -s, -ses→s, -xes→x, -zes→z, -ches→ch, -shes→sh, -men→man,
//! -ies→y; verbs: -s, -ies→y, -es→e, -es, -ed→e, -ed, -ing→e, -ing; adjectives: -er, -est,
//! -er→e, -est→e), keeping the forms that are lemmas of that part of speech. So "dogs" and
//! "dog" share every synset. Lemmas are lowercased; multi-word lemmas keep their `_` and
//! match only a vocabulary word written that way; an adjective's syntactic marker, as in
//! `galore(ip)`, is removed.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where `make wordnet` unpacks Debian's `wordnet-base`.
pub const WORDNET_DIR: &str = "models/wordnet";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WordnetConfig {
    /// Folder of the database files; left out, [`WORDNET_DIR`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Join a word to the words of its synsets' direct hypernyms, beside its synonyms.
    pub hypernyms: bool,
}

impl Default for WordnetConfig {
    fn default() -> Self {
        WordnetConfig { path: None, hypernyms: true }
    }
}

const POS: [(&str, char); 4] = [("noun", 'n'), ("verb", 'v'), ("adj", 'a'), ("adv", 'r')];

/// A synset: part of speech (satellites `s` count as `a`) and byte offset.
type Synset = (char, u32);

/// The parts of the database the edges need.
#[derive(Debug, Default)]
pub struct Wordnet {
    /// Per part of speech: lemma → its synsets.
    lemmas: HashMap<char, HashMap<String, Vec<Synset>>>,
    /// Per part of speech: inflected form → base forms.
    exceptions: HashMap<char, HashMap<String, Vec<String>>>,
    /// Synset → its direct hypernyms.
    hypernyms: HashMap<Synset, Vec<Synset>>,
}

fn pos_of(c: &str) -> Option<char> {
    match c {
        "n" => Some('n'),
        "v" => Some('v'),
        "a" | "s" => Some('a'),
        "r" => Some('r'),
        _ => None,
    }
}

impl Wordnet {
    /// Reads `dir`, naming the missing file and `make wordnet` when the database is absent.
    pub fn open(dir: &Path) -> Result<Wordnet> {
        let mut wn = Wordnet::default();
        for (name, pos) in POS {
            let path = dir.join(format!("data.{name}"));
            ensure!(
                path.is_file(),
                "WordNet file {} is absent: run `make wordnet` (unpacks Debian's wordnet-base into {WORDNET_DIR}), \
                 or point `graph.wordnet.path` at a folder with data.noun, data.verb, data.adj and data.adv",
                path.display()
            );
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read WordNet file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                if line.starts_with("  ") || line.trim().is_empty() {
                    continue; // license header
                }
                wn.parse_synset(line, pos).with_context(|| format!("{}:{}", path.display(), n + 1))?;
            }
            let exc = dir.join(format!("{name}.exc"));
            if exc.is_file() {
                let text = std::fs::read_to_string(&exc)
                    .with_context(|| format!("cannot read WordNet file {}", exc.display()))?;
                let map = wn.exceptions.entry(pos).or_default();
                for line in text.lines() {
                    let mut f = line.split_ascii_whitespace();
                    if let Some(form) = f.next() {
                        map.entry(form.to_lowercase()).or_default().extend(f.map(str::to_lowercase));
                    }
                }
            }
        }
        Ok(wn)
    }

    fn parse_synset(&mut self, line: &str, file_pos: char) -> Result<()> {
        let data = line.split(" | ").next().unwrap_or(line);
        let f: Vec<&str> = data.split_ascii_whitespace().collect();
        ensure!(f.len() >= 4, "a synset line has at least offset, lex_filenum, ss_type and w_cnt");
        let offset: u32 = f[0].parse().with_context(|| format!("synset offset {:?} is not a number", f[0]))?;
        let pos = pos_of(f[2]).with_context(|| format!("unknown synset type {:?}", f[2]))?;
        ensure!(pos == file_pos, "synset type {:?} in the data file of part of speech {file_pos:?}", f[2]);
        let w_cnt = usize::from_str_radix(f[3], 16).with_context(|| format!("word count {:?} is not hex", f[3]))?;
        let p_at = 4 + 2 * w_cnt;
        ensure!(f.len() > p_at, "the line ends inside its {w_cnt} words");
        let me = (pos, offset);
        let lemmas = self.lemmas.entry(pos).or_default();
        for w in (0..w_cnt).map(|i| f[4 + 2 * i]) {
            let lemma = match w.find('(') {
                Some(p) if pos == 'a' && w.ends_with(')') => &w[..p],
                _ => w,
            };
            let list = lemmas.entry(lemma.to_lowercase()).or_default();
            if !list.contains(&me) {
                list.push(me);
            }
        }
        let p_cnt: usize = f[p_at].parse().with_context(|| format!("pointer count {:?} is not a number", f[p_at]))?;
        ensure!(f.len() >= p_at + 1 + 4 * p_cnt, "the line ends inside its {p_cnt} pointers");
        for p in 0..p_cnt {
            let ptr = &f[p_at + 1 + 4 * p..p_at + 5 + 4 * p];
            if ptr[0] == "@" || ptr[0] == "@i" {
                let target: u32 =
                    ptr[1].parse().with_context(|| format!("pointer offset {:?} is not a number", ptr[1]))?;
                let Some(tp) = pos_of(ptr[2]) else { bail!("pointer part of speech {:?} is unknown", ptr[2]) };
                self.hypernyms.entry(me).or_default().push((tp, target));
            }
        }
        Ok(())
    }

    /// The base forms of `word` (lowercased) for part of speech `pos` that are lemmas.
    pub fn morphy(&self, word: &str, pos: char) -> Vec<String> {
        const NOUN: &[(&str, &str)] = &[
            ("s", ""),
            ("ses", "s"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ];
        const VERB: &[(&str, &str)] =
            &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")];
        const ADJ: &[(&str, &str)] = &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")];
        let Some(lemmas) = self.lemmas.get(&pos) else { return Vec::new() };
        let w = word.to_lowercase();
        let mut out: Vec<String> = Vec::new();
        let mut add = |b: String| {
            if lemmas.contains_key(&b) && !out.contains(&b) {
                out.push(b);
            }
        };
        add(w.clone());
        if let Some(bases) = self.exceptions.get(&pos).and_then(|m| m.get(&w)) {
            bases.iter().cloned().for_each(&mut add);
        }
        let rules = match pos {
            'n' => NOUN,
            'v' => VERB,
            'a' => ADJ,
            _ => &[],
        };
        for (suffix, ending) in rules {
            if let Some(stem) = w.strip_suffix(suffix) {
                if !stem.is_empty() {
                    add(format!("{stem}{ending}"));
                }
            }
        }
        out
    }

    /// Every synset of `word` over the four parts of speech, through [`Wordnet::morphy`].
    pub fn synsets(&self, word: &str) -> Vec<Synset> {
        let mut out = Vec::new();
        for (_, pos) in POS {
            for base in self.morphy(word, pos) {
                for s in &self.lemmas[&pos][&base] {
                    if !out.contains(s) {
                        out.push(*s);
                    }
                }
            }
        }
        out
    }

    /// Undirected edges (i < j) between the vocabulary `words`, sorted.
    pub fn edges(&self, words: &[String], hypernyms: bool) -> Vec<(usize, usize)> {
        let synsets: Vec<Vec<Synset>> = words.iter().map(|w| self.synsets(w)).collect();
        let mut members: HashMap<Synset, Vec<usize>> = HashMap::new();
        for (i, ss) in synsets.iter().enumerate() {
            for s in ss {
                members.entry(*s).or_default().push(i);
            }
        }
        let mut edges: HashSet<(usize, usize)> = HashSet::new();
        let mut join = |a: usize, b: usize| {
            if a != b {
                edges.insert((a.min(b), a.max(b)));
            }
        };
        for (i, ss) in synsets.iter().enumerate() {
            for s in ss {
                members[s].iter().for_each(|&j| join(i, j));
                if hypernyms {
                    for h in self.hypernyms.get(s).into_iter().flatten() {
                        members.get(h).into_iter().flatten().for_each(|&j| join(i, j));
                    }
                }
            }
        }
        let mut edges: Vec<(usize, usize)> = edges.into_iter().collect();
        edges.sort_unstable();
        edges
    }
}

/// The WordNet edges of `words` under `cfg`, as neighbour lists.
pub fn wordnet_neighbours(words: &[String], cfg: &WordnetConfig) -> Result<Vec<Vec<usize>>> {
    let dir = cfg.path.clone().unwrap_or_else(|| PathBuf::from(WORDNET_DIR));
    let wn = Wordnet::open(&dir)?;
    let mut lists = vec![Vec::new(); words.len()];
    for (i, j) in wn.edges(words, cfg.hypernyms) {
        lists[i].push(j);
        lists[j].push(i);
    }
    Ok(lists)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines copied from the WordNet 3.0 files (tests/fixtures/wordnet, with its LICENSE).
    fn fixture() -> Wordnet {
        Wordnet::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wordnet")).unwrap()
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn morphy_follows_exceptions_and_detachment_rules() {
        let wn = fixture();
        assert_eq!(wn.morphy("dogs", 'n'), vec!["dog"]);
        assert_eq!(wn.morphy("Dog", 'n'), vec!["dog"]);
        assert_eq!(wn.morphy("geese", 'n'), vec!["goose"]);
        assert_eq!(wn.morphy("went", 'v'), vec!["go"]);
        assert_eq!(wn.morphy("going", 'v'), vec!["go"]);
        assert_eq!(wn.morphy("biggest", 'a'), vec!["big"]);
        assert_eq!(wn.morphy("galore", 'a'), vec!["galore"], "the (ip) marker is removed");
        assert!(wn.morphy("cat", 'n').is_empty());
        // data.noun's 02084071 (dog, domestic_dog, Canis_familiaris) and 10023039 (dog: a man).
        assert_eq!(wn.synsets("dog"), vec![('n', 2084071), ('n', 10023039)]);
        assert_eq!(wn.synsets("canis_familiaris"), vec![('n', 2084071)]);
    }

    #[test]
    fn edges_join_synonyms_and_direct_hypernyms() {
        let wn = fixture();
        let v = words(&[
            "dog", "canine", "canid", "puppy", "pup", "chap", "fellow", "dogs", "geese", "goose", "cat", "go", "move",
        ]);
        let id = |w: &str| v.iter().position(|x| x == w).unwrap();
        let e = |a: &str, b: &str| (id(a).min(id(b)), id(a).max(id(b)));
        let syn = wn.edges(&v, false);
        let mut want_syn = vec![
            e("canine", "canid"), // 02083346
            e("puppy", "pup"),    // 10493835
            e("chap", "fellow"),  // 09908025
            e("dog", "dogs"),     // every synset of dog
            e("geese", "goose"),  // noun.exc
            e("go", "move"),      // 02372623 go, proceed, move
        ];
        want_syn.sort_unstable();
        assert_eq!(syn, want_syn);
        let all = wn.edges(&v, true);
        let mut want = want_syn.clone();
        for w in ["dog", "dogs"] {
            // 02084071 @ 02083346 (canine, canid); 10023039 @ 09908025 (chap, fellow … )
            want.extend([e(w, "canine"), e(w, "canid"), e(w, "chap"), e(w, "fellow")]);
            // puppy 01322604 @ 02084071 (dog)
            want.push(e("puppy", w));
        }
        // go 02372623 @ 02367381 (act, move): "move" is in both.
        want.sort_unstable();
        want.dedup();
        assert_eq!(all, want);
        assert!(all.iter().all(|&(a, b)| a != id("cat") && b != id("cat")));
    }

    #[test]
    fn an_absent_database_names_the_make_target() {
        let e = Wordnet::open(Path::new("/nonexistent/wordnet")).unwrap_err().to_string();
        assert!(e.contains("data.noun") && e.contains("make wordnet") && e.contains("graph.wordnet.path"), "{e}");
    }
}
