//! Public model -> upstream targets, and which target serves the next attempt.
//!
//! Policy (`Strategy`), health (`state`: breaker + active probe results) and the target list are
//! separate: a table is built whole at (re)load, carrying the state of unchanged targets over;
//! selection is a scan of at most 64 targets over atomics, with no allocation.

pub mod health;
pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{BreakerPolicy, Config, RetryPolicy, Strategy};
use crate::providers::Upstream;
use state::{now_ms, Admit, ProviderHealth, TargetState};

/// One upstream choice for a public model.
#[derive(Debug)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    /// The model name the upstream knows.
    pub model: String,
    /// `model` as a JSON string literal, spliced into request bodies without re-serialising them.
    pub model_json: Bytes,
    /// `model` as a ready header value for `x-switchyard-model`.
    pub model_header: http::HeaderValue,
    pub weight: u32,
    pub cost_rank: u32,
    pub pricing: Option<crate::spend::pricing::Price>,
    /// For providers with their own wire format: how to translate requests for this target.
    pub translate: crate::providers::translate::TranslateOptions,
    pub state: Arc<TargetState>,
    pub health: Arc<ProviderHealth>,
    /// Metric handles for this target answering 200 under its own model (resolved on first use).
    pub metrics: std::sync::OnceLock<crate::metrics::TargetHandles>,
}

impl Target {
    fn usable(&self, now: u64) -> bool {
        self.health.healthy() && self.state.available(now)
    }
}

/// A public model, its targets and policies.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub targets: Vec<Target>,
    pub strategy: Strategy,
    pub fallbacks: Vec<String>,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub exact_cache: crate::cache::TierConfig,
    pub semantic_cache: crate::cache::SemanticTier,
    /// Smooth weighted round-robin order of target indexes, precomputed so picking is O(1).
    schedule: Vec<u16>,
    cursor: AtomicUsize,
    /// Why no target can ever serve this model (all providers disabled), shown in the 503.
    pub unusable: Option<String>,
}

/// The target chosen for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub admit: Admit,
}

/// Why no target was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPick {
    /// Every allowed target was already tried for this request.
    AllTried,
    /// Some untried targets exist but are unhealthy or their circuit is open.
    NoneUsable,
}

impl Route {
    /// Picks an untried target (bit `i` of `tried` set = target `i` tried), optionally only
    /// targets of provider `pin`.
    pub fn select(&self, tried: u64, pin: Option<&str>) -> Result<Pick, NoPick> {
        let n = self.targets.len();
        let now = now_ms();
        let mut skip = tried;
        if let Some(p) = pin {
            for (i, t) in self.targets.iter().enumerate() {
                if t.upstream.name != p {
                    skip |= 1 << i;
                }
            }
        }
        let all = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        if skip & all == all {
            return Err(NoPick::AllTried);
        }
        // A lost half-open race marks that target skipped and scans again; at most n rounds.
        for _ in 0..n {
            let candidate = self.candidate(skip, now);
            let Some(i) = candidate else { break };
            match self.targets[i].state.admit(now) {
                Some(admit) => return Ok(Pick { index: i, admit }),
                None => skip |= 1 << i,
            }
        }
        Err(NoPick::NoneUsable)
    }

    fn candidate(&self, skip: u64, now: u64) -> Option<usize> {
        let n = self.targets.len();
        let ok = |i: usize| skip & (1 << i) == 0 && self.targets[i].usable(now);
        let tick = self.cursor.fetch_add(1, Ordering::Relaxed);
        let rotate = |i: usize| (i + tick) % n;
        match self.strategy {
            Strategy::Weighted => {
                let len = self.schedule.len();
                (0..len).map(|k| self.schedule[(tick + k) % len] as usize).find(|&i| ok(i))
            }
            Strategy::RoundRobin => (0..n).map(rotate).find(|&i| ok(i)),
            // Every 16th pick explores round-robin, so a recovered or once-slow target is re-measured.
            // (Rotating by tick / 16, not tick: every exploring tick is a multiple of 16.)
            Strategy::LeastLatency if tick % 16 == 0 => (0..n).map(|i| (i + tick / 16) % n).find(|&i| ok(i)),
            Strategy::LeastLatency => {
                (0..n).map(rotate).filter(|&i| ok(i)).min_by_key(|&i| self.targets[i].state.ewma_ttfb_us())
            }
            Strategy::LeastBusy => {
                (0..n).map(rotate).filter(|&i| ok(i)).min_by_key(|&i| self.targets[i].state.in_flight())
            }
            Strategy::Cost => (0..n).map(rotate).filter(|&i| ok(i)).min_by_key(|&i| self.targets[i].cost_rank),
        }
    }
}

/// Every route, plus the `/v1/models` answer, prebuilt.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Arc<Route>, ahash::RandomState>,
    pub models_body: Bytes,
    /// Sorted public names, for "known models" in 404s.
    pub known: String,
    /// Live state by identity, so the next reload can carry it over.
    target_states: HashMap<String, Arc<TargetState>>,
    provider_health: HashMap<String, Arc<ProviderHealth>>,
    /// Provider name -> (upstream, health), for the prober and `/admin/health`.
    providers: HashMap<String, (Arc<Upstream>, Arc<ProviderHealth>)>,
}

impl RouteTable {
    /// Builds the table; `previous` donates the state of targets and providers that did not change.
    pub fn build(config: &Config, created: u64, previous: Option<&RouteTable>) -> Result<RouteTable, String> {
        let mut upstreams = HashMap::new();
        let mut provider_health = HashMap::new();
        for (name, p) in &config.providers {
            upstreams.insert(name.clone(), Upstream::build(p)?);
            // Same name, URL and probe: same health (a changed probe starts over, healthy).
            let key = format!("{name}|{:?}|{:?}", p.base_url, p.health_check);
            let health = previous.and_then(|t| t.provider_health.get(&key)).cloned().unwrap_or_default();
            provider_health.insert(name.clone(), (key, health));
        }
        let mut routes = HashMap::with_hasher(ahash::RandomState::new());
        let mut target_states = HashMap::new();
        let mut listing = Vec::new();
        for (name, m) in &config.models {
            let mut targets = Vec::new();
            let mut reasons = Vec::new();
            for t in &m.targets {
                let upstream = upstreams[&t.provider].clone();
                if let Some(reason) = &upstream.disabled {
                    reasons.push(reason.clone());
                    continue;
                }
                let key = format!("{name}|{}|{:?}|{}", t.provider, config.providers[&t.provider].base_url, t.model);
                let state = previous.and_then(|p| p.target_states.get(&key)).cloned().unwrap_or_default();
                target_states.insert(key, state.clone());
                targets.push(Target {
                    upstream,
                    model_json: Bytes::from(serde_json::to_string(&t.model).map_err(|e| e.to_string())?),
                    model_header: http::HeaderValue::from_str(&t.model).map_err(|_| {
                        format!("model `{name}`: upstream model `{}` is not a valid header value", t.model)
                    })?,
                    model: t.model.clone(),
                    weight: t.weight,
                    cost_rank: t.cost_rank,
                    pricing: t.pricing,
                    translate: crate::providers::translate::TranslateOptions {
                        drop_unsupported_params: m
                            .drop_unsupported_params
                            .unwrap_or(config.providers[&t.provider].drop_unsupported_params),
                        default_max_tokens: m.default_max_tokens,
                    },
                    state,
                    health: provider_health[&t.provider].1.clone(),
                    metrics: std::sync::OnceLock::new(),
                });
            }
            let unusable =
                targets.is_empty().then(|| format!("Model `{name}` has no usable target: {}", reasons.join("; ")));
            let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
            routes.insert(
                name.clone(),
                Arc::new(Route {
                    name: name.clone(),
                    schedule: smooth_weighted_schedule(&weights),
                    targets,
                    strategy: m.strategy,
                    fallbacks: m.fallbacks.clone(),
                    retry: m.retry.clone(),
                    breaker: m.breaker.clone(),
                    exact_cache: m.exact_cache,
                    semantic_cache: m.semantic_cache,
                    cursor: AtomicUsize::new(0),
                    unusable,
                }),
            );
            listing.push(serde_json::json!({
                "id": name, "object": "model", "created": created, "owned_by": "switchyard"
            }));
        }
        let models_body = Bytes::from(serde_json::json!({ "object": "list", "data": listing }).to_string());
        let known = config.models.keys().cloned().collect::<Vec<_>>().join(", ");
        let providers =
            provider_health.iter().map(|(name, (_, h))| (name.clone(), (upstreams[name].clone(), h.clone()))).collect();
        let provider_health = provider_health.into_values().collect();
        Ok(RouteTable { routes, models_body, known, target_states, provider_health, providers })
    }

    pub fn get(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    pub fn usable_models(&self) -> usize {
        self.routes.values().filter(|r| r.unusable.is_none()).count()
    }

    pub fn provider(&self, name: &str) -> Option<(Arc<Upstream>, Arc<ProviderHealth>)> {
        self.providers.get(name).cloned()
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// `GET /admin/health`: per provider the probe state, per model each target's breaker.
    pub fn health_report(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now_ms();
        let mut providers: Vec<(&String, serde_json::Value)> = self
            .providers
            .iter()
            .map(|(name, (up, h))| {
                let last_error = h.last_error.lock().ok().and_then(|e| e.clone());
                (
                    name,
                    serde_json::json!({
                        "healthy": h.healthy(),
                        "disabled": up.disabled,
                        "probed": h.probed.load(Relaxed),
                        "consecutive_ok": h.consecutive_ok.load(Relaxed),
                        "consecutive_fail": h.consecutive_fail.load(Relaxed),
                        "last_error": last_error,
                    }),
                )
            })
            .collect();
        providers.sort_by(|a, b| a.0.cmp(b.0));
        let mut models: Vec<(&String, serde_json::Value)> = self
            .routes
            .iter()
            .map(|(name, r)| {
                let targets: Vec<serde_json::Value> = r
                    .targets
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "provider": t.upstream.name,
                            "model": t.model,
                            "weight": t.weight,
                            "healthy": t.health.healthy(),
                            "circuit": t.state.state(now).as_str(),
                            "open_remaining_ms": t.state.open_remaining_ms(now),
                            "consecutive_failures": t.state.consecutive_failures(),
                            "times_opened": t.state.times_opened.load(Relaxed),
                            "in_flight": t.state.in_flight(),
                            "ewma_ttfb_ms": t.state.ewma_ttfb_us() as f64 / 1000.0,
                        })
                    })
                    .collect();
                (name, serde_json::json!({ "strategy": format!("{:?}", r.strategy), "fallbacks": r.fallbacks, "targets": targets }))
            })
            .collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        serde_json::json!({
            "providers": serde_json::Map::from_iter(providers.into_iter().map(|(k, v)| (k.clone(), v))),
            "models": serde_json::Map::from_iter(models.into_iter().map(|(k, v)| (k.clone(), v))),
        })
    }

    /// Sets the per-target health and circuit gauges (called at scrape time).
    pub fn export_gauges(&self) {
        let m = crate::metrics::get();
        m.target_healthy.reset();
        m.circuit_state.reset();
        let now = now_ms();
        for r in self.routes.values() {
            for t in &r.targets {
                let labels = [r.name.as_str(), t.upstream.name.as_str(), t.model.as_str()];
                m.target_healthy.with_label_values(&labels).set(t.health.healthy() as i64);
                let state = match t.state.state(now) {
                    state::BreakerState::Closed => 0,
                    state::BreakerState::Open => 1,
                    state::BreakerState::HalfOpen => 2,
                };
                m.circuit_state.with_label_values(&labels).set(state);
            }
        }
    }
}

/// Nginx's smooth weighted round robin, unrolled into one cycle: weights 3,1 give 0,0,1,0 —
/// interleaved rather than bursty. Weights are reduced by their gcd and the cycle capped.
fn smooth_weighted_schedule(weights: &[u32]) -> Vec<u16> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<i64> = weights.iter().map(|&x| (x / g) as i64).collect();
    let mut total: i64 = w.iter().sum();
    if total > 4096 {
        // Keep the cycle short; proportions stay within 1/4096.
        let scale = total as f64 / 4096.0;
        w.iter_mut().for_each(|x| *x = ((*x as f64 / scale).round() as i64).max(1));
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u16);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(strategy: &str, weights: &[u32]) -> RouteTable {
        let mut text = String::from("providers:\n");
        for i in 0..weights.len() {
            text += &format!("  p{i}: {{ kind: openai, base_url: \"http://127.0.0.1:{}/v1\" }}\n", 1000 + i);
        }
        text += &format!("models:\n  m:\n    strategy: {strategy}\n    targets:\n");
        for (i, w) in weights.iter().enumerate() {
            text += &format!("      - {{ provider: p{i}, model: x{i}, weight: {w}, cost_rank: {} }}\n", 10 - i);
        }
        RouteTable::build(&Config::parse(&text, |_| None).unwrap(), 0, None).unwrap()
    }

    #[test]
    fn schedule_is_proportional_and_interleaved() {
        assert_eq!(smooth_weighted_schedule(&[3, 1]), vec![0, 0, 1, 0]);
        assert_eq!(smooth_weighted_schedule(&[2, 2]), vec![0, 1]);
        let s = smooth_weighted_schedule(&[5, 3, 2]);
        assert_eq!(s.len(), 10);
        assert_eq!(s.iter().filter(|&&i| i == 0).count(), 5);
        assert_eq!(s.iter().filter(|&&i| i == 2).count(), 2);
        assert!(smooth_weighted_schedule(&[]).is_empty());
        assert!(smooth_weighted_schedule(&[100_000, 1]).len() <= 4097);
    }

    #[test]
    fn weighted_split_and_tried_targets_are_skipped() {
        let t = table("weighted", &[3, 1]);
        let r = t.get("m").unwrap();
        let mut counts = [0; 2];
        for _ in 0..1000 {
            counts[r.select(0, None).unwrap().index] += 1;
        }
        assert_eq!(counts, [750, 250]);
        assert_eq!(r.select(0b01, None).unwrap().index, 1);
        assert_eq!(r.select(0b11, None), Err(NoPick::AllTried));
        assert_eq!(r.select(0, Some("p1")).unwrap().index, 1);
        assert_eq!(r.select(0b10, Some("p1")), Err(NoPick::AllTried));
    }

    #[test]
    fn open_and_unhealthy_targets_leave_rotation() {
        let t = table("round-robin", &[1, 1]);
        let r = t.get("m").unwrap();
        r.targets[0].state.record_failure(&r.breaker, Admit::Normal, Some(Duration::from_secs(60)));
        for _ in 0..10 {
            assert_eq!(r.select(0, None).unwrap().index, 1);
        }
        r.targets[1].health.set_healthy(false);
        assert_eq!(r.select(0, None), Err(NoPick::NoneUsable));
    }

    #[test]
    fn strategies_prefer_what_they_should() {
        let t = table("cost", &[1, 1, 1]);
        let r = t.get("m").unwrap();
        assert_eq!(r.select(0, None).unwrap().index, 2, "lowest cost_rank");

        let t = table("least-busy", &[1, 1, 1]);
        let r = t.get("m").unwrap();
        r.targets[0].state.start();
        r.targets[2].state.start();
        assert_eq!(r.select(0, None).unwrap().index, 1);

        let t = table("least-latency", &[1, 1]);
        let r = t.get("m").unwrap();
        r.targets[0].state.record_success(&r.breaker, Admit::Normal, Some(Duration::from_millis(50)));
        r.targets[1].state.record_success(&r.breaker, Admit::Normal, Some(Duration::from_millis(5)));
        let fast = (0..160).filter(|_| r.select(0, None).unwrap().index == 1).count();
        assert!(fast >= 140, "fast target chosen {fast}/160 (exploration takes ~1/16)");
    }

    #[test]
    fn state_carries_over_reload_for_unchanged_targets() {
        let cfg = Config::parse(
            "providers:\n  a: { kind: openai, base_url: \"http://127.0.0.1:1/v1\" }\nmodels:\n  m: { targets: [ { provider: a, model: x } ] }\n",
            |_| None,
        )
        .unwrap();
        let t1 = RouteTable::build(&cfg, 0, None).unwrap();
        t1.get("m").unwrap().targets[0].state.start();
        let t2 = RouteTable::build(&cfg, 0, Some(&t1)).unwrap();
        assert_eq!(t2.get("m").unwrap().targets[0].state.in_flight(), 1);
        assert!(Arc::ptr_eq(&t1.get("m").unwrap().targets[0].health, &t2.get("m").unwrap().targets[0].health));
    }

    #[test]
    fn table_skips_disabled_providers_and_lists_models() {
        let text = r#"
providers:
  paid: { kind: openai, base_url: "https://api.example.com/v1", api_key: "${PAID_KEY:-}" }
  local: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
models:
  only-paid: { targets: [ { provider: paid, model: x } ] }
  mixed: { targets: [ { provider: paid, model: x, weight: 5 }, { provider: local, model: y } ] }
"#;
        let cfg = Config::parse(text, |_| None).unwrap();
        let table = RouteTable::build(&cfg, 0, None).unwrap();
        let paid = table.get("only-paid").unwrap();
        assert!(paid.unusable.as_deref().unwrap().contains("PAID_KEY"));
        assert_eq!(paid.select(0, None), Err(NoPick::AllTried));
        let mixed = table.get("mixed").unwrap();
        assert_eq!(mixed.targets.len(), 1);
        assert_eq!(mixed.select(0, None).unwrap().index, 0);
        assert_eq!(&mixed.targets[0].model_json[..], b"\"y\"");
        assert_eq!(table.usable_models(), 1);
        let v: serde_json::Value = serde_json::from_slice(&table.models_body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(table.known, "mixed, only-paid");
    }
}
