//! The file format, as serde sees it. Lenient defaults live here; the validated, resolved form is
//! `super::Config`, which the rest of the program uses.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::spend::pricing::Price;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub pricing: RawPricing,
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// Virtual keys; when any is configured, every API request needs one.
    #[serde(default)]
    pub keys: Vec<crate::spend::keys::RawKey>,
    #[serde(default)]
    pub teams: BTreeMap<String, crate::spend::keys::RawTeam>,
    #[serde(default)]
    pub spend: RawSpend,
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpend {
    /// Durable spend ledger (restart to change); empty string keeps spend in memory only.
    pub ledger_path: String,
    /// Output tokens reserved when a request gives no max_tokens and the price list has no
    /// max_output_tokens for the model.
    pub default_reserve_tokens: u64,
    /// Fraction of a budget that logs a warning and counts `switchyard_budget_soft_limit_total`.
    pub soft_limit: f64,
    /// The period `GET /admin/spend` reports on.
    pub report_period: crate::spend::period::Period,
}

impl Default for RawSpend {
    fn default() -> Self {
        RawSpend {
            ledger_path: "data/spend.ledger".into(),
            default_reserve_tokens: 1024,
            soft_limit: 0.8,
            report_period: crate::spend::period::Period::Monthly,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    /// Bundled price list; default `config/pricing.yaml` (relative to the working directory,
    /// then to the config file's directory).
    #[serde(default)]
    pub file: Option<String>,
    /// Per model (public or upstream name), USD per million tokens.
    #[serde(default)]
    pub overrides: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub admin_listen: String,
    pub threads: usize,
    pub max_body_bytes: usize,
    pub grace_period_secs: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "0.0.0.0:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            threads: 2,
            max_body_bytes: 10 * 1024 * 1024,
            grace_period_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    /// Required for every kind but `bedrock` (default `https://bedrock-runtime.{region}.amazonaws.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Absent: the provider needs no key (local servers). Present but empty: skipped with a warning.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra headers sent upstream on every request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Active probe; absent: the provider is judged by passive health (circuit breaker) only.
    #[serde(default)]
    pub health_check: Option<RawHealthCheck>,
    /// Ask streams for `stream_options.include_usage` even when the client did not (the extra
    /// chunk is cut before the client sees it), so every stream is accounted. Turn off for
    /// servers that reject `stream_options`.
    #[serde(default = "yes")]
    pub stream_usage: bool,
    /// `kind: azure`: the `api-version` query parameter (default 2024-10-21).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `kind: anthropic`: the `anthropic-version` header (default 2023-06-01).
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `kind: bedrock`: AWS region and credentials; absent ones come from `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// Drop request parameters this provider's format cannot express instead of answering 400.
    #[serde(default)]
    pub drop_unsupported_params: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealthCheck {
    /// `http` (GET `path` joined to base_url) or `tcp` (connect only).
    pub kind: String,
    pub path: String,
    pub expect_status: u16,
    pub interval_secs: u64,
    pub timeout_ms: u64,
    /// Consecutive failed probes that take the provider out of rotation.
    pub failures: u32,
    /// Consecutive passed probes that bring it back.
    pub successes: u32,
}

impl Default for RawHealthCheck {
    fn default() -> Self {
        RawHealthCheck {
            kind: "http".into(),
            path: "/models".into(),
            expect_status: 200,
            interval_secs: 5,
            timeout_ms: 1000,
            failures: 3,
            successes: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeouts {
    pub connect_ms: u64,
    pub first_byte_ms: u64,
    pub idle_ms: u64,
    pub total_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts { connect_ms: 2_000, first_byte_ms: 60_000, idle_ms: 60_000, total_ms: 600_000 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub targets: Vec<RawTarget>,
    /// weighted (default) | round-robin | least-latency | least-busy | cost
    #[serde(default)]
    pub strategy: Option<String>,
    /// Models tried in order once every target of this one failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub circuit_breaker: RawBreaker,
    /// Per-model cache settings, over the global `cache:` ones.
    #[serde(default)]
    pub cache: crate::cache::RouteCache,
    /// Over the provider's `drop_unsupported_params` for this model's targets.
    #[serde(default)]
    pub drop_unsupported_params: Option<bool>,
    /// `max_tokens` sent to providers that require one (Anthropic) when the client sent none.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
}

fn default_max_tokens() -> u64 {
    4096
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    /// Attempts in all, the first try included.
    pub max_attempts: u32,
    /// Upstream statuses that move on to the next target or fallback.
    pub on_status: Vec<u16>,
    /// Base of the exponential backoff between attempts (jittered); 0 disables it.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// No new attempt starts later than this after the request arrived.
    pub deadline_ms: u64,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            max_attempts: 3,
            on_status: vec![429, 500, 502, 503, 504],
            backoff_ms: 20,
            max_backoff_ms: 1000,
            deadline_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBreaker {
    /// Consecutive failures that open the circuit.
    pub consecutive_failures: u32,
    pub cooldown_secs: u64,
    /// Error rate over `window_secs` that opens the circuit, once `min_requests` were seen.
    pub error_rate: f64,
    pub window_secs: u64,
    pub min_requests: u32,
}

impl Default for RawBreaker {
    fn default() -> Self {
        RawBreaker { consecutive_failures: 5, cooldown_secs: 30, error_rate: 0.5, window_secs: 60, min_requests: 20 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// Order for `strategy: cost` (lower is cheaper) until pricing data exists.
    #[serde(default)]
    pub cost_rank: u32,
    /// This target's own price, overriding every other source.
    #[serde(default)]
    pub pricing: Option<Price>,
}

fn one() -> u32 {
    1
}
