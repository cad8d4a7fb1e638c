//! The semantic tier end to end, with the real model (installed by scripts/setup-model.sh):
//! paraphrases hit without reaching the provider, traps and other contexts miss, streams replay,
//! thresholds per request, restarts keep the vectors, and a missing model leaves the gateway
//! serving with the tier off.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn model_installed() -> bool {
    let dir = std::env::var_os("SWITCHYARD_MODEL_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/switchyard/models")
    });
    let present = dir.join("all-MiniLM-L6-v2-int8/model.onnx").exists();
    assert!(present || std::env::var_os("CI").is_none(), "CI must have the model (scripts/setup-model.sh)");
    if !present {
        eprintln!("skipping: no model in {} (run scripts/setup-model.sh)", dir.display());
    }
    present
}

fn semantic_body(mock: &Mock, dir: &std::path::Path, semantic: &str) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\n\
         models:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ] }}\n\
         pricing: {{ overrides: {{ demo: {{ input_per_mtok: 10.0, output_per_mtok: 10.0 }} }} }}\n\
         cache: {{ exact: {{ enabled: true }}, semantic: {{ {semantic} }}, snapshot_path: \"{}/cache.snapshot\" }}\n",
        mock.base_url(),
        dir.display()
    )
}

async fn readyz(gw: &Gateway) -> Value {
    client().get(gw.url("/readyz")).send().await.unwrap().json().await.unwrap()
}

/// The model loads off the request path after start; lookups before that are counted skips.
async fn wait_semantic_ready(gw: &Gateway) {
    let ready = eventually(Duration::from_secs(30), || async { readyz(gw).await["degraded"] == json!([]) }).await;
    assert!(ready, "semantic tier never became ready: {}", readyz(gw).await);
}

fn similarity(h: &reqwest::header::HeaderMap) -> f64 {
    h.get("x-switchyard-cache-similarity").expect("similarity header").to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn paraphrases_hit_and_traps_miss() {
    if !model_installed() {
        return;
    }
    let mock = Mock::start(&[]);
    let d = tempfile::tempdir().unwrap();
    let gw = Gateway::start("", &semantic_body(&mock, d.path(), "enabled: true, threshold: 0.85"));
    wait_semantic_ready(&gw).await;

    let (c1, _, a1) = ask(&gw, chat("demo", "How do I reset my password?"), &[]).await;
    assert_eq!(c1, "miss");
    let (c2, h2, a2) = ask(&gw, chat("demo", "how can I reset my password"), &[]).await;
    assert_eq!(c2, "hit-semantic", "{h2:?}");
    assert_eq!(mock.requests().await, 1, "a semantic hit never reaches the provider");
    let sim = h2["x-switchyard-cache-similarity"].to_str().unwrap();
    assert!(sim.len() == 6 && sim.starts_with("0."), "four decimals: {sim}");
    assert!(similarity(&h2) >= 0.85);
    let (v1, v2): (Value, Value) = (serde_json::from_str(&a1).unwrap(), serde_json::from_str(&a2).unwrap());
    assert_eq!(v1["choices"], v2["choices"]);
    assert_ne!(v1["id"], v2["id"]);

    // Traps: similar wording, different question. The gates keep them out.
    ask(&gw, chat("demo", "How do I enable two-factor authentication?"), &[]).await;
    let (c3, h3, _) = ask(&gw, chat("demo", "How do I disable two-factor authentication?"), &[]).await;
    assert_eq!(c3, "miss", "{h3:?}");
    ask(&gw, chat("demo", "I need a refund for order 1182"), &[]).await;
    assert_eq!(ask(&gw, chat("demo", "I need a refund for order 1183"), &[]).await.0, "miss");
    assert_eq!(mock.requests().await, 5);

    // The same question under another system prompt is another context: never a hit.
    let with_system = json!({ "model": "demo", "messages": [
        { "role": "system", "content": "Answer like a pirate." },
        { "role": "user", "content": "how can I reset my password" } ] });
    assert_eq!(ask(&gw, with_system, &[]).await.0, "miss");

    // A per-request threshold of 1 turns the paraphrase into a miss; `off` bypasses both tiers.
    let strict = [("x-switchyard-cache-threshold", "1")];
    assert_eq!(ask(&gw, chat("demo", "how could I reset my password"), &strict).await.0, "miss");
    assert_eq!(
        ask(&gw, chat("demo", "how can I reset my password"), &[("x-switchyard-cache", "off")]).await.0,
        "bypass"
    );
    assert_eq!(mock.requests().await, 8);

    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchyard_cache_lookups_total{result="hit",tier="semantic"} 1"#), "{metrics}");
    assert!(metrics.contains("switchyard_embed_batch_size_count"), "{metrics}");
    assert!(metrics.contains("switchyard_cache_semantic_up 1"), "{metrics}");
}

#[tokio::test]
async fn streamed_answers_replay_on_a_paraphrase_and_survive_a_restart() {
    if !model_installed() {
        return;
    }
    let mock = Mock::start(&["--answer-tokens", "10"]);
    let d = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start("", &semantic_body(&mock, d.path(), "enabled: true, threshold: 0.85"));
    wait_semantic_ready(&gw).await;
    let (c1, _, s1) = ask(&gw, streamed("What is the boiling point of water at sea level?"), &[]).await;
    assert_eq!(c1, "miss");
    let (c2, h2, s2) = ask(&gw, streamed("what is the boiling point of water at sea level"), &[]).await;
    assert_eq!(c2, "hit-semantic", "{h2:?}");
    assert!(h2["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(stream_text(&s1), stream_text(&s2));
    assert!(s2.trim_end().ends_with("data: [DONE]"));
    assert_eq!(mock.requests().await, 1);

    // Entries and their vectors are in the snapshot written on SIGTERM.
    gw.stop_and_restart();
    wait_semantic_ready(&gw).await;
    let (c3, _, j3) = ask(&gw, chat("demo", "What is the boiling point of water at sea level"), &[]).await;
    assert_eq!(c3, "hit-semantic");
    let v3: Value = serde_json::from_str(&j3).unwrap();
    assert_eq!(v3["choices"][0]["message"]["content"].as_str().unwrap(), stream_text(&s1));
    assert_eq!(mock.requests().await, 1);
}

#[tokio::test]
async fn a_missing_model_leaves_the_gateway_serving_with_the_tier_off() {
    let mock = Mock::start(&[]);
    let d = tempfile::tempdir().unwrap();
    let gw = Gateway::start("", &semantic_body(&mock, d.path(), "enabled: true, model_dir: \"/nonexistent/models\""));
    let degraded = eventually(Duration::from_secs(10), || async {
        readyz(&gw).await["degraded"].to_string().contains("semantic cache off")
    })
    .await;
    assert!(degraded, "{}", readyz(&gw).await);
    let ready = client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "degraded is still ready");
    assert_eq!(ask(&gw, chat("demo", "hello there"), &[]).await.0, "miss");
    // The exact tier still works.
    assert_eq!(ask(&gw, chat("demo", "hello there"), &[]).await.0, "hit-exact");
    assert_eq!(mock.requests().await, 1);
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchyard_cache_semantic_skips_total{reason="model_missing"} 1"#), "{metrics}");
    assert!(metrics.contains("switchyard_cache_semantic_up 0"), "{metrics}");
    assert!(gw.log().contains("semantic cache: OFF"), "{}", gw.log());
}
