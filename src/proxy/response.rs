//! Response hooks: gateway headers, the total-time cap, and how failures reach the client.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::ctx::RequestCtx;
use super::local::answer_error;
use crate::error::GatewayError;

/// Phase: upstream response head received, before any downstream filter. Records timing and
/// moves the provider's request id aside so ours stays the only `x-request-id`.
pub fn upstream_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
    ctx.upstream_head = Some(Instant::now());
    ctx.status = resp.status.as_u16();
    if let Some(theirs) = resp.remove_header("x-request-id") {
        let _ = resp.insert_header("x-upstream-request-id", theirs);
    }
    ctx.event_stream =
        resp.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
}

/// Phase: just before the head goes to the client. Adds the gateway's headers.
pub fn downstream_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    resp.insert_header("x-request-id", ctx.request_id.clone())?;
    if let Some(target) = ctx.target() {
        resp.insert_header("x-switchyard-provider", target.upstream.name_header.clone())?;
        resp.insert_header("x-switchyard-model", target.model_header.clone())?;
    }
    resp.insert_header("x-switchyard-overhead-us", HeaderValue::from(ctx.overhead_us(Instant::now())))?;
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

/// Maps a failure to what the client sees: an OpenAI JSON error when nothing was sent yet, an
/// SSE `error` event when a stream was already under way.
pub async fn fail(session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    let provider = ctx.target().map(|t| t.upstream.name.clone()).unwrap_or_else(|| "-".into());
    let detail = e.to_string();
    let err = match e.etype() {
        ErrorType::HTTPStatus(code) if *code < 500 => GatewayError::bad_request(detail, "bad_request"),
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => GatewayError::UpstreamTimeout { provider, detail },
        _ => match e.esource() {
            ErrorSource::Downstream => {
                // The client went away (or sent garbage mid-body): nobody to answer.
                ctx.status = 0;
                return FailToProxy { error_code: 0, can_reuse_downstream: false };
            }
            ErrorSource::Internal => GatewayError::Internal(detail),
            _ => GatewayError::UpstreamUnreachable { provider, detail },
        },
    };
    log::warn!("{} failed: {err}", ctx.request_id.to_str().unwrap_or("-"));
    if session.response_written().is_some() {
        if ctx.event_stream {
            let event = format!("event: error\ndata: {}\n\n", String::from_utf8_lossy(&err.to_json()));
            let _ = session.write_response_body(Some(Bytes::from(event)), true).await;
        }
        return FailToProxy { error_code: ctx.status, can_reuse_downstream: false };
    }
    let status = err.status();
    let _ = answer_error(session, ctx, err).await;
    FailToProxy { error_code: status, can_reuse_downstream: false }
}
