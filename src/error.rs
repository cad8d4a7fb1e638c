//! One error type for everything the gateway itself answers, mapped to an HTTP status and an
//! OpenAI-shaped JSON body in exactly one place (`status` / `to_json`).

use bytes::Bytes;

/// Why the gateway answered instead of (or after) the upstream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    BadRequest { message: String, code: &'static str, param: Option<&'static str> },
    #[error("The model `{model}` does not exist. Known models: {known}")]
    ModelNotFound { model: String, known: String },
    #[error(
        "Unknown path `{0}`. Switchyard serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models and /v1/messages"
    )]
    PathNotFound(String),
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("Request body exceeds the limit of {limit} bytes (server.max_body_bytes)")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    NoUsableTarget(String),
    #[error("Upstream provider `{provider}` is unreachable: {detail}")]
    UpstreamUnreachable { provider: String, detail: String },
    #[error("Upstream provider `{provider}` timed out: {detail}")]
    UpstreamTimeout { provider: String, detail: String },
    #[error("Provider `{provider}` does not serve model `{model}` (x-switchyard-provider)")]
    PinnedProviderNotServing { provider: String, model: String },
    /// Every attempt failed (or no target could be tried); `status` follows the contract:
    /// 429 if all were 429s, 503 if none was usable, 504 if all timed out, else 502.
    #[error("{message}")]
    AttemptsFailed { status: u16, message: String, attempts: Vec<AttemptSummary>, retry_after: Option<u64> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("Key `{key}` may not use model `{model}`")]
    ModelNotAllowed { key: String, model: String },
    #[error(
        "Budget exceeded for {scope} `{name}`: spent ${spent:.4} of ${budget:.4} this period; resets at {reset_at}"
    )]
    BudgetExceeded { scope: &'static str, name: String, spent: f64, budget: f64, reset_at: String },
    #[error("Rate limit reached for {scope} `{name}`: {limit} exceeded; retry after {retry_after} s")]
    RateLimited { scope: &'static str, name: String, limit: &'static str, retry_after: u64 },
    #[error("Internal gateway error: {0}")]
    Internal(String),
}

/// One attempt in an `AttemptsFailed` error: `{"provider","model","status" | "error"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptSummary {
    pub provider: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>, code: &'static str) -> Self {
        GatewayError::BadRequest { message: message.into(), code, param: None }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::BadRequest { .. } | GatewayError::PinnedProviderNotServing { .. } => 400,
            GatewayError::Unauthorized(_) => 401,
            GatewayError::ModelNotAllowed { .. } => 403,
            GatewayError::BudgetExceeded { .. } | GatewayError::RateLimited { .. } => 429,
            GatewayError::AttemptsFailed { status, .. } => *status,
            GatewayError::ModelNotFound { .. } | GatewayError::PathNotFound(_) => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::NoUsableTarget(_) => 503,
            GatewayError::UpstreamUnreachable { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::Internal(_) => 500,
        }
    }

    /// OpenAI's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::BadRequest { .. }
            | GatewayError::ModelNotFound { .. }
            | GatewayError::PathNotFound(_)
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::BodyTooLarge { .. }
            | GatewayError::PinnedProviderNotServing { .. }
            | GatewayError::Unauthorized(_)
            | GatewayError::ModelNotAllowed { .. } => "invalid_request_error",
            GatewayError::BudgetExceeded { .. } => "budget_exceeded",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::AttemptsFailed { status: 429, .. } => "rate_limit_error",
            GatewayError::AttemptsFailed { .. } => "upstream_error",
            GatewayError::NoUsableTarget(_)
            | GatewayError::UpstreamUnreachable { .. }
            | GatewayError::UpstreamTimeout { .. } => "upstream_error",
            GatewayError::Internal(_) => "server_error",
        }
    }

    /// OpenAI's `error.code`: stable, machine-readable.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadRequest { code, .. } => code,
            GatewayError::ModelNotFound { .. } => "model_not_found",
            GatewayError::PathNotFound(_) => "unknown_url",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::NoUsableTarget(_) => "no_usable_target",
            GatewayError::UpstreamUnreachable { .. } => "upstream_unreachable",
            GatewayError::UpstreamTimeout { .. } => "upstream_timeout",
            GatewayError::PinnedProviderNotServing { .. } => "provider_not_serving_model",
            GatewayError::Unauthorized(_) => "invalid_api_key",
            GatewayError::ModelNotAllowed { .. } => "model_not_allowed",
            GatewayError::BudgetExceeded { .. } => "budget_exceeded",
            GatewayError::RateLimited { .. } => "rate_limit_exceeded",
            GatewayError::AttemptsFailed { status: 429, .. } => "rate_limit_exceeded",
            GatewayError::AttemptsFailed { status: 503, .. } => "no_usable_target",
            GatewayError::AttemptsFailed { status: 504, .. } => "upstream_timeout",
            GatewayError::AttemptsFailed { attempts, .. } if attempts.iter().all(|a| a.error.is_some()) => {
                "upstream_unreachable"
            }
            GatewayError::AttemptsFailed { .. } => "all_attempts_failed",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            GatewayError::BadRequest { param, .. } => *param,
            GatewayError::ModelNotFound { .. } => Some("model"),
            GatewayError::PinnedProviderNotServing { .. } => Some("x-switchyard-provider"),
            _ => None,
        }
    }

    /// Seconds for a `Retry-After` header, when the gateway has one to give.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::AttemptsFailed { retry_after, .. } => *retry_after,
            GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// `{"error":{"message","type","param","code"}}` — the shape every OpenAI SDK parses —
    /// plus `attempts` when several providers were tried.
    pub fn to_json(&self) -> Bytes {
        let mut body = serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.kind(),
                "param": self.param(),
                "code": self.code(),
            }
        });
        if let GatewayError::AttemptsFailed { attempts, .. } = self {
            body["error"]["attempts"] = serde_json::to_value(attempts).unwrap_or_default();
        }
        if let GatewayError::BudgetExceeded { reset_at, .. } = self {
            body["error"]["reset_at"] = serde_json::Value::from(reset_at.as_str());
        }
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_openai_compatible() {
        let e = GatewayError::ModelNotFound { model: "gpt-9".into(), known: "demo".into() };
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("demo"));
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(GatewayError::BodyTooLarge { limit: 1 }.status(), 413);
        assert_eq!(GatewayError::NoUsableTarget("x".into()).status(), 503);
        let p = "p".to_string();
        let d = "d".to_string();
        assert_eq!(GatewayError::UpstreamUnreachable { provider: p.clone(), detail: d.clone() }.status(), 502);
        assert_eq!(GatewayError::UpstreamTimeout { provider: p, detail: d }.status(), 504);
    }
}
