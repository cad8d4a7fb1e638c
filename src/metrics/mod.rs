//! Prometheus metrics, registered once at startup. Counters are atomics inside `prometheus`;
//! the request path only looks up label handles and increments.

use std::sync::OnceLock;

use prometheus::{
    exponential_buckets, CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub overhead: HistogramVec,
    pub config_reloads: IntCounterVec,
    pub in_flight: IntGauge,
    pub attempts: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub target_healthy: IntGaugeVec,
    pub circuit_state: IntGaugeVec,
    pub spend_usd: CounterVec,
    pub saved_usd: CounterVec,
    pub tokens: IntCounterVec,
    pub unpriced: IntCounterVec,
    pub estimated_usage: IntCounterVec,
    pub audit_dropped: prometheus::IntCounter,
    pub rate_limited: IntCounterVec,
    pub budget_remaining: prometheus::GaugeVec,
    pub budget_soft_limit: IntCounterVec,
    pub cache_lookups: IntCounterVec,
    pub cache_entries: IntGauge,
    pub cache_bytes: IntGauge,
    pub cache_evictions: prometheus::IntCounter,
    pub cache_vectors: IntGauge,
    pub cache_lookup_duration: HistogramVec,
    pub semantic_skips: IntCounterVec,
    pub semantic_up: IntGauge,
    pub saved_tokens: IntCounterVec,
    pub embed_batch_size: prometheus::Histogram,
    pub embed_duration: prometheus::Histogram,
    pub ttft: HistogramVec,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Label-resolved handles for one target serving its own model with a 200: the common request,
/// resolved once per target (each `with_label_values` hashes the labels and takes a lock).
pub struct TargetHandles {
    pub requests: prometheus::IntCounter,
    pub request_duration: prometheus::Histogram,
    pub upstream_duration: prometheus::Histogram,
    pub overhead: prometheus::Histogram,
    pub ttft: prometheus::Histogram,
    pub attempts_ok: prometheus::IntCounter,
}

impl TargetHandles {
    pub fn new(model: &str, provider: &str) -> TargetHandles {
        let m = get();
        let labels = [model, provider, "200"];
        TargetHandles {
            requests: m.requests.with_label_values(&labels),
            request_duration: m.request_duration.with_label_values(&labels),
            upstream_duration: m.upstream_duration.with_label_values(&labels),
            overhead: m.overhead.with_label_values(&[model]),
            ttft: m.ttft.with_label_values(&[model, provider]),
            attempts_ok: m.attempts.with_label_values(&[model, provider, "ok"]),
        }
    }
}

impl std::fmt::Debug for TargetHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TargetHandles")
    }
}

/// The process-wide metrics (created on first use).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The cache tier's series: their labels are fixed, so they are resolved once for the process.
pub struct CacheHandles {
    pub exact_hit: prometheus::IntCounter,
    pub exact_miss: prometheus::IntCounter,
    pub semantic_hit: prometheus::IntCounter,
    pub semantic_miss: prometheus::IntCounter,
    pub exact_duration: prometheus::Histogram,
    pub semantic_duration: prometheus::Histogram,
}

static CACHE_HANDLES: OnceLock<CacheHandles> = OnceLock::new();

pub fn cache() -> &'static CacheHandles {
    CACHE_HANDLES.get_or_init(|| {
        let m = get();
        CacheHandles {
            exact_hit: m.cache_lookups.with_label_values(&["exact", "hit"]),
            exact_miss: m.cache_lookups.with_label_values(&["exact", "miss"]),
            semantic_hit: m.cache_lookups.with_label_values(&["semantic", "hit"]),
            semantic_miss: m.cache_lookups.with_label_values(&["semantic", "miss"]),
            exact_duration: m.cache_lookup_duration.with_label_values(&["exact"]),
            semantic_duration: m.cache_lookup_duration.with_label_values(&["semantic"]),
        }
    })
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let labels = &["model", "provider", "status"];
        // 100 µs .. ~100 s: gateway-only answers and long generations both land in a bucket.
        let buckets = exponential_buckets(0.0001, 2.5, 16).expect("static buckets");
        let requests = IntCounterVec::new(
            Opts::new("switchyard_requests_total", "Requests by public model, provider and status"),
            labels,
        )
        .expect("static metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new("switchyard_request_duration_seconds", "Whole request time as seen by the gateway")
                .buckets(buckets.clone()),
            labels,
        )
        .expect("static metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_upstream_duration_seconds",
                "Time from sending the request upstream to the end of the upstream response",
            )
            .buckets(buckets),
            labels,
        )
        .expect("static metric");
        let overhead = HistogramVec::new(
            HistogramOpts::new("switchyard_overhead_seconds", "Time spent inside the gateway, upstream wait excluded")
                .buckets(exponential_buckets(0.000_005, 2.0, 16).expect("static buckets")),
            &["model"],
        )
        .expect("static metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("switchyard_config_reload_total", "Config reloads by result (ok, error)"),
            &["result"],
        )
        .expect("static metric");
        let in_flight = IntGauge::new("switchyard_in_flight_requests", "Requests being served").expect("static metric");
        let attempts = IntCounterVec::new(
            Opts::new(
                "switchyard_upstream_attempts_total",
                "Upstream attempts by model, provider and outcome (ok, an HTTP status, timeout, error)",
            ),
            &["model", "provider", "outcome"],
        )
        .expect("static metric");
        let fallbacks = IntCounterVec::new(
            Opts::new("switchyard_fallbacks_total", "Attempts sent to a fallback model"),
            &["model", "fallback"],
        )
        .expect("static metric");
        let target_labels = &["model", "provider", "upstream_model"];
        let target_healthy = IntGaugeVec::new(
            Opts::new("switchyard_target_healthy", "1 when the target's provider passes its health checks"),
            target_labels,
        )
        .expect("static metric");
        let circuit_state = IntGaugeVec::new(
            Opts::new("switchyard_circuit_state", "Circuit breaker per target: 0 closed, 1 open, 2 half-open"),
            target_labels,
        )
        .expect("static metric");
        let spend_usd = CounterVec::new(
            Opts::new("switchyard_spend_usd_total", "Upstream cost in USD (usage x price)"),
            &["key", "team", "model", "provider"],
        )
        .expect("static metric");
        let saved_usd = CounterVec::new(
            Opts::new("switchyard_saved_usd_total", "Cost the cache saved, in USD"),
            &["key", "team", "model"],
        )
        .expect("static metric");
        let tokens = IntCounterVec::new(
            Opts::new("switchyard_tokens_total", "Tokens by kind (prompt, completion)"),
            &["kind", "key", "team", "model"],
        )
        .expect("static metric");
        let unpriced = IntCounterVec::new(
            Opts::new(
                "switchyard_unpriced_requests_total",
                "Answers for models with no known price (counted at 0 USD)",
            ),
            &["model"],
        )
        .expect("static metric");
        let estimated_usage = IntCounterVec::new(
            Opts::new(
                "switchyard_estimated_usage_total",
                "Answers whose tokens were counted by the gateway's tokenizer",
            ),
            &["model", "provider"],
        )
        .expect("static metric");
        let audit_dropped = prometheus::IntCounter::new(
            "switchyard_audit_dropped_total",
            "Audit records shed because the queue was full",
        )
        .expect("static metric");
        let rate_limited = IntCounterVec::new(
            Opts::new("switchyard_rate_limited_total", "Requests refused by an RPM/TPM limit"),
            &["scope", "name", "limit"],
        )
        .expect("static metric");
        let budget_remaining = prometheus::GaugeVec::new(
            Opts::new("switchyard_budget_remaining_usd", "Budget left in the current period"),
            &["scope", "name"],
        )
        .expect("static metric");
        let budget_soft_limit = IntCounterVec::new(
            Opts::new("switchyard_budget_soft_limit_total", "Times spend crossed spend.soft_limit of a budget"),
            &["scope", "name"],
        )
        .expect("static metric");
        let cache_lookups = IntCounterVec::new(
            Opts::new("switchyard_cache_lookups_total", "Cache lookups by tier and result (hit, miss)"),
            &["tier", "result"],
        )
        .expect("static metric");
        let cache_entries = IntGauge::new("switchyard_cache_entries", "Entries in the exact cache").expect("static");
        let cache_bytes = IntGauge::new("switchyard_cache_bytes", "Bytes held by the exact cache").expect("static");
        let cache_evictions =
            prometheus::IntCounter::new("switchyard_cache_evictions_total", "Entries evicted to stay within max_bytes")
                .expect("static metric");
        let cache_vectors =
            IntGauge::new("switchyard_cache_vectors", "Prompt vectors in the semantic index").expect("static");
        let cache_lookup_duration = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_cache_lookup_duration_seconds",
                "Cache lookup time by tier (semantic: embedding wait + vector search + gates)",
            )
            .buckets(exponential_buckets(0.000_002, 2.5, 14).expect("static buckets")),
            &["tier"],
        )
        .expect("static metric");
        let semantic_skips = IntCounterVec::new(
            Opts::new(
                "switchyard_cache_semantic_skips_total",
                "Semantic lookups skipped (reason: overload, model_missing, loading, too_long, no_text)",
            ),
            &["reason"],
        )
        .expect("static metric");
        let semantic_up = IntGauge::new(
            "switchyard_cache_semantic_up",
            "1 when the semantic tier's model is loaded, 0 when it is off (see /readyz for why)",
        )
        .expect("static");
        let saved_tokens = IntCounterVec::new(
            Opts::new("switchyard_saved_tokens_total", "Tokens the cache saved by kind (prompt, completion)"),
            &["kind", "key", "team", "model"],
        )
        .expect("static metric");
        let embed_batch_size = prometheus::Histogram::with_opts(
            HistogramOpts::new("switchyard_embed_batch_size", "Prompts per embedding inference run")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("static metric");
        let embed_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new("switchyard_embed_duration_seconds", "Embedding inference time per batch")
                .buckets(exponential_buckets(0.0005, 2.0, 12).expect("static buckets")),
        )
        .expect("static metric");
        let ttft = HistogramVec::new(
            HistogramOpts::new(
                "switchyard_ttft_seconds",
                "Time to first byte of the answer (the first token of a stream), request arrival to upstream head",
            )
            .buckets(exponential_buckets(0.001, 2.0, 16).expect("static buckets")),
            &["model", "provider"],
        )
        .expect("static metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(overhead.clone()),
            Box::new(config_reloads.clone()),
            Box::new(in_flight.clone()),
            Box::new(attempts.clone()),
            Box::new(fallbacks.clone()),
            Box::new(target_healthy.clone()),
            Box::new(circuit_state.clone()),
            Box::new(spend_usd.clone()),
            Box::new(saved_usd.clone()),
            Box::new(tokens.clone()),
            Box::new(unpriced.clone()),
            Box::new(estimated_usage.clone()),
            Box::new(audit_dropped.clone()),
            Box::new(rate_limited.clone()),
            Box::new(budget_remaining.clone()),
            Box::new(budget_soft_limit.clone()),
            Box::new(cache_lookups.clone()),
            Box::new(cache_entries.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(cache_vectors.clone()),
            Box::new(cache_lookup_duration.clone()),
            Box::new(semantic_skips.clone()),
            Box::new(semantic_up.clone()),
            Box::new(saved_tokens.clone()),
            Box::new(embed_batch_size.clone()),
            Box::new(embed_duration.clone()),
            Box::new(ttft.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        // Both results show from the start, so a dashboard sees 0 rather than no series.
        config_reloads.with_label_values(&["ok"]);
        config_reloads.with_label_values(&["error"]);
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            overhead,
            config_reloads,
            in_flight,
            attempts,
            fallbacks,
            target_healthy,
            circuit_state,
            spend_usd,
            saved_usd,
            tokens,
            unpriced,
            estimated_usage,
            audit_dropped,
            rate_limited,
            budget_remaining,
            budget_soft_limit,
            cache_lookups,
            cache_entries,
            cache_bytes,
            cache_evictions,
            cache_vectors,
            cache_lookup_duration,
            semantic_skips,
            semantic_up,
            saved_tokens,
            embed_batch_size,
            embed_duration,
            ttft,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
