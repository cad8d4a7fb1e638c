//! The cache's hot functions alone: canonical keys (1 KB and 64 KB requests), exact lookup,
//! vector search at 10k (and, under `cargo bench`, 1M) prompts, SSE record and replay, and
//! re-stamping a stored JSON answer (what every exact hit pays).
//! `cargo bench --bench cache`; the 1M index takes minutes to build (it prints how long).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard::cache::key::request_keys;
use switchyard::cache::sse::{refresh_json, replay, SseRecorder};
use switchyard::cache::store::{Answer, CacheStore, Entry};
use switchyard::cache::vectors::VectorIndex;
use switchyard::embed::DIMS;
use switchyard::providers::Endpoint;
use switchyard::spend::usage::Usage;

fn request(bytes: usize) -> Vec<u8> {
    let turn = |role: &str, n: usize| serde_json::json!({ "role": role, "content": "lorem ipsum ".repeat(n / 12) });
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256,
        "messages": [turn("system", 200), turn("user", bytes / 2), turn("assistant", bytes / 4), turn("user", bytes / 4)],
    }))
    .unwrap()
}

fn keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_key");
    for size in [1024usize, 64 * 1024] {
        let body = request(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("exact_and_context", size), &body, |b, body| {
            b.iter(|| request_keys("team:a", "gpt-4o-mini", Endpoint::ChatCompletions, black_box(body), true))
        });
    }
    g.finish();
}

fn exact_lookup(c: &mut Criterion) {
    let store = CacheStore::new(1 << 30);
    let answer = Answer::Json(Bytes::from(vec![b'x'; 600]));
    for i in 0..10_000u32 {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        store.insert(key, Entry::new(answer.clone(), 3600, Usage::default(), "m".into()));
    }
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&4242u32.to_le_bytes());
    c.bench_function("exact_lookup_10k", |b| b.iter(|| store.get(black_box(&key)).is_some()));
}

fn unit(rng: &mut fastrand::Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|_| rng.f32() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// One context holding `n` prompts (the worst case: one busy system prompt).
fn index_of(n: usize) -> VectorIndex {
    let index = VectorIndex::new(DIMS);
    let ctx = [1u8; 32];
    index.reserve(&ctx, n).unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let started = std::time::Instant::now();
    for i in 0..n {
        index.insert(&ctx, i as u64, &unit(&mut rng)).unwrap();
    }
    eprintln!("vector index: {n} inserts in {:.1} s", started.elapsed().as_secs_f64());
    index
}

fn vector_search(c: &mut Criterion) {
    // `cargo test --benches` smoke-runs each bench once: skip the minute-long 1M build there.
    // ... and when a filter names other benches only, do not build it either.
    let filters: Vec<String> =
        std::env::args().skip(1).filter(|a| !a.starts_with("--") && a.parse::<f64>().is_err()).collect();
    let full = std::env::args().any(|a| a == "--bench")
        && (filters.is_empty() || filters.iter().any(|f| f.contains("vector")));
    let sizes: &[usize] = if full { &[10_000, 1_000_000] } else { &[10_000] };
    let mut g = c.benchmark_group("vector_search_top4");
    let mut rng = fastrand::Rng::with_seed(99);
    let query = unit(&mut rng);
    for &n in sizes {
        let index = index_of(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &index, |b, index| {
            b.iter(|| index.search(&[1u8; 32], black_box(&query), 4))
        });
    }
    g.finish();
}

fn sse(c: &mut Criterion) {
    let events: Vec<Bytes> = (0..200)
        .map(|i| {
            Bytes::from(format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
                 \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
            ))
        })
        .chain(std::iter::once(Bytes::from_static(b"data: [DONE]\n\n")))
        .collect();
    let wire: Vec<u8> = events.concat();
    let mut g = c.benchmark_group("sse_200_events");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("record", |b| {
        b.iter(|| {
            let mut r = SseRecorder::new(1 << 20);
            for chunk in wire.chunks(1400) {
                r.feed(black_box(chunk));
            }
            r.complete
        })
    });
    g.bench_function("replay", |b| b.iter(|| replay(black_box(&events), false, 1_700_000_000)));
    g.finish();
}

fn refresh(c: &mut Criterion) {
    let answer = serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-9xk2", "object": "chat.completion", "created": 1_700_000_000u64, "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "lorem ipsum ".repeat(40) },
                      "logprobs": null, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 52, "completion_tokens": 120, "total_tokens": 172 },
    }))
    .unwrap();
    let mut g = c.benchmark_group("exact_hit");
    g.throughput(Throughput::Bytes(answer.len() as u64));
    g.bench_function("refresh_json", |b| b.iter(|| refresh_json(black_box(&answer), 1_800_000_000)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = keys, exact_lookup, vector_search, sse, refresh
}
criterion_main!(benches);
