//! Prometheus metrics on the admin listener.

mod common;

use common::*;

#[tokio::test]
async fn requests_are_counted_by_model_provider_and_status() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let c = client();
    for _ in 0..3 {
        assert_eq!(c.post(gw.url("/v1/chat/completions")).json(&chat("demo", "m")).send().await.unwrap().status(), 200);
    }
    let fail = c
        .post(gw.url("/v1/chat/completions"))
        .header("x-mock-fail-status", "500")
        .json(&chat("demo", "m"))
        .send()
        .await
        .unwrap();
    assert_eq!(fail.status(), 502, "a retryable 500 from the only target ends as the aggregated 502");
    assert_eq!(c.post(gw.url("/v1/chat/completions")).json(&chat("nope", "m")).send().await.unwrap().status(), 404);

    // Metrics are recorded after the response bytes leave: wait for the last one to land.
    let scrape = || async { c.get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let settled = eventually(std::time::Duration::from_secs(5), || async {
        let t = scrape().await;
        t.contains("switchyard_in_flight_requests 0") && t.contains(r#"status="404"} 1"#)
    })
    .await;
    assert!(settled, "{}", scrape().await);
    let text = scrape().await;
    assert!(text.contains(r#"switchyard_requests_total{model="demo",provider="mock",status="200"} 3"#), "{text}");
    assert!(text.contains(r#"switchyard_requests_total{model="demo",provider="switchyard",status="502"} 1"#), "{text}");
    assert!(text.contains(r#"switchyard_requests_total{model="-",provider="switchyard",status="404"} 1"#), "{text}");
    assert!(text.contains(r#"switchyard_request_duration_seconds_count{model="demo",provider="mock",status="200"} 3"#));
    assert!(text.contains(r#"switchyard_upstream_duration_seconds_count{model="demo",provider="mock",status="200"} 3"#));
    assert!(text.contains(r#"switchyard_ttft_seconds_count{model="demo",provider="mock"}"#), "{text}");
    assert!(text.contains("switchyard_config_reload_total"));
    assert!(text.contains("switchyard_in_flight_requests 0"), "{text}");
    assert!(
        text.contains(r#"switchyard_upstream_attempts_total{model="demo",outcome="500",provider="mock"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"switchyard_upstream_attempts_total{model="demo",outcome="ok",provider="mock"} 3"#));
    assert!(text.contains(r#"switchyard_circuit_state{model="demo",provider="mock",upstream_model="mock-1"} 0"#));
    assert!(text.contains(r#"switchyard_target_healthy{model="demo",provider="mock",upstream_model="mock-1"} 1"#));
}
