//! A small reader for the WordNet 3.0 database files (`index.*`, `data.*`, `*.exc`, as shipped by
//! Debian's `wordnet-base` in /usr/share/wordnet), for the semantic cache's gates: are two words
//! synonyms, hypernym/hyponym of each other, antonyms, or co-hyponyms (siblings under one direct
//! hypernym, like Paris/Rome or green/yellow)?
//!
//! Loaded once into compact maps: per part of speech, lemma -> its first few senses (synset
//! offsets, most frequent first), and per synset only the pointers the gates use (hypernym,
//! instance hypernym, antonym, similar-to). Glosses and other pointers are skipped.

use std::path::{Path, PathBuf};

use ahash::AHashMap;

/// Senses kept per lemma and part of speech (the index lists them most frequent first).
pub const MAX_SENSES: usize = 4;

const POS_NAMES: [&str; 4] = ["noun", "verb", "adj", "adv"];

/// How two words relate, strongest signal first when several parts of speech disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Relation {
    /// Same lemma after morphology (dogs/dog, ran/run).
    Same,
    /// Direct or indirect (adjective cluster) antonyms: enable/disable, wet/damp-vs-dry.
    Antonym,
    /// Share a synset.
    Synonym,
    /// One is a hypernym of the other within a couple of hops (car/vehicle).
    Hypernym,
    /// Siblings: share a direct hypernym (Paris/Rome, green/yellow, buyer/seller).
    CoHyponym,
    /// Both known, no relation found.
    Unrelated,
    /// At least one word is not in WordNet.
    Unknown,
}

/// Synset key: part of speech (0..4) in the top byte, byte offset in its data file below.
type Key = u32;

fn key(pos: usize, offset: u32) -> Key {
    ((pos as u32) << 24) | offset
}

struct Synset {
    /// hypernyms (incl. instance hypernyms), then antonyms, then similar-to.
    ptrs: Box<[Key]>,
    n_hyper: u8,
    n_anto: u8,
}

impl Synset {
    fn hypernyms(&self) -> &[Key] {
        &self.ptrs[..self.n_hyper as usize]
    }
    fn antonyms(&self) -> &[Key] {
        &self.ptrs[self.n_hyper as usize..(self.n_hyper + self.n_anto) as usize]
    }
    fn similar(&self) -> &[Key] {
        &self.ptrs[(self.n_hyper + self.n_anto) as usize..]
    }
}

/// Inflected form -> base forms.
type Exceptions = AHashMap<Box<str>, Box<[Box<str>]>>;

pub struct WordNet {
    /// Per part of speech: lemma (lowercase, '_' for spaces) -> first senses.
    index: [AHashMap<Box<str>, Box<[Key]>>; 4],
    synsets: AHashMap<Key, Synset>,
    /// Per part of speech: inflected form -> base forms (from the *.exc files).
    exceptions: [Exceptions; 4],
}

/// The directory to load from: `SWITCHYARD_WORDNET_DIR`, else /usr/share/wordnet.
pub fn default_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_WORDNET_DIR").map(PathBuf::from).unwrap_or_else(|| "/usr/share/wordnet".into())
}

/// Calls `f` on each line of the file at `path`, reading it piecewise (no whole-file buffer).
fn for_each_line(path: &Path, mut f: impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    use std::io::BufRead;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut reader = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(err)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(err)? == 0 {
            return Ok(());
        }
        f(line.trim_end_matches(['\n', '\r']))?;
    }
}

/// Morphology suffix rules per part of speech (WordNet's morphy).
const SUFFIXES: [&[(&str, &str)]; 4] = [
    &[
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    &[],
];

impl WordNet {
    /// Parses the database in `dir`; an error if a file is missing or malformed.
    pub fn load(dir: &Path) -> Result<WordNet, String> {
        let mut wn = WordNet {
            index: Default::default(),
            synsets: AHashMap::with_capacity(120_000),
            exceptions: Default::default(),
        };
        for (pos, name) in POS_NAMES.iter().enumerate() {
            for_each_line(&dir.join(format!("index.{name}")), |line| wn.parse_index(pos, line))?;
            for_each_line(&dir.join(format!("data.{name}")), |line| wn.parse_data(pos, line))?;
            // Exception lists are optional (adv.exc is nearly empty); multiword forms are skipped
            // like multiword lemmas (the gates compare single words).
            let exc = dir.join(format!("{name}.exc"));
            if exc.exists() {
                for_each_line(&exc, |line| {
                    let mut it = line.split_ascii_whitespace();
                    if let Some(form) = it.next().filter(|f| !f.contains('_')) {
                        let bases: Box<[Box<str>]> = it.filter(|b| !b.contains('_')).map(Box::from).collect();
                        if !bases.is_empty() {
                            wn.exceptions[pos].insert(form.into(), bases);
                        }
                    }
                    Ok(())
                })?;
            }
        }
        Ok(wn)
    }

    fn parse_index(&mut self, pos: usize, line: &str) -> Result<(), String> {
        let map = &mut self.index[pos];
        {
            // Licence header, and multiword lemmas (never looked up: the gates compare words).
            if line.starts_with(' ') || line.is_empty() || line.split(' ').next().is_some_and(|l| l.contains('_')) {
                return Ok(());
            }
            let bad = || format!("index.{}: bad line {line:?}", POS_NAMES[pos]);
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            // lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offsets...
            let p_cnt: usize = f.get(3).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let synset_cnt: usize = f.get(2).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let start = 4 + p_cnt + 2;
            let offsets = f.get(start..start + synset_cnt).ok_or_else(bad)?;
            let senses: Box<[Key]> = offsets
                .iter()
                .take(MAX_SENSES)
                .map(|o| o.parse::<u32>().map(|o| key(pos, o)).map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            map.insert(f[0].into(), senses);
        }
        Ok(())
    }

    fn parse_data(&mut self, pos: usize, line: &str) -> Result<(), String> {
        let pos_of = |s: &str| match s {
            "n" => Some(0),
            "v" => Some(1),
            "a" | "s" => Some(2),
            "r" => Some(3),
            _ => None,
        };
        let (mut hyper, mut anto, mut similar) = (Vec::new(), Vec::new(), Vec::new());
        {
            if line.starts_with(' ') || line.is_empty() {
                return Ok(());
            }
            let bad = || format!("data.{}: bad line {:?}", POS_NAMES[pos], &line[..line.len().min(80)]);
            let body = line.split(" | ").next().unwrap_or(line);
            let mut it = body.split_ascii_whitespace();
            let offset: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let _lex_filenum = it.next();
            let _ss_type = it.next();
            let w_cnt = it.next().and_then(|s| usize::from_str_radix(s, 16).ok()).ok_or_else(bad)?;
            for _ in 0..w_cnt * 2 {
                it.next().ok_or_else(bad)?;
            }
            let p_cnt: usize = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            hyper.clear();
            anto.clear();
            similar.clear();
            for _ in 0..p_cnt {
                let sym = it.next().ok_or_else(bad)?;
                let target: u32 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
                let tpos = it.next().and_then(pos_of).ok_or_else(bad)?;
                let _source_target = it.next();
                let k = key(tpos, target);
                match sym {
                    "@" | "@i" => hyper.push(k),
                    "!" => anto.push(k),
                    "&" => similar.push(k),
                    _ => {}
                }
            }
            if hyper.is_empty() && anto.is_empty() && similar.is_empty() {
                return Ok(()); // nothing the gates use; absent means no pointers
            }
            let ptrs: Box<[Key]> = hyper.iter().chain(&anto).chain(&similar).copied().collect();
            self.synsets.insert(
                key(pos, offset),
                Synset { ptrs, n_hyper: hyper.len().min(255) as u8, n_anto: anto.len().min(255) as u8 },
            );
        }
        Ok(())
    }

    /// Number of lemmas and synsets held (for the load report).
    pub fn sizes(&self) -> (usize, usize) {
        (self.index.iter().map(|m| m.len()).sum(), self.synsets.len())
    }

    /// Rough heap bytes held by the maps.
    pub fn approx_bytes(&self) -> usize {
        let slot = |k: usize, v: usize| (k + v + 1) * 8 / 7;
        let mut total = 0;
        for m in &self.index {
            total += m.capacity() * slot(16, 16);
            total += m.iter().map(|(k, v)| k.len() + v.len() * 4 + 32).sum::<usize>();
        }
        total += self.synsets.capacity() * slot(4, 24);
        total += self.synsets.values().map(|s| s.ptrs.len() * 4 + 16).sum::<usize>();
        for m in &self.exceptions {
            total += m.capacity() * slot(16, 16);
            total += m.iter().map(|(k, v)| k.len() + 32 + v.iter().map(|b| b.len() + 32).sum::<usize>()).sum::<usize>();
        }
        total
    }

    /// Base forms of `word` (lowercase) known to WordNet for part of speech `pos`, with their
    /// first `senses` senses, calling `f` for each (the word itself first if it is a lemma).
    fn lemmas(&self, word: &str, pos: usize, mut f: impl FnMut(&str, &[Key])) {
        let map = &self.index[pos];
        if let Some(s) = map.get(word) {
            f(word, s);
        }
        if let Some(bases) = self.exceptions[pos].get(word) {
            for b in bases.iter() {
                if let Some(s) = map.get(&**b) {
                    f(b, s);
                }
            }
        }
        let mut buf = String::new();
        for (suffix, repl) in SUFFIXES[pos] {
            if let Some(stem) = word.strip_suffix(suffix) {
                if stem.is_empty() {
                    continue;
                }
                buf.clear();
                buf.push_str(stem);
                buf.push_str(repl);
                if buf != word {
                    if let Some(s) = map.get(buf.as_str()) {
                        f(&buf, s);
                    }
                }
            }
        }
    }

    /// Whether `word` (any inflection) is in WordNet.
    pub fn knows(&self, word: &str) -> bool {
        let mut found = false;
        for pos in 0..4 {
            self.lemmas(word, pos, |_, _| found = true);
        }
        found
    }

    /// Senses of `word` for `pos`, first `senses` of each base form, plus whether the base
    /// forms include `other`'s (same lemma).
    fn senses_of(&self, word: &str, pos: usize, senses: usize, out: &mut Vec<Key>, lemmas: &mut Vec<String>) {
        self.lemmas(word, pos, |lemma, s| {
            out.extend(s.iter().take(senses));
            if !lemmas.iter().any(|l| l == lemma) {
                lemmas.push(lemma.to_string());
            }
        });
    }

    /// Hypernyms of `k` within `hops` steps, appended to `out`.
    fn ancestors(&self, k: Key, hops: usize, out: &mut Vec<Key>) {
        if hops == 0 {
            return;
        }
        if let Some(s) = self.synsets.get(&k) {
            for &h in s.hypernyms() {
                out.push(h);
                self.ancestors(h, hops - 1, out);
            }
        }
    }

    fn direct_antonyms(&self, k: Key) -> &[Key] {
        self.synsets.get(&k).map(|s| s.antonyms()).unwrap_or(&[])
    }

    /// How `a` and `b` (lowercase words, any inflection) relate, looking at the first `senses`
    /// senses of each; hypernym links count within `hops` steps.
    pub fn relation(&self, a: &str, b: &str, senses: usize, hops: usize) -> Relation {
        if a == b {
            return Relation::Same;
        }
        let mut best = Relation::Unknown;
        let (mut any_a, mut any_b) = (false, false);
        let (mut sa, mut sb, mut la, mut lb) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut tmp = Vec::new();
        for pos in 0..4 {
            sa.clear();
            sb.clear();
            self.senses_of(a, pos, senses, &mut sa, &mut la);
            self.senses_of(b, pos, senses, &mut sb, &mut lb);
            any_a |= !sa.is_empty();
            any_b |= !sb.is_empty();
            if sa.is_empty() || sb.is_empty() {
                continue;
            }
            let mut rel = Relation::Unrelated;
            if la.iter().any(|l| lb.contains(l)) {
                rel = Relation::Same;
            } else if self.antonymous(&sa, &sb) {
                rel = Relation::Antonym;
            } else if sa.iter().any(|k| sb.contains(k)) {
                rel = Relation::Synonym;
            } else {
                let linked = |from: &[Key], to: &[Key], tmp: &mut Vec<Key>| {
                    from.iter().any(|&k| {
                        tmp.clear();
                        self.ancestors(k, hops, tmp);
                        tmp.iter().any(|h| to.contains(h))
                    })
                };
                if linked(&sa, &sb, &mut tmp) || linked(&sb, &sa, &mut tmp) {
                    rel = Relation::Hypernym;
                } else {
                    let parents = |s: &[Key]| {
                        s.iter()
                            .filter_map(|k| self.synsets.get(k))
                            .flat_map(|x| x.hypernyms().iter().copied())
                            .collect::<Vec<_>>()
                    };
                    let pb = parents(&sb);
                    if parents(&sa).iter().any(|p| pb.contains(p)) {
                        rel = Relation::CoHyponym;
                    }
                }
            }
            best = best.min(rel);
        }
        if !any_a || !any_b {
            // Morphology found the same lemma in one POS only, or a word is unknown.
            if la.iter().any(|l| lb.contains(l)) {
                return Relation::Same;
            }
            return Relation::Unknown;
        }
        best
    }

    /// Direct antonyms, or indirect ones through adjective clusters (similar-to heads).
    fn antonymous(&self, sa: &[Key], sb: &[Key]) -> bool {
        let heads = |s: &[Key]| {
            let mut v: Vec<Key> = s.to_vec();
            for k in s {
                if let Some(x) = self.synsets.get(k) {
                    v.extend(x.similar());
                }
            }
            v
        };
        let (ha, hb) = (heads(sa), heads(sb));
        ha.iter().any(|k| self.direct_antonyms(*k).iter().any(|t| hb.contains(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wn() -> Option<WordNet> {
        let dir = default_dir();
        if !dir.join("index.noun").exists() {
            eprintln!("WordNet not installed at {}; skipping", dir.display());
            return None;
        }
        Some(WordNet::load(&dir).expect("parses"))
    }

    #[test]
    fn parses_the_real_files_and_finds_relations() {
        let Some(wn) = wn() else { return };
        let (lemmas, synsets) = wn.sizes();
        assert!(lemmas > 80_000, "{lemmas}"); // single-word lemmas only
        assert!(synsets > 80_000, "{synsets}");
        assert!(wn.knows("dogs") && wn.knows("ran") && !wn.knows("xqzzy"));
        assert_eq!(wn.relation("enable", "disable", 3, 2), Relation::Antonym);
        assert_eq!(wn.relation("increase", "decrease", 3, 2), Relation::Antonym);
        assert_eq!(wn.relation("wet", "dry", 3, 2), Relation::Antonym);
        assert_eq!(wn.relation("car", "automobile", 3, 2), Relation::Synonym);
        assert_eq!(wn.relation("purchase", "buy", 3, 2), Relation::Synonym);
        assert_eq!(wn.relation("dog", "canine", 3, 2), Relation::Hypernym);
        assert_eq!(wn.relation("paris", "rome", 3, 2), Relation::CoHyponym);
        assert_eq!(wn.relation("green", "yellow", 3, 2), Relation::CoHyponym);
        // Cousins, not siblings (customer vs merchant): not compatible, but not a sibling contrast.
        assert_eq!(wn.relation("buyer", "seller", 3, 2), Relation::Unrelated);
        assert_eq!(wn.relation("dogs", "dog", 3, 2), Relation::Same);
        assert_eq!(wn.relation("geese", "goose", 3, 2), Relation::Same);
        assert_eq!(wn.relation("postgresql", "mysql", 3, 2), Relation::Unknown);
    }

    #[test]
    fn missing_dir_is_an_error_not_a_panic() {
        assert!(WordNet::load(Path::new("/nonexistent/wordnet")).is_err());
    }
}
