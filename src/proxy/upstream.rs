//! `upstream_peer`, `upstream_request_filter` and the connect/proxy error hooks: where a failed
//! try becomes the next try.

use std::time::Instant;

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result, RetryType};

use super::attempts;
use super::ctx::{Outcome, RequestCtx};
use super::request::arm_current;

/// Marks the error Pingora returns once no target is left (mapped to the aggregated error).
pub const EXHAUSTED: ErrorType = ErrorType::Custom("switchyard: all targets tried");

/// Phase: before each try. The first try's target was chosen in `request_filter`; later tries
/// wait out the backoff, pick the next target (or fallback) and re-arm the body, because Pingora
/// cannot resend a body it no longer has.
pub async fn peer(session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    ctx.attempts += 1;
    if ctx.attempts > 1 {
        if std::mem::take(&mut ctx.resend_same_target) {
            if let Some(a) = ctx.current.as_mut() {
                a.started = Instant::now();
            }
        } else {
            let previous_try = ctx.current.as_ref().map(|a| a.started);
            let pause = attempts::backoff(ctx);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            // The failed try and the backoff were spent waiting on upstreams, not in the gateway.
            if let Some(t) = previous_try {
                ctx.retry_wait += t.elapsed();
            }
            if !attempts::can_retry(ctx) || !attempts::select_next(ctx) {
                return Err(Error::explain(EXHAUSTED, "no target left to try"));
            }
        }
        ctx.upstream_sent = None;
        ctx.upstream_head = None;
        arm_or_skip(session, ctx).await?;
    }
    loop {
        let target = ctx.target().ok_or_else(|| Error::explain(ErrorType::InternalError, "no target chosen"))?;
        match target.upstream.peer().await {
            Ok(peer) => return Ok(Box::new(peer)),
            Err(e) => {
                // Name resolution failed: a failed try like a refused connect, handled here
                // because Pingora does not retry errors from this hook.
                let detail = format!("resolving {}: {e}", target.upstream.host_port);
                attempts::fail(ctx, Outcome::Error(detail));
                if !attempts::can_retry(ctx) || !attempts::select_next(ctx) {
                    return Err(Error::explain(EXHAUSTED, "no target left to try"));
                }
                arm_or_skip(session, ctx).await?;
            }
        }
    }
}

/// Arms the current target; one that cannot take the request (its format lacks a parameter) is
/// a failed try, and the next target is armed instead.
async fn arm_or_skip(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    while let Err(e) = arm_current(session, ctx).await? {
        attempts::fail(ctx, Outcome::Error(e.to_string()));
        if !attempts::can_retry(ctx) || !attempts::select_next(ctx) {
            return Err(Error::explain(EXHAUSTED, "no target left to try"));
        }
    }
    Ok(())
}

/// Phase: connected, before the request head is sent. Points the request at the provider's path
/// and replaces client credentials with the provider's.
pub fn rewrite_request(session: &Session, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    let (Some(target), Some(endpoint)) = (ctx.target(), ctx.endpoint) else {
        return Err(Error::explain(ErrorType::InternalError, "no target chosen"));
    };
    let up = &target.upstream;
    let path = match &ctx.upstream_path {
        Some(translated) => translated.clone(),
        None => up.path_for(endpoint, &target.model, session.req_header().uri.query()),
    };
    req.set_uri(http::Uri::try_from(path).map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream path"))?);
    // The client's credentials are for Switchyard, never for the provider.
    // The Anthropic version and betas of a `/v1/messages` client are not the provider's.
    for h in [
        "authorization",
        "x-api-key",
        "api-key",
        "proxy-authorization",
        "accept-encoding",
        "x-switchyard-provider",
        "anthropic-version",
        "anthropic-beta",
    ] {
        req.remove_header(h);
    }
    req.insert_header(http::header::HOST, up.host_header.clone())?;
    for (name, value) in &up.headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    for (name, value) in &ctx.upstream_headers {
        req.insert_header(name.clone(), value.as_str())?;
    }
    req.insert_header("x-request-id", ctx.request_id.clone())?;
    if let Some(armed) = &ctx.armed_body {
        req.remove_header(&http::header::TRANSFER_ENCODING);
        req.remove_header(&http::header::EXPECT);
        req.insert_header(http::header::CONTENT_LENGTH, armed.len())?;
    }
    ctx.armed_sent = false;
    ctx.upstream_sent = Some(Instant::now());
    Ok(())
}

fn outcome_of(e: &Error) -> Outcome {
    let what = e.etype().as_str().to_string();
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => Outcome::Timeout(what),
        _ => Outcome::Error(what),
    }
}

/// Connecting failed (refused, timed out, TLS): the target failed; try the next one if allowed.
pub fn on_connect_error(ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    attempts::fail(ctx, outcome_of(&e));
    e.set_retry(attempts::can_retry(ctx));
    e
}

/// Errors after connecting. Before anything reached the client they are retried like connect
/// errors (a stale pooled connection is resent to the same target once, blameless); after the
/// first byte the stream cannot be retried and the target is charged a failure.
pub fn on_proxy_error(session: &Session, ctx: &mut RequestCtx, mut e: Box<Error>, client_reused: bool) -> Box<Error> {
    if e.esource() == &ErrorSource::Downstream {
        // The client went away: not the provider's fault, and nobody is left to retry for.
        e.set_retry(false);
        return e;
    }
    if session.response_written().is_some() {
        attempts::charge_breaker(ctx, "broken_stream");
        e.set_retry(false);
        return e;
    }
    let already_settled = ctx.current.as_ref().is_some_and(|a| a.settled);
    if !already_settled && matches!(e.retry, RetryType::ReusedOnly) && client_reused && ctx.stale_resends == 0 {
        ctx.stale_resends += 1;
        ctx.resend_same_target = true;
        e.set_retry(true);
        return e;
    }
    if !already_settled {
        attempts::fail(ctx, outcome_of(&e));
    }
    e.set_retry(attempts::can_retry(ctx));
    e
}
