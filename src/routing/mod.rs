//! Public model name -> upstream targets, and which target serves the next request.
//! Built whole at (re)load; the request path does one hash lookup and one atomic increment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::providers::Upstream;

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
}

/// A public model and its usable targets.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub targets: Vec<Target>,
    /// Smooth weighted round-robin order of target indexes, precomputed so picking is O(1).
    schedule: Vec<u16>,
    cursor: AtomicUsize,
    /// Why no target can serve this model (all providers disabled), shown in the 503.
    pub unusable: Option<String>,
}

impl Route {
    /// Next target by weight. `None` when the route has no usable target.
    pub fn pick(&self) -> Option<usize> {
        if self.schedule.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        Some(self.schedule[i] as usize)
    }
}

/// Every route, plus the `/v1/models` answer, prebuilt.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Arc<Route>, ahash::RandomState>,
    pub models_body: Bytes,
    /// Sorted public names, for "known models" in 404s.
    pub known: String,
}

impl RouteTable {
    pub fn build(config: &Config, created: u64) -> Result<RouteTable, String> {
        let mut upstreams = HashMap::new();
        for (name, p) in &config.providers {
            upstreams.insert(name.clone(), Upstream::build(p)?);
        }
        let mut routes = HashMap::with_hasher(ahash::RandomState::new());
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
                targets.push(Target {
                    upstream,
                    model_json: Bytes::from(serde_json::to_string(&t.model).map_err(|e| e.to_string())?),
                    model_header: http::HeaderValue::from_str(&t.model).map_err(|_| {
                        format!("model `{name}`: upstream model `{}` is not a valid header value", t.model)
                    })?,
                    model: t.model.clone(),
                    weight: t.weight,
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
        Ok(RouteTable { routes, models_body, known })
    }

    pub fn get(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    pub fn usable_models(&self) -> usize {
        self.routes.values().filter(|r| r.unusable.is_none()).count()
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
        let table = RouteTable::build(&cfg, 0).unwrap();
        let paid = table.get("only-paid").unwrap();
        assert!(paid.unusable.as_deref().unwrap().contains("PAID_KEY"));
        assert_eq!(paid.pick(), None);
        let mixed = table.get("mixed").unwrap();
        assert_eq!(mixed.targets.len(), 1);
        assert_eq!(mixed.pick(), Some(0));
        assert_eq!(&mixed.targets[0].model_json[..], b"\"y\"");
        assert_eq!(table.usable_models(), 1);
        let v: serde_json::Value = serde_json::from_slice(&table.models_body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(table.known, "mixed, only-paid");
    }
}
