//! Prices per model (USD per million tokens): the bundled `config/pricing.yaml`, overridden by
//! `pricing.overrides` (public or upstream model) and per-target `pricing`. Most specific wins:
//! target, then upstream model, then public model, then the file (exact name, then the longest
//! name that prefixes a dated variant such as `gpt-4o-2024-08-06`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
    /// Sizes the budget reservation when a request gives no `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

impl Price {
    /// USD for a usage record; cached prompt tokens at the cached price when one is known.
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cached_tokens.min(u.prompt_tokens);
        let fresh = u.prompt_tokens - cached;
        (fresh as f64 * self.input_per_mtok
            + cached as f64 * self.cached_input_per_mtok.unwrap_or(self.input_per_mtok)
            + u.completion_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingFile {
    date: String,
    models: HashMap<String, Price>,
}

#[derive(Debug, Default)]
pub struct PriceBook {
    pub file_date: Option<String>,
    file: HashMap<String, Price>,
    overrides: HashMap<String, Price>,
    /// Names the config uses that are not in the file as they are: their variant match, found
    /// once at load so the request path does one hash probe instead of a scan.
    variants: HashMap<String, Option<Price>>,
}

impl PriceBook {
    /// `file: None` means no bundled prices (overrides only).
    pub fn load(file: Option<&Path>, overrides: &BTreeMap<String, Price>) -> Result<PriceBook, String> {
        let (file_date, file) = match file {
            None => (None, HashMap::new()),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("pricing file {}: {e}", path.display()))?;
                let parsed: PricingFile = serde_norway::from_str(&text).map_err(|e| {
                    let line = e.location().map(|l| format!(" line {}", l.line())).unwrap_or_default();
                    format!("pricing file {}{line}: {e}", path.display())
                })?;
                (Some(parsed.date), parsed.models)
            }
        };
        Ok(PriceBook {
            file_date,
            file,
            overrides: overrides.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            variants: HashMap::new(),
        })
    }

    /// Resolves the variant match of each name ahead of the request path.
    pub fn precompute<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if !self.file.contains_key(name) {
                let found = self.scan(name);
                self.variants.insert(name.to_string(), found);
            }
        }
    }

    pub fn lookup(&self, target: Option<&Price>, upstream_model: &str, public_model: &str) -> Option<Price> {
        target
            .copied()
            .or_else(|| self.overrides.get(upstream_model).copied())
            .or_else(|| self.overrides.get(public_model).copied())
            .or_else(|| self.in_file(upstream_model))
            .or_else(|| self.in_file(public_model))
    }

    fn in_file(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.file.get(model) {
            return Some(*p);
        }
        match self.variants.get(model) {
            Some(found) => *found,
            None => self.scan(model),
        }
    }

    fn scan(&self, model: &str) -> Option<Price> {
        // Dated or suffixed variants: the longest known name followed by `-` or `:`.
        self.file
            .iter()
            .filter(|(k, _)| {
                model.len() > k.len()
                    && model.starts_with(k.as_str())
                    && matches!(model.as_bytes()[k.len()], b'-' | b':')
            })
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(i: f64, o: f64) -> Price {
        Price { input_per_mtok: i, output_per_mtok: o, cached_input_per_mtok: None, max_output_tokens: None }
    }

    #[test]
    fn bundled_file_parses_and_prices_dated_variants() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pricing.yaml");
        let book = PriceBook::load(Some(&path), &BTreeMap::new()).unwrap();
        assert!(book.file_date.is_some());
        let p = book.lookup(None, "gpt-4o-mini-2024-07-18", "demo").unwrap();
        assert_eq!(p.input_per_mtok, 0.15);
        assert_eq!(book.lookup(None, "gpt-4o-2024-08-06", "x").unwrap().input_per_mtok, 2.5);
        assert!(book.lookup(None, "unknown-model", "also-unknown").is_none());

        // Precomputed names answer exactly as the scan does.
        let mut fast = PriceBook::load(Some(&path), &BTreeMap::new()).unwrap();
        let names = ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "unknown-model", "gpt-4o-mini"];
        fast.precompute(names);
        for n in names {
            assert_eq!(fast.lookup(None, n, "x"), book.lookup(None, n, "x"), "{n}");
        }
    }

    #[test]
    fn most_specific_price_wins() {
        let mut overrides = BTreeMap::new();
        overrides.insert("public".to_string(), price(1.0, 1.0));
        overrides.insert("upstream".to_string(), price(2.0, 2.0));
        let book = PriceBook::load(None, &overrides).unwrap();
        assert_eq!(book.lookup(Some(&price(3.0, 3.0)), "upstream", "public").unwrap().input_per_mtok, 3.0);
        assert_eq!(book.lookup(None, "upstream", "public").unwrap().input_per_mtok, 2.0);
        assert_eq!(book.lookup(None, "other", "public").unwrap().input_per_mtok, 1.0);
    }

    #[test]
    fn cost_uses_cached_price() {
        let p = Price { cached_input_per_mtok: Some(0.5), ..price(1.0, 4.0) };
        let u =
            Usage { prompt_tokens: 1_000_000, completion_tokens: 500_000, cached_tokens: 400_000, estimated: false };
        assert!((p.cost(&u) - (0.6 + 0.2 + 2.0)).abs() < 1e-9);
    }
}
