//! Hot reload: file edits (in place, rename-over, symlink swap), SIGHUP and POST /admin/reload;
//! a broken edit keeps the old config live and is reported.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn two_models(mock: &Mock, second: &str) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  demo: {{ targets: [ {{ provider: mock, model: mock-1 }} ] }}\n  {second}: {{ targets: [ {{ provider: mock, model: mock-2 }} ] }}\n",
        mock.base_url()
    )
}

async fn status_for(gw: &Gateway, model: &str) -> u16 {
    client().post(gw.url("/v1/chat/completions")).json(&chat(model, "x")).send().await.unwrap().status().as_u16()
}

async fn admin_config(gw: &Gateway) -> Value {
    client().get(gw.admin_url("/admin/config")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn edits_apply_and_broken_edits_are_rejected() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    assert_eq!(status_for(&gw, "fresh").await, 404);

    // A valid edit in place: the new model appears without a restart.
    gw.write_config("", &two_models(&mock, "fresh"));
    assert!(eventually(Duration::from_secs(10), || async { status_for(&gw, "fresh").await == 200 }).await);
    let cfg = admin_config(&gw).await;
    assert_eq!(cfg["version"], 2);
    assert!(cfg["last_error"].is_null());
    assert!(cfg["loaded_at"].as_str().unwrap().ends_with('Z'));

    // A broken edit (type error on a known line): old config stays live, error reported with its line.
    let broken = format!("{}  oops: {{ targets: \"not a list\" }}\n", two_models(&mock, "fresh"));
    gw.write_config("", &broken);
    let reported =
        eventually(Duration::from_secs(10), || async { !admin_config(&gw).await["last_error"].is_null() }).await;
    assert!(reported, "broken edit not reported");
    let cfg = admin_config(&gw).await;
    assert_eq!(cfg["version"], 2);
    let line = cfg["last_error"]["line"].as_u64().unwrap();
    assert_eq!(line, 10, "{}", cfg["last_error"]);
    assert_eq!(status_for(&gw, "fresh").await, 200);
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchyard_config_reload_total{result=\"error\"} 1"), "{metrics}");
    assert!(metrics.contains("switchyard_config_reload_total{result=\"ok\"} 1"));
    assert!(gw.log().contains("config reload rejected"));

    // An unknown reference is rejected too, naming model and provider.
    gw.write_config(
        "",
        &format!("{}  ghosted: {{ targets: [ {{ provider: ghost, model: x }} ] }}\n", two_models(&mock, "fresh")),
    );
    let named = eventually(Duration::from_secs(10), || async {
        admin_config(&gw).await["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ghost") && m.contains("ghosted"))
    })
    .await;
    assert!(named, "{}", admin_config(&gw).await);

    // Fixing the file clears the error.
    gw.write_config("", &two_models(&mock, "fixed"));
    assert!(eventually(Duration::from_secs(10), || async { status_for(&gw, "fixed").await == 200 }).await);
    assert!(admin_config(&gw).await["last_error"].is_null());
    assert_eq!(status_for(&gw, "fresh").await, 404);
}

#[tokio::test]
async fn rename_over_and_symlink_swaps_are_seen() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    // Editor style: write a temp file, rename it over the config.
    let tmp = gw.dir.path().join(".gateway.yaml.tmp");
    std::fs::write(&tmp, config_with(gw.port, gw.admin_port, "", &two_models(&mock, "renamed"))).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
    assert!(eventually(Duration::from_secs(10), || async { status_for(&gw, "renamed").await == 200 }).await);

    // Kubernetes ConfigMap style: the config is a symlink whose target is swapped.
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.yaml");
    let v2 = dir.path().join("v2.yaml");
    let port = free_port();
    let admin = free_port();
    std::fs::write(&v1, config_with(port, admin, "", &demo_body(&mock))).unwrap();
    std::fs::write(&v2, config_with(port, admin, "", &two_models(&mock, "swapped"))).unwrap();
    let link = dir.path().join("gateway.yaml");
    std::os::unix::fs::symlink(&v1, &link).unwrap();
    let gw2 = Gateway::start_with_file(dir, link.clone(), port, admin);
    let tmp_link = gw2.dir.path().join("..tmp_link");
    std::os::unix::fs::symlink(&v2, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &link).unwrap();
    assert!(eventually(Duration::from_secs(10), || async { status_for(&gw2, "swapped").await == 200 }).await);
}

#[tokio::test]
async fn sighup_and_admin_reload() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));

    // Admin reload of a broken file: 422 with the line, old config still live.
    gw.write_config("", "providers: [oops\n");
    let resp = client().post(gw.admin_url("/admin/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["line"].as_u64().is_some(), "{err}");
    assert_eq!(status_for(&gw, "demo").await, 200);

    gw.write_config("", &two_models(&mock, "via_admin"));
    let resp = client().post(gw.admin_url("/admin/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(status_for(&gw, "via_admin").await, 200);

    // SIGHUP re-reads the file (same path as a watch event).
    gw.write_config("", &two_models(&mock, "via_hup"));
    gw.signal("HUP");
    assert!(eventually(Duration::from_secs(10), || async { status_for(&gw, "via_hup").await == 200 }).await);
    assert!(gw.log().contains("SIGHUP") || gw.log().contains("config reloaded"));
}

#[tokio::test]
async fn admin_config_redacts_secrets() {
    let mock = Mock::start(&[]);
    let body = format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\", api_key: \"sk-very-secret\", headers: {{ X-Custom-Token: tok-secret, X-Plain: visible }} }}\nmodels:\n  demo: {{ targets: [ {{ provider: mock, model: m }} ] }}\n",
        mock.base_url()
    );
    let gw = Gateway::start("", &body);
    let text = client().get(gw.admin_url("/admin/config")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("sk-very-secret") && !text.contains("tok-secret"), "{text}");
    assert!(text.contains("visible"));
}
