//! Gemini and Bedrock translation: a 20-event stream of each kind translated event by event
//! (divide by 20 for the cost per event), a request and an answer of each, and SigV4 signing.
//! `cargo bench --bench providers_gb`

use chrono::TimeZone;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use switchyard::providers::bedrock::{self, eventstream, Bedrock};
use switchyard::providers::gemini::Gemini;
use switchyard::providers::translate::{TranslateOptions, WireFormat};

const TEXT: &str = "The quick brown fox jumps over the lazy dog, again. ";

/// 20 SSE events as Gemini sends them, one per chunk.
fn gemini_events() -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    for i in 0..19 {
        events.push(format!(
            "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"{TEXT}{i}\"}}],\"role\": \"model\"}},\"index\": 0}}],\"usageMetadata\": {{\"promptTokenCount\": 30,\"totalTokenCount\": 30}},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"abc\"}}\r\n\r\n"
        ).into_bytes());
    }
    events.push(
        b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 30,\"candidatesTokenCount\": 200,\"totalTokenCount\": 230},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"abc\"}\r\n\r\n".to_vec(),
    );
    events
}

/// 20 event-stream frames as Bedrock sends them, one per chunk.
fn bedrock_events() -> Vec<Vec<u8>> {
    let mut events = vec![eventstream::encode_event("messageStart", br#"{"role":"assistant","p":"abcdefgh"}"#)];
    for i in 0..16 {
        let payload = format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"{TEXT}{i}"}},"p":"abcdefghij"}}"#);
        events.push(eventstream::encode_event("contentBlockDelta", payload.as_bytes()));
    }
    events.push(eventstream::encode_event("contentBlockStop", br#"{"contentBlockIndex":0,"p":"abcd"}"#));
    events.push(eventstream::encode_event("messageStop", br#"{"stopReason":"end_turn","p":"abcd"}"#));
    events.push(eventstream::encode_event(
        "metadata",
        br#"{"usage":{"inputTokens":30,"outputTokens":200,"totalTokens":230},"metrics":{"latencyMs":900},"p":"ab"}"#,
    ));
    events
}

fn run(format: &dyn WireFormat, events: &[Vec<u8>]) -> usize {
    let mut t = format.stream_translator("public-model", true);
    let mut n = 0;
    for e in events {
        n += t.feed(black_box(e)).len();
    }
    n += t.finish().len();
    assert!(t.completed());
    n
}

fn streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_20_events");
    g.throughput(Throughput::Elements(20));
    let ge = gemini_events();
    assert_eq!(ge.len(), 20);
    g.bench_function("gemini", |b| b.iter(|| run(&Gemini, &ge)));
    let be = bedrock_events();
    assert_eq!(be.len(), 20);
    g.bench_function("bedrock", |b| b.iter(|| run(&Bedrock, &be)));
    g.finish();
}

const REQUEST: &[u8] = br#"{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"{\"temp_c\":18}"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"max_tokens":256,"temperature":0.2}"#;

fn requests_and_answers(c: &mut Criterion) {
    let opts = TranslateOptions::default();
    c.bench_function("gemini_translate_request", |b| {
        b.iter(|| Gemini.translate_request(black_box(REQUEST), "gemini-2.0-flash", false, &opts).unwrap())
    });
    c.bench_function("bedrock_translate_request", |b| {
        b.iter(|| {
            Bedrock
                .translate_request(black_box(REQUEST), "anthropic.claude-3-haiku-20240307-v1:0", false, &opts)
                .unwrap()
        })
    });
    let gemini_answer = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Paris is 18 C and sunny today."}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":9,"totalTokenCount":49},"modelVersion":"gemini-2.0-flash","responseId":"abc"}"#;
    c.bench_function("gemini_translate_response", |b| {
        b.iter(|| Gemini.translate_response(black_box(gemini_answer), "m").unwrap())
    });
    let bedrock_answer = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Paris is 18 C and sunny today."}]}},"stopReason":"end_turn","usage":{"inputTokens":40,"outputTokens":9,"totalTokens":49},"metrics":{"latencyMs":700}}"#;
    c.bench_function("bedrock_translate_response", |b| {
        b.iter(|| Bedrock.translate_response(black_box(bedrock_answer), "m").unwrap())
    });
}

fn sigv4(c: &mut Criterion) {
    let body = Bedrock
        .translate_request(REQUEST, "anthropic.claude-3-haiku-20240307-v1:0", false, &TranslateOptions::default())
        .unwrap()
        .body;
    let now = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    c.bench_function("sigv4_sign_converse_request", |b| {
        b.iter(|| {
            bedrock::sign(
                "POST",
                "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                "",
                &[("host", "bedrock-runtime.us-east-1.amazonaws.com"), ("content-type", "application/json")],
                black_box(&body),
                "us-east-1",
                "bedrock",
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                Some("session-token"),
                now,
            )
        })
    });
}

criterion_group!(benches, streams, requests_and_answers, sigv4);
criterion_main!(benches);
