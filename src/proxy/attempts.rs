//! One request, several tries: which target comes next (the model's targets, then its
//! fallbacks), whether another try is allowed, how failures feed the circuit breakers, and the
//! error the client gets when everything failed.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ctx::{Attempt, AttemptRecord, Outcome, RequestCtx};
use crate::error::{AttemptSummary, GatewayError};
use crate::metrics;
use crate::providers::openai;
use crate::routing::NoPick;

/// Picks the next target: untried targets of the current route, then each fallback model in
/// order (not when a provider is pinned). `false` when the chain is exhausted.
pub fn select_next(ctx: &mut RequestCtx) -> bool {
    ctx.current = None;
    let (Some(primary), Some(snapshot)) = (ctx.primary.clone(), ctx.snapshot.clone()) else { return false };
    loop {
        let route = match ctx.chain_pos {
            0 => primary.clone(),
            k => match primary.fallbacks.get(k - 1).and_then(|name| snapshot.routes.get(name)) {
                Some(r) => r.clone(),
                None => return false,
            },
        };
        match route.select(ctx.tried, ctx.pin.as_deref()) {
            Ok(pick) => {
                ctx.tried |= 1 << pick.index;
                ctx.selections += 1;
                let state = route.targets[pick.index].state.clone();
                ctx.current = Some(Attempt::new(pick.index, pick.admit, state));
                if ctx.chain_pos > 0 {
                    metrics::get().fallbacks.with_label_values(&[&primary.name, &route.name]).inc();
                }
                ctx.route = Some(route);
                return true;
            }
            Err(NoPick::AllTried | NoPick::NoneUsable) => {
                if ctx.pin.is_some() || ctx.chain_pos >= primary.fallbacks.len() {
                    return false;
                }
                ctx.chain_pos += 1;
                ctx.tried = already_tried_in(
                    ctx,
                    primary.fallbacks.get(ctx.chain_pos - 1).and_then(|n| snapshot.routes.get(n)),
                );
            }
        }
    }
}

const INCLUDE_USAGE: &[u8] = br#"{"include_usage":true}"#;
const INSERT_STREAM_OPTIONS: &[u8] = br#""stream_options":{"include_usage":true},"#;

/// Targets of a fallback route that this request already tried under another model name (same
/// provider and upstream model): a try never returns to them.
fn already_tried_in(ctx: &RequestCtx, route: Option<&std::sync::Arc<crate::routing::Route>>) -> u64 {
    let Some(route) = route else { return 0 };
    route.targets.iter().enumerate().fold(0u64, |mask, (i, t)| {
        let seen = ctx.log.iter().any(|a| a.provider == t.upstream.name && a.model == t.model);
        if seen {
            mask | (1 << i)
        } else {
            mask
        }
    })
}

/// The request bytes for the current target, and whether to cut the usage chunk on the way back
/// (the gateway asked for it, the client did not). Translated for providers with their own
/// format; otherwise the client's body with `model` rewritten when the upstream name differs and,
/// for a stream whose client did not ask for usage, usage requested. The rest passes untouched.
pub fn upstream_body(ctx: &mut RequestCtx) -> Result<(Bytes, bool), GatewayError> {
    let route = ctx.route.clone().ok_or_else(|| GatewayError::Internal("no target chosen".into()))?;
    let target = ctx
        .current
        .as_ref()
        .and_then(|a| route.targets.get(a.index))
        .ok_or_else(|| GatewayError::Internal("no target chosen".into()))?;
    if target.upstream.format.is_some() {
        return super::translated::request_for(ctx, target);
    }
    ctx.upstream_path = None;
    ctx.upstream_headers.clear();
    let body = &ctx.body;
    let mut edits: Vec<(std::ops::Range<usize>, &[u8])> = Vec::new();
    if body[ctx.model_span.clone()] != target.model_json[..] {
        edits.push((ctx.model_span.clone(), &target.model_json));
    }
    let wants_usage = ctx.stream
        && ctx.endpoint != Some(crate::providers::Endpoint::Embeddings)
        && target.upstream.stream_usage
        && ctx.include_usage != Some(true);
    let mut inject = false;
    if wants_usage {
        match (&ctx.stream_options_span, openai::object_start(body)) {
            (Some(span), _) => {
                edits.push((span.clone(), INCLUDE_USAGE));
                inject = true;
            }
            (None, Some(at)) => {
                edits.push((at..at, INSERT_STREAM_OPTIONS));
                inject = true;
            }
            (None, None) => {}
        }
    }
    if edits.is_empty() {
        return Ok((body.clone(), false));
    }
    Ok((Bytes::from(openai::apply_edits(body, &mut edits)), inject))
}

/// Another try is allowed: under `max_attempts` (first try included) and inside the deadline,
/// and nothing has reached the client yet (the caller checks that).
pub fn can_retry(ctx: &RequestCtx) -> bool {
    let Some(primary) = &ctx.primary else { return false };
    ctx.selections < primary.retry.max_attempts && ctx.started.elapsed() < primary.retry.deadline
}

/// Exponential backoff before try `n` (2, 3, ...), with jitter in [50 %, 100 %].
pub fn backoff(ctx: &RequestCtx) -> Duration {
    let Some(primary) = &ctx.primary else { return Duration::ZERO };
    let r = &primary.retry;
    if r.backoff.is_zero() || ctx.selections == 0 {
        return Duration::ZERO;
    }
    let exp = r.backoff.saturating_mul(1 << (ctx.selections - 1).min(16)).min(r.max_backoff);
    exp.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// The current attempt failed: feed its breaker, log it, count it.
pub fn fail(ctx: &mut RequestCtx, outcome: Outcome) {
    let (Some(route), Some(attempt)) = (ctx.route.clone(), ctx.current.as_mut()) else { return };
    if attempt.settled {
        return;
    }
    attempt.settled = true;
    let retry_after = match &outcome {
        Outcome::Status { status: 429, retry_after: Some(s) } => Some(Duration::from_secs(*s)),
        _ => None,
    };
    attempt.state.record_failure(&route.breaker, attempt.admit, retry_after);
    let target = &route.targets[attempt.index];
    let label = match &outcome {
        Outcome::Status { status, .. } => status.to_string(),
        Outcome::Timeout(_) => "timeout".into(),
        Outcome::Error(_) => "error".into(),
    };
    metrics::get().attempts.with_label_values(&[&route.name, &target.upstream.name, &label]).inc();
    ctx.log.push(AttemptRecord { provider: target.upstream.name.clone(), model: target.model.clone(), outcome });
}

/// Charges the breaker without a retry: a stream that broke after it started, or a 5xx passed
/// through because it is not in `on_status`. `label` is the metrics outcome.
pub fn charge_breaker(ctx: &mut RequestCtx, label: &str) {
    let (Some(route), Some(attempt)) = (ctx.route.clone(), ctx.current.as_mut()) else { return };
    attempt.settled = true;
    attempt.state.record_failure(&route.breaker, crate::routing::state::Admit::Normal, None);
    let provider = &route.targets[attempt.index].upstream.name;
    metrics::get().attempts.with_label_values(&[&route.name, provider, label]).inc();
}

/// The current attempt got a response the client may see: close a half-open circuit, sample TTFB.
pub fn succeed(ctx: &mut RequestCtx, now: Instant) {
    let (Some(route), Some(attempt)) = (ctx.route.clone(), ctx.current.as_mut()) else { return };
    if attempt.settled {
        return;
    }
    attempt.settled = true;
    attempt.state.record_success(&route.breaker, attempt.admit, Some(now - attempt.started));
    let target = &route.targets[attempt.index];
    // The attempt's labels are its own route's, fallback or not: the target's handles fit.
    target.metrics.get_or_init(|| metrics::TargetHandles::new(&route.name, &target.upstream.name)).attempts_ok.inc();
}

/// What the client gets when no try succeeded.
pub fn exhausted(ctx: &RequestCtx) -> GatewayError {
    let model = ctx.primary.as_ref().map_or("-", |r| r.name.as_str());
    if ctx.log.is_empty() {
        let message = match ctx.primary.as_ref().and_then(|r| r.unusable.clone()) {
            Some(reason) => reason,
            None => format!(
                "No usable target for model `{model}`{}: every target is unhealthy or its circuit is open",
                ctx.pin.as_ref().map(|p| format!(" on provider `{p}`")).unwrap_or_default()
            ),
        };
        return GatewayError::AttemptsFailed { status: 503, message, attempts: Vec::new(), retry_after: None };
    }
    let all_429 = ctx.log.iter().all(|a| matches!(a.outcome, Outcome::Status { status: 429, .. }));
    let all_timeouts = ctx.log.iter().all(|a| matches!(a.outcome, Outcome::Timeout(_)));
    let all_overloaded = ctx.log.iter().all(|a| matches!(a.outcome, Outcome::Status { status: 503 | 529, .. }));
    let status = if all_429 {
        429
    } else if all_overloaded {
        503
    } else if all_timeouts {
        504
    } else {
        502
    };
    let retry_after = if all_429 {
        ctx.log
            .iter()
            .filter_map(|a| match a.outcome {
                Outcome::Status { retry_after, .. } => retry_after,
                _ => None,
            })
            .min()
    } else {
        None
    };
    let described: Vec<String> = ctx
        .log
        .iter()
        .map(|a| {
            let what = match &a.outcome {
                Outcome::Status { status, .. } => format!("HTTP {status}"),
                Outcome::Timeout(e) | Outcome::Error(e) => e.clone(),
            };
            format!("{} ({}): {what}", a.provider, a.model)
        })
        .collect();
    let message = format!("All {} attempt(s) for model `{model}` failed: {}", ctx.log.len(), described.join("; "));
    let attempts = ctx
        .log
        .iter()
        .map(|a| AttemptSummary {
            provider: a.provider.clone(),
            model: a.model.clone(),
            status: match a.outcome {
                Outcome::Status { status, .. } => Some(status),
                _ => None,
            },
            error: match &a.outcome {
                Outcome::Status { .. } => None,
                Outcome::Timeout(e) | Outcome::Error(e) => Some(e.clone()),
            },
        })
        .collect();
    GatewayError::AttemptsFailed { status, message, attempts, retry_after }
}
