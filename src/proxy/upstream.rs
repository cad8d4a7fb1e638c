//! `upstream_peer`, `upstream_request_filter` and the connect/proxy error hooks.

use std::time::Instant;

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use super::body_swap;
use super::ctx::RequestCtx;

/// Attempts on one target when a pooled keep-alive connection turns out to be dead. Fallback
/// across targets belongs to routing.
const MAX_ATTEMPTS: u32 = 2;

/// Phase: after `request_filter`, once per attempt. Reads `ctx.route`/`ctx.target`; bumps
/// `ctx.attempts` and re-arms the body on a retry (Pingora cannot resend a consumed body).
pub async fn peer(session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    ctx.attempts += 1;
    if ctx.attempts > 1 {
        if let Some(replay) = ctx.replay.clone() {
            body_swap::arm(session, replay).await?;
        }
    }
    let target = ctx.target().ok_or_else(|| Error::explain(ErrorType::InternalError, "no target chosen"))?;
    match target.upstream.peer().await {
        Ok(peer) => Ok(Box::new(peer)),
        Err(e) => Err(Error::create(
            ErrorType::ConnectError,
            ErrorSource::Upstream,
            Some(format!("resolving {}: {e}", target.upstream.host_port).into()),
            None,
        )),
    }
}

/// Phase: after the upstream connection is ready, before the request head is sent. Points the
/// request at the provider's path and replaces client credentials with the provider's.
pub fn rewrite_request(session: &Session, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    let (Some(target), Some(endpoint)) = (ctx.target(), ctx.endpoint) else {
        return Err(Error::explain(ErrorType::InternalError, "no target chosen"));
    };
    let up = &target.upstream;
    let path = up.path_for(endpoint, session.req_header().uri.query());
    req.set_uri(http::Uri::try_from(path).map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream path"))?);
    // The client's credentials are for Switchyard, never for the provider.
    for h in ["authorization", "x-api-key", "api-key", "proxy-authorization", "accept-encoding"] {
        req.remove_header(h);
    }
    req.insert_header(http::header::HOST, up.host_header.clone())?;
    for (name, value) in &up.headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    req.insert_header("x-request-id", ctx.request_id.clone())?;
    ctx.upstream_sent = Some(Instant::now());
    Ok(())
}

/// Connection-level failures: a dead pooled connection is retried once (body re-armed);
/// anything else fails the request.
pub fn on_connect_error(ctx: &RequestCtx, mut e: Box<Error>) -> Box<Error> {
    if ctx.attempts >= MAX_ATTEMPTS {
        e.set_retry(false);
    }
    e
}

/// Errors while proxying: retry only when the failure came from reusing a pooled connection and
/// nothing has reached the client yet.
pub fn on_proxy_error(session: &Session, ctx: &RequestCtx, mut e: Box<Error>, client_reused: bool) -> Box<Error> {
    e.retry.decide_reuse(client_reused);
    if session.response_written().is_some() || ctx.attempts >= MAX_ATTEMPTS {
        e.set_retry(false);
    }
    e
}
