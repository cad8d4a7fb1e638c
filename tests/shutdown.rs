//! SIGTERM: stop accepting, let in-flight requests finish (bounded by grace_period_secs), exit.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn wait_exit(gw: &mut Gateway, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = gw.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test]
async fn in_flight_request_completes_then_process_exits() {
    let mock = Mock::start(&["--latency-ms", "800"]);
    let mut gw = Gateway::start("  grace_period_secs: 10\n", &demo_body(&mock));
    let url = gw.url("/v1/chat/completions");
    let pending = tokio::spawn(async move { client().post(url).json(&chat("demo", "slow")).send().await });
    // SIGTERM only once the request is really in flight (the mock has it).
    assert!(eventually(Duration::from_secs(5), || async { mock.requests().await == 1 }).await);
    gw.signal("TERM");
    let resp = pending.await.unwrap().expect("in-flight request must be answered");
    assert_eq!(resp.status(), 200);
    // Exits soon after the drain, well before the 10 s grace period runs out.
    let status = wait_exit(&mut gw, Duration::from_secs(5)).expect("gateway did not exit after draining");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let mock = Mock::start(&["--latency-ms", "30000"]);
    let mut gw = Gateway::start("  grace_period_secs: 1\n", &demo_body(&mock));
    let url = gw.url("/v1/chat/completions");
    let _stuck = tokio::spawn(async move { client().post(url).json(&chat("demo", "stuck")).send().await });
    assert!(eventually(Duration::from_secs(5), || async { mock.requests().await == 1 }).await);
    gw.signal("TERM");
    assert!(wait_exit(&mut gw, Duration::from_secs(8)).is_some(), "gateway ignored its 1 s grace period");
}
