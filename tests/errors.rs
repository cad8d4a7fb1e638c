//! Every error case answers in OpenAI's JSON error shape with the contract's status.

mod common;

use common::*;
use serde_json::{json, Value};

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body must be JSON");
    assert!(body["error"]["message"].is_string(), "not an OpenAI error: {body}");
    assert!(body["error"]["type"].is_string(), "not an OpenAI error: {body}");
    (status, body)
}

async fn post_raw(gw: &Gateway, body: &'static str) -> (u16, Value) {
    error_of(client().post(gw.url("/v1/chat/completions")).body(body).send().await.unwrap()).await
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let (s, b) = post_raw(&gw, "{\"model\": \"demo\", \"messages\": [").await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_json")));
    let (s, b) = post_raw(&gw, "{\"messages\": [{\"role\":\"user\",\"content\":\"x\"}]}").await;
    assert_eq!((s, b["error"]["param"].as_str()), (400, Some("model")));
    let (s, b) = post_raw(&gw, "{\"model\": \"demo\"}").await;
    assert_eq!((s, b["error"]["param"].as_str()), (400, Some("messages")));
    let (s, _) = post_raw(&gw, "").await;
    assert_eq!(s, 400);
    let (s, _) = post_raw(&gw, "{\"model\": \"demo\", \"messages\": [{}], \"stream\": \"yes\"}").await;
    assert_eq!(s, 400);
    // Nothing reached the provider.
    assert_eq!(mock.stats().await["requests"], 0);
}

#[tokio::test]
async fn unknown_model_gets_404_listing_known_models() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let resp = client().post(gw.url("/v1/chat/completions")).json(&chat("gpt-17", "x")).send().await.unwrap();
    let (s, b) = error_of(resp).await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["code"], "model_not_found");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("gpt-17") && msg.contains("demo"), "{msg}");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let (s, _) = error_of(client().get(gw.url("/v1/nope")).send().await.unwrap()).await;
    assert_eq!(s, 404);
    let (s, _) = error_of(client().get(gw.url("/v1/chat/completions")).send().await.unwrap()).await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn oversized_bodies_get_413_not_a_reset() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("  max_body_bytes: 1000\n", &demo_body(&mock));
    let big = serde_json::to_vec(&chat("demo", &"y".repeat(5000))).unwrap();
    // Declared by Content-Length.
    let resp = client().post(gw.url("/v1/chat/completions")).body(big.clone()).send().await.unwrap();
    let (s, b) = error_of(resp).await;
    assert_eq!((s, b["error"]["code"].as_str()), (413, Some("request_too_large")));
    // Chunked: only found out while reading.
    let resp = post_chunked(&gw, &big, 256).await;
    assert_eq!(error_of(resp).await.0, 413);
    // Under the limit still works.
    let ok = client().post(gw.url("/v1/chat/completions")).json(&chat("demo", "small")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(mock.stats().await["requests"], 1);
}

#[tokio::test]
async fn unreachable_upstream_gets_502() {
    let dead_port = free_port();
    let body = format!(
        "providers:\n  dead: {{ kind: openai, base_url: \"http://127.0.0.1:{dead_port}/v1\" }}\n\
         models:\n  demo: {{ targets: [ {{ provider: dead, model: m }} ] }}\n"
    );
    let gw = Gateway::start("", &body);
    let resp = client().post(gw.url("/v1/chat/completions")).json(&chat("demo", "x")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-request-id"));
    let (s, b) = error_of(resp).await;
    assert_eq!((s, b["error"]["code"].as_str()), (502, Some("upstream_unreachable")));
}

#[tokio::test]
async fn slow_upstream_gets_504() {
    let mock = Mock::start(&["--latency-ms", "3000"]);
    let body = format!(
        "providers:\n  slow: {{ kind: openai, base_url: \"{}\", timeouts: {{ first_byte_ms: 300 }} }}\n\
         models:\n  demo: {{ targets: [ {{ provider: slow, model: m }} ] }}\n",
        mock.base_url()
    );
    let gw = Gateway::start("", &body);
    let resp = client().post(gw.url("/v1/chat/completions")).json(&chat("demo", "x")).send().await.unwrap();
    let (s, b) = error_of(resp).await;
    assert_eq!((s, b["error"]["code"].as_str()), (504, Some("upstream_timeout")));
}

#[tokio::test]
async fn upstream_errors_pass_through_with_status_and_body() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    // Statuses outside `retry.on_status` are the provider's own answer: passed through as is.
    for (status, code) in [(400, "invalid_request"), (422, "mock_failure")] {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .header("x-mock-fail-status", status.to_string())
            .json(&chat("demo", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-switchyard-provider"], "mock");
        assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
        let (s, b) = error_of(resp).await;
        assert_eq!((s, b["error"]["code"].as_str()), (status, Some(code)));
    }
    // Except the provider refusing the gateway's own credentials: not the client's fault, a 502.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-mock-fail-status", "401")
        .json(&chat("demo", "x"))
        .send()
        .await
        .unwrap();
    let (s, b) = error_of(resp).await;
    assert_eq!(s, 502, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("HTTP 401"), "{b}");
}

#[tokio::test]
async fn model_without_usable_target_gets_503_naming_the_key() {
    let body = "providers:\n  paid: { kind: openai, base_url: \"https://api.openai.com/v1\", api_key: \"${SWITCHYARD_TEST_UNSET_KEY:-}\" }\n\
                models:\n  gpt: { targets: [ { provider: paid, model: gpt-4o } ] }\n";
    let gw = Gateway::start("", body);
    let resp = client().post(gw.url("/v1/chat/completions")).json(&chat("gpt", "x")).send().await.unwrap();
    let (s, b) = error_of(resp).await;
    assert_eq!(s, 503);
    assert!(b["error"]["message"].as_str().unwrap().contains("SWITCHYARD_TEST_UNSET_KEY"), "{b}");
    let ready = client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn garbage_never_kills_the_gateway() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let junk: [&[u8]; 5] = [
        b"\xff\xfe\x00",
        b"null",
        b"{\"model\":null,\"messages\":null}",
        b"{\"model\":\"demo\",\"messages\":[],\"x\":1}",
        b"[[[[[[[[",
    ];
    for j in junk {
        let resp = client().post(gw.url("/v1/chat/completions")).body(j.to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{:?}", String::from_utf8_lossy(j));
    }
    // Raw socket garbage too.
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let _ = s.write_all(b"NOT HTTP AT ALL\r\n\r\n");
    drop(s);
    let ok = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model":"demo","messages":[{"role":"user","content":"alive?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn retryable_statuses_become_one_aggregated_error() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    // A single target: nothing else to try, so the gateway gives up with the contract's status.
    let resp = post_chat(&gw, "demo", "x", &[("x-mock-fail-status", "500")]).await;
    let (s, b) = error_of(resp).await;
    assert_eq!(s, 502);
    assert!(b["error"]["message"].as_str().unwrap().contains("mock (mock-1): HTTP 500"), "{b}");

    let resp = post_chat(&gw, "demo", "x", &[("x-mock-fail-status", "429"), ("x-mock-retry-after", "7")]).await;
    assert_eq!(resp.headers()["retry-after"], "7");
    let (s, b) = error_of(resp).await;
    assert_eq!((s, b["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")));
    assert_eq!(b["error"]["attempts"], json!([{ "provider": "mock", "model": "mock-1", "status": 429 }]));

    // The 429's Retry-After cooled the only target down: the next request finds nothing usable.
    let (s, b) =
        error_of(client().post(gw.url("/v1/chat/completions")).json(&chat("demo", "x")).send().await.unwrap()).await;
    assert_eq!((s, b["error"]["code"].as_str()), (503, Some("no_usable_target")));
}
