//! Golden tests for the inbound Anthropic endpoint; fixtures in tests/data/anthropic_inbound/
//! (hand-written from Anthropic's and OpenAI's API references), plus round trips through the
//! outbound translation in `anthropic.rs`.

use super::*;
use crate::providers::anthropic::Anthropic;
use crate::providers::translate::{TranslateOptions, WireFormat};

fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

fn openai_request(body: &Value) -> Result<Value, InboundError> {
    request_to_openai(body.to_string().as_bytes()).map(|r| serde_json::from_slice(&r.openai_body).unwrap())
}

fn base() -> Value {
    json!({ "model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{ "role": "user", "content": "Hi" }] })
}

/// Anthropic SSE as (event name, data) pairs; checks the framing and that the name is the type.
fn events(sse: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(sse).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "unterminated event in {text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) =
                e.split_once('\n').unwrap_or_else(|| panic!("not one event line + one data line: {e:?}"));
            let name = name.strip_prefix("event: ").unwrap_or_else(|| panic!("no event line: {e:?}"));
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "event name and data type agree");
            (name.to_string(), data)
        })
        .collect()
}

fn run(chunks: &[&[u8]]) -> (Vec<u8>, OpenAiToAnthropicStream) {
    let mut t = OpenAiToAnthropicStream::with_id("claude-sonnet-4-5", "msg_test".into());
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.feed(c));
    }
    out.extend(t.finish());
    (out, t)
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn request_golden() {
    let r = request_to_openai(&fixture("anthropic_inbound/request.anthropic.json")).unwrap();
    assert_eq!(r.model, "claude-sonnet-4-5");
    assert!(r.stream);
    let got: Value = serde_json::from_slice(&r.openai_body).unwrap();
    assert_eq!(got, json_fixture("anthropic_inbound/request.openai.json"));
}

#[test]
fn request_minimal_and_options() {
    let r = request_to_openai(base().to_string().as_bytes()).unwrap();
    assert!(!r.stream);
    let got: Value = serde_json::from_slice(&r.openai_body).unwrap();
    assert_eq!(
        got,
        json!({ "model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{ "role": "user", "content": "Hi" }] })
    );

    let tool = json!({ "name": "f", "input_schema": { "type": "object" } });
    for (choice, want, parallel) in [
        (json!({ "type": "auto" }), json!("auto"), None),
        (json!({ "type": "any" }), json!("required"), None),
        (json!({ "type": "none" }), json!("none"), None),
        (json!({ "type": "tool", "name": "f" }), json!({ "type": "function", "function": { "name": "f" } }), None),
        (json!({ "type": "auto", "disable_parallel_tool_use": true }), json!("auto"), Some(false)),
    ] {
        let mut body = base();
        body["tools"] = json!([tool]);
        body["tool_choice"] = choice.clone();
        let got = openai_request(&body).unwrap();
        assert_eq!(got["tool_choice"], want, "{choice}");
        assert_eq!(got.get("parallel_tool_calls").and_then(Value::as_bool), parallel, "{choice}");
        assert_eq!(
            got["tools"][0],
            json!({ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } })
        );
    }
    // No tools: OpenAI rejects tool_choice alone, so it is not sent.
    let mut body = base();
    body["tool_choice"] = json!({ "type": "none" });
    assert!(openai_request(&body).unwrap().get("tool_choice").is_none());

    // Assistant turn with only a tool call: content null; user turn with only tool results: no
    // empty user message after the tool messages.
    let mut body = base();
    body["messages"] = json!([
        { "role": "user", "content": "weather?" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "w", "input": {} }] },
        { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t1" }] },
    ]);
    let got = openai_request(&body).unwrap();
    assert_eq!(
        got["messages"],
        json!([
            { "role": "user", "content": "weather?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "t1", "type": "function", "function": { "name": "w", "arguments": "{}" } }] },
            { "role": "tool", "tool_call_id": "t1", "content": "" },
        ])
    );
}

#[test]
fn request_errors() {
    let err = |body: &[u8]| request_to_openai(body).unwrap_err();
    let e = err(b"{not json");
    assert_eq!(e.status, 400);
    assert!(e.message.contains("not valid JSON"), "{}", e.message);

    let mut body = base();
    body.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(err(body.to_string().as_bytes()), InboundError::bad_request("max_tokens: Field required"));
    let mut body = base();
    body.as_object_mut().unwrap().remove("messages");
    assert_eq!(err(body.to_string().as_bytes()).message, "messages: Field required");
    let mut body = base();
    body.as_object_mut().unwrap().remove("model");
    assert_eq!(err(body.to_string().as_bytes()).message, "model: Field required");

    let doc = json!({ "type": "document", "source": { "type": "text", "media_type": "text/plain", "data": "x" } });
    let thinking = json!({ "type": "thinking", "thinking": "hmm", "signature": "s" });
    for (role, block, want) in [
        ("user", doc, "messages.0.content.1: content block type `document`"),
        ("assistant", thinking, "messages.0.content.1: content block type `thinking`"),
    ] {
        let mut body = base();
        body["messages"] = json!([{ "role": role, "content": [{ "type": "text", "text": "a" }, block] }]);
        let e = err(body.to_string().as_bytes());
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with(want), "{}", e.message);
    }
    let mut body = base();
    body["tools"] = json!([{ "type": "web_search_20250305", "name": "web_search" }]);
    assert!(err(body.to_string().as_bytes()).message.contains("`web_search_20250305`"));
    let mut body = base();
    body["messages"] = json!([{ "role": "system", "content": "x" }]);
    assert!(err(body.to_string().as_bytes()).message.starts_with("messages.0.role"));

    let e = InboundError::bad_request("max_tokens: Field required");
    let v: Value = serde_json::from_slice(&e.body()).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

/// Anthropic request → OpenAI (here) → Anthropic (`anthropic.rs`) gives the request back.
#[test]
fn request_round_trips_through_outbound_translation() {
    let original = json_fixture("anthropic/request_full.anthropic.json");
    let r = request_to_openai(original.to_string().as_bytes()).unwrap();
    let back = Anthropic::default()
        .translate_request(&r.openai_body, &r.model, r.stream, &TranslateOptions::default())
        .unwrap();
    let back: Value = serde_json::from_slice(&back.body).unwrap();
    let mut want = original.clone();
    // OpenAI tool messages carry text, so a tool_result's text blocks come back as one string.
    want["messages"][2]["content"][1]["content"] = json!("14:05 CET");
    assert_eq!(back, want);

    // And the other fixture, whose system is a list of blocks and whose tool result has an image
    // (moved to the user turn) and an error flag (a text prefix).
    let original = json_fixture("anthropic_inbound/request.anthropic.json");
    let r = request_to_openai(original.to_string().as_bytes()).unwrap();
    let back = Anthropic::default()
        .translate_request(&r.openai_body, &r.model, r.stream, &TranslateOptions::default())
        .unwrap();
    let back: Value = serde_json::from_slice(&back.body).unwrap();
    assert_eq!(back["system"], "You are a helpful travel agent.\n\nPrefer trains.");
    assert_eq!(back["messages"].as_array().unwrap().len(), 5);
    assert_eq!(back["messages"][3], original["messages"][3]);
    assert_eq!(back["messages"][4]["content"][1]["content"], "Error: service unavailable");
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    assert_eq!(back["tools"][0], original["tools"][0]);
    assert_eq!(back["metadata"], original["metadata"]);
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
}

// ---------------------------------------------------------------------------------------------
// Responses

#[test]
fn response_golden() {
    let out = response_from_openai(&fixture("anthropic_inbound/response.openai.json"), "claude-sonnet-4-5").unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got, json_fixture("anthropic_inbound/response.anthropic.json"));
}

#[test]
fn response_stop_reasons_ids_and_errors() {
    let answer = |finish: Value, message: Value, id: &str| -> Value {
        let body = json!({ "id": id, "object": "chat.completion", "choices": [
            { "index": 0, "message": message, "finish_reason": finish }],
            "usage": { "prompt_tokens": 9, "completion_tokens": 3 } });
        serde_json::from_slice(&response_from_openai(body.to_string().as_bytes(), "m").unwrap()).unwrap()
    };
    let text = json!({ "role": "assistant", "content": "Hi" });
    for (finish, want) in [
        (json!("stop"), "end_turn"),
        (json!("length"), "max_tokens"),
        (json!("tool_calls"), "tool_use"),
        (json!("content_filter"), "refusal"),
        (Value::Null, "end_turn"),
    ] {
        let v = answer(finish.clone(), text.clone(), "chatcmpl-1");
        assert_eq!(v["stop_reason"], want, "{finish}");
        assert_eq!(v["content"], json!([{ "type": "text", "text": "Hi" }]));
        assert_eq!(v["usage"], json!({ "input_tokens": 9, "output_tokens": 3 }));
    }
    assert_eq!(answer(json!("stop"), text.clone(), "msg_keep")["id"], "msg_keep");
    assert_eq!(answer(json!("stop"), text.clone(), "chatcmpl-abc_1")["id"], "msg_abc_1");
    let fresh = answer(json!("stop"), text.clone(), "weird id/with spaces");
    assert!(fresh["id"].as_str().unwrap().starts_with("msg_") && fresh["id"].as_str().unwrap().len() > 10);
    let v = answer(json!("stop"), json!({ "role": "assistant", "content": null, "refusal": "I can't." }), "x");
    assert_eq!(v["content"], json!([{ "type": "text", "text": "I can't." }]));
    let v = answer(json!("stop"), json!({ "role": "assistant", "content": "" }), "x");
    assert_eq!(v["content"], json!([]));

    let e = response_from_openai(b"<html>", "m").unwrap_err();
    assert_eq!(e.status, 502);
    let bad_args = json!({ "choices": [{ "message": { "tool_calls": [
        { "id": "c", "function": { "name": "f", "arguments": "{oops" } }] } }] });
    assert_eq!(response_from_openai(bad_args.to_string().as_bytes(), "m").unwrap_err().status, 502);
    assert_eq!(response_from_openai(br#"{"choices":[]}"#, "m").unwrap_err().status, 502);
}

/// Anthropic answer → OpenAI (`anthropic.rs`) → Anthropic (here): same content and stop reason.
#[test]
fn response_round_trips_through_outbound_translation() {
    for name in ["response_tool_use.json", "response_max_tokens.json"] {
        let original = json_fixture(&format!("anthropic/{name}"));
        let openai = Anthropic::default().translate_response(original.to_string().as_bytes(), "m").unwrap();
        let back: Value = serde_json::from_slice(&response_from_openai(&openai, "m").unwrap()).unwrap();
        assert_eq!(back["content"], original["content"], "{name}");
        assert_eq!(back["stop_reason"], original["stop_reason"], "{name}");
        // Zero cache fields are left out.
        for field in ["input_tokens", "output_tokens"] {
            assert_eq!(back["usage"][field], original["usage"][field], "{name}");
        }
    }
    // Two text blocks come back as one; cache reads keep their own field.
    let original = json_fixture("anthropic/response_text.json");
    let openai = Anthropic::default().translate_response(original.to_string().as_bytes(), "m").unwrap();
    let back: Value = serde_json::from_slice(&response_from_openai(&openai, "m").unwrap()).unwrap();
    assert_eq!(back["content"], json!([{ "type": "text", "text": "Hi! My name is Claude. How can I help?" }]));
    // 2095 input + 100 cache creation (OpenAI cannot tell them apart) + 1800 cache reads.
    assert_eq!(back["usage"], json!({ "input_tokens": 2195, "output_tokens": 503, "cache_read_input_tokens": 1800 }));
}

// ---------------------------------------------------------------------------------------------
// Streams

fn assert_golden(input: &str, want: &str) {
    let (out, t) = run(&[&fixture(input)]);
    let got = events(&out);
    let want = events(&fixture(want));
    assert_eq!(got.len(), want.len(), "{}", String::from_utf8_lossy(&out));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    assert!(t.completed());
}

#[test]
fn stream_text_golden() {
    assert_golden("anthropic_inbound/stream_text.openai.sse", "anthropic_inbound/stream_text.anthropic.sse");
    let (_, t) = run(&[&fixture("anthropic_inbound/stream_text.openai.sse")]);
    assert_eq!(t.usage(), Some(Usage { prompt_tokens: 25, completion_tokens: 6, cached_tokens: 0, estimated: false }));
}

#[test]
fn stream_two_tool_calls_golden() {
    assert_golden("anthropic_inbound/stream_tools.openai.sse", "anthropic_inbound/stream_tools.anthropic.sse");
    let (_, t) = run(&[&fixture("anthropic_inbound/stream_tools.openai.sse")]);
    assert_eq!(t.usage().unwrap().cached_tokens, 400);
}

#[test]
fn stream_split_at_every_byte_is_identical() {
    for name in ["stream_text.openai.sse", "stream_tools.openai.sse"] {
        let bytes = fixture(&format!("anthropic_inbound/{name}"));
        let (whole, _) = run(&[&bytes]);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(run(&[a, b]).0, whole, "{name} split at byte {at}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(run(&singles).0, whole, "{name} byte by byte");
        let crlf = String::from_utf8(bytes.clone()).unwrap().replace('\n', "\r\n");
        let crlf: Vec<&[u8]> = crlf.as_bytes().chunks(5).collect();
        assert_eq!(run(&crlf).0, whole, "{name} with CRLF");
    }
}

#[test]
fn stream_emits_as_events_arrive() {
    let input = String::from_utf8(fixture("anthropic_inbound/stream_text.openai.sse")).unwrap();
    let chunks: Vec<String> = input.split_inclusive("\n\n").map(str::to_string).collect();
    let mut t = OpenAiToAnthropicStream::with_id("m", "msg_test".into());
    let names = |out: Vec<u8>| events(&out).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(t.feed(chunks[0].as_bytes())), ["message_start"]);
    assert_eq!(names(t.feed(chunks[1].as_bytes())), ["content_block_start", "content_block_delta"]);
    assert_eq!(names(t.feed(chunks[2].as_bytes())), ["content_block_delta"]);
    // finish_reason: the block closes, message_delta waits for the usage chunk.
    assert_eq!(names(t.feed(chunks[3].as_bytes())), ["content_block_stop"]);
    assert!(!t.completed());
    assert_eq!(names(t.feed(chunks[4].as_bytes())), ["message_delta", "message_stop"]);
    assert!(t.completed());
    assert!(t.feed(chunks[5].as_bytes()).is_empty(), "[DONE] after message_stop adds nothing");
    assert!(t.finish().is_empty());

    // Without a usage chunk, [DONE] sends message_delta (usage zero).
    let no_usage = format!("{}{}{}data: [DONE]\n\n", chunks[0], chunks[1], chunks[3]);
    let (out, t) = run(&[no_usage.as_bytes()]);
    let evs = events(&out);
    let (name, delta) = &evs[evs.len() - 2];
    assert_eq!(name, "message_delta");
    assert_eq!(delta["usage"], json!({ "input_tokens": 0, "output_tokens": 0 }));
    assert!(t.completed() && t.usage().is_none());
}

#[test]
fn stream_cut_short_is_an_error_event() {
    let input = String::from_utf8(fixture("anthropic_inbound/stream_text.openai.sse")).unwrap();
    let cut = &input[..input.find(r#""finish_reason":"stop""#).unwrap()];
    let (out, t) = run(&[cut.as_bytes()]);
    let evs = events(&out);
    let (name, err) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(err["error"]["type"], "api_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("ended before"), "{err}");
    assert_eq!(evs.iter().filter(|(n, _)| n == "error").count(), 1);
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    assert!(!t.completed());

    // finish_reason seen but neither usage nor [DONE]: the answer is complete all the same.
    let usage_at = input.find(r#""choices":[],"#).unwrap();
    let no_done = &input[..input[..usage_at].rfind("data: ").unwrap()];
    let (out, t) = run(&[no_done.as_bytes()]);
    assert_eq!(events(&out).last().unwrap().0, "message_stop");
    assert!(t.completed());
}

#[test]
fn stream_upstream_error_event() {
    let input = String::from_utf8(fixture("anthropic_inbound/stream_text.openai.sse")).unwrap();
    let head: String = input.split_inclusive("\n\n").take(2).collect();
    for (error, want) in [
        (json!({ "message": "Overloaded", "type": "upstream_error", "code": "overloaded" }), "overloaded_error"),
        (json!({ "message": "slow down", "type": "rate_limit_error" }), "rate_limit_error"),
        (json!({ "message": "boom", "type": "server_error" }), "api_error"),
    ] {
        let stream = format!("{head}data: {}\n\n{}", json!({ "error": error }), "data: [DONE]\n\n");
        let (out, t) = run(&[stream.as_bytes()]);
        let evs = events(&out);
        let (name, err) = evs.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(err["error"], json!({ "type": want, "message": error["message"] }));
        assert!(!t.completed());
    }
    let (out, _) = run(&[b"data: {not json\n\n"]);
    assert_eq!(events(&out)[0].0, "error");
}

/// Anthropic stream → OpenAI SSE (`anthropic.rs`) → Anthropic SSE (here): the same events, bar
/// `ping`, ids and the initial usage (OpenAI streams report usage only at the end).
#[test]
fn stream_round_trips_through_outbound_translation() {
    for name in ["stream_text.sse", "stream_tool_use.sse"] {
        let original = fixture(&format!("anthropic/{name}"));
        let mut outbound = Anthropic::default().stream_translator("m", true);
        let mut openai = outbound.feed(&original);
        openai.extend(outbound.finish());
        let (back, t) = run(&[&openai]);
        assert!(t.completed());
        let strip = |evs: Vec<(String, Value)>| -> Vec<(String, Value)> {
            evs.into_iter()
                .filter(|(n, _)| n != "ping")
                .map(|(n, mut v)| {
                    if n == "message_start" {
                        v["message"] = Value::Null;
                    }
                    if n == "message_delta" {
                        v["usage"] = Value::Null;
                    }
                    (n, v)
                })
                .collect()
        };
        let back_events = events(&back);
        let want = strip(events(&original));
        // Anthropic sends an empty `partial_json` delta first; the OpenAI side skips empty fragments.
        let want: Vec<_> = want.into_iter().filter(|(_, v)| v["delta"]["partial_json"] != "").collect();
        assert_eq!(strip(back_events.clone()), want, "{name}");
        let out_tokens =
            back_events.iter().find(|(n, _)| n == "message_delta").unwrap().1["usage"]["output_tokens"].clone();
        assert!(out_tokens == 15 || out_tokens == 89, "{name}: {out_tokens}");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and count_tokens

#[test]
fn error_body_types() {
    for (status, want) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        let v: Value = serde_json::from_slice(&error_body(status, "why")).unwrap();
        assert_eq!(v, json!({ "type": "error", "error": { "type": want, "message": "why" } }), "{status}");
    }
    let openai = br#"{"error":{"message":"budget exceeded for key","type":"rate_limit_error","code":"budget"}}"#;
    let v: Value = serde_json::from_slice(&error_from_openai(429, openai)).unwrap();
    assert_eq!(
        v,
        json!({ "type": "error", "error": { "type": "rate_limit_error", "message": "budget exceeded for key" } })
    );
    let v: Value = serde_json::from_slice(&error_from_openai(502, b"bad gateway")).unwrap();
    assert_eq!(v["error"], json!({ "type": "api_error", "message": "bad gateway" }));
    let v: Value = serde_json::from_slice(&error_from_openai(503, b"")).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
}

#[test]
fn count_tokens_estimate() {
    // 4 (request) + 4 + ceil(2/4)=1 (message "Hi")
    assert_eq!(count_tokens(base().to_string().as_bytes()).unwrap(), 9);
    let mut body = base();
    body["system"] = json!([{ "type": "text", "text": "12345678" }]); // + 4 + 2
    body["messages"][0]["content"] = json!([{ "type": "text", "text": "Hi" },
        { "type": "image", "source": { "type": "url", "url": "https://x/y.png" } }]); // + 1600
    body["tools"] = json!([{ "name": "abcd", "description": "", "input_schema": { "type": "object" } }]);
    // tool: 4 + 1 (name) + 0 + ceil(17/4)=5 (schema JSON)
    assert_eq!(count_tokens(body.to_string().as_bytes()).unwrap(), 9 + 6 + 1600 + 10);
    // The whole fixture: three images (4800) and about 170 tokens of text, messages and tools.
    let n = count_tokens(&fixture("anthropic_inbound/request.anthropic.json")).unwrap();
    assert!((4900..5050).contains(&n), "{n}");
    assert_eq!(count_tokens(b"{}").unwrap_err().message, "messages: Field required");
    assert_eq!(count_tokens(b"nope").unwrap_err().status, 400);
}
