//! The response cache. Exact tier: a hash of the canonical request (scope, model, every field
//! that changes the answer) answered from memory in microseconds. Semantic tier: the last user
//! message embedded and searched among prompts asked in the same context, a hit only past the
//! similarity threshold and the correctness gates. Streamed answers are replayed as streams;
//! bounded, with TTL, snapshotted across restarts.

pub mod gates;
pub mod key;
pub mod semantic;
pub mod sse;
pub mod store;
pub mod vectors;
pub mod wordnet;

use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};

/// The cache as the gateway holds it: the store (entries and vectors) and the semantic runtime.
pub struct Cache {
    pub store: store::CacheStore,
    pub semantic: Arc<semantic::SemanticRuntime>,
}

impl Cache {
    /// The cache and its `cache-evict` thread: eviction scans every entry (tens of milliseconds
    /// at a few hundred thousand), which must not stall the tokio worker of the insert that
    /// crossed the bound. The thread holds only a `Weak`, and ends when the cache is dropped.
    pub fn new(max_bytes: usize) -> Arc<Cache> {
        Arc::new_cyclic(|me: &Weak<Cache>| {
            let (wake, woken) = sync_channel::<()>(1);
            let me = me.clone();
            let spawned = std::thread::Builder::new().name("cache-evict".into()).spawn(move || {
                while woken.recv().is_ok() {
                    let Some(cache) = me.upgrade() else { break };
                    cache.store.evict();
                }
            });
            let mut store = store::CacheStore::new(max_bytes);
            if spawned.is_ok() {
                store = store.evicting_on(wake);
            }
            Cache { store, semantic: semantic::SemanticRuntime::new() }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub exact: TierConfig,
    pub semantic: SemanticConfig,
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
            semantic: SemanticConfig::default(),
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SemanticConfig {
    pub enabled: bool,
    /// Cosine similarity a candidate needs before the gates look at it.
    pub threshold: f32,
    pub ttl_secs: u64,
    /// Where `scripts/setup-model.sh` put the model ("~" is the home directory); restart to change.
    pub model_dir: String,
    /// Lowest value `x-switchyard-cache-threshold` may lower the threshold to.
    pub min_request_threshold: f32,
    /// Correctness gates after the similarity check, up to which stage (`none`: similarity alone).
    pub gates: GateMode,
    /// The combiner's cut-off (absent: the one shipped with its weights).
    pub gate_cutoff: Option<f32>,
    /// How long a lookup may wait for its embedding before it counts as a skip (a miss).
    pub embed_budget_ms: u64,
    /// Prompts longer than this are not embedded (the model reads 256 tokens; a longer prompt
    /// could differ only past what it reads).
    pub max_prompt_chars: usize,
    /// Nearest stored prompts checked per lookup.
    pub candidates: usize,
    /// Inference: ONNX Runtime threads, batch size, how long a batch waits to fill, queue bound.
    pub threads: usize,
    pub max_batch: usize,
    pub batch_wait_ms: u64,
    pub queue: usize,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            enabled: true,
            threshold: DEFAULT_SEMANTIC_THRESHOLD,
            ttl_secs: 3600,
            model_dir: "~/.cache/switchyard/models".into(),
            min_request_threshold: 0.80,
            gates: GateMode::Combiner,
            gate_cutoff: None,
            embed_budget_ms: 50,
            max_prompt_chars: 1000,
            candidates: 4,
            threads: 1,
            max_batch: 16,
            batch_wait_ms: 0,
            queue: 256,
        }
    }
}

/// `cache.semantic.gates`: how much of the verifier runs after the similarity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    None,
    Rules,
    Wordnet,
    Combiner,
}

impl GateMode {
    pub fn stage(self) -> Option<gates::Stage> {
        match self {
            GateMode::None => None,
            GateMode::Rules => Some(gates::Stage::Rules),
            GateMode::Wordnet => Some(gates::Stage::WordNet),
            GateMode::Combiner => Some(gates::Stage::Combiner),
        }
    }
}

/// The default similarity threshold: the one `cache-eval` picked, with the gates, on the labelled pairs.
pub const DEFAULT_SEMANTIC_THRESHOLD: f32 = gates::DEFAULT_THRESHOLD;

/// Per-model override of the semantic tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteSemantic {
    pub enabled: Option<bool>,
    pub threshold: Option<f32>,
    pub ttl_secs: Option<u64>,
}

/// The semantic tier as one route uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticTier {
    pub enabled: bool,
    pub threshold: f32,
    pub ttl_secs: u64,
}

impl SemanticTier {
    pub fn resolve(global: &SemanticConfig, route: &RouteSemantic) -> SemanticTier {
        SemanticTier {
            enabled: route.enabled.unwrap_or(global.enabled),
            threshold: route.threshold.unwrap_or(global.threshold),
            ttl_secs: route.ttl_secs.unwrap_or(global.ttl_secs),
        }
    }
}

/// Per-model override: `models.<name>.cache: { exact: { enabled, ttl_secs }, semantic: {...} }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteCache {
    pub exact: Option<TierConfig>,
    pub semantic: RouteSemantic,
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
