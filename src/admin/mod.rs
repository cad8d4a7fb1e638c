//! The admin listener (default 127.0.0.1:9090): metrics, config inspection, reload.
//! Kept off the main listener so it can be firewalled separately.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::live::Live;
use crate::config::watch::reload_off_thread;
use crate::error::GatewayError;
use crate::metrics;

pub struct Admin {
    live: Arc<Live>,
}

impl Admin {
    pub fn new(live: Arc<Live>) -> Self {
        Admin { live }
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
        let _ = session.drain_request_body().await;
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => {
                self.live.snapshot().routes.export_gauges();
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
            (_, "/metrics" | "/admin/config" | "/admin/reload" | "/admin/health" | "/healthz") => {
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
