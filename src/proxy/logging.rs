//! `logging`: one record per request, after the response is done: metrics, spend, audit.

use std::time::Instant;

use super::ctx::RequestCtx;
use crate::metrics;
use crate::spend::usage::Usage;

/// Usage and cost of an answered request (a 200 that went through the usage tap).
#[derive(Debug, Clone, Copy)]
pub struct Spend {
    pub usage: Usage,
    pub cost_usd: f64,
    pub priced: bool,
}

/// Usage and cost; an answer without reported usage is counted by the tokenizer on a blocking
/// thread (it is CPU work, and loads the tokenizer the first time).
pub async fn spend_of(ctx: &RequestCtx) -> Option<Spend> {
    let tap = ctx.usage_tap.as_ref()?;
    let (route, target, snapshot) = (ctx.route.as_ref()?, ctx.target()?, ctx.snapshot.as_ref()?);
    let usage = match tap.usage {
        Some(u) => u,
        None => {
            let (tap, body) = (tap.clone(), ctx.body.clone());
            tokio::task::spawn_blocking(move || tap.finish(&body)).await.ok()?
        }
    };
    let price = snapshot.prices.lookup(target.pricing.as_ref(), &target.model, &route.name);
    Some(Spend { usage, cost_usd: price.map_or(0.0, |p| p.cost(&usage)), priced: price.is_some() })
}

/// The current target's cached metric handles, when a request's labels are theirs: a 200 served
/// by a target of the model the client asked for (not a fallback).
pub fn target_handles(ctx: &RequestCtx) -> Option<&metrics::TargetHandles> {
    if ctx.chain_pos != 0 {
        return None;
    }
    let (route, target) = (ctx.route.as_ref()?, ctx.target()?);
    Some(target.metrics.get_or_init(|| metrics::TargetHandles::new(&route.name, &target.upstream.name)))
}

pub async fn record(ctx: &RequestCtx, status: u16) -> Option<Spend> {
    let m = metrics::get();
    // The model the client asked for, even when a fallback served it.
    let model = ctx.primary.as_ref().map_or("-", |r| r.name.as_str());
    let provider = ctx.target().map_or("switchyard", |t| t.upstream.name.as_str());
    let now = ctx.finished.unwrap_or_else(Instant::now);
    let total = (now - ctx.started).as_secs_f64();
    let upstream = ctx.upstream_sent.map(|sent| {
        let end = ctx.upstream_done.unwrap_or(now);
        ((end - sent).as_secs_f64(), ctx.overhead_us(ctx.upstream_head.unwrap_or(now)) as f64 / 1e6)
    });
    let ttft = ctx.upstream_head.map(|head| (head - ctx.started).as_secs_f64());
    match target_handles(ctx).filter(|_| status == 200 && ctx.cache_hit.is_none()) {
        Some(h) => {
            h.requests.inc();
            h.request_duration.observe(total);
            if let Some((up, overhead)) = upstream {
                h.upstream_duration.observe(up);
                h.overhead.observe(overhead);
            }
            if let Some(t) = ttft {
                h.ttft.observe(t);
            }
        }
        None => {
            let mut buf = itoa::Buffer::new();
            // 0: the client went away before a status was sent (nginx's 499).
            let status = if status == 0 { "499" } else { buf.format(status) };
            let labels = [model, provider, status];
            m.requests.with_label_values(&labels).inc();
            m.request_duration.with_label_values(&labels).observe(total);
            if let Some((up, overhead)) = upstream {
                m.upstream_duration.with_label_values(&labels).observe(up);
                m.overhead.with_label_values(&[model]).observe(overhead);
            }
            if let Some(t) = ttft {
                m.ttft.with_label_values(&[model, provider]).observe(t);
            }
        }
    }
    if ctx.cache_hit.is_some() {
        if let Some(snapshot) = ctx.snapshot.as_ref() {
            let key = ctx.key.as_ref().map_or("-", |k| k.name.as_str());
            let team = ctx.team_name.as_deref().unwrap_or("-");
            let saved = super::admission::saved_usd(snapshot, ctx);
            m.saved_usd.with_label_values(&[key, team, model]).inc_by(saved);
            if let Some((usage, _)) = &ctx.cache_hit {
                m.saved_tokens.with_label_values(&["prompt", key, team, model]).inc_by(usage.prompt_tokens);
                m.saved_tokens.with_label_values(&["completion", key, team, model]).inc_by(usage.completion_tokens);
            }
        }
        return None;
    }
    let spend = spend_of(ctx).await?;
    let key = ctx.key.as_ref().map_or("-", |k| k.name.as_str());
    let team = ctx.team_name.as_deref().unwrap_or("-");
    m.spend_usd.with_label_values(&[key, team, model, provider]).inc_by(spend.cost_usd);
    m.tokens.with_label_values(&["prompt", key, team, model]).inc_by(spend.usage.prompt_tokens);
    m.tokens.with_label_values(&["completion", key, team, model]).inc_by(spend.usage.completion_tokens);
    if !spend.priced {
        m.unpriced.with_label_values(&[model]).inc();
    }
    if spend.usage.estimated {
        m.estimated_usage.with_label_values(&[model, provider]).inc();
    }
    Some(spend)
}

/// The audit line for this request.
pub fn audit_record(ctx: &RequestCtx, status: u16, spend: Option<Spend>) -> crate::audit::AuditRecord {
    let now = ctx.finished.unwrap_or_else(Instant::now);
    let target = ctx.target();
    let usage = spend.map(|s| s.usage).unwrap_or_default();
    crate::audit::AuditRecord {
        ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        request_id: ctx.request_id.to_str().unwrap_or("-").to_string(),
        key: ctx.key.as_ref().map(|k| k.name.clone()),
        team: ctx.team_name.clone(),
        model: ctx.primary.as_ref().map(|r| r.name.clone()),
        provider: target.map(|t| t.upstream.name.clone()),
        upstream_model: target.map(|t| t.model.clone()),
        status,
        cache: if ctx.cache_status.is_empty() { "none" } else { ctx.cache_status },
        attempts: ctx.selections,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost_usd: spend.map_or(0.0, |s| s.cost_usd),
        saved_usd: ctx.snapshot.as_ref().map_or(0.0, |s| super::admission::saved_usd(s, ctx)),
        estimated: usage.estimated,
        latency_ms: (now - ctx.started).as_secs_f64() * 1e3,
        ttft_ms: ctx.upstream_head.map(|h| (h - ctx.started).as_secs_f64() * 1e3),
        overhead_us: ctx.overhead_us(ctx.upstream_head.unwrap_or(now)),
        request: (crate::audit::include_bodies() && !ctx.body.is_empty())
            .then(|| String::from_utf8_lossy(&ctx.body).into_owned()),
    }
}
