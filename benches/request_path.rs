//! Hot functions of the request path, measured alone.
//! `cargo bench --bench request_path` (HTML reports under target/criterion).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora::http::RequestHeader;
use switchyard::providers::{openai, Endpoint};
use switchyard::proxy::serialize_request;

fn body(prompt_bytes: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [
            { "role": "system", "content": "You are a helpful assistant." },
            { "role": "user", "content": "x".repeat(prompt_bytes) }
        ],
        "stream": true,
        "stream_options": { "include_usage": true }
    }))
    .unwrap()
}

/// What the gateway reads per request: `model`, `stream` and the required field. serde_json with
/// borrowed `RawValue`s (what ships) against simd-json, which needs a mutable copy of the body.
fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_request");
    for size in [200usize, 16 * 1024, 512 * 1024] {
        let b = body(size);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::new("serde_json_borrowed", size), &b, |bench, b| {
            bench.iter(|| openai::parse_request(black_box(b), Endpoint::ChatCompletions).unwrap().stream)
        });
        g.bench_with_input(BenchmarkId::new("simd_json_copy_and_parse", size), &b, |bench, b| {
            bench.iter(|| {
                let mut copy = black_box(b).clone();
                let v = simd_json::to_borrowed_value(&mut copy).unwrap();
                use simd_json::prelude::*;
                v.get("stream").and_then(|s| s.as_bool()).unwrap_or(false)
            })
        });
    }
    g.finish();
}

fn rewrite_and_serialize(c: &mut Criterion) {
    let b = body(2_000);
    let fields = openai::parse_request(&b, Endpoint::ChatCompletions).unwrap();
    let span = fields.model_span.clone();
    let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
    for (k, v) in [
        ("host", "gw:8080"),
        ("content-type", "application/json"),
        ("authorization", "Bearer sk-x"),
        ("user-agent", "OpenAI/Python 1.0"),
    ] {
        req.insert_header(k, v).unwrap();
    }
    c.bench_function("rewrite_model_2k", |bench| {
        bench.iter(|| openai::rewrite_model(black_box(&b), span.clone(), b"\"llama3.1:8b\""))
    });
    c.bench_function("serialize_request_2k", |bench| bench.iter(|| serialize_request(black_box(&req), black_box(&b))));
}

criterion_group!(benches, parse, rewrite_and_serialize);
criterion_main!(benches);
