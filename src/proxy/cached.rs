//! The exact cache on the request path: decide whether this request may use the cache, answer
//! a hit (in the mode the client asked for), and store a completed answer after a miss.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use crate::cache::key::{exact_key, temperature};
use crate::cache::sse::{events_from_json, json_from_events, refresh_json, replay, SseRecorder};
use crate::cache::store::{now_secs, Answer, Entry, ExactStore};
use crate::cache::Control;
use crate::config::live::Snapshot;
use crate::metrics;
use crate::providers::Endpoint;

/// Sets `ctx.cache_key`/`cache_status` for this request. Call once the route and payer are known.
pub fn classify(snapshot: &Snapshot, session: &Session, ctx: &mut RequestCtx) -> Control {
    let headers = &session.req_header().headers;
    let control = Control::parse(headers.get("x-switchyard-cache").map(|v| v.as_bytes()));
    let Some(route) = ctx.primary.clone() else { return control };
    let cfg = &snapshot.config.raw.cache;
    let tier = route.exact_cache;
    let too_hot = cfg.max_temperature.is_some_and(|max| temperature(&ctx.body).is_some_and(|t| t > max));
    if control == Control::Off || !tier.enabled || too_hot {
        ctx.cache_status = "bypass";
        return control;
    }
    let scope = match (cfg.scope.as_deref(), snapshot.config.keys.is_empty()) {
        (Some("global"), _) | (None, true) => "global".to_string(),
        (Some("key"), _) => format!("key:{}", ctx.key.as_ref().map_or("-", |k| k.name.as_str())),
        // team (the default with keys): a key without a team is its own scope
        _ => match (&ctx.team_name, &ctx.key) {
            (Some(t), _) => format!("team:{t}"),
            (None, Some(k)) => format!("key:{}", k.name),
            (None, None) => "global".to_string(),
        },
    };
    let Some(endpoint) = ctx.endpoint else { return control };
    ctx.cache_key = exact_key(&scope, &route.name, endpoint, &ctx.body);
    ctx.cache_ttl = headers
        .get("x-switchyard-cache-ttl")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tier.ttl_secs);
    ctx.cache_status = if ctx.cache_key.is_some() { "miss" } else { "bypass" };
    control
}

/// Answers from the cache when there is a usable entry. `Ok(true)`: answered.
pub async fn try_hit(store: &ExactStore, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let Some(key) = ctx.cache_key else { return Ok(false) };
    let Some(entry) = store.get(&key) else {
        metrics::get().cache_lookups.with_label_values(&["exact", "miss"]).inc();
        return Ok(false);
    };
    let now = now_secs();
    let include_usage = ctx.include_usage == Some(true);
    let chat = ctx.endpoint == Some(Endpoint::ChatCompletions);
    let events = match (&entry.answer, ctx.stream) {
        (Answer::Sse(ev), true) => Some(replay(ev, include_usage, now)),
        (Answer::Json(body), true) if chat => events_from_json(body, include_usage, now),
        _ => None,
    };
    let json = match (&entry.answer, ctx.stream) {
        (Answer::Json(body), false) => refresh_json(body, now),
        (Answer::Sse(ev), false) if chat => json_from_events(ev, now),
        _ => None,
    };
    if events.is_none() && json.is_none() {
        // An entry that cannot be served in this mode (tool calls, n > 1): a miss.
        metrics::get().cache_lookups.with_label_values(&["exact", "miss"]).inc();
        return Ok(false);
    }
    metrics::get().cache_lookups.with_label_values(&["exact", "hit"]).inc();
    ctx.cache_status = "hit-exact";
    ctx.cache_hit = Some((entry.usage, entry.upstream_model.clone()));
    ctx.status = 200;
    let mut h = ResponseHeader::build(200, Some(8))?;
    h.insert_header("x-request-id", ctx.request_id.clone())?;
    h.insert_header("x-switchyard-cache", "hit-exact")?;
    if let Ok(v) = HeaderValue::from_str(&entry.upstream_model) {
        h.insert_header("x-switchyard-model", v)?;
    }
    match (events, json) {
        (Some(events), _) => {
            h.insert_header("content-type", "text/event-stream")?;
            h.insert_header("cache-control", "no-cache")?;
            h.insert_header("transfer-encoding", "chunked")?;
            h.insert_header("x-switchyard-overhead-us", HeaderValue::from(ctx.started.elapsed().as_micros() as u64))?;
            session.write_response_header(Box::new(h), false).await?;
            let n = events.len();
            for (i, e) in events.into_iter().enumerate() {
                session.write_response_body(Some(e), i + 1 == n).await?;
            }
        }
        (None, Some(body)) => {
            h.insert_header("content-type", "application/json")?;
            h.insert_header("content-length", body.len())?;
            h.insert_header("x-switchyard-overhead-us", HeaderValue::from(ctx.started.elapsed().as_micros() as u64))?;
            session.write_response_header(Box::new(h), false).await?;
            session.write_response_body(Some(body), true).await?;
        }
        (None, None) => unreachable!("checked above"),
    }
    Ok(true)
}

/// Phase: upstream head of a 200 on a cacheable request: start recording a stream.
pub fn start_recording(ctx: &mut RequestCtx, max_entry_bytes: usize) {
    if ctx.cache_key.is_some() && ctx.event_stream {
        ctx.recorder = Some(SseRecorder::new(max_entry_bytes));
    }
}

/// At the end of a complete, successful answer: store it. Interrupted or errored answers never
/// are (a stream must have reached `[DONE]`).
pub fn store_answer(store: &ExactStore, ctx: &RequestCtx, max_entry_bytes: usize, usage: crate::spend::usage::Usage) {
    let (Some(key), Some(tap), Some(target)) = (ctx.cache_key, ctx.usage_tap.as_ref(), ctx.target()) else { return };
    if ctx.status != 200 || !tap.completed || ctx.cache_status != "miss" {
        return;
    }
    let answer = match &ctx.recorder {
        Some(r) if r.complete && !r.overflow => Answer::Sse(r.events.clone()),
        Some(_) => return,
        None => match tap.json_body() {
            Some(body) if body.len() <= max_entry_bytes => Answer::Json(Bytes::copy_from_slice(body)),
            _ => return,
        },
    };
    store.insert(key, Entry::new(answer, ctx.cache_ttl, usage, target.model.clone()));
}

/// Metrics gauges for the store (scrape time).
pub fn export_gauges(store: &ExactStore) {
    let m = metrics::get();
    m.cache_entries.set(store.len() as i64);
    m.cache_bytes.set(store.bytes() as i64);
    m.cache_evictions.reset();
    m.cache_evictions.inc_by(store.evictions.load(std::sync::atomic::Ordering::Relaxed));
}
