//! Configuration: the YAML schema (`raw`), `${ENV}` interpolation, validation into [`Config`],
//! and hot reload (`live`, `watch`). Every error surfaces at load or reload, never per request.

mod interpolate;
pub mod live;
pub mod raw;
pub mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use interpolate::interpolate;
use raw::{RawConfig, RawProvider, RawTimeouts};

/// A configuration error, with the line it was found on where that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
    pub line: Option<usize>,
}

impl ConfigError {
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        ConfigError { message: message.into(), line: Some(line) }
    }
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError { message: message.into(), line: None }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The validated configuration, defaults resolved.
#[derive(Debug)]
pub struct Config {
    pub server: raw::RawServer,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelConfig>,
    pub keys: crate::spend::keys::KeyTable,
    /// The parsed file, kept to show (redacted) in `GET /admin/config`.
    pub raw: RawConfig,
    /// Non-fatal problems (skipped providers...), logged at load.
    pub warnings: Vec<String>,
    /// Directory of the config file, for relative paths (`None`: parsed from text).
    pub base_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenAI-compatible server: OpenAI, vLLM, Ollama, Groq, Together, LM Studio...
    OpenAi,
    /// Azure OpenAI: OpenAI's wire format; the deployment (a target's `model`) in the path, the
    /// `api-version` query parameter, the key in `api-key`.
    Azure,
    /// Anthropic Messages (`/v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
    /// Google Gemini's Generative Language API (`generateContent`, key in `x-goog-api-key`).
    Gemini,
    /// AWS Bedrock Converse / ConverseStream, SigV4-signed.
    Bedrock,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Bedrock => "bedrock",
        }
    }
}

/// Azure OpenAI's GA API version used when the provider sets none.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: BaseUrl,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheckConfig>,
    pub stream_usage: bool,
    /// `kind: azure` only.
    pub api_version: Option<String>,
    /// `kind: anthropic` only.
    pub anthropic_version: Option<String>,
    /// `kind: bedrock` only.
    pub aws: Option<crate::providers::bedrock::AwsCredentials>,
    pub drop_unsupported_params: bool,
    /// Why this provider cannot be used (e.g. its key resolved empty); `None` when usable.
    pub disabled: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// `None`: TCP connect probe; `Some(path)`: HTTP GET of base path + `path`.
    pub http_path: Option<String>,
    pub expect_status: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
    pub successes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Weighted,
    RoundRobin,
    LeastLatency,
    LeastBusy,
    Cost,
}

impl Strategy {
    fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "weighted" => Strategy::Weighted,
            "round-robin" => Strategy::RoundRobin,
            "least-latency" => Strategy::LeastLatency,
            "least-busy" => Strategy::LeastBusy,
            "cost" => Strategy::Cost,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub on_status: Vec<u16>,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub deadline: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    pub consecutive_failures: u32,
    pub cooldown: Duration,
    pub error_rate: f64,
    pub window: Duration,
    pub min_requests: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl From<RawTimeouts> for Timeouts {
    fn from(t: RawTimeouts) -> Self {
        Timeouts {
            connect: Duration::from_millis(t.connect_ms),
            first_byte: Duration::from_millis(t.first_byte_ms),
            idle: Duration::from_millis(t.idle_ms),
            total: Duration::from_millis(t.total_ms),
        }
    }
}

/// A provider base URL split into what the proxy needs: scheme, host, port and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path the endpoint paths are appended to, without trailing slash (`/v1`, `/openai/v1`, ``).
    pub path: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid base_url `{url}`: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("base_url `{url}` must start with http:// or https://")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| format!("base_url `{url}` has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(format!("base_url `{url}` must not have a query string"));
        }
        let path = uri.path().trim_end_matches('/').to_string();
        Ok(BaseUrl { tls, host, port, path })
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            (_, port) => format!("{host}:{port}"),
        }
    }
}

/// What one provider kind adds to the common provider settings.
struct KindSpecific {
    base_url: String,
    api_version: Option<String>,
    anthropic_version: Option<String>,
    aws: Option<crate::providers::bedrock::AwsCredentials>,
    /// Usable config, but the provider cannot be used (e.g. no AWS credentials anywhere).
    disabled: Option<String>,
}

/// Checks the settings only some kinds take and fills in their defaults.
fn kind_specific(
    name: &str,
    kind: ProviderKind,
    p: &RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<KindSpecific, String> {
    let only = |field: &str, set: bool, for_kind: ProviderKind| {
        if set && kind != for_kind {
            Err(format!("provider `{name}`: `{field}` applies to kind {} only", for_kind.as_str()))
        } else {
            Ok(())
        }
    };
    only("api_version", p.api_version.is_some(), ProviderKind::Azure)?;
    only("anthropic_version", p.anthropic_version.is_some(), ProviderKind::Anthropic)?;
    for (field, value) in [
        ("region", &p.region),
        ("access_key_id", &p.access_key_id),
        ("secret_access_key", &p.secret_access_key),
        ("session_token", &p.session_token),
    ] {
        only(field, value.is_some(), ProviderKind::Bedrock)?;
    }
    let mut out =
        KindSpecific { base_url: String::new(), api_version: None, anthropic_version: None, aws: None, disabled: None };
    match kind {
        ProviderKind::Azure => {
            out.api_version = Some(p.api_version.clone().unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_string()))
        }
        ProviderKind::Anthropic => {
            out.anthropic_version = Some(
                p.anthropic_version.clone().unwrap_or_else(|| crate::providers::anthropic::DEFAULT_VERSION.to_string()),
            )
        }
        ProviderKind::Bedrock => {
            if p.api_key.is_some() {
                return Err(format!(
                    "provider `{name}`: kind bedrock signs with AWS credentials (access_key_id, secret_access_key), not api_key"
                ));
            }
            let pick = |configured: &Option<String>, vars: &[&str]| {
                configured.clone().or_else(|| vars.iter().find_map(|v| env(v))).filter(|v| !v.trim().is_empty())
            };
            let region = pick(&p.region, &["AWS_REGION", "AWS_DEFAULT_REGION"])
                .ok_or_else(|| format!("provider `{name}`: kind bedrock needs `region` (or AWS_REGION)"))?;
            let key_id = pick(&p.access_key_id, &["AWS_ACCESS_KEY_ID"]);
            let secret = pick(&p.secret_access_key, &["AWS_SECRET_ACCESS_KEY"]);
            let token = pick(&p.session_token, &["AWS_SESSION_TOKEN"]);
            if p.base_url.is_none() {
                out.base_url = format!("https://bedrock-runtime.{region}.amazonaws.com");
            }
            match (key_id, secret) {
                (Some(access_key_id), Some(secret_access_key)) => {
                    out.aws = Some(crate::providers::bedrock::AwsCredentials {
                        region,
                        access_key_id,
                        secret_access_key,
                        session_token: token,
                    })
                }
                _ => {
                    out.disabled = Some(format!(
                        "provider `{name}` has no AWS credentials: set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    ))
                }
            }
        }
        ProviderKind::OpenAi | ProviderKind::Gemini => {}
    }
    if let Some(url) = &p.base_url {
        out.base_url = url.clone();
    }
    if out.base_url.is_empty() {
        return Err(format!("provider `{name}`: `base_url` is required for kind {}", kind.as_str()));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    pub strategy: Strategy,
    pub fallbacks: Vec<String>,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    /// Exact-cache settings for this model (global ones unless overridden).
    pub exact_cache: crate::cache::TierConfig,
    pub semantic_cache: crate::cache::SemanticTier,
    /// Over each provider's own `drop_unsupported_params`.
    pub drop_unsupported_params: Option<bool>,
    pub default_max_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub provider: String,
    pub model: String,
    pub weight: u32,
    pub cost_rank: u32,
    pub pricing: Option<crate::spend::pricing::Price>,
}

/// Targets per model: selection state is a 64-bit mask per request.
pub const MAX_TARGETS_PER_MODEL: usize = 64;

impl Config {
    /// Reads, interpolates and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
        let mut config = Config::parse(&text, |name| std::env::var(name).ok())?;
        config.base_dir = path.parent().map(|p| p.to_path_buf());
        Ok(config)
    }

    /// The pricing file to load: the configured or default path, relative to the working
    /// directory, then to the config's directory. `None` for a missing default (warned).
    /// Relative paths of the ledger and audit log stay relative to the working directory.
    pub fn pricing_file(&self) -> Result<Option<std::path::PathBuf>, ConfigError> {
        let (name, explicit) = match &self.raw.pricing.file {
            Some(f) => (f.as_str(), true),
            None => ("config/pricing.yaml", false),
        };
        let direct = std::path::PathBuf::from(name);
        // As given (working directory), then next to the config file, then its bare file name
        // next to the config file (so `config/pricing.yaml` works from any directory).
        let file_name = direct.file_name().map(std::path::PathBuf::from);
        let candidates = std::iter::once(direct.clone())
            .chain(self.base_dir.iter().map(|d| d.join(name)))
            .chain(self.base_dir.iter().zip(file_name.iter()).map(|(d, f)| d.join(f)));
        for c in candidates {
            if c.exists() {
                return Ok(Some(c));
            }
        }
        if explicit {
            Err(ConfigError::new(format!("pricing.file `{name}` not found")))
        } else {
            Ok(None)
        }
    }

    /// Parses config text; `env` resolves `${VAR}`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let expanded = interpolate(text, &env)?;
        let raw: RawConfig = serde_norway::from_str(&expanded).map_err(|e| {
            let line = e.location().map(|l| l.line());
            ConfigError { message: e.to_string(), line }
        })?;
        validate(raw, text, &env)
    }
}

fn validate(raw: RawConfig, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let s = &raw.server;
    for (key, addr) in [("server.listen", &s.listen), ("server.admin_listen", &s.admin_listen)] {
        addr.parse::<std::net::SocketAddr>().map_err(|_| ConfigError {
            message: format!("{key} `{addr}` is not an IP:port address"),
            line: find_line(text, &[addr]),
        })?;
    }
    if s.grace_period_secs > 3600 {
        return Err(ConfigError {
            message: "server.grace_period_secs must be at most 3600".into(),
            line: find_line(text, &["grace_period_secs"]),
        });
    }
    if s.threads == 0 {
        return Err(ConfigError {
            message: "server.threads must be at least 1".into(),
            line: find_line(text, &["threads"]),
        });
    }
    if s.max_body_bytes == 0 {
        return Err(ConfigError {
            message: "server.max_body_bytes must be at least 1".into(),
            line: find_line(text, &["max_body_bytes"]),
        });
    }

    let a = &raw.audit;
    if a.on_full != "block" && a.on_full != "drop" {
        return Err(ConfigError {
            message: format!("audit.on_full `{}` (expected block or drop)", a.on_full),
            line: find_line(text, &["audit", "on_full"]),
        });
    }
    let hints = key_hints(text);
    let mut warnings = Vec::new();
    let mut providers = BTreeMap::new();
    for (name, p) in &raw.providers {
        let line = || find_line(text, &["providers:", &format!("{name}:")]);
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "azure" => ProviderKind::Azure,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "bedrock" => ProviderKind::Bedrock,
            other => {
                return Err(ConfigError {
                    message: format!(
                    "provider `{name}`: unknown kind `{other}` (supported: openai, azure, anthropic, gemini, bedrock)"
                ),
                    line: line(),
                })
            }
        };
        let specific = kind_specific(name, kind, p, env).map_err(|message| ConfigError { message, line: line() })?;
        let base_url = BaseUrl::parse(&specific.base_url)
            .map_err(|m| ConfigError { message: format!("provider `{name}`: {m}"), line: line() })?;
        let timeouts = Timeouts::from(p.timeouts);
        if timeouts.connect.is_zero() || timeouts.first_byte.is_zero() || timeouts.total.is_zero() {
            return Err(ConfigError {
                message: format!("provider `{name}`: timeouts must be greater than 0"),
                line: line(),
            });
        }
        let health_check = match &p.health_check {
            None => None,
            Some(h) => {
                let http_path = match h.kind.as_str() {
                    "http" => Some(format!("{}/{}", base_url.path, h.path.trim_start_matches('/'))),
                    "tcp" => None,
                    other => {
                        return Err(ConfigError {
                            message: format!("provider `{name}`: health_check.kind `{other}` (expected http or tcp)"),
                            line: find_line(text, &["providers:", &format!("{name}:"), "health_check"]),
                        })
                    }
                };
                if h.interval_secs == 0
                    || h.interval_secs > 86_400
                    || h.timeout_ms == 0
                    || h.timeout_ms > 600_000
                    || h.failures == 0
                    || h.successes == 0
                {
                    return Err(ConfigError {
                        message: format!(
                            "provider `{name}`: health_check needs interval_secs in 1..=86400, timeout_ms in 1..=600000, failures and successes >= 1"
                        ),
                        line: find_line(text, &["providers:", &format!("{name}:"), "health_check"]),
                    });
                }
                Some(HealthCheckConfig {
                    http_path,
                    expect_status: h.expect_status,
                    interval: Duration::from_secs(h.interval_secs),
                    timeout: Duration::from_millis(h.timeout_ms),
                    failures: h.failures,
                    successes: h.successes,
                })
            }
        };
        let disabled = match p.api_key.as_deref() {
            _ if specific.disabled.is_some() => {
                let reason = specific.disabled.clone().unwrap_or_default();
                warnings.push(format!("{reason}; skipping it"));
                Some(reason)
            }
            Some("") => {
                let vars = hints.get(name.as_str()).cloned().unwrap_or_default();
                let reason = if vars.is_empty() {
                    format!("provider `{name}` has an empty api_key")
                } else {
                    format!("provider `{name}` has no API key: set {}", vars.join(" or "))
                };
                warnings.push(format!("{reason}; skipping it"));
                Some(reason)
            }
            _ => None,
        };
        providers.insert(
            name.clone(),
            ProviderConfig {
                name: name.clone(),
                kind,
                base_url,
                api_key: p.api_key.clone().filter(|k| !k.is_empty()),
                headers: p.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                timeouts,
                health_check,
                stream_usage: p.stream_usage,
                api_version: specific.api_version,
                anthropic_version: specific.anthropic_version,
                aws: specific.aws,
                drop_unsupported_params: p.drop_unsupported_params,
                disabled,
            },
        );
    }

    let mut models = BTreeMap::new();
    for (name, m) in &raw.models {
        let line = |extra: &str| find_line(text, &["models:", &format!("{name}:"), extra]);
        if m.targets.is_empty() {
            return Err(ConfigError { message: format!("model `{name}` has no targets"), line: line("targets") });
        }
        let mut targets = Vec::with_capacity(m.targets.len());
        for t in &m.targets {
            if !providers.contains_key(&t.provider) {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                return Err(ConfigError {
                    message: format!(
                        "model `{name}` names undefined provider `{}` (defined providers: {})",
                        t.provider,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                    line: line(&t.provider),
                });
            }
            if t.weight == 0 {
                return Err(ConfigError {
                    message: format!("model `{name}`: target `{}` has weight 0 (must be at least 1)", t.provider),
                    line: line(&t.provider),
                });
            }
            if t.model.is_empty() {
                return Err(ConfigError {
                    message: format!("model `{name}`: a target has an empty model"),
                    line: line(&t.provider),
                });
            }
            targets.push(TargetConfig {
                provider: t.provider.clone(),
                model: t.model.clone(),
                weight: t.weight,
                cost_rank: t.cost_rank,
                pricing: t.pricing,
            });
        }
        if targets.len() > MAX_TARGETS_PER_MODEL {
            return Err(ConfigError {
                message: format!("model `{name}` has {} targets (at most {MAX_TARGETS_PER_MODEL})", targets.len()),
                line: line("targets"),
            });
        }
        let strategy = match m.strategy.as_deref() {
            None => Strategy::Weighted,
            Some(s) => Strategy::parse(s).ok_or_else(|| ConfigError {
                message: format!(
                    "model `{name}`: unknown strategy `{s}` (weighted, round-robin, least-latency, least-busy, cost)"
                ),
                line: line("strategy"),
            })?,
        };
        let r = &m.retry;
        if r.max_attempts == 0 {
            return Err(ConfigError {
                message: format!("model `{name}`: retry.max_attempts must be at least 1"),
                line: line("max_attempts"),
            });
        }
        if let Some(bad) = r.on_status.iter().find(|s| !(400..=599).contains(*s)) {
            return Err(ConfigError {
                message: format!("model `{name}`: retry.on_status {bad} is not a 4xx/5xx status"),
                line: line("on_status"),
            });
        }
        let b = &m.circuit_breaker;
        if b.consecutive_failures == 0 || !(0.0..=1.0).contains(&b.error_rate) || b.window_secs == 0 {
            return Err(ConfigError {
                message: format!(
                    "model `{name}`: circuit_breaker needs consecutive_failures >= 1, error_rate in [0, 1], window_secs >= 1"
                ),
                line: line("circuit_breaker"),
            });
        }
        models.insert(
            name.clone(),
            ModelConfig {
                name: name.clone(),
                targets,
                strategy,
                fallbacks: m.fallbacks.clone(),
                retry: RetryPolicy {
                    max_attempts: r.max_attempts,
                    on_status: r.on_status.clone(),
                    backoff: Duration::from_millis(r.backoff_ms),
                    max_backoff: Duration::from_millis(r.max_backoff_ms.max(r.backoff_ms)),
                    deadline: Duration::from_millis(r.deadline_ms.max(1)),
                },
                breaker: BreakerPolicy {
                    consecutive_failures: b.consecutive_failures,
                    cooldown: Duration::from_secs(b.cooldown_secs),
                    error_rate: b.error_rate,
                    window: Duration::from_secs(b.window_secs),
                    min_requests: b.min_requests,
                },
                exact_cache: m.cache.exact.unwrap_or(raw.cache.exact),
                semantic_cache: crate::cache::SemanticTier::resolve(&raw.cache.semantic, &m.cache.semantic),
                drop_unsupported_params: m.drop_unsupported_params,
                default_max_tokens: m.default_max_tokens,
            },
        );
    }
    for m in models.values() {
        for f in &m.fallbacks {
            if f == &m.name || !models.contains_key(f) {
                return Err(ConfigError {
                    message: format!(
                        "model `{}`: fallback `{f}` {}",
                        m.name,
                        if f == &m.name { "is the model itself" } else { "is not a defined model" }
                    ),
                    line: find_line(text, &["models:", &format!("{}:", m.name), "fallbacks"]),
                });
            }
        }
    }

    for k in &raw.keys {
        if let Some(bad) = k.models.iter().flatten().find(|m| !models.contains_key(*m)) {
            return Err(ConfigError {
                message: format!("key `{}` allows undefined model `{bad}`", k.name),
                line: find_line(text, &["keys:", &k.name, bad]),
            });
        }
    }
    let keys = crate::spend::keys::KeyTable::build(&raw.keys, &raw.teams)
        .map_err(|m| ConfigError { message: m, line: find_line(text, &["keys:"]) })?;
    if let Some(scope) = raw.cache.scope.as_deref() {
        if !matches!(scope, "team" | "key" | "global") {
            return Err(ConfigError {
                message: format!("cache.scope `{scope}` (expected team, key or global)"),
                line: find_line(text, &["cache", "scope"]),
            });
        }
    }
    let sem = &raw.cache.semantic;
    let thresholds = [
        ("cache.semantic.threshold", Some(sem.threshold)),
        ("min_request_threshold", Some(sem.min_request_threshold)),
        ("gate_cutoff", sem.gate_cutoff),
    ]
    .into_iter()
    .chain(models.values().map(|m| ("models.*.cache.semantic.threshold", Some(m.semantic_cache.threshold))));
    for (name, t) in thresholds {
        if let Some(t) = t.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(ConfigError {
                message: format!("{name} {t} is outside [0, 1] (cosine similarity)"),
                line: find_line(text, &["threshold"]),
            });
        }
    }
    if !(0.0..=1.0).contains(&raw.spend.soft_limit) {
        return Err(ConfigError {
            message: "spend.soft_limit must be within [0, 1]".into(),
            line: find_line(text, &["soft_limit"]),
        });
    }
    Ok(Config { server: raw.server.clone(), providers, models, keys, raw, warnings, base_dir: None })
}

/// Best-effort line of a semantic error: the first line containing the last anchor that follows
/// lines containing each earlier anchor, in order.
fn find_line(text: &str, anchors: &[&str]) -> Option<usize> {
    let mut next = 0;
    for (idx, line) in text.lines().enumerate() {
        let mut code = line.split(" #").next().unwrap_or(line);
        if code.trim_start().starts_with('#') {
            continue;
        }
        // Several anchors may sit on one line (flow style: `m: { targets: [ { provider: x } ] }`).
        while let Some(pos) = anchors.get(next).and_then(|a| code.find(a).map(|p| p + a.len())) {
            code = &code[pos..];
            next += 1;
            if next == anchors.len() {
                return Some(idx + 1);
            }
        }
    }
    None
}

/// Provider name -> environment variables its `api_key` mentions, read from the text before
/// interpolation, so a "set OPENAI_API_KEY" hint can name the right variable.
fn key_hints(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut hints = BTreeMap::new();
    let Ok(value) = serde_norway::from_str::<serde_norway::Value>(text) else {
        return hints;
    };
    if let Some(providers) = value.get("providers").and_then(|p| p.as_mapping()) {
        for (name, p) in providers {
            if let (Some(name), Some(key)) = (name.as_str(), p.get("api_key").and_then(|k| k.as_str())) {
                hints.insert(name.to_string(), interpolate::variable_names(key));
            }
        }
    }
    hints
}

/// A copy of the raw config with every secret replaced, for `GET /admin/config`.
pub fn redacted(raw: &RawConfig) -> serde_json::Value {
    let mut copy = raw.clone();
    for k in copy.keys.iter_mut() {
        if k.key.is_some() {
            k.key = Some("[redacted]".into());
        }
    }
    for p in copy.providers.values_mut() {
        if let Some(k) = p.api_key.as_mut() {
            if !k.is_empty() {
                *k = "[redacted]".into();
            }
        }
        for (name, v) in p.headers.iter_mut() {
            let n = name.to_ascii_lowercase();
            if n.contains("auth") || n.contains("key") || n.contains("token") || n.contains("secret") {
                *v = "[redacted]".into();
            }
        }
    }
    serde_json::to_value(copy).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
server: { listen: "127.0.0.1:8080", admin_listen: "127.0.0.1:9090", threads: 2 }
providers:
  openai: { kind: openai, base_url: "https://api.openai.com/v1/", api_key: "${OPENAI_API_KEY:-}" }
  local:  { kind: openai, base_url: "http://127.0.0.1:11434/v1" }
models:
  gpt-4o-mini:
    targets:
      - { provider: openai, model: gpt-4o-mini, weight: 3 }
      - { provider: local, model: "llama3.1:8b" }
"#;

    #[test]
    fn parses_sample_and_skips_keyless_provider() {
        let cfg = Config::parse(SAMPLE, |_| None).unwrap();
        let openai = &cfg.providers["openai"];
        assert_eq!(
            openai.base_url,
            BaseUrl { tls: true, host: "api.openai.com".into(), port: 443, path: "/v1".into() }
        );
        assert!(openai.disabled.as_deref().unwrap().contains("OPENAI_API_KEY"));
        assert!(cfg.providers["local"].disabled.is_none());
        assert_eq!(cfg.models["gpt-4o-mini"].targets[1].weight, 1);
        assert_eq!(cfg.warnings.len(), 1);
    }

    #[test]
    fn key_from_env_enables_provider() {
        let cfg = Config::parse(SAMPLE, |n| (n == "OPENAI_API_KEY").then(|| "sk-x".into())).unwrap();
        assert!(cfg.providers["openai"].disabled.is_none());
        assert_eq!(cfg.providers["openai"].api_key.as_deref(), Some("sk-x"));
    }

    #[test]
    fn provider_kinds_and_their_own_settings() {
        let text = r#"
providers:
  claude: { kind: anthropic, base_url: "https://api.anthropic.com/", api_key: k }
  old:    { kind: anthropic, base_url: "https://api.anthropic.com", api_key: k, anthropic_version: "2023-01-01" }
  gem:    { kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key: g, drop_unsupported_params: true }
  aws:    { kind: bedrock, region: eu-west-1 }
models:
  m: { targets: [ { provider: claude, model: c } ], default_max_tokens: 1024, drop_unsupported_params: false }
"#;
        let env = |n: &str| match n {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let cfg = Config::parse(text, env).unwrap();
        assert_eq!(cfg.providers["claude"].kind, ProviderKind::Anthropic);
        assert_eq!(cfg.providers["claude"].base_url.path, "", "no version segment; trailing slash tolerated");
        assert_eq!(cfg.providers["claude"].anthropic_version.as_deref(), Some("2023-06-01"));
        assert_eq!(cfg.providers["old"].anthropic_version.as_deref(), Some("2023-01-01"));
        assert!(cfg.providers["gem"].drop_unsupported_params);
        let aws = &cfg.providers["aws"];
        assert_eq!(aws.base_url.host, "bedrock-runtime.eu-west-1.amazonaws.com");
        let creds = aws.aws.as_ref().unwrap();
        assert_eq!((creds.region.as_str(), creds.access_key_id.as_str()), ("eu-west-1", "AKIDEXAMPLE"));
        assert!(!format!("{creds:?}").contains("secret"), "Debug never prints the secret");
        assert_eq!(cfg.models["m"].default_max_tokens, 1024);
        assert_eq!(cfg.models["m"].drop_unsupported_params, Some(false));

        // No credentials anywhere: usable config, provider skipped with the reason.
        let cfg = Config::parse(text, |_| None).unwrap();
        assert!(cfg.providers["aws"].disabled.as_deref().unwrap().contains("AWS_ACCESS_KEY_ID"));
        // Settings of another kind, a bedrock api_key, or no base_url are errors.
        for bad in [
            "providers:\n  a: { kind: openai, base_url: \"http://x/v1\", region: us-east-1 }\n",
            "providers:\n  a: { kind: bedrock, region: us-east-1, api_key: k }\n",
            "providers:\n  a: { kind: anthropic }\n",
            "providers:\n  a: { kind: bedrock }\n",
            "providers:\n  a: { kind: vertex, base_url: \"http://x\" }\n",
        ] {
            assert!(Config::parse(bad, |_| None).is_err(), "{bad}");
        }
    }

    #[test]
    fn syntax_and_type_errors_carry_line_numbers() {
        let err = Config::parse("server:\n  threads: many\n", |_| None).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
        let err = Config::parse("models:\n  a:\n    targets: [\n", |_| None).unwrap_err();
        assert!(err.line.is_some(), "{err}");
        let err = Config::parse("server:\n  listne: x\n", |_| None).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn routing_keys_parse_and_validate() {
        let text = r#"
providers:
  a: { kind: openai, base_url: "http://127.0.0.1:1/v1", health_check: { path: "/models", failures: 2 } }
models:
  m:
    strategy: least-latency
    targets: [ { provider: a, model: x, cost_rank: 2 } ]
    fallbacks: [n]
    retry: { max_attempts: 4, on_status: [429, 503], backoff_ms: 50 }
    circuit_breaker: { consecutive_failures: 3, cooldown_secs: 10 }
  n: { targets: [ { provider: a, model: y } ] }
"#;
        let cfg = Config::parse(text, |_| None).unwrap();
        let m = &cfg.models["m"];
        assert_eq!(m.strategy, Strategy::LeastLatency);
        assert_eq!(m.fallbacks, vec!["n"]);
        assert_eq!((m.retry.max_attempts, m.retry.on_status.clone()), (4, vec![429, 503]));
        assert_eq!(m.breaker.consecutive_failures, 3);
        assert_eq!(m.targets[0].cost_rank, 2);
        let hc = cfg.providers["a"].health_check.as_ref().unwrap();
        assert_eq!((hc.http_path.as_deref(), hc.failures, hc.successes), (Some("/v1/models"), 2, 2));
        assert_eq!(cfg.models["n"].retry.on_status, vec![429, 500, 502, 503, 504]);

        let bad = text.replace("fallbacks: [n]", "fallbacks: [zzz]");
        let err = Config::parse(&bad, |_| None).unwrap_err();
        assert!(err.message.contains("zzz"), "{err}");
        let bad = text.replace("least-latency", "fastest");
        assert!(Config::parse(&bad, |_| None).unwrap_err().message.contains("fastest"));
    }

    #[test]
    fn undefined_provider_names_model_and_provider() {
        let text = "providers: {}\nmodels:\n  m1:\n    targets:\n      - { provider: ghost, model: x }\n";
        let err = Config::parse(text, |_| None).unwrap_err();
        assert!(err.message.contains("`m1`") && err.message.contains("`ghost`"), "{err}");
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn base_url_forms() {
        let b = BaseUrl::parse("https://api.groq.com/openai/v1").unwrap();
        assert_eq!((b.path.as_str(), b.port, b.host_header().as_str()), ("/openai/v1", 443, "api.groq.com"));
        let b = BaseUrl::parse("http://127.0.0.1:11434/v1/").unwrap();
        assert_eq!((b.path.as_str(), b.host_header().as_str()), ("/v1", "127.0.0.1:11434"));
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }

    #[test]
    fn redaction_hides_keys() {
        let cfg = Config::parse(SAMPLE, |_| Some("sk-secret".into())).unwrap();
        let v = redacted(&cfg.raw).to_string();
        assert!(!v.contains("sk-secret"), "{v}");
        assert!(v.contains("[redacted]"));
    }
}
