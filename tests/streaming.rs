//! SSE streaming: chunks reach the client as the provider emits them, usage passes through,
//! cuts end with an SSE error event, and a client that leaves cancels the upstream stream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn stream_req(prompt: &str, include_usage: bool) -> Value {
    let mut v = chat("demo", prompt);
    v["stream"] = json!(true);
    if include_usage {
        v["stream_options"] = json!({ "include_usage": true });
    }
    v
}

/// Reads the whole SSE body, returning (arrival offset, bytes) per network chunk.
async fn read_chunks(resp: reqwest::Response) -> (Vec<(Duration, String)>, Option<String>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => out.push((start.elapsed(), String::from_utf8_lossy(&b).into_owned())),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

fn data_events(chunks: &[(Duration, String)]) -> Vec<String> {
    let all: String = chunks.iter().map(|(_, s)| s.as_str()).collect();
    all.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

#[tokio::test]
async fn chunks_arrive_incrementally_not_all_at_the_end() {
    let mock = Mock::start(&["--tokens-per-sec", "20", "--answer-tokens", "10"]);
    let gw = Gateway::start("", &demo_body(&mock));
    let resp =
        client().post(gw.url("/v1/chat/completions")).json(&stream_req("stream me", false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(resp.headers()["x-switchyard-provider"], "mock");
    let (chunks, err) = read_chunks(resp).await;
    assert!(err.is_none(), "{err:?}");
    // 10 tokens at 20/s span ~500 ms upstream; the first bytes must not wait for the last.
    let first = chunks.first().unwrap().0;
    let last = chunks.last().unwrap().0;
    assert!(chunks.len() >= 4, "expected separate chunks, got {}", chunks.len());
    assert!(last - first >= Duration::from_millis(300), "first {first:?} last {last:?}: buffered?");
    let events = data_events(&chunks);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text: String = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert!(text.starts_with("mock answer to: stream me"), "{text}");
    assert_eq!(mock.stats().await["streams_completed"], 1);
}

#[tokio::test]
async fn include_usage_chunk_passes_through() {
    let mock = Mock::start(&["--answer-tokens", "5"]);
    let gw = Gateway::start("", &demo_body(&mock));
    let resp = client().post(gw.url("/v1/chat/completions")).json(&stream_req("count", true)).send().await.unwrap();
    let (chunks, _) = read_chunks(resp).await;
    let events = data_events(&chunks);
    let usage_event: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_event["usage"]["completion_tokens"], 5);
    assert_eq!(usage_event["choices"].as_array().unwrap().len(), 0);
    assert_eq!(mock.last().await["stream"], true);
}

#[tokio::test]
async fn upstream_cut_mid_stream_ends_with_sse_error_event() {
    let mock = Mock::start(&["--cut-after-chunks", "3", "--answer-tokens", "10"]);
    let gw = Gateway::start("", &demo_body(&mock));
    let resp = client().post(gw.url("/v1/chat/completions")).json(&stream_req("cut", false)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (chunks, err) = read_chunks(resp).await;
    assert!(err.is_none(), "the gateway should end the stream cleanly: {err:?}");
    let all: String = chunks.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(data_events(&chunks).iter().filter(|e| e.contains("chat.completion.chunk")).count(), 3);
    assert!(all.trim_end().ends_with("}"), "{all}");
    let last: Value = serde_json::from_str(data_events(&chunks).last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!all.contains("[DONE]"));
    assert_eq!(mock.stats().await["streams_cut"], 1);
    // The gateway is still healthy for the next request.
    let ok = client().post(gw.url("/v1/chat/completions")).json(&chat("demo", "after")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let mock = Mock::start(&["--tokens-per-sec", "20", "--answer-tokens", "200"]);
    let gw = Gateway::start("", &demo_body(&mock));
    let resp = client().post(gw.url("/v1/chat/completions")).json(&stream_req("long", false)).send().await.unwrap();
    let mut stream = resp.bytes_stream();
    let _ = stream.next().await.unwrap().unwrap();
    drop(stream);
    let cancelled = eventually(Duration::from_secs(5), || async { mock.stats().await["streams_cancelled"] == 1 }).await;
    assert!(cancelled, "upstream kept streaming to a gone client: {}", mock.stats().await);
    assert_eq!(mock.stats().await["streams_completed"], 0);
}
