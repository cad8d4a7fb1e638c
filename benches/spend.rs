//! Spend hot paths: budget check + reservation, a rate-limit check, and usage extraction from a
//! stream's final SSE chunk. `cargo bench --bench spend`

use bytes::Bytes;
use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchyard::spend::budget::{Accounts, Payer, Totals};
use switchyard::spend::keys::Budget;
use switchyard::spend::limits::{Limit, RateLimiter};
use switchyard::spend::period::Period;
use switchyard::spend::usage::UsageTap;

fn budget(c: &mut Criterion) {
    let accounts = Accounts::open(None, Vec::new());
    let payer = Payer {
        key: Some(("svc".into(), Some(Budget { usd: 1e12, period: Period::Monthly }))),
        team: Some(("search".into(), Some(Budget { usd: 1e12, period: Period::Monthly }))),
    };
    let now = Utc::now();
    // A month of history in hourly buckets, as a long-running gateway would have.
    for h in 0..720 {
        let r = accounts.reserve(payer.clone(), 0.0, now).unwrap();
        accounts.settle(
            &r,
            "m",
            Totals { spend_usd: 0.01, requests: 1, ..Totals::default() },
            now - chrono::Duration::hours(h),
        );
    }
    c.bench_function("budget_reserve_and_settle", |b| {
        b.iter(|| {
            let r = accounts.reserve(black_box(payer.clone()), 0.001, now).unwrap();
            accounts.settle(&r, "m", Totals { spend_usd: 0.001, requests: 1, ..Totals::default() }, now);
        })
    });
    c.bench_function("budget_reserve_only", |b| {
        b.iter(|| {
            let r = accounts.reserve(black_box(payer.clone()), 0.0, now).unwrap();
            black_box(r);
        })
    });
}

fn rate_limit(c: &mut Criterion) {
    let l = RateLimiter::default();
    c.bench_function("rate_limit_take", |b| b.iter(|| l.take("key", black_box("svc"), Limit::Rpm, u64::MAX / 2, 1.0)));
}

fn usage(c: &mut Criterion) {
    let final_chunk = Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":812,\"completion_tokens\":312,\"total_tokens\":1124,\"prompt_tokens_details\":{\"cached_tokens\":256}}}\n\ndata: [DONE]\n\n",
    );
    let delta = Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    );
    c.bench_function("usage_from_final_sse_chunk_stripped", |b| {
        b.iter(|| {
            let mut tap = UsageTap::new(true, true);
            let mut body = Some(final_chunk.clone());
            tap.feed(&mut body, true);
            black_box(tap.usage)
        })
    });
    c.bench_function("usage_tap_per_delta_chunk", |b| {
        let mut tap = UsageTap::new(true, true);
        b.iter(|| {
            let mut body = Some(delta.clone());
            tap.feed(&mut body, false);
            black_box(body)
        })
    });
}

criterion_group!(benches, budget, rate_limit, usage);
criterion_main!(benches);
