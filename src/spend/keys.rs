//! Virtual keys and teams: who is calling, what they may use, their budgets and rate limits.
//! Keys are looked up by their SHA-256, so comparing never depends on how much of a presented
//! key matches a real one, and the configured value can be the hash itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::period::Period;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// Public models this key may use; absent: all.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub budget: Option<RawBudget>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    #[serde(default)]
    pub budget: Option<RawBudget>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub usd: f64,
    /// daily | weekly | monthly (default), or give `window_hours` for fixed windows.
    #[serde(default)]
    pub period: Option<Period>,
    #[serde(default)]
    pub window_hours: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub usd: f64,
    pub period: Period,
}

impl RawBudget {
    fn resolve(&self, owner: &str) -> Result<Budget, String> {
        if !(self.usd.is_finite() && self.usd >= 0.0) {
            return Err(format!("{owner}: budget.usd must be a non-negative number"));
        }
        let period = match (self.period, self.window_hours) {
            (Some(_), Some(_)) => return Err(format!("{owner}: give budget.period or budget.window_hours, not both")),
            (_, Some(0)) => return Err(format!("{owner}: budget.window_hours must be at least 1")),
            (_, Some(h)) => Period::Fixed(h),
            (Some(p), None) => p,
            (None, None) => Period::Monthly,
        };
        Ok(Budget { usd: self.usd, period })
    }
}

#[derive(Debug)]
pub struct KeyInfo {
    pub name: String,
    pub team: Option<String>,
    pub models: Option<HashSet<String>>,
    pub budget: Option<Budget>,
    pub limits: RawLimits,
}

#[derive(Debug)]
pub struct TeamInfo {
    pub name: String,
    pub budget: Option<Budget>,
    pub limits: RawLimits,
}

/// Keys by SHA-256, teams by name. Empty: no auth required.
#[derive(Debug, Default)]
pub struct KeyTable {
    by_hash: HashMap<[u8; 32], Arc<KeyInfo>>,
    pub teams: HashMap<String, Arc<TeamInfo>>,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl KeyTable {
    pub fn build(keys: &[RawKey], teams: &BTreeMap<String, RawTeam>) -> Result<KeyTable, String> {
        let mut by_hash = HashMap::new();
        let mut names = HashSet::new();
        for k in keys {
            if !names.insert(k.name.clone()) {
                return Err(format!("key `{}` is defined twice", k.name));
            }
            let hash = match (&k.key, &k.key_sha256) {
                (Some(v), None) if !v.is_empty() => sha256(v.as_bytes()),
                (None, Some(h)) => {
                    let bytes =
                        hex::decode(h.trim()).map_err(|_| format!("key `{}`: key_sha256 is not hex", k.name))?;
                    bytes.try_into().map_err(|_| format!("key `{}`: key_sha256 must be 64 hex digits", k.name))?
                }
                (Some(_), None) => return Err(format!("key `{}`: the key value is empty", k.name)),
                _ => return Err(format!("key `{}`: give exactly one of key or key_sha256", k.name)),
            };
            let info = KeyInfo {
                name: k.name.clone(),
                team: k.team.clone(),
                models: k.models.as_ref().map(|m| m.iter().cloned().collect()),
                budget: k.budget.as_ref().map(|b| b.resolve(&format!("key `{}`", k.name))).transpose()?,
                limits: k.limits,
            };
            if by_hash.insert(hash, Arc::new(info)).is_some() {
                return Err(format!("key `{}` has the same value as another key", k.name));
            }
        }
        let teams = teams
            .iter()
            .map(|(name, t)| {
                Ok((
                    name.clone(),
                    Arc::new(TeamInfo {
                        name: name.clone(),
                        budget: t.budget.as_ref().map(|b| b.resolve(&format!("team `{name}`"))).transpose()?,
                        limits: t.limits,
                    }),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(KeyTable { by_hash, teams })
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn lookup(&self, presented: &[u8]) -> Option<&Arc<KeyInfo>> {
        self.by_hash.get(&sha256(presented))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<KeyInfo>> {
        self.by_hash.values()
    }

    pub fn team_of(&self, key: &KeyInfo) -> Option<&Arc<TeamInfo>> {
        key.team.as_ref().and_then(|t| self.teams.get(t))
    }
}

/// The presented key: `Authorization: Bearer <key>`, else `x-api-key`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let b = v.as_bytes();
        if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(b[7..].trim_ascii());
        }
    }
    headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, key: &str) -> RawKey {
        RawKey {
            name: name.into(),
            key: Some(key.into()),
            key_sha256: None,
            team: Some("t".into()),
            models: None,
            budget: None,
            limits: RawLimits::default(),
        }
    }

    #[test]
    fn keys_match_by_value_or_hash() {
        let mut hashed = raw("b", "");
        hashed.key = None;
        hashed.key_sha256 = Some(hex::encode(sha256(b"sk-bbb")));
        let t = KeyTable::build(&[raw("a", "sk-aaa"), hashed], &BTreeMap::new()).unwrap();
        assert_eq!(t.lookup(b"sk-aaa").unwrap().name, "a");
        assert_eq!(t.lookup(b"sk-bbb").unwrap().name, "b");
        assert!(t.lookup(b"sk-aa").is_none());
        assert!(t.team_of(t.lookup(b"sk-aaa").unwrap()).is_none(), "a team absent under teams: has no budget");
    }

    #[test]
    fn bad_keys_are_config_errors() {
        assert!(KeyTable::build(&[raw("a", "x"), raw("a", "y")], &BTreeMap::new()).is_err());
        assert!(KeyTable::build(&[raw("a", "x"), raw("b", "x")], &BTreeMap::new()).is_err());
        assert!(KeyTable::build(&[raw("a", "")], &BTreeMap::new()).is_err());
    }

    #[test]
    fn presented_key_from_either_header() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer  sk-1 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some(&b"sk-1"[..]));
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", "sk-2".parse().unwrap());
        assert_eq!(presented_key(&h), Some(&b"sk-2"[..]));
    }
}
