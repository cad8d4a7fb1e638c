//! Response hooks: turning retryable statuses into retries, gateway headers, the total-time cap,
//! and how failures reach the client.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::attempts;
use super::ctx::{Outcome, RequestCtx};
use super::local::answer_error;
use super::upstream::EXHAUSTED;
use crate::error::GatewayError;
use crate::spend::usage::UsageTap;

/// Phase: upstream response head received, before anything goes downstream. A status listed in
/// `retry.on_status` fails this try (an error here is retried by Pingora without leaking the
/// failed response); anything else is the answer.
pub fn upstream_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let now = Instant::now();
    ctx.upstream_head = Some(now);
    let status = resp.status.as_u16();
    ctx.status = status;
    // The provider refusing our credentials is never the client's fault: a failed try (another
    // target may serve), and a 502 once routing gives up, never the provider's 401/403.
    let auth_failure = status == 401 || status == 403;
    if auth_failure {
        let provider = ctx.target().map_or("-", |t| t.upstream.name.as_str());
        log::warn!("provider `{provider}` refused the gateway's credentials (HTTP {status}): check its api_key");
    }
    // Anthropic's 529 "overloaded" is its 503.
    let as_listed = if status == 529 { 503 } else { status };
    let retryable = auth_failure || ctx.primary.as_ref().is_some_and(|p| p.retry.on_status.contains(&as_listed));
    if retryable {
        let retry_after = resp
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        attempts::fail(ctx, Outcome::Status { status, retry_after });
        let mut e = Error::create(ErrorType::HTTPStatus(status), ErrorSource::Upstream, None, None);
        e.set_retry(attempts::can_retry(ctx));
        return Err(e);
    }
    if status >= 500 {
        // Passed through (not in on_status), but still the provider failing.
        let mut buf = itoa::Buffer::new();
        attempts::charge_breaker(ctx, buf.format(status));
    } else {
        attempts::succeed(ctx, now);
    }
    if let Some(theirs) = resp.remove_header("x-request-id") {
        let _ = resp.insert_header("x-upstream-request-id", theirs);
    }
    super::translated::on_head(resp, ctx)?;
    ctx.event_stream =
        resp.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if status == 200 {
        ctx.usage_tap = Some(UsageTap::new(ctx.event_stream, ctx.strip_usage && ctx.event_stream));
        let max_entry = ctx.snapshot.as_ref().map_or(0, |s| s.config.raw.cache.max_entry_bytes);
        super::cached::start_recording(ctx, max_entry);
        if ctx.strip_usage && ctx.event_stream {
            // The body shrinks by the cut chunk; chunked framing takes over.
            resp.remove_header(&http::header::CONTENT_LENGTH);
        }
    }
    Ok(())
}

/// Phase: just before the head goes to the client. Adds the gateway's headers.
pub fn downstream_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    resp.insert_header("x-request-id", ctx.request_id.clone())?;
    if let Some(target) = ctx.target() {
        resp.insert_header("x-switchyard-provider", target.upstream.name_header.clone())?;
        resp.insert_header("x-switchyard-model", target.model_header.clone())?;
    }
    resp.insert_header("x-switchyard-attempts", HeaderValue::from(ctx.selections.max(1)))?;
    if !ctx.cache_status.is_empty() {
        resp.insert_header("x-switchyard-cache", ctx.cache_status)?;
    }
    if ctx.chain_pos > 0 {
        if let Some(route) = &ctx.route {
            if let Ok(v) = HeaderValue::from_str(&route.name) {
                resp.insert_header("x-switchyard-fallback", v)?;
            }
        }
    }
    resp.insert_header("x-switchyard-overhead-us", HeaderValue::from(ctx.overhead_us(Instant::now())))?;
    if ctx.inbound_anthropic {
        super::inbound::on_head(resp, ctx)?;
    }
    Ok(())
}

/// Phase: each upstream body chunk. Enforces the provider's `total_ms` (checked per chunk; the
/// read timeout bounds the gap between chunks) and notes the end of the upstream response.
pub fn upstream_body(end_of_stream: bool, ctx: &mut RequestCtx) -> Result<()> {
    if end_of_stream {
        ctx.upstream_done = Some(Instant::now());
        return Ok(());
    }
    if let Some(target) = ctx.target() {
        if ctx.started.elapsed() > target.upstream.timeouts.total {
            return Err(Error::create(
                ErrorType::ReadTimedout,
                ErrorSource::Upstream,
                Some("total_ms exceeded".into()),
                None,
            ));
        }
    }
    Ok(())
}

/// Maps a failure to what the client sees: the aggregated OpenAI JSON error when nothing was
/// sent yet, one SSE `data: {"error":...}` event (then close, no `[DONE]`) when a stream was
/// already under way.
pub async fn fail(session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    if e.esource() == &ErrorSource::Downstream && !matches!(e.etype(), ErrorType::HTTPStatus(_)) {
        // The client went away (or sent garbage mid-body): nobody to answer.
        ctx.status = 0;
        return FailToProxy { error_code: 0, can_reuse_downstream: false };
    }
    let upstream_failure = ctx.primary.is_some() && (!ctx.log.is_empty() || *e.etype() == EXHAUSTED);
    let err = if upstream_failure && session.response_written().is_none() {
        attempts::exhausted(ctx)
    } else if upstream_failure || e.esource() == &ErrorSource::Upstream {
        // Mid-stream: the stream broke after it started.
        let provider = ctx.target().map_or_else(|| "-".to_string(), |t| t.upstream.name.clone());
        GatewayError::UpstreamUnreachable { provider, detail: e.to_string() }
    } else {
        GatewayError::Internal(e.to_string())
    };
    log::warn!("{} failed: {err}", ctx.request_id.to_str().unwrap_or("-"));
    if session.response_written().is_some() {
        if ctx.event_stream && ctx.inbound_anthropic {
            let _ = session.write_response_body(Some(super::inbound::error_event(&err)), true).await;
        } else if ctx.event_stream {
            let mut event = Vec::with_capacity(256);
            event.extend_from_slice(b"data: ");
            event.extend_from_slice(&err.to_json());
            event.extend_from_slice(b"\n\n");
            let _ = session.write_response_body(Some(Bytes::from(event)), true).await;
        }
        return FailToProxy { error_code: ctx.status, can_reuse_downstream: false };
    }
    let status = err.status();
    // Pingora will not reuse this connection after an upstream-phase failure: say so, or a
    // keep-alive client sends its next request into a closing socket.
    session.set_keepalive(None);
    let _ = answer_error(session, ctx, err).await;
    FailToProxy { error_code: status, can_reuse_downstream: false }
}
