//! Wire-format translation costs: an Anthropic stream of 20 events turned into OpenAI chunks
//! (whole, and one network read per event), an OpenAI request into an Anthropic one, and a
//! complete Anthropic answer into a `chat.completion`; and the inbound direction (an OpenAI stream
//! into Anthropic events). `cargo bench --bench providers`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use switchyard::providers::anthropic::Anthropic;
use switchyard::providers::anthropic_inbound::OpenAiToAnthropicStream;
use switchyard::providers::translate::{TranslateOptions, WireFormat};

/// message_start, content_block_start, ping, 14 text deltas, content_block_stop, message_delta,
/// message_stop: 20 events, as a short Anthropic answer streams.
fn stream_events() -> Vec<String> {
    let mut ev = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

"#
        .to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string(),
    ];
    let words = [
        "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",", " and", " then", " it",
        " rests.",
    ];
    for w in words {
        ev.push(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"
        ));
    }
    ev.push("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_string());
    ev.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n".to_string());
    ev.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    assert_eq!(ev.len(), 20);
    ev
}

fn stream(c: &mut Criterion) {
    let fmt = Anthropic::default();
    let events = stream_events();
    let whole = events.concat();
    let mut g = c.benchmark_group("anthropic_stream_20_events");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("one_read", |b| {
        b.iter(|| {
            let mut t = fmt.stream_translator("claude", true);
            let mut n = t.feed(black_box(whole.as_bytes())).len();
            n += t.finish().len();
            black_box(n)
        })
    });
    g.bench_function("read_per_event", |b| {
        b.iter(|| {
            let mut t = fmt.stream_translator("claude", true);
            let mut n = 0;
            for e in &events {
                n += t.feed(black_box(e.as_bytes())).len();
            }
            n += t.finish().len();
            black_box(n)
        })
    });
    g.finish();
}

fn request(c: &mut Criterion) {
    let fmt = Anthropic::default();
    let opts = TranslateOptions::default();
    let body = json!({
        "model": "claude", "stream": true, "max_tokens": 512, "temperature": 0.2,
        "messages": [
            { "role": "system", "content": "You are a helpful assistant. Answer briefly." },
            { "role": "user", "content": "What is the weather in Paris today, and should I take an umbrella?" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "toolu_1", "type": "function",
                "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] },
            { "role": "tool", "tool_call_id": "toolu_1", "content": "18 degrees, light rain expected after 15:00" },
            { "role": "user", "content": "Thanks. And tomorrow?" },
        ],
        "tools": [{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }],
    })
    .to_string();
    c.bench_function("anthropic_translate_request", |b| {
        b.iter(|| black_box(fmt.translate_request(black_box(body.as_bytes()), "claude-sonnet-4", true, &opts).unwrap()))
    });
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "content": [{ "type": "text", "text": "Tomorrow looks dry in Paris: 21 degrees and sunny, no umbrella needed." }],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": { "input_tokens": 120, "output_tokens": 18, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0 },
    })
    .to_string();
    c.bench_function("anthropic_translate_response", |b| {
        b.iter(|| black_box(fmt.translate_response(black_box(answer.as_bytes()), "claude").unwrap()))
    });
}

/// The inbound direction (`POST /v1/messages`): an OpenAI stream turned into Anthropic events,
/// one network read per OpenAI event. The OpenAI events are what the forward translator makes
/// of the 20 Anthropic ones above, so both directions are measured on the same answer.
fn inbound_stream(c: &mut Criterion) {
    let mut forward = Anthropic::default().stream_translator("claude", true);
    let mut openai = Vec::new();
    for e in stream_events() {
        let out = forward.feed(e.as_bytes());
        openai.extend(String::from_utf8(out).unwrap().split_inclusive("\n\n").map(str::to_string));
    }
    openai.extend(String::from_utf8(forward.finish()).unwrap().split_inclusive("\n\n").map(str::to_string));
    let mut g = c.benchmark_group("inbound_openai_to_anthropic_stream");
    g.throughput(Throughput::Elements(openai.len() as u64));
    g.bench_function("read_per_event", |b| {
        b.iter(|| {
            let mut t = OpenAiToAnthropicStream::new("claude");
            let mut n = 0;
            for e in &openai {
                n += t.feed(black_box(e.as_bytes())).len();
            }
            n += t.finish().len();
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, stream, request, inbound_stream);
criterion_main!(benches);
