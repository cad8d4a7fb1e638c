//! `switchyard check` and `--version`.

use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).args(["check", "--config"]).arg(&path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn bundled_config_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.yaml")])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn errors_are_line_numbered_and_exit_non_zero() {
    let (ok, msg) = check("server:\n  threads: 2\n  max_body_bytes: lots\n");
    assert!(!ok);
    assert!(msg.contains("line 3"), "{msg}");
    let (ok, msg) = check("models:\n  m: { targets: [ { provider: nope, model: x } ] }\n");
    assert!(!ok);
    assert!(msg.contains("`nope`") && msg.contains("`m`") && msg.contains("line 2"), "{msg}");
    let (ok, msg) = check(
        "providers:\n  p: { kind: openai, base_url: \"http://x/v1\", api_key: \"${SWITCHYARD_SURELY_UNSET}\" }\n",
    );
    assert!(!ok);
    assert!(msg.contains("SWITCHYARD_SURELY_UNSET") && msg.contains("line 2"), "{msg}");
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
