//! The exact cache end to end: hits never reach the provider, streams are replayed as streams
//! (and converted across modes), incomplete answers are never stored, client controls, scopes,
//! savings, and persistence across restarts.

mod common;

use common::*;
use serde_json::{json, Value};

fn cached_body(mock: &Mock, dir_hint: &str, extra: &str) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\n\
         models:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ] }}\n\
         pricing: {{ overrides: {{ demo: {{ input_per_mtok: 10.0, output_per_mtok: 10.0 }} }} }}\n\
         cache: {{ exact: {{ enabled: true, ttl_secs: 600 }}, semantic: {{ enabled: false }}, snapshot_path: \"{dir_hint}/cache.snapshot\" }}\n{extra}",
        mock.base_url()
    )
}

fn snap_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn exact_hits_never_reach_the_provider() {
    let mock = Mock::start(&[]);
    let d = snap_dir();
    let gw = Gateway::start("", &cached_body(&mock, &d.path().display().to_string(), ""));
    let (c1, _, a1) = ask(&gw, chat("demo", "what is the capital of France"), &[]).await;
    assert_eq!(c1, "miss");
    // Same request, keys reordered and spaced differently: a hit, answered without the mock.
    let reordered =
        json!({ "messages": [{ "content": "what is the capital of France", "role": "user" }], "model": "demo" });
    let (c2, h2, a2) = ask(&gw, reordered, &[]).await;
    assert_eq!(c2, "hit-exact");
    assert_eq!(mock.requests().await, 1);
    let (v1, v2): (Value, Value) = (serde_json::from_str(&a1).unwrap(), serde_json::from_str(&a2).unwrap());
    assert_eq!(v1["choices"], v2["choices"]);
    assert_eq!(v1["usage"], v2["usage"]);
    assert_ne!(v1["id"], v2["id"], "a replay gets a fresh id");
    assert!(h2.contains_key("x-request-id"));
    // A different question misses.
    assert_eq!(ask(&gw, chat("demo", "what is the capital of Italy"), &[]).await.0, "miss");
    assert_eq!(mock.requests().await, 2);
    // The hit saved the original's cost (recorded just after the answer is sent).
    let scrape = || async { client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let saved = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("switchyard_saved_usd_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(eventually(std::time::Duration::from_secs(5), || async { saved(&scrape().await) > 0.0 }).await);
    let metrics = scrape().await;
    assert!(metrics.contains(r#"switchyard_cache_lookups_total{result="hit",tier="exact"} 1"#), "{metrics}");
}

#[tokio::test]
async fn streams_are_recorded_and_replayed_in_either_mode() {
    let mock = Mock::start(&["--answer-tokens", "12"]);
    let d = snap_dir();
    let gw = Gateway::start("", &cached_body(&mock, &d.path().display().to_string(), ""));
    let (c1, _, s1) = ask(&gw, streamed("tell me a story"), &[]).await;
    assert_eq!(c1, "miss");
    let (c2, h2, s2) = ask(&gw, streamed("tell me a story"), &[]).await;
    assert_eq!(c2, "hit-exact");
    assert!(h2["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(stream_text(&s1), stream_text(&s2));
    assert!(s2.trim_end().ends_with("data: [DONE]"));
    assert!(!s2.contains("\"usage\":{"), "no usage chunk unless asked for");
    // The same entry serves a plain request, synthesised.
    let (c3, _, j3) = ask(&gw, chat("demo", "tell me a story"), &[]).await;
    assert_eq!(c3, "hit-exact");
    let v3: Value = serde_json::from_str(&j3).unwrap();
    assert_eq!(v3["choices"][0]["message"]["content"].as_str().unwrap(), stream_text(&s1));
    assert_eq!(v3["usage"]["completion_tokens"], 12);
    // And the reverse: a plain entry serves a streaming request.
    ask(&gw, chat("demo", "plain first"), &[]).await;
    let (c4, _, s4) = ask(&gw, streamed("plain first"), &[]).await;
    assert_eq!(c4, "hit-exact");
    assert!(stream_text(&s4).starts_with("mock answer to: plain first"));
    assert_eq!(mock.requests().await, 2);
}

#[tokio::test]
async fn interrupted_streams_are_not_stored_and_controls_work() {
    let mock = Mock::start(&[]);
    let d = snap_dir();
    let gw = Gateway::start("", &cached_body(&mock, &d.path().display().to_string(), ""));
    let cut = [("x-mock-cut-after-chunks", "3")];
    let (_, _, broken) = ask(&gw, streamed("cut me"), &cut).await;
    assert!(broken.contains("\"error\""));
    assert_eq!(ask(&gw, streamed("cut me"), &[]).await.0, "miss", "a broken stream was stored");
    assert_eq!(mock.requests().await, 2);

    // off: bypass both ways; refresh: skip the lookup, store the new answer.
    assert_eq!(ask(&gw, chat("demo", "ctl"), &[("x-switchyard-cache", "off")]).await.0, "bypass");
    assert_eq!(ask(&gw, chat("demo", "ctl"), &[]).await.0, "miss");
    assert_eq!(ask(&gw, chat("demo", "ctl"), &[]).await.0, "hit-exact");
    assert_eq!(ask(&gw, chat("demo", "ctl"), &[("x-switchyard-cache", "refresh")]).await.0, "miss");
    assert_eq!(ask(&gw, chat("demo", "ctl"), &[]).await.0, "hit-exact");
    assert_eq!(mock.requests().await, 5);
    // An upstream error is never stored.
    let failing = [("x-mock-fail-status", "400")];
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header(failing[0].0, failing[0].1)
        .json(&chat("demo", "err"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(ask(&gw, chat("demo", "err"), &[]).await.0, "miss");
}

#[tokio::test]
async fn teams_never_share_answers() {
    let mock = Mock::start(&[]);
    let d = snap_dir();
    let keys = "keys:\n  - { name: a, key: sk-a, team: red }\n  - { name: b, key: sk-b, team: blue }\n  - { name: c, key: sk-c, team: red }\n";
    let gw = Gateway::start("", &cached_body(&mock, &d.path().display().to_string(), keys));
    let q = chat("demo", "shared question");
    assert_eq!(ask(&gw, q.clone(), &[("authorization", "Bearer sk-a")]).await.0, "miss");
    assert_eq!(ask(&gw, q.clone(), &[("authorization", "Bearer sk-b")]).await.0, "miss", "other team");
    assert_eq!(ask(&gw, q.clone(), &[("authorization", "Bearer sk-c")]).await.0, "hit-exact", "same team");
}

#[tokio::test]
async fn restart_keeps_the_cache_and_a_corrupt_snapshot_is_ignored() {
    let mock = Mock::start(&[]);
    let d = snap_dir();
    let mut gw = Gateway::start("", &cached_body(&mock, &d.path().display().to_string(), ""));
    assert_eq!(ask(&gw, chat("demo", "remember me"), &[]).await.0, "miss");
    gw.stop_and_restart();
    assert_eq!(ask(&gw, chat("demo", "remember me"), &[]).await.0, "hit-exact");
    assert_eq!(mock.requests().await, 1);

    gw.signal("TERM");
    while gw.child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let snap = d.path().join("cache.snapshot");
    let mut data = std::fs::read(&snap).unwrap();
    let n = data.len();
    data[n - 3] ^= 0x55;
    std::fs::write(&snap, data).unwrap();
    gw.crash_and_restart();
    assert!(gw.log().contains("ignoring snapshot"), "{}", gw.log());
    assert_eq!(ask(&gw, chat("demo", "remember me"), &[]).await.0, "miss");
}
