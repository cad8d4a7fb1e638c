//! Non-streaming proxying end to end: content, headers, model rewrite, credentials, large bodies.

mod common;

use common::*;
use serde_json::{json, Value};

fn keyed_body(mock: &Mock) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}/\", api_key: \"sk-provider\" }}\n\
         models:\n  demo:\n    targets:\n      - {{ provider: mock, model: mock-1 }}\n  \
         alias:\n    targets:\n      - {{ provider: mock, model: \"upstream/name\" }}\n",
        mock.base_url()
    )
}

#[tokio::test]
async fn chat_completion_round_trip_with_gateway_headers() {
    let mock = Mock::start(&["--require-key", "sk-provider"]);
    let gw = Gateway::start("", &keyed_body(&mock));
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("client-secret-key")
        .json(&chat("demo", "what is a switchyard"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["x-switchyard-provider"], "mock");
    assert_eq!(h["x-switchyard-model"], "mock-1");
    let overhead: u64 = h["x-switchyard-overhead-us"].to_str().unwrap().parse().unwrap();
    assert!(overhead > 0);
    let rid = h["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 36, "generated UUID, not the upstream's id: {rid}");
    assert_eq!(h["x-upstream-request-id"], "mock-req-id");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("mock answer to: what is a switchyard"), "{text}");
    assert_eq!(body["usage"]["completion_tokens"], 16);

    // The provider saw the provider key, never the client's, and our request id.
    let last = mock.last().await;
    assert_eq!(last["authorization"], "Bearer sk-provider");
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["host"], format!("127.0.0.1:{}", mock.port));
    assert_eq!(last["x_request_id"], rid);
}

#[tokio::test]
async fn client_request_id_is_echoed_and_model_is_rewritten() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &keyed_body(&mock));
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "client-id-42")
        .header("x-api-key", "also-not-forwarded")
        .json(&chat("alias", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-id-42");
    assert_eq!(resp.headers()["x-switchyard-model"], "upstream/name");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "upstream/name");
    let last = mock.last().await;
    assert_eq!(last["model"], "upstream/name");
    assert_eq!(last["x_request_id"], "client-id-42");
    assert_eq!(last["authorization"], "Bearer sk-provider");
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let c = client();
    let comp: Value = c
        .post(gw.url("/v1/completions"))
        .json(&json!({ "model": "demo", "prompt": "once upon", "max_tokens": 5 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(comp["object"], "text_completion");
    assert!(comp["choices"][0]["text"].as_str().unwrap().contains("once upon"));

    let emb: Value = c
        .post(gw.url("/v1/embeddings"))
        .json(&json!({ "model": "demo", "input": ["a", "b"], "dimensions": 4 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);
    assert_eq!(emb["data"][1]["embedding"].as_array().unwrap().len(), 4);

    let models: Value = c.get(gw.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "demo");
    assert_eq!(models["data"][0]["object"], "model");

    let health = c.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = c.get(gw.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn large_bodies_pass_through_exactly() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let c = client();
    // Over Pingora's 64 KiB retry buffer, and once more on the same keep-alive connection.
    for size in [200 * 1024, 2 * 1024 * 1024, 100] {
        let prompt = "x".repeat(size);
        let body = serde_json::to_vec(&chat("demo", &prompt)).unwrap();
        let resp = c.post(gw.url("/v1/chat/completions")).body(body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "size {size}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        // Byte for byte, except `"demo"` -> `"mock-1"` (two bytes longer).
        assert_eq!(mock.last().await["body_len"], body.len() + 2, "size {size}");
    }
}

#[tokio::test]
async fn chunked_request_bodies_are_read_whole() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let body = serde_json::to_vec(&chat("demo", "chunked hello")).unwrap();
    let resp = post_chunked(&gw, &body, 7).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("chunked hello"));
}
