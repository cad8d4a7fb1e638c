//! Routing and resilience end to end, with several mock providers: weighted split, retries on
//! another target, fallback models, circuit breaking, Retry-After, health checks, pins,
//! least-latency, and reloads under load.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn provider(name: &str, mock: &Mock, extra: &str) -> String {
    format!("  {name}: {{ kind: openai, base_url: \"{}\"{extra} }}\n", mock.base_url())
}

async fn send(gw: &Gateway, model: &str, prompt: &str) -> reqwest::Response {
    post_chat(gw, model, prompt, &[]).await
}

#[tokio::test]
async fn weighted_split_holds_within_ten_percent() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let body = format!(
        "providers:\n{}{}models:\n  m: {{ targets: [ {{ provider: a, model: x, weight: 3 }}, {{ provider: b, model: y, weight: 1 }} ] }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body);
    for i in 0..1000 {
        assert_eq!(send(&gw, "m", &format!("q{i}")).await.status(), 200);
    }
    let (na, nb) = (a.requests().await as f64, b.requests().await as f64);
    assert_eq!(na + nb, 1000.0);
    assert!((na / 750.0 - 1.0).abs() <= 0.10, "a got {na}, expected 750 ± 10%");
    assert!((nb / 250.0 - 1.0).abs() <= 0.10, "b got {nb}, expected 250 ± 10%");
}

#[tokio::test]
async fn failed_target_is_retried_on_another_with_the_whole_body() {
    let a = Mock::start(&["--fail-status", "503"]);
    let b = Mock::start(&[]);
    let body = format!(
        "providers:\n{}{}models:\n  m:\n    strategy: round-robin\n    targets: [ {{ provider: a, model: x }}, {{ provider: b, model: y }} ]\n    retry: {{ max_attempts: 3, backoff_ms: 0 }}\n    circuit_breaker: {{ consecutive_failures: 100 }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body);
    // A 100 KB prompt, so the retry must resend more than Pingora's 64 KiB retry buffer holds.
    let prompt = "z".repeat(100 * 1024);
    let request = serde_json::to_vec(&chat("m", &prompt)).unwrap();
    let mut saw_retry = false;
    for _ in 0..4 {
        let resp = client().post(gw.url("/v1/chat/completions")).body(request.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
        if resp.headers()["x-switchyard-attempts"] == "2" {
            saw_retry = true;
            // b received the whole body, model rewritten from "m" to "y" (same length).
            assert_eq!(b.last().await["body_len"], request.len());
            assert_eq!(b.last().await["model"], "y");
        }
        let v: Value = resp.json().await.unwrap();
        assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("zzzz"));
    }
    assert!(saw_retry, "round-robin must have sent at least one first try to the failing target");
    assert!(a.requests().await >= 1);
}

#[tokio::test]
async fn fallback_model_serves_when_every_target_fails_and_errors_list_attempts() {
    let a = Mock::start(&["--fail-status", "500"]);
    let dead = free_port();
    let c = Mock::start(&[]);
    let body = format!(
        "providers:\n{}  dead: {{ kind: openai, base_url: \"http://127.0.0.1:{dead}/v1\" }}\n{}models:\n  \
         main:\n    targets: [ {{ provider: a, model: x }}, {{ provider: dead, model: x }} ]\n    fallbacks: [backup]\n    retry: {{ max_attempts: 4, backoff_ms: 5 }}\n  \
         backup: {{ targets: [ {{ provider: c, model: z }} ] }}\n  \
         doomed:\n    targets: [ {{ provider: a, model: x }}, {{ provider: dead, model: x }} ]\n    retry: {{ max_attempts: 4, backoff_ms: 5 }}\n",
        provider("a", &a, ""),
        provider("c", &c, "")
    );
    let gw = Gateway::start("", &body);
    let resp = send(&gw, "main", "fall back please").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-fallback"], "backup");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "3");
    assert_eq!(resp.headers()["x-switchyard-provider"], "c");
    assert_eq!(c.last().await["model"], "z");

    // No fallback: one clear error naming every attempt.
    let resp = send(&gw, "doomed", "x").await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    let err: Value = resp.json().await.unwrap();
    let attempts = err["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{err}");
    let mut providers: Vec<&str> = attempts.iter().map(|a| a["provider"].as_str().unwrap()).collect();
    providers.sort();
    assert_eq!(providers, ["a", "dead"]);
    assert!(attempts.iter().any(|a| a["status"] == 500));
    assert!(attempts.iter().any(|a| a["error"].is_string()));
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("a (x): HTTP 500") && msg.contains("dead (x)"), "{msg}");
}

#[tokio::test]
async fn retry_after_cools_down_only_that_target() {
    let a = Mock::start(&["--fail-status", "429", "--retry-after", "30"]);
    let b = Mock::start(&[]);
    let body = format!(
        "providers:\n{}{}models:\n  m:\n    strategy: round-robin\n    targets: [ {{ provider: a, model: x }}, {{ provider: b, model: y }} ]\n    retry: {{ backoff_ms: 0 }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body);
    for _ in 0..20 {
        assert_eq!(send(&gw, "m", "x").await.status(), 200);
    }
    assert_eq!(a.requests().await, 1, "a said Retry-After: 30 and must not be asked again");
    let health: Value = client().get(gw.admin_url("/admin/health")).send().await.unwrap().json().await.unwrap();
    let targets = health["models"]["m"]["targets"].as_array().unwrap();
    let ta = targets.iter().find(|t| t["provider"] == "a").unwrap();
    assert_eq!(ta["circuit"], "open");
    assert!(ta["open_remaining_ms"].as_u64().unwrap() > 25_000);
    assert_eq!(targets.iter().find(|t| t["provider"] == "b").unwrap()["circuit"], "closed");
}

#[tokio::test]
async fn everything_rate_limited_gives_429_with_smallest_retry_after() {
    let a = Mock::start(&["--fail-status", "429", "--retry-after", "20"]);
    let b = Mock::start(&["--fail-status", "429", "--retry-after", "4"]);
    let body = format!(
        "providers:\n{}{}models:\n  m:\n    targets: [ {{ provider: a, model: x }}, {{ provider: b, model: y }} ]\n    retry: {{ backoff_ms: 0 }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body);
    let resp = send(&gw, "m", "x").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "4");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["attempts"].as_array().unwrap().len(), 2);
    // Both are cooling down now: nothing usable, 503 without calling either.
    let resp = send(&gw, "m", "x").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(a.requests().await + b.requests().await, 2);
}

#[tokio::test]
async fn dead_target_leaves_rotation_and_health_check_brings_it_back() {
    let a = Mock::start(&[]);
    let b_port = free_port();
    let b = Mock::start_on(b_port, &[]);
    let hc = ", health_check: { path: \"/models\", interval_secs: 1, timeout_ms: 300, failures: 2, successes: 1 }";
    let body = format!(
        "providers:\n{}  b: {{ kind: openai, base_url: \"http://127.0.0.1:{b_port}/v1\"{hc} }}\nmodels:\n  m:\n    strategy: round-robin\n    targets: [ {{ provider: a, model: x }}, {{ provider: b, model: y }} ]\n    retry: {{ backoff_ms: 0 }}\n    circuit_breaker: {{ consecutive_failures: 2, cooldown_secs: 1 }}\n",
        provider("a", &a, hc),
    );
    let gw = Gateway::start("", &body);
    for _ in 0..10 {
        assert_eq!(send(&gw, "m", "x").await.status(), 200);
    }
    assert!(b.requests().await >= 4);
    drop(b); // the provider dies

    // Clients never see the failure: each is retried on a. After the breaker opens, b gets no tries.
    for _ in 0..20 {
        assert_eq!(send(&gw, "m", "x").await.status(), 200);
    }
    let unhealthy = eventually(Duration::from_secs(6), || async {
        let h: Value = client().get(gw.admin_url("/admin/health")).send().await.unwrap().json().await.unwrap();
        h["providers"]["b"]["healthy"] == false
    })
    .await;
    assert!(unhealthy, "health check never marked b unhealthy");
    let text = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let errors_before: u64 = text
        .lines()
        .find(|l| l.starts_with("switchyard_upstream_attempts_total{model=\"m\",outcome=\"error\",provider=\"b\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!((2..=3).contains(&errors_before), "b was tried {errors_before} times while dead");

    // Back at the same address: the probe brings it back and traffic resumes.
    let b = Mock::start_on(b_port, &[]);
    let healthy = eventually(Duration::from_secs(6), || async {
        let h: Value = client().get(gw.admin_url("/admin/health")).send().await.unwrap().json().await.unwrap();
        h["providers"]["b"]["healthy"] == true
    })
    .await;
    assert!(healthy, "health check never brought b back");
    tokio::time::sleep(Duration::from_millis(1100)).await; // breaker cooldown
    for _ in 0..10 {
        assert_eq!(send(&gw, "m", "x").await.status(), 200);
    }
    assert!(b.requests().await >= 3, "b got {} requests after recovering", b.requests().await);
}

#[tokio::test]
async fn pinned_provider_is_honoured_or_rejected() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let body = format!(
        "providers:\n{}{}models:\n  m: {{ targets: [ {{ provider: a, model: x }}, {{ provider: b, model: y }} ] }}\n  only_a: {{ targets: [ {{ provider: a, model: x }} ] }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body);
    for _ in 0..5 {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .header("x-switchyard-provider", "b")
            .json(&chat("m", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-switchyard-provider"], "b");
    }
    assert_eq!(a.requests().await, 0);
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-switchyard-provider", "b")
        .json(&chat("only_a", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`b`") && msg.contains("`only_a`"), "{msg}");
}

#[tokio::test]
async fn least_latency_moves_traffic_to_the_fast_target() {
    let fast = Mock::start(&[]);
    let slow = Mock::start(&["--latency-ms", "60"]);
    let body = format!(
        "providers:\n{}{}models:\n  m:\n    strategy: least-latency\n    targets: [ {{ provider: fast, model: x }}, {{ provider: slow, model: y }} ]\n",
        provider("fast", &fast, ""),
        provider("slow", &slow, "")
    );
    let gw = Gateway::start("", &body);
    for _ in 0..80 {
        assert_eq!(send(&gw, "m", "x").await.status(), 200);
    }
    let (nf, ns) = (fast.requests().await, slow.requests().await);
    assert!(ns >= 2, "exploration must keep measuring the slow target ({ns})");
    // The slow target gets exploration traffic (~1/16) plus the first measurements; a stall on
    // the fast one may cost it a few more, but most traffic must move.
    assert!(nf >= 3 * ns, "fast {nf} vs slow {ns}");
}

#[tokio::test]
async fn reload_under_traffic_keeps_in_flight_requests_working() {
    let a = Mock::start(&["--tokens-per-sec", "20", "--answer-tokens", "12"]);
    let b = Mock::start(&[]);
    let body_a = format!(
        "providers:\n{}{}models:\n  m: {{ targets: [ {{ provider: a, model: x }} ] }}\n",
        provider("a", &a, ""),
        provider("b", &b, "")
    );
    let gw = Gateway::start("", &body_a);
    let url = gw.url("/v1/chat/completions");
    let mut req = chat("m", "long one");
    req["stream"] = json!(true);
    let in_flight =
        tokio::spawn(async move { client().post(url).json(&req).send().await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Swap the model's only target while the stream is running.
    gw.write_config("", &body_a.replace("provider: a, model: x", "provider: b, model: y"));
    let moved = eventually(Duration::from_secs(5), || async {
        send(&gw, "m", "x").await.headers()["x-switchyard-provider"] == "b"
    })
    .await;
    assert!(moved);
    let text = in_flight.await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "in-flight stream broken by reload: {text}");
    assert_eq!(a.stats().await["streams_completed"], 1);
}

#[tokio::test]
async fn unresolvable_provider_is_a_failed_try_not_a_dead_end() {
    let ok = Mock::start(&[]);
    let body = format!(
        "providers:\n  ghost: {{ kind: openai, base_url: \"http://no-such-host.invalid/v1\" }}\n{}models:\n  m:\n    strategy: round-robin\n    targets: [ {{ provider: ghost, model: x }}, {{ provider: ok, model: y }} ]\n    retry: {{ backoff_ms: 0 }}\n    circuit_breaker: {{ consecutive_failures: 100 }}\n",
        provider("ok", &ok, "")
    );
    let gw = Gateway::start("", &body);
    let mut retried = false;
    for _ in 0..4 {
        let resp = send(&gw, "m", "x").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchyard-provider"], "ok");
        retried |= resp.headers()["x-switchyard-attempts"] == "2";
    }
    assert!(retried);
}
