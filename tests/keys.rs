//! Virtual keys, budgets, rate limits and the durable ledger, end to end.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `demo` at $100 per million tokens both ways, so each mock answer (about 24 tokens) costs
/// about $0.0024 and a request with max_tokens 16 reserves about $0.004.
fn body(mock: &Mock, keys: &str) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\n\
         models:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ] }}\n  other: {{ targets: [ {{ provider: mock, model: mock-2 }} ] }}\n\
         pricing: {{ overrides: {{ demo: {{ input_per_mtok: 100.0, output_per_mtok: 100.0 }} }} }}\n{keys}",
        mock.base_url()
    )
}

async fn post(gw: &Gateway, key: Option<&str>, model: &str) -> reqwest::Response {
    let mut req = client().post(gw.url("/v1/chat/completions"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let mut b = chat(model, "spend some money");
    b["max_tokens"] = json!(16);
    req.json(&b).send().await.unwrap()
}

async fn spend_report(gw: &Gateway) -> Value {
    client().get(gw.admin_url("/admin/spend")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn keys_gate_access() {
    let mock = Mock::start(&[]);
    let keys = "keys:\n  - { name: svc, key: sk-svc-123, team: search, models: [demo] }\n  - { name: ops, key_sha256: \"d1b6a8e6d9f4ad1cd1e3b2c1a4d8c0d0a5c6e0c4c8f2b6b8b0a6f4b8d2e0c6a8\" }\n";
    let gw = Gateway::start("", &body(&mock, keys));
    assert_eq!(post(&gw, None, "demo").await.status(), 401);
    let r = post(&gw, Some("sk-wrong"), "demo").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    assert_eq!(post(&gw, Some("sk-svc-123"), "demo").await.status(), 200);
    let r = post(&gw, Some("sk-svc-123"), "other").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "model_not_allowed");
    // x-api-key works too; /v1/models lists only what the key may use.
    let r = client().get(gw.url("/v1/models")).header("x-api-key", "sk-svc-123").send().await.unwrap();
    let ids: Vec<String> = r.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["demo"]);
    assert_eq!(client().get(gw.url("/v1/models")).send().await.unwrap().status(), 401);
    // The provider never saw the client's key.
    assert_eq!(mock.last().await["authorization"], Value::Null);
    // Audit lines name the key and team, never the key value.
    let lines = std::fs::read_to_string(gw.audit_path()).unwrap_or_default();
    let ok = eventually(Duration::from_secs(3), || async {
        std::fs::read_to_string(gw.audit_path()).unwrap_or_default().contains("\"key\":\"svc\"")
    })
    .await;
    assert!(ok, "{lines}");
    assert!(!std::fs::read_to_string(gw.audit_path()).unwrap().contains("sk-svc-123"));
}

#[tokio::test]
async fn budget_stops_spend_within_one_request_also_under_concurrency() {
    let mock = Mock::start(&["--latency-ms", "150"]);
    let keys = "keys:\n  - { name: solo, key: sk-solo, budget: { usd: 0.01, period: daily } }\n  - { name: crowd, key: sk-crowd, team: t, budget: { usd: 0.01 } }\n";
    let gw = Gateway::start("", &body(&mock, keys));

    let mut ok = 0;
    let mut refused = None;
    for _ in 0..10 {
        let r = post(&gw, Some("sk-solo"), "demo").await;
        if r.status() == 200 {
            ok += 1;
        } else {
            refused = Some((r.status().as_u16(), r.json::<Value>().await.unwrap()));
        }
    }
    let (status, err) = refused.expect("the budget must stop some requests");
    assert_eq!(status, 429);
    assert_eq!(err["error"]["type"], "budget_exceeded");
    assert_eq!(err["error"]["code"], "budget_exceeded");
    assert!(err["error"]["reset_at"].as_str().unwrap().ends_with("T00:00:00Z"), "{err}");
    assert!(ok >= 2, "{ok} requests passed");

    // 50 at once against another $0.01 budget: reservations keep the total within one request.
    let url = gw.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut b = chat("demo", "spend some money");
                b["max_tokens"] = json!(16);
                client().post(url).bearer_auth("sk-crowd").json(&b).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&429));
    // Each answer is settled just after it is sent: wait for the books to catch up.
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let crowd_requests = |r: &Value| {
        r["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "crowd")
            .map_or(0, |k| k["requests"].as_u64().unwrap())
    };
    let settled = eventually(Duration::from_secs(5), || async { crowd_requests(&spend_report(&gw).await) == ok }).await;
    assert!(settled, "{}", spend_report(&gw).await);
    let report = spend_report(&gw).await;
    for k in report["keys"].as_array().unwrap() {
        let spent = k["spend_usd"].as_f64().unwrap();
        let one_request = 0.0024 * 1.5;
        assert!(spent <= 0.01 + one_request, "{} spent {spent}", k["name"]);
        assert!(spent > 0.0);
    }
    let crowd = report["keys"].as_array().unwrap().iter().find(|k| k["name"] == "crowd").unwrap().clone();
    assert_eq!(crowd["requests"].as_u64().unwrap(), statuses.iter().filter(|s| **s == 200).count() as u64);
    assert_eq!(crowd["team"], "t");
    assert!(report["period_start"].as_str().unwrap().ends_with("Z"));
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchyard_budget_remaining_usd{name=\"solo\",scope=\"key\"}"), "{metrics}");
}

#[tokio::test]
async fn rpm_and_tpm_limits_answer_429_with_retry_after() {
    let mock = Mock::start(&[]);
    let keys =
        "keys:\n  - { name: slow, key: sk-slow, limits: { rpm: 3 } }\n  - { name: thin, key: sk-thin, team: small }\n\
                teams:\n  small: { limits: { tpm: 100 } }\n";
    let gw = Gateway::start("", &body(&mock, keys));
    for _ in 0..3 {
        assert_eq!(post(&gw, Some("sk-slow"), "demo").await.status(), 200);
    }
    let r = post(&gw, Some("sk-slow"), "demo").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_exceeded");

    // Team TPM 100: one request reserves about 16 + body/4 tokens; a few pass, then 429.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&gw, Some("sk-thin"), "demo").await.status().as_u16());
    }
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&429), "{statuses:?}");
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchyard_rate_limited_total{limit="rpm",name="slow",scope="key"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"limit="tpm",name="small",scope="team""#));
}

#[tokio::test]
async fn spend_survives_kill_9() {
    let mock = Mock::start(&[]);
    let keys = "keys:\n  - { name: durable, key: sk-d, team: ops, budget: { usd: 100 } }\n";
    let mut gw = Gateway::start("", &body(&mock, keys));
    for _ in 0..3 {
        assert_eq!(post(&gw, Some("sk-d"), "demo").await.status(), 200);
    }
    // Settlement happens just after each answer is sent: wait until all three are on the books.
    let settled =
        eventually(Duration::from_secs(5), || async { spend_report(&gw).await["keys"][0]["requests"] == 3 }).await;
    assert!(settled, "{}", spend_report(&gw).await);
    let before = spend_report(&gw).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // the ledger syncs every second
    gw.crash_and_restart();
    let after = spend_report(&gw).await;
    assert_eq!(before["keys"], after["keys"]);
    assert_eq!(before["teams"], after["teams"]);
    assert_eq!(after["keys"][0]["requests"], 3);
    assert!(after["keys"][0]["spend_usd"].as_f64().unwrap() > 0.0);
}
