//! Usage and cost for every answer (streams too, asked for or not), and the audit log.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// Model `demo` priced at $1 / $2 per million tokens; provider `nousage` never asked for stream usage.
fn priced_body(mock: &Mock) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{0}\" }}\n  nousage: {{ kind: openai, base_url: \"{0}\", stream_usage: false }}\n\
         models:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ] }}\n  plain: {{ targets: [ {{ provider: nousage, model: mock-1 }} ] }}\n\
         pricing: {{ overrides: {{ demo: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }} }} }}\n",
        mock.base_url()
    )
}

async fn audit_for(gw: &Gateway, request_id: &str) -> Value {
    let mut found = None;
    let ok = eventually(Duration::from_secs(5), || {
        let lines = gw.audit_lines();
        found = lines.into_iter().find(|l| l["request_id"] == request_id);
        let hit = found.is_some();
        async move { hit }
    })
    .await;
    assert!(ok, "no audit line for {request_id}");
    found.unwrap()
}

async fn stream_text(gw: &Gateway, model: &str, include_usage: bool, rid: &str) -> String {
    let mut req = chat(model, "count my tokens");
    req["stream"] = json!(true);
    if include_usage {
        req["stream_options"] = json!({ "include_usage": true });
    }
    let resp =
        client().post(gw.url("/v1/chat/completions")).header("x-request-id", rid).json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut out = String::new();
    let mut s = resp.bytes_stream();
    while let Some(b) = s.next().await {
        out.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    out
}

#[tokio::test]
async fn every_answer_is_accounted_and_audited() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &priced_body(&mock));

    // Non-streaming: the mock's usage x the override price.
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "json-1")
        .json(&chat("demo", "count my tokens"))
        .send()
        .await
        .unwrap();
    let usage = resp.json::<Value>().await.unwrap()["usage"].clone();
    let a = audit_for(&gw, "json-1").await;
    assert_eq!(a["prompt_tokens"], usage["prompt_tokens"]);
    assert_eq!(a["completion_tokens"], 16);
    let expected = (usage["prompt_tokens"].as_f64().unwrap() * 1.0 + 16.0 * 2.0) / 1e6;
    assert!((a["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12, "{a}");
    assert_eq!(a["estimated"], false);
    for field in [
        "ts",
        "model",
        "provider",
        "upstream_model",
        "status",
        "cache",
        "attempts",
        "saved_usd",
        "latency_ms",
        "ttft_ms",
        "overhead_us",
        "key",
        "team",
    ] {
        assert!(a.get(field).is_some(), "audit field {field} missing: {a}");
    }

    // Streaming without include_usage: accounted exactly, and the client sees no usage chunk.
    let text = stream_text(&gw, "demo", false, "sse-1").await;
    assert!(!text.contains("\"usage\":{"), "client got a usage chunk it did not ask for: {text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let a = audit_for(&gw, "sse-1").await;
    assert_eq!((a["completion_tokens"].as_u64(), a["estimated"].as_bool()), (Some(16), Some(false)), "{a}");
    assert!(a["cost_usd"].as_f64().unwrap() > 0.0);

    // Streaming with include_usage: the client's own usage chunk arrives.
    let text = stream_text(&gw, "demo", true, "sse-2").await;
    assert!(text.contains("\"usage\":{"), "{text}");
    assert_eq!(audit_for(&gw, "sse-2").await["completion_tokens"], 16);

    // A provider we may not ask for usage: counted with the tokenizer, marked estimated.
    let text = stream_text(&gw, "plain", false, "sse-3").await;
    assert!(!text.contains("\"usage\":{"));
    let a = audit_for(&gw, "sse-3").await;
    assert_eq!(a["estimated"], true);
    assert!(a["completion_tokens"].as_u64().unwrap() >= 10, "{a}");

    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"switchyard_tokens_total{key="-",kind="completion",model="demo",team="-"} 48"#),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_spend_usd_total{"));
    assert!(metrics.contains(r#"switchyard_estimated_usage_total{model="plain",provider="nousage"} 1"#));
}

#[tokio::test]
async fn audit_bodies_are_redacted() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &priced_body(&mock));
    // Turn bodies on (audit settings need a restart: write the file, then restart on it).
    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("audit: { path:", "audit: { include_bodies: true, redact: true, path:");
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let text = text
        .replace(&format!("127.0.0.1:{}\"", gw.port), &format!("127.0.0.1:{port}\""))
        .replace(&format!("127.0.0.1:{}\"", gw.admin_port), &format!("127.0.0.1:{admin}\""))
        .replace(&gw.audit_path().display().to_string(), &dir.path().join("audit.jsonl").display().to_string());
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, text).unwrap();
    let gw2 = Gateway::start_with_file(dir, path, port, admin);
    let resp = client()
        .post(gw2.url("/v1/chat/completions"))
        .header("x-request-id", "pii-1")
        .json(&chat("demo", "email jane.doe@example.com about card 4111 1111 1111 1111"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let a = audit_for(&gw2, "pii-1").await;
    let request = a["request"].as_str().unwrap();
    assert!(request.contains("[email]") && request.contains("[card]"), "{request}");
    assert!(!request.contains("jane.doe") && !request.contains("4111"), "{request}");
}
