//! The correctness gates of the semantic tier: after two prompts are found similar by cosine,
//! decide whether the answer cached for one may serve the other.
//!
//! Three layers, each measured separately by `cache-eval`:
//! 1. rules (word lists): a negation on one side only, an antonym pair, different numbers, times
//!    or dates (normalised first: 9pm = nine in the evening = 21:00, Monday to Friday =
//!    weekdays), different names, a content word swapped or added in otherwise identical wording;
//! 2. WordNet relations between the content words that differ: synonyms and hypernyms are
//!    compatible, antonyms and co-hyponyms (Paris/Rome, green/yellow) are contrasts;
//! 3. a logistic-regression combiner over features of both (weights in src/cache/gate-weights.json,
//!    compiled in; retrain with `cargo run --release --bin cache-eval -- --train`).
//!
//! Asymmetric by design: the rules block only on a positive contrast signal; when the wording
//! differs too much to align word by word they abstain and leave it to cosine and the combiner.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::wordnet::{self, Relation, WordNet};

/// Why a pair was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Block {
    Negation,
    Antonym,
    Number,
    Date,
    Entity,
    Substitution,
    /// An extra qualifier on one side of otherwise contained wording.
    Scope,
    /// WordNet: antonyms or co-hyponyms among the differing words.
    Relation,
    /// The combiner's probability is below its cut-off.
    Combiner,
}

/// The decision on one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub pass: bool,
    pub block: Option<Block>,
    /// The combiner's probability that the cached answer fits.
    pub score: f32,
}

/// The cosine threshold `cache-eval` picked (lowest reaching <= 1 % false hits on the tune split).
pub const DEFAULT_THRESHOLD: f32 = 0.62;

/// Senses per word used for WordNet relations, and hypernym hops that still count as compatible.
pub const WORDNET_SENSES: usize = 3;
pub const WORDNET_HOPS: usize = 2;

/// Which layers to apply (the gateway uses `Combiner`, which includes the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Rules,
    WordNet,
    Combiner,
}

/// Logistic-regression weights over [`FEATURES`], standardised inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weights {
    pub features: Vec<String>,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Probability below which the combiner blocks.
    pub cutoff: f32,
    /// The cosine threshold picked together with `cutoff`.
    pub threshold: f32,
}

impl Weights {
    pub fn shipped() -> Weights {
        serde_json::from_str(include_str!("gate-weights.json")).expect("src/cache/gate-weights.json parses")
    }

    pub fn probability(&self, f: &[f32; N_FEATURES]) -> f32 {
        let mut z = self.bias;
        for (i, x) in f.iter().enumerate().take(self.weights.len()) {
            z += self.weights[i] * (x - self.mean[i]) / self.scale[i];
        }
        1.0 / (1.0 + (-z).exp())
    }
}

pub const FEATURES: [&str; N_FEATURES] = [
    "cosine",
    "length_ratio",
    "aligned_share",
    "contained",
    "differing_words",
    "negation_parity",
    "number_mismatch",
    "number_one_sided",
    "time_date_mismatch",
    "names_swapped",
    "names_one_sided",
    "antonym",
    "compatible_relations",
    "cohyponyms",
    "unrelated_words",
    "scope_words",
    "people_words",
    "order_swapped",
    "rule_block",
    "unaligned_cosine",
];
pub const N_FEATURES: usize = 20;

pub struct Gates {
    wordnet: Option<WordNet>,
    weights: Weights,
}

impl Gates {
    /// Loads WordNet from `wordnet_dir` if present (None: default dir / env); never fails:
    /// without WordNet, relations are off (see `has_wordnet`).
    pub fn load(wordnet_dir: Option<&Path>) -> Gates {
        let dir = wordnet_dir.map(Path::to_path_buf).unwrap_or_else(wordnet::default_dir);
        let wordnet = match WordNet::load(&dir) {
            Ok(wn) => Some(wn),
            Err(e) => {
                log::warn!("semantic cache gates: WordNet unavailable ({e}); relations off");
                None
            }
        };
        Gates { wordnet, weights: Weights::shipped() }
    }

    /// The same gates with other combiner weights (training, evaluation).
    pub fn with_weights(mut self, weights: Weights) -> Gates {
        self.weights = weights;
        self
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    pub fn has_wordnet(&self) -> bool {
        self.wordnet.is_some()
    }

    pub fn wordnet(&self) -> Option<&WordNet> {
        self.wordnet.as_ref()
    }

    /// Whether the answer cached for `cached` may serve `query`, given their cosine.
    pub fn check(&self, query: &str, cached: &str, cosine: f32) -> Verdict {
        self.check_stage(query, cached, cosine, Stage::Combiner)
    }

    /// [`check`](Self::check) with only the layers up to `stage`.
    pub fn check_stage(&self, query: &str, cached: &str, cosine: f32, stage: Stage) -> Verdict {
        self.check_stage_at(query, cached, cosine, stage, self.weights.cutoff)
    }

    /// [`check_stage`](Self::check_stage) with the combiner's cut-off given (config overrides).
    pub fn check_stage_at(&self, query: &str, cached: &str, cosine: f32, stage: Stage, cutoff: f32) -> Verdict {
        let a = analyse(self.wordnet.as_ref().filter(|_| stage >= Stage::WordNet), query, cached, cosine);
        let score = self.weights.probability(&a.features);
        if let Some(b) = a.block {
            return Verdict { pass: false, block: Some(b), score };
        }
        if stage == Stage::Combiner && score < cutoff {
            return Verdict { pass: false, block: Some(Block::Combiner), score };
        }
        Verdict { pass: true, block: None, score }
    }

    /// The combiner's inputs for a pair (training).
    pub fn features(&self, query: &str, cached: &str, cosine: f32) -> [f32; N_FEATURES] {
        analyse(self.wordnet.as_ref(), query, cached, cosine).features
    }
}

const NEGATIONS: &[&str] = &["not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor"];

const ANTONYMS: &[(&str, &str)] = &[
    ("enable", "disable"),
    ("enabled", "disabled"),
    ("on", "off"),
    ("increase", "decrease"),
    ("up", "down"),
    ("login", "logout"),
    ("in", "out"),
    ("grant", "revoke"),
    ("weekdays", "weekend"),
    ("annual", "monthly"),
    ("domestic", "international"),
    ("standard", "extended"),
    ("allow", "ban"),
    ("allowed", "banned"),
    ("allow", "block"),
    ("allowed", "forbidden"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("before", "after"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("subscribe", "unsubscribe"),
    ("install", "uninstall"),
    ("buy", "sell"),
    ("buyer", "seller"),
    ("tenant", "landlord"),
    ("strong", "weak"),
    ("approve", "reject"),
    ("accept", "reject"),
    ("add", "remove"),
    ("upload", "download"),
    ("start", "stop"),
    ("open", "close"),
    ("legal", "illegal"),
    ("with", "without"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("cheap", "expensive"),
    ("hot", "cold"),
    ("first", "last"),
    ("lower", "raise"),
    ("higher", "lower"),
    ("more", "less"),
    ("most", "least"),
    ("best", "worst"),
    ("safe", "unsafe"),
    ("public", "private"),
    ("lock", "unlock"),
    ("mute", "unmute"),
    ("follow", "unfollow"),
    ("hide", "show"),
    ("connect", "disconnect"),
    ("join", "leave"),
    ("send", "receive"),
    ("import", "export"),
    ("inbound", "outbound"),
    ("deposit", "withdraw"),
    ("credit", "debit"),
    ("win", "lose"),
    ("gain", "lose"),
    ("arrive", "depart"),
    ("arrival", "departure"),
    ("employer", "employee"),
    ("parent", "child"),
    ("sender", "recipient"),
    ("lend", "borrow"),
    ("compress", "decompress"),
    ("encode", "decode"),
    ("merge", "split"),
    ("include", "exclude"),
    ("above", "below"),
    ("inside", "outside"),
    ("early", "late"),
    ("fast", "slow"),
    ("big", "small"),
    ("large", "small"),
    ("long", "short"),
    ("old", "new"),
    ("beginner", "expert"),
    ("beginners", "experts"),
    ("monthly", "yearly"),
    ("annual", "monthly"),
    ("free", "paid"),
    ("free", "pro"),
    ("light", "dark"),
    ("asc", "desc"),
    ("ascending", "descending"),
    ("horizontal", "vertical"),
    ("left", "right"),
];

/// Words that may replace each other without changing the answer.
const SYNONYMS: &[(&str, &str)] = &[
    ("accept", "take"),
    ("buy", "purchase"),
    ("car", "vehicle"),
    ("laptop", "notebook"),
    ("big", "large"),
    ("change", "reset"),
    ("change", "update"),
    ("change", "modify"),
    ("delete", "remove"),
    ("fix", "repair"),
    ("start", "begin"),
    ("quick", "fast"),
    ("cost", "price"),
    ("shipping", "postage"),
    ("movie", "film"),
    ("help", "assist"),
    ("show", "display"),
    ("get", "obtain"),
    ("make", "create"),
    ("tell", "explain"),
];

const DATE_WORDS: &[&str] = &[
    "today",
    "tomorrow",
    "yesterday",
    "tonight",
    "morning",
    "evening",
    "afternoon",
    "night",
    "week",
    "weekend",
    "month",
    "year",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "weekday",
    "weekdays",
    "daily",
    "weekly",
    "hourly",
    "next",
    "last",
    "previous",
];

const STOP: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "to", "of", "for", "and", "or", "i", "me", "my", "you", "your",
    "it", "its", "do", "does", "did", "how", "what", "which", "can", "could", "would", "should", "will", "please",
    "hey", "hi", "hello", "there", "this", "that", "these", "those", "at", "by", "from", "as", "so", "just", "really",
    "some", "any", "we", "our", "us", "he", "she", "they", "them", "their", "tell", "about", "way", "ways", "much",
    "many", "there", "here", "into", "onto", "get", "got", "have", "has", "had", "if",
];

const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("fifteen", "15"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("first", "1st"),
    ("second", "2nd"),
    ("third", "3rd"),
    ("half", "0.5"),
    ("pair", "2"),
];

/// Words that only greet, thank or soften.
const FILLERS: &[&str] = &[
    "please", "pls", "thanks", "thank", "thx", "hi", "hey", "hello", "so", "some", "ok", "okay", "well", "u", "just",
    "really", "kindly", "quick", "question", "there", "mm", "um", "btw", "guys", "whom", "explain", "define",
    "describe",
];

/// Words that narrow or widen what is asked (a qualifier added on one side changes the answer).
const SCOPE_WORDS: &[&str] = &[
    "only",
    "just",
    "all",
    "every",
    "each",
    "single",
    "without",
    "with",
    "including",
    "except",
    "excluding",
    "for",
    "in",
    "during",
    "after",
    "before",
    "overnight",
    "recursively",
    "distinct",
    "per",
    "across",
    "between",
];

const PEOPLE_WORDS: &[&str] = &[
    "adult",
    "adults",
    "child",
    "children",
    "kid",
    "kids",
    "baby",
    "toddler",
    "teen",
    "teenager",
    "son",
    "daughter",
    "wife",
    "husband",
    "mother",
    "father",
    "mom",
    "dad",
    "man",
    "woman",
    "men",
    "women",
    "boy",
    "girl",
    "student",
    "students",
    "employee",
    "employer",
    "senior",
    "seniors",
    "dog",
    "cat",
    "buyer",
    "seller",
    "tenant",
    "landlord",
    "beginner",
    "beginners",
    "expert",
    "experts",
    "customer",
    "customers",
    "user",
    "users",
    "admin",
    "guest",
];

struct Words {
    /// Lowercased tokens: contractions expanded, number words as digits, times as `t21:00`.
    tokens: Vec<String>,
    /// Capitalised words that are not the first word (names, products, places), lowercased.
    names: BTreeSet<String>,
}

fn number_word(w: &str) -> Option<&'static str> {
    NUMBER_WORDS.iter().find(|(n, _)| *n == w).map(|(_, d)| *d)
}

fn words(text: &str) -> Words {
    let mut raw_tokens: Vec<(String, bool)> = Vec::new(); // (lowercase, capitalised)
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '.' || c == '$' || c == '%' || c == ':'))
    {
        let raw = raw.trim_matches(|c: char| c == '.' || c == '\'' || c == ':');
        if raw.is_empty() {
            continue;
        }
        let cap = raw.chars().next().is_some_and(|c| c.is_uppercase());
        raw_tokens.push((raw.to_lowercase(), cap));
    }
    let mut tokens: Vec<String> = Vec::with_capacity(raw_tokens.len() + 4);
    let mut names = BTreeSet::new();
    for (i, (lower, cap)) in raw_tokens.iter().enumerate() {
        let lower = lower.as_str();
        if i > 0 && *cap && !STOP.contains(&lower) && !FILLERS.contains(&lower) && number_word(lower).is_none() {
            names.insert(lower.trim_end_matches("'s").to_string());
        }
        // Negated forms, with or without the apostrophe: can't, cant, cannot, won't, wont...
        const BARE: &[&str] = &[
            "cannot", "cant", "wont", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "shouldnt",
            "couldnt", "wouldnt", "havent", "hasnt",
        ];
        if BARE.contains(&lower) {
            tokens.push(match lower {
                "cannot" | "cant" => "can".to_string(),
                "wont" => "will".to_string(),
                s => s.trim_end_matches("nt").to_string(),
            });
            tokens.push("not".into());
            continue;
        }
        if let Some(stem) = lower.strip_suffix("n't") {
            tokens.push(match stem {
                "wo" => "will".to_string(),
                "ca" => "can".to_string(),
                s => s.to_string(),
            });
            tokens.push("not".into());
            continue;
        }
        if lower == "whats" {
            tokens.push("what".into());
            continue;
        }
        // what's -> what, browser's -> browser, I'd -> I would; 're/'ve/'m drop out as stop words.
        if let Some((stem, suffix)) = lower.split_once('\'') {
            tokens.push(stem.to_string());
            match suffix {
                "d" => tokens.push("would".into()),
                "ll" => tokens.push("will".into()),
                _ => {}
            }
            continue;
        }
        // Split digits from unit letters: 9pm -> 9 pm, 5mg -> 5 mg.
        if lower.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
            let n = lower.trim_start_matches('$');
            let digits: String =
                n.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',' || *c == ':').collect();
            let rest = &n[digits.len()..];
            tokens.push(digits.replace(',', ""));
            if !rest.is_empty() {
                tokens.push(rest.trim_start_matches('-').to_string());
            }
            continue;
        }
        match number_word(lower) {
            Some(d) => tokens.push(d.to_string()),
            None => tokens.push(lower.replace(',', "")),
        }
    }
    Words { tokens: normalise_times(tokens), names }
}

/// 9 pm / 9 p.m. / nine in the evening / 21:00 -> t21:00; noon, midnight; Monday to Friday ->
/// weekdays; Saturday and Sunday -> weekend.
fn normalise_times(t: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(t.len());
    let mut i = 0;
    let at = |i: usize| t.get(i).map(String::as_str).unwrap_or("");
    while i < t.len() {
        let w = at(i);
        let clock = |w: &str| -> Option<(u32, u32)> {
            let (h, m) = w.split_once(':').unwrap_or((w, "00"));
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h < 24 && m < 60).then_some((h, m))
        };
        if let Some((h, m)) = clock(w).filter(|_| w.chars().all(|c| c.is_ascii_digit() || c == ':')) {
            let next = at(i + 1);
            let (shift, used) = match (next, at(i + 2), at(i + 3)) {
                ("pm" | "p.m" | "p", _, _) => (Some(12), 1),
                ("am" | "a.m" | "a", _, _) => (Some(0), 1),
                ("in", "the", "evening" | "afternoon") | ("at", "night", _) => {
                    (Some(12), if next == "at" { 2 } else { 3 })
                }
                ("in", "the", "morning") => (Some(0), 3),
                ("o'clock" | "oclock", _, _) => (Some(0), 1),
                _ if w.contains(':') => (Some(0), 0),
                _ => (None, 0),
            };
            if let Some(s) = shift {
                let h = if h == 12 && s == 0 && next.starts_with('a') {
                    0
                } else if h < 12 {
                    h + s
                } else {
                    h
                };
                out.push(format!("t{h:02}:{m:02}"));
                i += 1 + used;
                continue;
            }
        }
        match w {
            "noon" | "midday" => out.push("t12:00".into()),
            "midnight" => out.push("t00:00".into()),
            "weekday" => out.push("weekdays".into()),
            "weekends" => out.push("weekend".into()),
            _ if w == "monday" && matches!(at(i + 1), "to" | "through" | "thru" | "-") && at(i + 2) == "friday" => {
                out.push("weekdays".into());
                i += 3;
                continue;
            }
            _ if w == "saturday" && matches!(at(i + 1), "and" | "to" | "or") && at(i + 2) == "sunday" => {
                out.push("weekend".into());
                i += 3;
                continue;
            }
            _ => out.push(w.to_string()),
        }
        i += 1;
    }
    out
}

/// A name and a token that refer to the same thing: equal, a derived form (Japan/Japanese), or
/// an abbreviation whose letters appear in order (JS/JavaScript, F/Fahrenheit, win/Windows).
fn same_name(name: &str, other: &str) -> bool {
    if name == other || ((name.contains('-') || other.contains('-')) && name.replace('-', "") == other.replace('-', ""))
    {
        return true;
    }
    let (short, long) = if name.len() <= other.len() { (name, other) } else { (other, name) };
    if short.is_empty() || short.as_bytes()[0] != long.as_bytes()[0] || !short.is_ascii() || !long.is_ascii() {
        return false;
    }
    if short.len() >= 4 && long.starts_with(short) && long.len() - short.len() <= 3 {
        return true;
    }
    if short.len() <= 3 && long.len() >= 4 {
        let mut it = long.chars();
        return short.chars().all(|c| it.any(|l| l == c));
    }
    false
}

fn is_number(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_digit())
}

fn is_time(t: &str) -> bool {
    t.len() == 6 && t.starts_with('t') && t.as_bytes()[3] == b':'
}

fn pair_in(list: &[(&str, &str)], a: &str, b: &str) -> bool {
    list.iter().any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
}

/// Prepositions that rewording adds or drops freely ("open on weekdays" / "open weekdays").
const LIGHT_PREPOSITIONS: &[&str] = &["on", "in", "at", "for", "of", "into", "onto", "by", "about"];

fn is_content(t: &str) -> bool {
    !STOP.contains(&t) && !FILLERS.contains(&t) && !NEGATIONS.contains(&t) && !LIGHT_PREPOSITIONS.contains(&t)
}

fn plural_pair(x: &str, y: &str) -> bool {
    // Compare the trimmed slices (no allocation).
    let s = |w: &str| w.trim_end_matches("es").trim_end_matches('s').len();
    let (tx, ty) = (s(x), s(y));
    if tx == ty && x[..tx] == y[..ty] {
        return true;
    }
    x.strip_suffix("ies").is_some_and(|st| y.strip_suffix('y') == Some(st))
}

struct Analysis {
    block: Option<Block>,
    features: [f32; N_FEATURES],
}

fn analyse(wn: Option<&WordNet>, a: &str, b: &str, cosine: f32) -> Analysis {
    let (wa, wb) = (words(a), words(b));
    let set_a: BTreeSet<&str> = wa.tokens.iter().map(String::as_str).collect();
    let set_b: BTreeSet<&str> = wb.tokens.iter().map(String::as_str).collect();
    let mut f = [0f32; N_FEATURES];
    f[0] = cosine;
    let (na, nb) = (wa.tokens.len().max(1), wb.tokens.len().max(1));
    f[1] = na.min(nb) as f32 / na.max(nb) as f32;

    let ka: BTreeSet<&str> = set_a.iter().filter(|t| is_content(t)).copied().collect();
    let kb: BTreeSet<&str> = set_b.iter().filter(|t| is_content(t)).copied().collect();
    let shared = ka.intersection(&kb).count();
    let union = ka.union(&kb).count().max(1);
    f[2] = shared as f32 / union as f32;
    // Content words on one side only, in sentence order.
    let only = |w: &Words, other: &BTreeSet<&str>| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for t in &w.tokens {
            if is_content(t) && !other.contains(t.as_str()) && !v.contains(t) {
                v.push(t.clone());
            }
        }
        v
    };
    let (mut ca, mut cb) = (only(&wa, &kb), only(&wb, &ka));
    // check-out / checkout, sci-fi / sci fi: the same letters split differently.
    if !ca.is_empty() && ca.concat() == cb.concat() {
        ca.clear();
        cb.clear();
    }
    // Plural-only differences.
    let ca0 = ca.clone();
    ca.retain(|x| !cb.iter().any(|y| plural_pair(x, y)));
    cb.retain(|y| !ca0.iter().any(|x| plural_pair(x, y)));
    let contained = ca.is_empty() != cb.is_empty();
    f[3] = contained as u8 as f32;
    let differing = ca.len() + cb.len();
    f[4] = differing as f32;
    // Wording close enough to align word by word.
    let shared_all = set_a.intersection(&set_b).count();
    let aligned = shared >= 1 && shared_all >= 3 && differing <= 4 && shared_all >= differing;
    let mut block = None;
    let set = |b: Block, block: &mut Option<Block>| {
        if block.is_none() {
            *block = Some(b);
        }
    };

    // Negation parity, judged only when the wordings align (3/4 of content words shared): a
    // paraphrase may say "without food" for "on an empty stomach".
    let neg = |s: &BTreeSet<&str>| s.iter().filter(|t| NEGATIONS.contains(t)).count() % 2;
    let mostly = shared * 4 >= ka.len().max(kb.len()).max(1) * 3;
    if neg(&set_a) != neg(&set_b) {
        f[5] = 1.0;
        if mostly {
            set(Block::Negation, &mut block);
        }
    }
    let only_a: Vec<&str> = set_a.difference(&set_b).copied().collect();
    let only_b: Vec<&str> = set_b.difference(&set_a).copied().collect();
    for x in &only_a {
        let listed = ANTONYMS.iter().any(|(p, q)| p == x || q == x);
        for y in &only_b {
            let prefixed = ["un", "in", "il", "im", "ir", "dis", "non", "de"]
                .iter()
                .any(|p| (y.strip_prefix(p) == Some(*x)) || (x.strip_prefix(p) == Some(*y)));
            if (listed && pair_in(ANTONYMS, x, y)) || (prefixed && x.len() > 2 && y.len() > 2) {
                f[11] = 1.0;
                // In long, freely reworded prompts an antonym pair is often incidental.
                if differing <= 6 || shared * 5 >= union * 2 {
                    set(Block::Antonym, &mut block);
                }
            }
        }
    }
    fn nums<'a>(s: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
        s.iter().filter(|t| is_number(t)).copied().collect()
    }
    let (xa, xb) = (nums(&set_a), nums(&set_b));
    if xa != xb {
        if xa.difference(&xb).next().is_some() && xb.difference(&xa).next().is_some() {
            f[6] = 1.0;
            set(Block::Number, &mut block);
        } else {
            f[7] = 1.0;
            if aligned || contained {
                set(Block::Number, &mut block);
            }
        }
    }
    fn dates<'a>(s: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
        s.iter().filter(|t| DATE_WORDS.contains(t) || is_time(t)).copied().collect()
    }
    let (da, db) = (dates(&set_a), dates(&set_b));
    let two_sided = da.difference(&db).next().is_some() && db.difference(&da).next().is_some();
    if da != db && (two_sided || aligned || contained) {
        f[8] = 1.0;
        set(Block::Date, &mut block);
    }
    // A name on one side that the other side does not mention at all.
    let missing = |names: &BTreeSet<String>, other: &BTreeSet<&str>| {
        names.iter().filter(|n| !other.iter().any(|o| same_name(n, o))).count()
    };
    let (ma, mb) = (missing(&wa.names, &set_b), missing(&wb.names, &set_a));
    if ma > 0 && mb > 0 {
        f[9] = 1.0;
        set(Block::Entity, &mut block);
    } else if ma + mb > 0 {
        f[10] = 1.0;
    }
    f[15] = ca.iter().chain(&cb).filter(|t| SCOPE_WORDS.contains(&t.as_str())).count() as f32
        + only_a.iter().chain(&only_b).filter(|t| SCOPE_WORDS.contains(t)).count() as f32;
    f[16] = ca.iter().chain(&cb).filter(|t| PEOPLE_WORDS.contains(&t.as_str())).count() as f32;
    // from X to Y vs from Y to X: the same content words in a different order.
    if ca.is_empty() && cb.is_empty() {
        let seq = |w: &Words| w.tokens.iter().filter(|t| is_content(t)).cloned().collect::<Vec<_>>();
        let (sa, sb) = (seq(&wa), seq(&wb));
        if sa != sb && sa.len() == sb.len() {
            f[17] = 1.0;
            fn after<'w>(w: &'w Words, p: &str) -> Option<&'w String> {
                w.tokens.iter().position(|t| t == p).and_then(|i| w.tokens.get(i + 1))
            }
            let (fa, ta, fb, tb) = (after(&wa, "from"), after(&wa, "to"), after(&wb, "from"), after(&wb, "to"));
            if fa.is_some() && fa != fb && (fa == tb || ta == fb) {
                set(Block::Substitution, &mut block);
            }
        }
    }

    // Relations between the differing words (WordNet when loaded, the small lists otherwise).
    let (mut compatible, mut contrast, mut cohypo, mut unrelated) = (0usize, 0usize, 0usize, 0usize);
    if differing > 0 && differing <= 6 {
        // Each cross pair once (relations are symmetric); at most 3 x 3 when both sides differ.
        let mut rel = [[Relation::Unknown; 6]; 6];
        for (i, x) in ca.iter().enumerate() {
            for (j, y) in cb.iter().enumerate() {
                rel[i][j] = if same_name(x, y) {
                    Relation::Same
                } else if pair_in(SYNONYMS, x, y) {
                    Relation::Synonym
                } else if let Some(wn) = wn {
                    wn.relation(x, y, WORDNET_SENSES, WORDNET_HOPS)
                } else {
                    Relation::Unknown
                };
            }
        }
        let best_a = (0..ca.len()).map(|i| (0..cb.len()).map(|j| rel[i][j]).min().unwrap_or(Relation::Unknown));
        let best_b = (0..cb.len()).map(|j| (0..ca.len()).map(|i| rel[i][j]).min().unwrap_or(Relation::Unknown));
        for best in best_a.chain(best_b) {
            match best {
                Relation::Same | Relation::Synonym | Relation::Hypernym => compatible += 1,
                Relation::Antonym => contrast += 1,
                Relation::CoHyponym => cohypo += 1,
                Relation::Unrelated | Relation::Unknown => unrelated += 1,
            }
        }
    }
    f[11] = f[11].max((contrast > 0) as u8 as f32);
    f[12] = compatible as f32;
    f[13] = cohypo as f32;
    f[14] = unrelated as f32;
    if wn.is_some() && aligned && (contrast > 0 || cohypo > 0) {
        set(Block::Relation, &mut block);
    }

    // Same wording but for a content word or two: a swap (colour, product, role), or an added
    // qualifier (scope). Only judged when the wording is close enough to align; differences
    // that are all synonyms/hypernyms pass.
    if aligned && differing > 0 && unrelated + contrast + cohypo > 0 {
        set(if contained { Block::Scope } else { Block::Substitution }, &mut block);
    }
    f[18] = block.is_some() as u8 as f32;
    // Cosine counts for more when the wording cannot be compared word by word.
    f[19] = if aligned { 0.0 } else { cosine * (1.0 - f[2]) };
    Analysis { block, features: f }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn gates() -> &'static Gates {
        static G: OnceLock<Gates> = OnceLock::new();
        G.get_or_init(|| Gates::load(None))
    }

    fn blocked(a: &str, b: &str) -> Option<Block> {
        gates().check_stage(a, b, 0.9, Stage::WordNet).block
    }

    #[test]
    fn shipped_weights_match_the_default_threshold() {
        let w = Weights::shipped();
        assert_eq!(w.weights.len(), N_FEATURES);
        assert_eq!(w.features, FEATURES);
        assert!(
            (w.threshold - DEFAULT_THRESHOLD).abs() < 1e-6,
            "rerun cache-eval --train and update DEFAULT_THRESHOLD"
        );
    }

    #[test]
    fn clear_cases_through_check() {
        let g = gates();
        for (a, b, cos) in [
            ("How do I enable 2FA?", "How do I disable 2FA?", 0.95),
            ("Flights from London to Paris in May", "Flights from London to Rome in May", 0.9),
            ("Where is my order 1182?", "Where is my order 1183?", 0.97),
        ] {
            let v = g.check(a, b, cos);
            assert!(!v.pass && v.block.is_some(), "{a} / {b}: {v:?}");
        }
        for (a, b, cos) in [
            ("What are the postage charges?", "What are the shipping charges?", 0.9),
            ("Is the store open at 9pm?", "Is the store open at nine in the evening?", 0.9),
        ] {
            let v = g.check(a, b, cos);
            assert!(v.pass, "{a} / {b}: {v:?}");
        }
    }

    #[test]
    fn gates_are_send_and_sync() {
        fn is<T: Send + Sync>() {}
        is::<Gates>();
    }

    #[test]
    fn blocks_the_classic_traps() {
        assert_eq!(blocked("how do I enable 2FA", "how do I disable 2FA"), Some(Block::Antonym));
        assert_eq!(blocked("refund for order 1182", "refund for order 1183"), Some(Block::Number));
        assert_eq!(blocked("Where is my order 1182?", "Where is my order 1183?"), Some(Block::Number));
        assert_eq!(blocked("tax rules in 2023", "tax rules in 2024"), Some(Block::Number));
        assert_eq!(blocked("can I bring a laptop", "can't I bring a laptop"), Some(Block::Negation));
        assert!(blocked("flights to Paris in May", "flights to Rome in May").is_some());
        assert!(blocked("Do you have this sofa in blue?", "Do you have this sofa in grey?").is_some());
        assert!(blocked("How do I log in?", "How do I log out?").is_some());
        assert!(blocked("train from Paris to Rome", "train from Rome to Paris").is_some());
        assert!(blocked("How do I install PostgreSQL on macOS?", "How do I install MySQL on macOS?").is_some());
        assert!(blocked("Is the restaurant open on weekdays?", "Is the restaurant open Saturday and Sunday?").is_some());
        assert!(blocked("What's the best diet to lose weight?", "What's the best vegan diet to lose weight?").is_some());
        for (a, b) in
            [("enable 2FA on my account", "disable 2FA on my account"), ("flights to Paris", "flights to Rome")]
        {
            assert!(!gates().check(a, b, 0.95).pass, "{a} / {b}");
        }
    }

    #[test]
    fn lets_paraphrases_and_near_repeats_through() {
        for (a, b) in [
            ("How do I sort an array in JavaScript?", "how do I sort an array in javascript"),
            ("Do you accept PayPal?", "Do you take PayPal?"),
            ("My laptop is running really slow, what can I do?", "tips to speed up a sluggish notebook computer"),
            ("is the store open at 9pm", "is the store open at nine pm"),
            ("is the store open at 9pm", "is the store open at nine in the evening"),
            ("is the store open at 9pm", "is the store open at 21:00"),
            ("is the store open Monday to Friday", "is the store open on weekdays"),
            ("What are the postage charges?", "What are the shipping charges?"),
            ("I can't log in to my account", "I cannot log in to my account."),
            ("Why won't my code compile?", "why wont my code compile"),
            ("Give me 5 tips for better sleep.", "Give me five tips for better sleep."),
            ("What time is check-out?", "What time is checkout?"),
            ("Is it going to rain tomorrow in Seattle?", "is it going to rain in Seattle tomorrow?"),
            ("Do I need to tip in restaurants in Japan?", "Do I need to tip in Japanese restaurants?"),
            ("Can I take ibuprofen on an empty stomach?", "is it ok to take ibuprofen without food"),
        ] {
            assert_eq!(blocked(a, b), None, "{a} / {b}");
        }
    }

    #[test]
    fn times_are_normalised() {
        let t = |s: &str| words(s).tokens;
        assert!(t("at 9pm").contains(&"t21:00".to_string()));
        assert!(t("at nine in the evening").contains(&"t21:00".to_string()));
        assert!(t("at 21:00").contains(&"t21:00".to_string()));
        assert!(t("at 9 p.m.").contains(&"t21:00".to_string()));
        assert!(t("Monday to Friday").contains(&"weekdays".to_string()));
    }

    #[test]
    fn works_without_wordnet() {
        let g = Gates::load(Some(Path::new("/nonexistent")));
        assert!(!g.has_wordnet());
        assert_eq!(
            g.check_stage("how do I enable 2FA", "how do I disable 2FA", 0.9, Stage::Rules).block,
            Some(Block::Antonym)
        );
    }
}
