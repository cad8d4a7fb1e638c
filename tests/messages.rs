//! The Anthropic-compatible endpoint `POST /v1/messages` at the wire level: event sequence of a
//! stream, the cache shared with `/v1/chat/completions` and replayed as Anthropic events, and
//! every error in Anthropic's shape. (The official SDK runs against it in tests/sdk.rs.)

mod common;

use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\n\
         models:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ], retry: {{ max_attempts: 1 }} }}\n{extra}",
        mock.base_url()
    )
}

async fn messages(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().post(gw.url("/v1/messages")).header("anthropic-version", "2023-06-01").json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap_or_default())
}

/// (event name, data) of an Anthropic SSE body; asserts each name matches its data's `type`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let name = lines.next().unwrap().strip_prefix("event: ").unwrap_or_else(|| panic!("{e}")).to_string();
            let data: Value = serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

fn ask(prompt: &str, stream: bool) -> Value {
    json!({ "model": "demo", "max_tokens": 100, "stream": stream, "system": "Be brief.",
        "messages": [{ "role": "user", "content": prompt }] })
}

#[tokio::test]
async fn streams_follow_anthropics_event_sequence_and_replay_from_the_cache() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, "cache: { exact: { enabled: true } }\n"));
    let (status, headers, body) = messages(&gw, &ask("tell me about gateways", true), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-switchyard-cache"], "miss");
    let ev = events(&body);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert_eq!(names[1], "content_block_start");
    assert_eq!(&names[names.len() - 3..], &["content_block_stop", "message_delta", "message_stop"], "{body}");
    let (_, delta) = &ev[ev.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0, "{delta}");
    let text: String = ev.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert!(!text.is_empty());
    // Spend sees the provider's usage (not an estimate) for a /v1/messages stream.
    let rid = headers["x-request-id"].to_str().unwrap().to_string();
    let mut audit = None;
    let logged = eventually(std::time::Duration::from_secs(5), || {
        audit = gw.audit_lines().into_iter().find(|l| l["request_id"] == rid.as_str());
        let found = audit.is_some();
        async move { found }
    })
    .await;
    assert!(logged, "no audit line for {rid}");
    let audit = audit.unwrap();
    assert_eq!(audit["completion_tokens"], delta["usage"]["output_tokens"], "{audit}");
    assert_eq!(audit["estimated"], false, "{audit}");
    // The upstream got an OpenAI chat request.
    let last = mock.last().await;
    assert_eq!(last["path"], "/v1/chat/completions", "{last}");
    assert_eq!(last["stream"], true, "{last}");

    // Same request again: served from the cache, still Anthropic events, same text.
    let before = mock.requests().await;
    let (status, headers, replay) = messages(&gw, &ask("tell me about gateways", true), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-switchyard-cache"], "hit-exact");
    let replayed: String = events(&replay).iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(replayed, text);
    // And as a plain message.
    let (_, headers, plain) = messages(&gw, &ask("tell me about gateways", false), &[]).await;
    assert_eq!(headers["x-switchyard-cache"], "hit-exact");
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain["type"], "message");
    assert_eq!(plain["content"][0]["text"], text.as_str());
    assert_eq!(mock.requests().await, before, "both answered without the provider");
}

#[tokio::test]
async fn errors_use_anthropics_shape() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, ""));
    let check = |status: u16, body: &str, want_status: u16, want_type: &str| {
        assert_eq!(status, want_status, "{body}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["type"], "error", "{body}");
        assert_eq!(v["error"]["type"], want_type, "{body}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    };
    let mut no_max = ask("hi", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, _, body) = messages(&gw, &no_max, &[]).await;
    check(status, &body, 400, "invalid_request_error");
    assert!(body.contains("max_tokens"), "{body}");

    let mut unknown = ask("hi", false);
    unknown["model"] = json!("nope");
    let (status, _, body) = messages(&gw, &unknown, &[]).await;
    check(status, &body, 404, "not_found_error");

    let (status, headers, body) = messages(&gw, &ask("hi", false), &[("x-mock-fail-status", "429")]).await;
    check(status, &body, 429, "rate_limit_error");
    assert!(headers.get("retry-after").is_some());

    let resp = client().get(gw.url("/v1/messages")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    // A stream cut mid-way ends with an Anthropic error event, never message_stop.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the 429's Retry-After
    let (status, _, body) = messages(&gw, &ask("cut", true), &[("x-mock-cut-after-chunks", "3")]).await;
    assert_eq!(status, 200);
    let ev = events(&body);
    assert_eq!(ev.last().unwrap().0, "error", "{body}");
    assert!(!body.contains("message_stop"), "{body}");
}

#[tokio::test]
async fn keys_authenticate_by_x_api_key_or_bearer_and_count_tokens() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, "keys:\n  - { name: app, key: sk-app }\n"));
    let (status, _, body) = messages(&gw, &ask("hi", false), &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication_error"), "{body}");
    let (status, _, _) = messages(&gw, &ask("hi", false), &[("x-api-key", "sk-app")]).await;
    assert_eq!(status, 200);
    let (status, _, _) = messages(&gw, &ask("hi", false), &[("authorization", "Bearer sk-app")]).await;
    assert_eq!(status, 200);

    let resp = client()
        .post(gw.url("/v1/messages/count_tokens"))
        .header("x-api-key", "sk-app")
        .json(&json!({ "model": "demo", "messages": [{ "role": "user", "content": "one two three four five six" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let counted: Value = resp.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
}
