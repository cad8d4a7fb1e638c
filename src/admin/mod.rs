//! The admin listener (default 127.0.0.1:9090): metrics, config inspection, reload.
//! Kept off the main listener so it can be firewalled separately.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::cache::Cache;
use crate::config::live::Live;
use crate::config::watch::reload_off_thread;
use crate::error::GatewayError;
use crate::metrics;
use crate::spend::budget::Totals;
use crate::spend::SpendState;

pub struct Admin {
    live: Arc<Live>,
    spend: Arc<SpendState>,
    cache: Arc<Cache>,
}

impl Admin {
    pub fn new(live: Arc<Live>, spend: Arc<SpendState>, cache: Arc<Cache>) -> Self {
        Admin { live, spend, cache }
    }

    /// `GET /admin/spend?period=current|previous`: totals per key, team and public model over
    /// `spend.report_period`.
    fn spend_report(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let previous = match query.unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("period=")) {
            None | Some("current") => false,
            Some("previous") => true,
            Some(other) => {
                let err =
                    GatewayError::bad_request(format!("period `{other}`: use current or previous"), "invalid_period");
                return respond(400, "application/json", err.to_json().to_vec());
            }
        };
        let snapshot = self.live.snapshot();
        let period = snapshot.config.raw.spend.report_period;
        let now = chrono::Utc::now();
        let (start, end) = if previous { period.previous_bounds(now) } else { period.bounds(now) };
        let accounts = &self.spend.accounts;
        let keys = &snapshot.config.keys;
        let row = |name: &str, team: Option<&str>, budget: Option<f64>, t: &Totals| {
            serde_json::json!({
                "name": name, "team": team, "spend_usd": t.spend_usd, "budget_usd": budget,
                "requests": t.requests, "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens, "saved_usd": t.saved_usd,
            })
        };
        let key_totals = accounts.report("key", start, end);
        let mut key_rows: Vec<serde_json::Value> = keys
            .keys()
            .map(|k| {
                let t = key_totals.get(&k.name).copied().unwrap_or_default();
                row(&k.name, k.team.as_deref(), k.budget.map(|b| b.usd), &t)
            })
            .collect();
        key_rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let team_rows: Vec<serde_json::Value> = accounts
            .report("team", start, end)
            .iter()
            .map(|(n, t)| row(n, None, keys.teams.get(n).and_then(|team| team.budget.map(|b| b.usd)), t))
            .collect();
        let model_rows: Vec<serde_json::Value> =
            accounts.report("model", start, end).iter().map(|(n, t)| row(n, None, None, t)).collect();
        json(
            200,
            serde_json::json!({
                "period_start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "period_end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "keys": key_rows, "teams": team_rows, "models": model_rows,
            }),
        )
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

fn json(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let query = session.req_header().uri.query().map(str::to_string);
        let _ = session.drain_request_body().await;
        match (method, path.as_str()) {
            (Method::GET, "/admin/spend") => self.spend_report(query.as_deref()),
            (Method::GET, "/metrics") => {
                let snapshot = self.live.snapshot();
                snapshot.routes.export_gauges();
                crate::proxy::export_budget_gauges(&self.spend, &snapshot);
                crate::proxy::export_cache_gauges(&self.cache.store);
                respond(200, "text/plain; version=0.0.4; charset=utf-8", metrics::get().render())
            }
            (Method::GET, "/admin/health") => json(200, self.live.snapshot().routes.health_report()),
            (Method::GET, "/admin/config") => json(200, self.live.describe()),
            (Method::POST, "/admin/reload") => match reload_off_thread(self.live.clone()).await {
                Ok(version) => json(200, serde_json::json!({ "status": "ok", "version": version })),
                Err(e) => json(
                    422,
                    serde_json::json!({ "error": {
                        "message": e.to_string(), "type": "invalid_config", "code": "config_rejected", "line": e.line,
                    }}),
                ),
            },
            (Method::GET, "/healthz") => json(200, serde_json::json!({ "status": "ok" })),
            (_, "/metrics" | "/admin/config" | "/admin/reload" | "/admin/health" | "/admin/spend" | "/healthz") => {
                let err = GatewayError::MethodNotAllowed { method: session.req_header().method.to_string(), path };
                respond(err.status(), "application/json", err.to_json().to_vec())
            }
            _ => {
                let err = GatewayError::PathNotFound(path);
                respond(404, "application/json", err.to_json().to_vec())
            }
        }
    }
}
