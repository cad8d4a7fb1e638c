//! The cache on the request path: decide whether this request may use the cache and how, answer
//! a hit (exact, else semantic; in the mode the client asked for), and store a completed answer
//! after a miss, with its prompt's vector when the semantic tier embedded it.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::ctx::RequestCtx;
use crate::cache::key::{request_keys, temperature};
use crate::cache::semantic::SemanticQuery;
use crate::cache::sse::{events_from_json, json_from_events, refresh_json, replay, SseRecorder};
use crate::cache::store::{now_secs, Answer, CacheStore, Entry, SemanticRef};
use crate::cache::{Cache, Control, SemanticConfig};
use crate::config::live::Snapshot;
use crate::metrics;
use crate::providers::Endpoint;

/// Sets the cache fields of `ctx` for this request. Call once the route and payer are known.
pub fn classify(snapshot: &Snapshot, session: &Session, cache: &Cache, ctx: &mut RequestCtx) -> Control {
    let headers = &session.req_header().headers;
    let control = Control::parse(headers.get("x-switchyard-cache").map(|v| v.as_bytes()));
    let Some(route) = ctx.primary.clone() else { return control };
    let cfg = &snapshot.config.raw.cache;
    let (exact, semantic) = (route.exact_cache, route.semantic_cache);
    let too_hot = cfg.max_temperature.is_some_and(|max| temperature(&ctx.body).is_some_and(|t| t > max));
    if control == Control::Off || !(exact.enabled || semantic.enabled) || too_hot {
        ctx.cache_status = "bypass";
        return control;
    }
    let scope: std::borrow::Cow<str> = match (cfg.scope.as_deref(), snapshot.config.keys.is_empty()) {
        (Some("global"), _) | (None, true) => "global".into(),
        (Some("key"), _) => format!("key:{}", ctx.key.as_ref().map_or("-", |k| k.name.as_str())).into(),
        // team (the default with keys): a key without a team is its own scope
        _ => match (&ctx.team_name, &ctx.key) {
            (Some(t), _) => format!("team:{t}").into(),
            (None, Some(k)) => format!("key:{}", k.name).into(),
            (None, None) => "global".into(),
        },
    };
    let Some(endpoint) = ctx.endpoint else { return control };
    let Some(keys) = request_keys(&scope, &route.name, endpoint, &ctx.body, semantic.enabled) else {
        ctx.cache_status = "bypass";
        return control;
    };
    let ttl_header: Option<u64> =
        headers.get("x-switchyard-cache-ttl").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    ctx.cache_key = Some(keys.exact);
    ctx.cache_exact_lookup = exact.enabled;
    ctx.cache_ttl = ttl_header.unwrap_or(exact.ttl_secs);
    if semantic.enabled {
        cache.semantic.ensure_started(&cfg.semantic);
        ctx.semantic = keys.semantic.map(|parts| SemanticQuery {
            context: parts.context,
            text: parts.text,
            vector: None,
            threshold: request_threshold(headers.get("x-switchyard-cache-threshold"), &cfg.semantic)
                .unwrap_or(semantic.threshold),
            ttl_secs: ttl_header.unwrap_or(semantic.ttl_secs),
        });
    }
    ctx.cache_status = "miss";
    control
}

/// `x-switchyard-cache-threshold`, clamped to `[min_request_threshold, 1]` (a cache hint never
/// fails a request; unparsable values are ignored).
fn request_threshold(v: Option<&HeaderValue>, cfg: &SemanticConfig) -> Option<f32> {
    let t: f32 = v?.to_str().ok()?.trim().parse().ok()?;
    t.is_finite().then(|| t.clamp(cfg.min_request_threshold, 1.0))
}

/// Answers from the cache when there is a usable entry: exact tier first, then semantic.
/// `Ok(true)`: answered. Also embeds the prompt of a semantic miss (or a refresh) so its answer
/// can be indexed when it completes.
pub async fn lookup(cache: &Cache, control: Control, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let handles = metrics::cache();
    if let (Control::Normal, true, Some(key)) = (control, ctx.cache_exact_lookup, ctx.cache_key) {
        let started = Instant::now();
        let entry = cache.store.get(&key);
        handles.exact_duration.observe(started.elapsed().as_secs_f64());
        if let Some(entry) = entry {
            if serve(session, ctx, &entry, "hit-exact", None).await? {
                handles.exact_hit.inc();
                return Ok(true);
            }
        }
        handles.exact_miss.inc();
    }
    let Some(mut query) = ctx.semantic.take() else { return Ok(false) };
    let Some(snapshot) = ctx.snapshot.clone() else { return Ok(false) };
    let cfg = &snapshot.config.raw.cache.semantic;
    let started = Instant::now();
    match cache.semantic.embed(&query.text, cfg).await {
        Ok(v) => query.vector = Some(v),
        Err(skip) => skip.count(),
    }
    let mut answered = false;
    if let (Control::Normal, Some(vector)) = (control, query.vector.as_deref()) {
        for (_, entry, similarity) in cache.store.semantic_candidates(&query.context, vector, cfg.candidates.max(1)) {
            let Some(stored) = entry.semantic.as_ref() else { continue };
            if !cache.semantic.accept(&query.text, &stored.prompt, similarity, query.threshold, cfg) {
                log::debug!("semantic cache: {:?} ~ {:?}: {similarity:.4}, not accepted", query.text, stored.prompt);
                continue;
            }
            if serve(session, ctx, &entry, "hit-semantic", Some(similarity)).await? {
                answered = true;
                break;
            }
        }
        if answered { &handles.semantic_hit } else { &handles.semantic_miss }.inc();
        handles.semantic_duration.observe(started.elapsed().as_secs_f64());
    }
    ctx.semantic = Some(query);
    Ok(answered)
}

/// Writes a stored answer in the mode the client asked for. `Ok(false)`: this entry cannot be
/// served in that mode (tool calls or `n > 1` across modes), nothing was written.
async fn serve(
    session: &mut Session,
    ctx: &mut RequestCtx,
    entry: &Entry,
    status: &'static str,
    similarity: Option<f32>,
) -> Result<bool> {
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
        return Ok(false);
    }
    let (events, json) = if ctx.inbound_anthropic {
        (events.map(|e| super::inbound::cached_events(e, ctx)), json.map(|j| super::inbound::cached_json(&j, ctx)))
    } else {
        (events, json)
    };
    ctx.cache_status = status;
    ctx.cache_hit = Some((entry.usage, entry.upstream_model.clone()));
    ctx.status = 200;
    let mut h = ResponseHeader::build(200, Some(8))?;
    h.insert_header("x-request-id", ctx.request_id.clone())?;
    h.insert_header("x-switchyard-cache", status)?;
    if let Some(s) = similarity {
        h.insert_header("x-switchyard-cache-similarity", format!("{s:.4}"))?;
    }
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
pub fn store_answer(store: &CacheStore, ctx: &RequestCtx, max_entry_bytes: usize, usage: crate::spend::usage::Usage) {
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
    let mut entry = Entry::new(answer, ctx.cache_ttl, usage, target.model.clone());
    entry.semantic = ctx.semantic.as_ref().and_then(|q| {
        Some(SemanticRef {
            context: q.context,
            prompt: q.text.as_str().into(),
            vector: q.vector.clone()?.into(),
            expires_at: now_secs() + q.ttl_secs,
        })
    });
    store.insert(key, entry);
}

/// Metrics gauges for the store (scrape time).
pub fn export_gauges(store: &CacheStore) {
    let m = metrics::get();
    m.cache_vectors.set(store.vector_counts().0 as i64);
    m.cache_entries.set(store.len() as i64);
    m.cache_bytes.set(store.bytes() as i64);
    m.cache_evictions.reset();
    m.cache_evictions.inc_by(store.evictions.load(std::sync::atomic::Ordering::Relaxed));
}
