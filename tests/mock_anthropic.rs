//! The mock provider's Anthropic side (`POST /v1/messages`): auth and version headers, JSON and
//! SSE shapes, tool use, failures in Anthropic's error shape — and that the gateway's Anthropic
//! translation reads what the mock sends.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchyard::providers::anthropic::Anthropic;
use switchyard::providers::translate::WireFormat;

const KEY: &str = "sk-ant-test";

fn url(mock: &Mock) -> String {
    format!("{}/messages", mock.base_url())
}

fn request(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-mock", "max_tokens": 64, "stream": stream, "system": "Be brief.",
        "messages": [{ "role": "user", "content": prompt }],
    })
}

async fn post(mock: &Mock, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req =
        client().post(url(mock)).header("x-api-key", KEY).header("anthropic-version", "2023-06-01").json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// (event name, data) pairs of an Anthropic SSE body.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name.as_str(), "event name matches data type");
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn requires_key_and_version() {
    let mock = Mock::start(&["--require-key", KEY]);
    let resp = client()
        .post(url(&mock))
        .header("x-api-key", "wrong")
        .header("anthropic-version", "2023-06-01")
        .json(&request("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({ "type": "error", "error": { "type": "authentication_error", "message": "invalid x-api-key" } })
    );

    let resp = client().post(url(&mock)).header("x-api-key", KEY).json(&request("hi", false)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let mut no_max = request("hi", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let resp = post(&mock, &no_max, &[]).await;
    assert_eq!(resp.status(), 400);

    // A Bearer token is not Anthropic auth.
    let resp = client()
        .post(url(&mock))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&request("hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn json_answer_shape() {
    let mock = Mock::start(&["--require-key", KEY]);
    let resp = post(&mock, &request("hello there", false), &[]).await;
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-mock");
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!(v["content"][0]["type"], "text");
    let text = v["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("mock answer to: hello there"), "{text}");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"]["output_tokens"], 16);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let last = mock.last().await;
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["x_api_key"], KEY);
    assert_eq!(last["anthropic_version"], "2023-06-01");

    // max_tokens below the answer length: cut, with stop_reason max_tokens.
    let mut short = request("hello there", false);
    short["max_tokens"] = json!(4);
    let v: Value = post(&mock, &short, &[]).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 4);

    // The gateway's translation reads it.
    let openai: Value =
        serde_json::from_slice(&Anthropic::default().translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["choices"][0]["message"]["content"], text);
    assert_eq!(openai["choices"][0]["finish_reason"], "stop");
    assert_eq!(openai["usage"]["completion_tokens"], 16);
}

#[tokio::test]
async fn sse_shape_and_translation() {
    let mock = Mock::start(&[]);
    let json_text = {
        let v: Value = post(&mock, &request("stream me", false), &[]).await.json().await.unwrap();
        v["content"][0]["text"].as_str().unwrap().to_string()
    };
    let resp = post(&mock, &request("stream me", true), &[("x-mock-answer-tokens", "16")]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = vec!["message_start", "content_block_start", "ping"];
    want.extend(std::iter::repeat_n("content_block_delta", 16));
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, want);
    let start = &events[0].1["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, json_text);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 16);

    // Through the gateway's stream translator, in small pieces.
    let mut t = Anthropic::default().stream_translator("pub", true);
    let mut out = Vec::new();
    for piece in body.as_bytes().chunks(13) {
        out.extend(t.feed(piece));
    }
    out.extend(t.finish());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(stream_text(&out), json_text);
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert!(t.completed());
    assert_eq!(t.usage().unwrap().completion_tokens, 16);
}

#[tokio::test]
async fn streams_at_the_configured_rate() {
    let mock = Mock::start(&[]);
    let started = Instant::now();
    let resp =
        post(&mock, &request("pace", true), &[("x-mock-tokens-per-sec", "100"), ("x-mock-answer-tokens", "10")]).await;
    let body = resp.text().await.unwrap();
    // 16 events, 15 gaps of 10 ms.
    assert!(started.elapsed() >= Duration::from_millis(140), "{:?}", started.elapsed());
    assert_eq!(sse_events(&body).len(), 16);
}

fn weather_tool() -> Value {
    json!([{ "name": "get_weather", "description": "Weather for a city",
        "input_schema": { "type": "object", "properties": { "city": { "type": "string" },
            "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] } }, "required": ["city"] } }])
}

#[tokio::test]
async fn tool_use_answers() {
    let mock = Mock::start(&[]);
    // Tools offered but not asked for: plain text.
    let mut body = request("what's up?", false);
    body["tools"] = weather_tool();
    let v: Value = post(&mock, &body, &[]).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "end_turn");

    // The prompt names the tool.
    let mut body = request("please use get_weather for Paris", false);
    body["tools"] = weather_tool();
    let bytes = post(&mock, &body, &[]).await.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let call = &v["content"][1];
    assert_eq!(call["type"], "tool_use");
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({ "city": "mock-city", "unit": "celsius" }));
    let openai: Value =
        serde_json::from_slice(&Anthropic::default().translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(openai["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");

    // Forced by header, streamed: input_json_delta fragments rejoin to the input.
    let mut body = request("anything", true);
    body["tools"] = weather_tool();
    let text = post(&mock, &body, &[("x-mock-tool", "get_weather")]).await.text().await.unwrap();
    let events = sse_events(&text);
    let start = events.iter().find(|(n, d)| n == "content_block_start" && d["index"] == 1).unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["input"], json!({}));
    let args: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({ "city": "mock-city", "unit": "celsius" }));
    assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "tool_use");

    let mut t = Anthropic::default().stream_translator("pub", false);
    let mut out = t.feed(text.as_bytes());
    out.extend(t.finish());
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(r#""finish_reason":"tool_calls""#) && out.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn failures_in_anthropic_shape() {
    let mock = Mock::start(&[]);
    let resp = post(&mock, &request("x", false), &[("x-mock-fail-status", "429"), ("x-mock-retry-after", "7")]).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let resp = post(&mock, &request("x", true), &[("x-mock-fail-status", "529")]).await;
    assert_eq!(resp.status(), 529);
    let body = resp.bytes().await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["type"], "overloaded_error");
    assert_eq!(Anthropic::default().map_error(529, &body, None).status, 503);

    let resp = post(&mock, &request("x", false), &[("x-mock-fail-status", "500")]).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "api_error");

    // Mid-stream cut: the body errors; what arrived translates to an unfinished stream.
    let mut resp = post(&mock, &request("cut me", true), &[("x-mock-cut-after-chunks", "5")]).await;
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    let mut broke = false;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the connection is dropped, not ended cleanly");
    let text = String::from_utf8(got).unwrap();
    assert_eq!(sse_events(&text).len(), 5);
    let mut t = Anthropic::default().stream_translator("pub", false);
    let mut out = t.feed(text.as_bytes());
    out.extend(t.finish());
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("[DONE]") && out.contains(r#"{"error":"#));
    assert!(!t.completed());
    assert_eq!(mock.stats().await["streams_cut"], 1);
}
