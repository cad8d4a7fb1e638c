//! `request_filter`: identify the request, answer what the gateway can answer itself, read and
//! check the body, resolve the model to a target, and arm the rewritten body for upstream.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method};
use pingora::proxy::Session;
use pingora::Result;

use super::admission;
use super::attempts;
use super::body_swap;
use super::cached;
use super::ctx::RequestCtx;
use super::inbound;
use super::local::{answer, answer_error, JSON};
use crate::cache::{Cache, Control};
use crate::config::live::Live;
use crate::error::GatewayError;
use crate::providers::{openai, Endpoint};
use crate::spend::SpendState;

/// How much of an oversized body we read and discard so the client sees the 413, not a reset.
const OVERSIZE_DRAIN_BYTES: usize = 64 * 1024 * 1024;
const OVERSIZE_DRAIN_TIME: Duration = Duration::from_secs(5);

/// Runs in `request_filter`. `Ok(true)`: answered here; `Ok(false)`: proxy upstream with
/// `ctx.route`/`ctx.target` set and the rewritten body armed.
pub async fn handle(
    live: &Live,
    spend: &SpendState,
    cache: &Cache,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<bool> {
    ctx.request_id = request_id(session);
    let snapshot = live.snapshot();
    let action = classify(session);
    ctx.inbound_anthropic = matches!(action, Action::Messages | Action::CountTokens);
    if matches!(action, Action::Proxy(_) | Action::Models | Action::Messages | Action::CountTokens) {
        if let Err(e) = admission::authenticate(&snapshot, session, ctx) {
            return answer_error(session, ctx, e).await;
        }
    }
    let endpoint = match action {
        Action::Proxy(e) => e,
        Action::Messages => Endpoint::ChatCompletions,
        Action::CountTokens => {
            let limit = snapshot.config.server.max_body_bytes;
            let Some(body) = read_body(session, limit, content_length(session)).await? else {
                return reject_oversized(session, ctx, limit).await;
            };
            return match inbound::count_tokens(&body) {
                Ok(json) => answer(session, ctx, 200, JSON, json).await,
                Err(e) => answer_error(session, ctx, e).await,
            };
        }
        Action::Health => return answer(session, ctx, 200, JSON, Bytes::from_static(b"{\"status\":\"ok\"}")).await,
        Action::Ready => {
            // 200 whenever requests can be served; what runs degraded is listed, not fatal.
            let usable = snapshot.routes.usable_models();
            let degraded: Vec<String> = cache.semantic.degraded().into_iter().collect();
            let body = Bytes::from(format!(
                "{{\"status\":\"{}\",\"config_version\":{},\"usable_models\":{usable},\"degraded\":{}}}",
                if usable > 0 { "ready" } else { "no_usable_model" },
                snapshot.version,
                serde_json::Value::from(degraded)
            ));
            return answer(session, ctx, if usable > 0 { 200 } else { 503 }, JSON, body).await;
        }
        Action::Models => {
            let body = admission::visible_models(&snapshot, ctx).unwrap_or_else(|| snapshot.routes.models_body.clone());
            let anthropic_client = session.req_header().headers.contains_key("anthropic-version");
            let body = if anthropic_client { inbound::models_list(&body) } else { body };
            return answer(session, ctx, 200, JSON, body).await;
        }
        Action::MethodNotAllowed => {
            let req = session.req_header();
            let err =
                GatewayError::MethodNotAllowed { method: req.method.to_string(), path: req.uri.path().to_string() };
            return answer_error(session, ctx, err).await;
        }
        Action::NotFound => {
            let err = GatewayError::PathNotFound(session.req_header().uri.path().to_string());
            return answer_error(session, ctx, err).await;
        }
    };
    ctx.endpoint = Some(endpoint);

    let limit = snapshot.config.server.max_body_bytes;
    let declared = content_length(session);
    if declared.is_some_and(|n| n > limit) {
        return reject_oversized(session, ctx, limit).await;
    }
    if expects_continue(session) {
        session.downstream_session.write_continue_response().await?;
    }
    let body = match read_body(session, limit, declared).await? {
        Some(body) => body,
        None => return reject_oversized(session, ctx, limit).await,
    };

    let body = if ctx.inbound_anthropic {
        match inbound::request(&body) {
            Ok(b) => b,
            Err(e) => return answer_error(session, ctx, e).await,
        }
    } else {
        body
    };
    let fields = match openai::parse_request(&body, endpoint) {
        Ok(f) => f,
        Err(e) => return answer_error(session, ctx, e).await,
    };
    ctx.stream = fields.stream;
    ctx.include_usage = fields.include_usage;
    ctx.stream_options_span = fields.stream_options_span.clone();
    ctx.max_tokens = fields.max_tokens;
    let model_span = fields.model_span.clone();
    let Some(route) = snapshot.routes.get(&fields.model).cloned() else {
        let err =
            GatewayError::ModelNotFound { model: fields.model.into_owned(), known: snapshot.routes.known.clone() };
        return answer_error(session, ctx, err).await;
    };
    if let Err(e) = admission::allowed(ctx, &route.name) {
        return answer_error(session, ctx, e).await;
    }
    if let Some(pin) = session.req_header().headers.get("x-switchyard-provider") {
        let pin = String::from_utf8_lossy(pin.as_bytes()).into_owned();
        if !route.targets.iter().any(|t| t.upstream.name == pin) {
            let err = GatewayError::PinnedProviderNotServing { provider: pin, model: route.name.clone() };
            return answer_error(session, ctx, err).await;
        }
        ctx.pin = Some(pin);
    }
    ctx.body = body;
    ctx.model_span = model_span;
    ctx.primary = Some(route);
    ctx.snapshot = Some(snapshot);
    if let Err(e) = admission::rate_limit(spend, &snapshot_of(ctx), ctx) {
        return answer_error(session, ctx, e).await;
    }
    let control = cached::classify(&snapshot_of(ctx), session, cache, ctx);
    if control != Control::Off && cached::lookup(cache, control, session, ctx).await? {
        return Ok(true);
    }
    if !attempts::select_next(ctx) {
        let err = attempts::exhausted(ctx);
        return answer_error(session, ctx, err).await;
    }
    if let Err(e) = admission::reserve(spend, &snapshot_of(ctx), ctx) {
        return answer_error(session, ctx, e).await;
    }
    if let Err(e) = arm_current(session, ctx).await? {
        return answer_error(session, ctx, e).await;
    }
    Ok(false)
}

fn snapshot_of(ctx: &RequestCtx) -> std::sync::Arc<crate::config::live::Snapshot> {
    ctx.snapshot.clone().expect("snapshot set before admission")
}

/// Hands Pingora the request for the current target (model rewritten or translated). The inner
/// error: this target cannot take the request (an unsupported parameter...).
pub async fn arm_current(session: &mut Session, ctx: &mut RequestCtx) -> Result<Result<(), GatewayError>> {
    let (body, strip_usage) = match attempts::upstream_body(ctx) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    ctx.strip_usage = strip_usage;
    // Pingora replays the client's body from its retry buffer (kept up to 64 KiB) on every try;
    // `request_body_filter` swaps ours in. Larger bodies need the session swap.
    if !session.retry_buffer_truncated() {
        ctx.armed_body = Some(body);
        ctx.armed_sent = false;
        return Ok(Ok(()));
    }
    ctx.armed_body = None;
    let replay = body_swap::serialize_request(session.req_header(), &body);
    body_swap::arm(session, replay).await.map(Ok)
}

/// The client's `x-request-id` when it is a sane header value, else a fresh UUID.
fn request_id(session: &Session) -> HeaderValue {
    if let Some(v) = session.req_header().headers.get("x-request-id") {
        if !v.is_empty() && v.len() <= 200 && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("invalid"))
}

fn content_length(session: &Session) -> Option<usize> {
    session.req_header().headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole body; `None` once it grows past `limit` (the chunked case).
async fn read_body(session: &mut Session, limit: usize, declared: Option<usize>) -> Result<Option<Bytes>> {
    session.enable_retry_buffering();
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(chunk) = session.read_request_body().await? {
        total += chunk.len();
        if total > limit {
            return Ok(None);
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).max(f.len() + chunk.len()).min(limit));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
    }
    Ok(Some(match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    }))
}

/// 413 with `connection: close`, after draining (bounded) what the client is still sending.
async fn reject_oversized(session: &mut Session, ctx: &mut RequestCtx, limit: usize) -> Result<bool> {
    session.set_keepalive(None);
    if !expects_continue(session) {
        let _ = tokio::time::timeout(OVERSIZE_DRAIN_TIME, async {
            let mut seen = 0usize;
            while let Ok(Some(chunk)) = session.read_request_body().await {
                seen += chunk.len();
                if seen > OVERSIZE_DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    }
    answer_error(session, ctx, GatewayError::BodyTooLarge { limit }).await
}

enum Action {
    Proxy(Endpoint),
    /// Anthropic's `POST /v1/messages`, served as a chat completion.
    Messages,
    CountTokens,
    Health,
    Ready,
    Models,
    MethodNotAllowed,
    NotFound,
}

fn classify(session: &Session) -> Action {
    let req = session.req_header();
    let path = req.uri.path();
    let get = req.method == Method::GET;
    if let Some(e) = Endpoint::from_path(path) {
        return if req.method == Method::POST { Action::Proxy(e) } else { Action::MethodNotAllowed };
    }
    let post = req.method == Method::POST;
    match path.trim_end_matches('/') {
        "/v1/messages" if post => Action::Messages,
        "/v1/messages/count_tokens" if post => Action::CountTokens,
        "/v1/messages" | "/v1/messages/count_tokens" => Action::MethodNotAllowed,
        "/healthz" if get => Action::Health,
        "/readyz" if get => Action::Ready,
        "/v1/models" if get => Action::Models,
        "/healthz" | "/readyz" | "/v1/models" => Action::MethodNotAllowed,
        _ => Action::NotFound,
    }
}
