//! Who may send this request, and whether they may send it now: virtual key (401), allowed
//! models (403), RPM/TPM limits (429 + Retry-After) and budgets (429 `budget_exceeded`, with a
//! reservation settled in `logging`).

use chrono::Utc;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use crate::config::live::Snapshot;
use crate::error::GatewayError;
use crate::metrics;
use crate::spend::budget::{Payer, Totals};
use crate::spend::keys::presented_key;
use crate::spend::limits::Limit;
use crate::spend::SpendState;

/// 401 unless a configured key was presented (no keys configured: everyone is anonymous).
pub fn authenticate(snapshot: &Snapshot, session: &Session, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let keys = &snapshot.config.keys;
    if keys.is_empty() {
        return Ok(());
    }
    let Some(presented) = presented_key(&session.req_header().headers) else {
        return Err(GatewayError::Unauthorized(
            "Missing API key: send `Authorization: Bearer <key>` (or `x-api-key`).".into(),
        ));
    };
    let Some(key) = keys.lookup(presented) else {
        return Err(GatewayError::Unauthorized("Incorrect API key provided.".into()));
    };
    ctx.team = keys.team_of(key).cloned();
    ctx.team_name = key.team.clone();
    ctx.key = Some(key.clone());
    Ok(())
}

pub fn allowed(ctx: &RequestCtx, model: &str) -> Result<(), GatewayError> {
    match &ctx.key {
        Some(k) if k.models.as_ref().is_some_and(|m| !m.contains(model)) => {
            Err(GatewayError::ModelNotAllowed { key: k.name.clone(), model: model.to_string() })
        }
        _ => Ok(()),
    }
}

/// Rough prompt tokens from the body size (the tokenizer stays off the request path) plus the
/// output tokens the request may produce.
fn estimate_tokens(ctx: &RequestCtx, snapshot: &Snapshot) -> (u64, u64) {
    let prompt = (ctx.body.len() as u64 / 4).max(1);
    let output = ctx.max_tokens.unwrap_or_else(|| {
        let route = ctx.route.as_ref();
        let target = ctx.target();
        route
            .zip(target)
            .and_then(|(r, t)| snapshot.prices.lookup(t.pricing.as_ref(), &t.model, &r.name))
            .and_then(|p| p.max_output_tokens.map(u64::from))
            .unwrap_or(snapshot.config.raw.spend.default_reserve_tokens)
    });
    (prompt, output)
}

/// RPM then TPM, key then team. The first refusal wins.
pub fn rate_limit(spend: &SpendState, snapshot: &Snapshot, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let (prompt, output) = estimate_tokens(ctx, snapshot);
    let tokens = (prompt + output) as f64;
    let scopes = [
        ("key", ctx.key.as_ref().map(|k| (k.name.clone(), k.limits))),
        ("team", ctx.team.as_ref().map(|t| (t.name.clone(), t.limits))),
    ];
    for (scope, who) in scopes {
        let Some((name, limits)) = who else { continue };
        for (limit, per_minute, cost) in
            [(Limit::Rpm, limits.rpm.map(u64::from), 1.0), (Limit::Tpm, limits.tpm, tokens)]
        {
            let Some(per_minute) = per_minute else { continue };
            if let Err(wait) = spend.limiter.take(scope, &name, limit, per_minute, cost) {
                metrics::get().rate_limited.with_label_values(&[scope, &name, limit.as_str()]).inc();
                return Err(GatewayError::RateLimited {
                    scope,
                    name,
                    limit: limit.as_str(),
                    retry_after: wait.ceil().max(1.0) as u64,
                });
            }
            if limit == Limit::Tpm {
                ctx.tpm_taken.push((scope, per_minute, tokens));
            }
        }
    }
    Ok(())
}

/// Reserves the request's worst-case cost on the current target against key and team budgets.
pub fn reserve(spend: &SpendState, snapshot: &Snapshot, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let payer = Payer {
        key: ctx.key.as_ref().map(|k| (k.name.clone(), k.budget)),
        team: ctx.team_name.clone().map(|name| (name, ctx.team.as_ref().and_then(|t| t.budget))),
    };
    let (prompt, output) = estimate_tokens(ctx, snapshot);
    let price = match (ctx.route.as_ref(), ctx.target()) {
        (Some(r), Some(t)) => snapshot.prices.lookup(t.pricing.as_ref(), &t.model, &r.name),
        _ => None,
    };
    let amount = price.map_or(0.0, |p| (prompt as f64 * p.input_per_mtok + output as f64 * p.output_per_mtok) / 1e6);
    match spend.accounts.reserve(payer, amount, Utc::now()) {
        Ok(r) => {
            ctx.reservation = Some(r);
            Ok(())
        }
        Err(e) => Err(GatewayError::BudgetExceeded {
            scope: e.scope,
            name: e.name,
            spent: e.spent_usd,
            budget: e.budget_usd,
            reset_at: e.reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    }
}

/// Settles the reservation with what the request really cost; gives unused TPM back.
pub fn settle(spend: &SpendState, snapshot: &Snapshot, ctx: &RequestCtx, spent: Option<super::logging::Spend>) {
    let Some(route) = ctx.primary.as_ref() else { return };
    let usage = spent.map(|s| s.usage).unwrap_or_default();
    let totals = Totals {
        spend_usd: spent.map_or(0.0, |s| s.cost_usd),
        saved_usd: saved_usd(snapshot, ctx),
        requests: 1,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
    };
    let reservation = ctx
        .reservation
        .clone()
        .unwrap_or_else(|| crate::spend::budget::Reservation { payer: Payer::default(), amount: 0.0 });
    let now = Utc::now();
    let budgets = [
        ("key", ctx.key.as_ref().and_then(|k| k.budget.map(|b| (k.name.clone(), b)))),
        ("team", ctx.team.as_ref().and_then(|t| t.budget.map(|b| (t.name.clone(), b)))),
    ];
    let before: Vec<f64> = budgets
        .iter()
        .map(|(scope, b)| b.as_ref().map_or(0.0, |(n, b)| spend.accounts.spent(scope, n, b.period, now)))
        .collect();
    spend.accounts.settle(&reservation, &route.name, totals, now);
    let soft = snapshot.config.raw.spend.soft_limit;
    for ((scope, b), before) in budgets.iter().zip(before) {
        let Some((name, b)) = b else { continue };
        let after = before + totals.spend_usd;
        if b.usd > 0.0 && before < soft * b.usd && after >= soft * b.usd {
            log::warn!("{scope} `{name}` crossed {:.0}% of its ${:.2} budget (${after:.4} spent)", soft * 100.0, b.usd);
            metrics::get().budget_soft_limit.with_label_values(&[*scope, name.as_str()]).inc();
        }
    }
    let actual = (usage.prompt_tokens + usage.completion_tokens) as f64;
    for (scope, per_minute, taken) in &ctx.tpm_taken {
        let name = if *scope == "key" { ctx.key.as_ref().map(|k| &k.name) } else { ctx.team_name.as_ref() };
        if let Some(name) = name {
            spend.limiter.adjust(scope, name, Limit::Tpm, *per_minute, actual - taken);
        }
    }
}

/// What a cache hit saved: the original answer's usage at the price of the model that would have
/// served it.
pub fn saved_usd(snapshot: &Snapshot, ctx: &RequestCtx) -> f64 {
    let (Some((usage, upstream_model)), Some(route)) = (ctx.cache_hit.as_ref(), ctx.primary.as_ref()) else {
        return 0.0;
    };
    let target_price = route.targets.iter().find(|t| &t.model == upstream_model).and_then(|t| t.pricing);
    snapshot.prices.lookup(target_price.as_ref(), upstream_model, &route.name).map_or(0.0, |p| p.cost(usage))
}

/// `/v1/models` for a key limited to some models lists only those.
pub fn visible_models(snapshot: &Snapshot, ctx: &RequestCtx) -> Option<bytes::Bytes> {
    let allowed = ctx.key.as_ref()?.models.as_ref()?;
    let v: serde_json::Value = serde_json::from_slice(&snapshot.routes.models_body).ok()?;
    let data: Vec<&serde_json::Value> =
        v["data"].as_array()?.iter().filter(|m| m["id"].as_str().is_some_and(|id| allowed.contains(id))).collect();
    Some(bytes::Bytes::from(serde_json::json!({ "object": "list", "data": data }).to_string()))
}

/// Sets the budget-remaining gauges (scrape time).
pub fn export_budget_gauges(spend: &SpendState, snapshot: &Snapshot) {
    let g = &metrics::get().budget_remaining;
    g.reset();
    let now = Utc::now();
    for k in snapshot.config.keys.keys() {
        if let Some(b) = k.budget {
            g.with_label_values(&["key", &k.name]).set(b.usd - spend.accounts.spent("key", &k.name, b.period, now));
        }
    }
    for t in snapshot.config.keys.teams.values() {
        if let Some(b) = t.budget {
            g.with_label_values(&["team", &t.name]).set(b.usd - spend.accounts.spent("team", &t.name, b.period, now));
        }
    }
}
