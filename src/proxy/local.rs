//! Answers the gateway writes itself (health, model list, errors), with the same headers as
//! proxied answers.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use crate::error::GatewayError;

pub const JSON: &str = "application/json";

/// Writes a complete response. Returns `Ok(true)`, which tells Pingora the request is done.
pub async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    content_type: &'static str,
    body: Bytes,
) -> Result<bool> {
    answer_with(session, ctx, status, content_type, body, None).await
}

async fn answer_with(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    content_type: &'static str,
    body: Bytes,
    retry_after: Option<u64>,
) -> Result<bool> {
    let mut h = ResponseHeader::build(status, Some(6))?;
    h.insert_header("content-type", content_type)?;
    h.insert_header("content-length", body.len())?;
    h.insert_header("x-request-id", ctx.request_id.clone())?;
    if ctx.selections > 0 {
        h.insert_header("x-switchyard-attempts", HeaderValue::from(ctx.selections))?;
    }
    if !ctx.cache_status.is_empty() {
        h.insert_header("x-switchyard-cache", ctx.cache_status)?;
    }
    if let Some(secs) = retry_after {
        h.insert_header("retry-after", HeaderValue::from(secs))?;
    }
    ctx.status = status;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}

pub async fn answer_error(session: &mut Session, ctx: &mut RequestCtx, err: GatewayError) -> Result<bool> {
    log::debug!("{} answering {}: {err}", ctx.request_id.to_str().unwrap_or("-"), err.status());
    let body = if ctx.inbound_anthropic { super::inbound::error_body(&err) } else { err.to_json() };
    answer_with(session, ctx, err.status(), JSON, body, err.retry_after()).await
}
