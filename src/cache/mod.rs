//! The response cache. Exact tier: a hash of the canonical request (scope, model, every field
//! that changes the answer) answered from memory in microseconds, streamed answers replayed as
//! streams, bounded, with TTL, snapshotted across restarts. (The semantic tier is in progress.)

pub mod gates;
pub mod key;
pub mod sse;
pub mod store;
pub mod wordnet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub exact: TierConfig,
    pub max_bytes: usize,
    /// Answers larger than this are not stored.
    pub max_entry_bytes: usize,
    /// `team` (default when keys exist), `key`, or `global` (default without keys).
    pub scope: Option<String>,
    /// Requests with a higher `temperature` are not cached (absent: no limit).
    pub max_temperature: Option<f64>,
    /// Snapshot file ("" disables persistence); restart to change.
    pub snapshot_path: String,
    pub snapshot_interval_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            exact: TierConfig::default(),
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 4 * 1024 * 1024,
            scope: None,
            max_temperature: None,
            snapshot_path: "data/cache.snapshot".into(),
            snapshot_interval_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierConfig {
    pub enabled: bool,
    pub ttl_secs: u64,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig { enabled: true, ttl_secs: 3600 }
    }
}

/// Per-model override: `models.<name>.cache: { exact: { enabled, ttl_secs } }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteCache {
    pub exact: Option<TierConfig>,
}

/// What the client asked of the cache (`x-switchyard-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Normal,
    /// Neither look up nor store; the answer says `bypass`.
    Off,
    /// Skip the lookup, store the new answer.
    Refresh,
}

impl Control {
    pub fn parse(v: Option<&[u8]>) -> Control {
        match v {
            Some(b) if b.eq_ignore_ascii_case(b"off") => Control::Off,
            Some(b) if b.eq_ignore_ascii_case(b"refresh") => Control::Refresh,
            _ => Control::Normal,
        }
    }
}
