//! `logging`: one metrics record per request, after the response is done.

use std::time::Instant;

use super::ctx::RequestCtx;
use crate::metrics;

pub fn record(ctx: &RequestCtx, status: u16) {
    let m = metrics::get();
    // The model the client asked for, even when a fallback served it.
    let model = ctx.primary.as_ref().map_or("-", |r| r.name.as_str());
    let provider = ctx.target().map_or("switchyard", |t| t.upstream.name.as_str());
    let mut buf = itoa::Buffer::new();
    // 0: the client went away before a status was sent (nginx's 499).
    let status = if status == 0 { "499" } else { buf.format(status) };
    let labels = [model, provider, status];
    let now = Instant::now();
    m.requests.with_label_values(&labels).inc();
    m.request_duration.with_label_values(&labels).observe((now - ctx.started).as_secs_f64());
    if let Some(sent) = ctx.upstream_sent {
        let end = ctx.upstream_done.unwrap_or(now);
        m.upstream_duration.with_label_values(&labels).observe((end - sent).as_secs_f64());
        let overhead_us = ctx.overhead_us(ctx.upstream_head.unwrap_or(now));
        m.overhead.with_label_values(&[model]).observe(overhead_us as f64 / 1e6);
    }
}
