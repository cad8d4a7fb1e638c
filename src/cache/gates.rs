//! The correctness gates of the semantic tier: after two prompts are found similar, check them
//! for differences that change the answer. Asymmetric by design: a gate blocks only on a positive
//! contrast signal (a negation on one side only, an antonym pair, different numbers or dates,
//! different names, a swapped content word in otherwise identical wording); when the wording
//! differs too much to align word by word, it abstains and the similarity decides.
//!
//! Version 1 is rule-based (word lists); `cache-eval` measures each rule's effect.

use std::collections::BTreeSet;

/// Why a pair was blocked; `None` from [`verify`] means no gate objected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Negation,
    Antonym,
    Number,
    Date,
    Entity,
    Substitution,
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
];

struct Words {
    /// Lowercased tokens, contractions expanded, number words as digits.
    tokens: Vec<String>,
    /// Capitalised words that are not the first word (names, products, places), lowercased.
    names: BTreeSet<String>,
}

fn words(text: &str) -> Words {
    let mut tokens = Vec::new();
    let mut names = BTreeSet::new();
    for (i, raw) in
        text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '.' || c == '$' || c == '%')).enumerate()
    {
        let raw = raw.trim_matches(|c: char| c == '.' || c == '\'');
        if raw.is_empty() {
            continue;
        }
        let lower = raw.to_lowercase();
        if i > 0 && raw.chars().next().is_some_and(|c| c.is_uppercase()) && !STOP.contains(&lower.as_str()) {
            names.insert(lower.clone());
        }
        // Negated forms, with or without the apostrophe: can't, cant, cannot, won't, wont...
        let bare_negation = [
            "cannot", "cant", "wont", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "shouldnt",
            "couldnt", "wouldnt", "havent", "hasnt",
        ]
        .contains(&lower.as_str());
        if bare_negation {
            tokens.push(match lower.as_str() {
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
        // Split digits from unit letters: 9pm -> 9 pm, 5mg -> 5 mg.
        let digits: String = lower.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',').collect();
        if !digits.is_empty() && digits.len() < lower.len() && lower.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            tokens.push(digits.replace(',', ""));
            tokens.push(lower[digits.len()..].to_string());
            continue;
        }
        let mapped = NUMBER_WORDS.iter().find(|(w, _)| *w == lower).map(|(_, d)| d.to_string());
        tokens.push(mapped.unwrap_or_else(|| lower.replace(',', "")));
    }
    Words { tokens, names }
}

fn is_number(t: &str) -> bool {
    t.trim_start_matches('$').chars().next().is_some_and(|c| c.is_ascii_digit())
}

fn pair_in(list: &[(&str, &str)], a: &str, b: &str) -> bool {
    list.iter().any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
}

fn content_set<'a>(s: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
    s.iter().filter(|t| !STOP.contains(*t) && !NEGATIONS.contains(*t)).copied().collect()
}

fn content_words<'a>(v: &[&'a str]) -> Vec<&'a str> {
    v.iter().filter(|t| !STOP.contains(t)).copied().collect()
}

/// `None`: no gate objects to serving A's answer for B.
pub fn verify(a: &str, b: &str) -> Option<Block> {
    let (wa, wb) = (words(a), words(b));
    let set_a: BTreeSet<&str> = wa.tokens.iter().map(String::as_str).collect();
    let set_b: BTreeSet<&str> = wb.tokens.iter().map(String::as_str).collect();

    // Negation parity, judged only when the wordings align (3/4 of content words shared): a
    // paraphrase may say "without food" for "on an empty stomach".
    let neg = |s: &BTreeSet<&str>| s.iter().filter(|t| NEGATIONS.contains(t)).count() % 2;
    let (ka, kb) = (content_set(&set_a), content_set(&set_b));
    let aligned = ka.intersection(&kb).count() * 4 >= ka.len().max(kb.len()).max(1) * 3;
    if aligned && neg(&set_a) != neg(&set_b) {
        return Some(Block::Negation);
    }
    let only_a: Vec<&str> = set_a.difference(&set_b).copied().collect();
    let only_b: Vec<&str> = set_b.difference(&set_a).copied().collect();
    for x in &only_a {
        for y in &only_b {
            let prefixed = ["un", "in", "il", "im", "ir", "dis", "non"]
                .iter()
                .any(|p| (y.strip_prefix(p) == Some(*x)) || (x.strip_prefix(p) == Some(*y)));
            if pair_in(ANTONYMS, x, y) || prefixed {
                return Some(Block::Antonym);
            }
        }
    }
    let nums = |s: &BTreeSet<&str>| {
        s.iter().filter(|t| is_number(t)).map(|t| t.trim_start_matches('$').to_string()).collect::<BTreeSet<_>>()
    };
    if nums(&set_a) != nums(&set_b) {
        return Some(Block::Number);
    }
    let dates = |s: &BTreeSet<&str>| {
        s.iter().filter(|t| DATE_WORDS.contains(t)).map(|t| t.to_string()).collect::<BTreeSet<_>>()
    };
    let (da, db) = (dates(&set_a), dates(&set_b));
    if !da.is_empty() && !db.is_empty() && da != db {
        return Some(Block::Date);
    }
    // A name on one side that the other side does not mention at all.
    let names_a_missing = wa.names.iter().any(|n| !set_b.contains(n.as_str()));
    let names_b_missing = wb.names.iter().any(|n| !set_a.contains(n.as_str()));
    if names_a_missing && names_b_missing {
        return Some(Block::Entity);
    }
    // Same wording but for a content word or two: a swap (colour, product, role) or an added
    // qualifier. Only judged when the wording is close enough to align.
    let (ca, cb) = (content_words(&only_a), content_words(&only_b));
    let shared = set_a.intersection(&set_b).filter(|t| !STOP.contains(t)).count();
    let differing = ca.len() + cb.len();
    if shared >= 2 && differing > 0 && differing <= 3 && shared >= differing {
        let all_synonyms = ca.iter().all(|x| cb.iter().any(|y| pair_in(SYNONYMS, x, y)))
            && cb.iter().all(|y| ca.iter().any(|x| pair_in(SYNONYMS, x, y)));
        let plural_only =
            ca.len() == 1 && cb.len() == 1 && (ca[0].trim_end_matches('s') == cb[0].trim_end_matches('s'));
        if !all_synonyms && !plural_only {
            return Some(Block::Substitution);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_the_classic_traps() {
        assert_eq!(verify("how do I enable 2FA", "how do I disable 2FA"), Some(Block::Antonym));
        assert_eq!(verify("refund for order 1182", "refund for order 1183"), Some(Block::Number));
        assert_eq!(verify("flights to Paris in May", "flights to Rome in May"), Some(Block::Entity));
        assert_eq!(verify("tax rules in 2023", "tax rules in 2024"), Some(Block::Number));
        assert_eq!(verify("can I bring a laptop", "can't I bring a laptop"), Some(Block::Negation));
        assert_eq!(
            verify("Do you have this sofa in blue?", "Do you have this sofa in grey?"),
            Some(Block::Substitution)
        );
    }

    #[test]
    fn lets_paraphrases_and_near_repeats_through() {
        assert_eq!(verify("How do I sort an array in JavaScript?", "how do I sort an array in javascript"), None);
        assert_eq!(verify("Do you accept PayPal?", "Do you take PayPal?"), None);
        assert_eq!(
            verify("My laptop is running really slow, what can I do?", "tips to speed up a sluggish notebook computer"),
            None
        );
        assert_eq!(verify("is the store open at 9pm", "is the store open at nine pm"), None);
        assert_eq!(verify("I can't log in to my account", "I cannot log in to my account."), None);
        assert_eq!(verify("Why won't my code compile?", "why wont my code compile"), None);
        assert_eq!(
            verify("Can I take ibuprofen on an empty stomach?", "is it ok to take ibuprofen without food"),
            None
        );
    }
}
