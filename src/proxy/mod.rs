//! The Pingora `ProxyHttp` implementation. Hooks run in the order written here and only
//! orchestrate: each delegates to the file for its phase.

mod admission;
mod attempts;
mod body_swap;
mod cached;
pub mod ctx;
mod inbound;
mod local;
mod logging;
mod request;
mod response;
mod translated;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, Result};

pub use body_swap::serialize_request;
use ctx::RequestCtx;

use crate::cache::Cache;
use crate::config::live::Live;
use crate::spend::SpendState;

/// The gateway: holds the live config; all per-request state is in [`RequestCtx`].
pub struct Gateway {
    live: Arc<Live>,
    spend: Arc<SpendState>,
    cache: Arc<Cache>,
}

impl Gateway {
    pub fn new(live: Arc<Live>, spend: Arc<SpendState>, cache: Arc<Cache>) -> Self {
        Gateway { live, spend, cache }
    }
}

pub use cached::export_gauges as export_cache_gauges;

pub use admission::export_budget_gauges;

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Phase: request head read. Writes every `ctx` routing field. `Ok(true)` means the gateway
    /// answered (health, models, errors); the body is read here because routing needs `model`.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        request::handle(&self.live, &self.spend, &self.cache, session, ctx).await
    }

    /// Phase: once per attempt. Reads `ctx.target`; re-arms the body on retries.
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        upstream::peer(session, ctx).await
    }

    /// Phase: the body goes upstream. Pingora replays the client's body from its retry buffer;
    /// the try's own (model rewritten or translated) goes instead, once.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(armed) = &ctx.armed_body {
            *body = if std::mem::replace(&mut ctx.armed_sent, true) { None } else { Some(armed.clone()) };
        }
        Ok(())
    }

    /// Phase: connected, before the head is sent. Sets path, host and provider credentials.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream::rewrite_request(session, upstream_request, ctx)
    }

    /// Phase: upstream head received. A retryable status becomes a retry here, before any byte
    /// goes to the client; otherwise records timing and the provider's request id.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response::upstream_head(upstream_response, ctx)
    }

    /// Phase: head about to go to the client. Adds the `x-switchyard-*` headers.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response::downstream_head(upstream_response, ctx)
    }

    /// Phase: each upstream body chunk (SSE events pass through unbuffered).
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        response::upstream_body(end_of_stream, ctx)?;
        if ctx.reply.is_some() {
            translated::on_body(body, end_of_stream, ctx)?;
        }
        if let (Some(recorder), Some(chunk)) = (ctx.recorder.as_mut(), body.as_ref()) {
            recorder.feed(chunk);
        }
        Ok(None)
    }

    /// Phase: each body chunk on its way to the client. Reads usage as it passes (and cuts the
    /// usage chunk the gateway asked for on the client's behalf). O(chunk), never awaits.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(tap) = ctx.usage_tap.as_mut() {
            tap.feed(body, end_of_stream);
        }
        if end_of_stream && ctx.cache_key.is_some() {
            // Stored before the last bytes go out, so the entry is visible to lookups as soon as
            // the client has its answer.
            let usage = ctx.usage_tap.as_ref().and_then(|t| t.usage).unwrap_or_default();
            let max_entry = ctx.snapshot.as_ref().map_or(0, |s| s.config.raw.cache.max_entry_bytes);
            cached::store_answer(&self.cache.store, ctx, max_entry, usage);
        }
        if ctx.inbound_anthropic {
            inbound::on_body(body, end_of_stream, ctx);
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        upstream::on_connect_error(ctx, e)
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        upstream::on_proxy_error(session, ctx, e, client_reused)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        response::fail(session, e, ctx).await
    }

    /// Phase: after the response (or failure). One metrics record and one audit line (queued:
    /// the file write happens on the audit thread).
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(ctx.status, |r| r.status.as_u16());
        // The request's clock stops here: what follows is bookkeeping the client does not wait for,
        // and the metrics and the audit line must report the same figures.
        ctx.finished = Some(std::time::Instant::now());
        let spent = logging::record(ctx, status).await;
        if ctx.reservation.is_some() || ctx.cache_hit.is_some() {
            if let Some(snapshot) = ctx.snapshot.clone() {
                admission::settle(&self.spend, &snapshot, ctx, spent);
            }
        }
        crate::audit::submit(logging::audit_record(ctx, status, spent)).await;
    }
}
