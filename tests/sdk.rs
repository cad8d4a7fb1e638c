//! The official `openai` Python SDK (version pinned in tests/sdk/requirements.txt) as a real
//! client, streaming and not. `scripts/test` installs it into `.venv`; set SWITCHYARD_PYTHON to
//! use another interpreter.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SWITCHYARD_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn run_sdk_check(gw: &Gateway, expect_cache: bool) {
    run_script("openai_sdk_check.py", gw, &[("SWITCHYARD_EXPECT_CACHE", if expect_cache { "1" } else { "0" })]);
}

/// Runs `tests/sdk/{script}` with SWITCHYARD_BASE_URL set to the gateway's `/v1`.
fn run_script(script: &str, gw: &Gateway, env: &[(&str, &str)]) {
    let py = python();
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&py)
        .arg(script)
        .env("SWITCHYARD_BASE_URL", gw.url("/v1"))
        .envs(env.iter().copied())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run scripts/test, which installs the SDK)", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK check failed with {} (interpreter {}; `scripts/test` installs the pinned SDK):\n{stdout}\n{stderr}",
        out.status,
        py.display()
    );
    println!("{stdout}");
}

#[test]
fn openai_python_sdk_against_the_gateway() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    run_sdk_check(&gw, false);
}

#[test]
fn openai_python_sdk_parses_cached_streams() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{}cache: {{ exact: {{ enabled: true }}, semantic: {{ enabled: false }}, snapshot_path: \"{}\" }}\n",
        demo_body(&mock),
        dir.path().join("cache.snapshot").display()
    );
    let gw = Gateway::start("", &body);
    run_sdk_check(&gw, true);
}

#[test]
fn openai_python_sdk_against_an_anthropic_backed_model() {
    let mock = Mock::start(&["--require-key", "sk-ant-sdk"]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  claude: {{ kind: anthropic, base_url: \"{base}\", api_key: sk-ant-sdk }}\n\
         models:\n  translated: {{ targets: [ {{ provider: claude, model: claude-mock }} ] }}\n"
    );
    let gw = Gateway::start("", &body);
    run_script("openai_sdk_translated.py", &gw, &[("SWITCHYARD_PROVIDER", "claude")]);
}

#[test]
fn openai_python_sdk_against_a_bedrock_backed_model() {
    let mock = Mock::start(&["--aws-access-key-id", "AKIDSDK", "--aws-secret-access-key", "sdk-secret"]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  aws: {{ kind: bedrock, region: eu-central-1, base_url: \"{base}\", access_key_id: AKIDSDK, secret_access_key: sdk-secret }}\n\
         models:\n  translated: {{ targets: [ {{ provider: aws, model: \"amazon.nova-lite-v1:0\" }} ] }}\n"
    );
    let gw = Gateway::start("", &body);
    run_script("openai_sdk_translated.py", &gw, &[("SWITCHYARD_PROVIDER", "aws")]);
}

/// The official `anthropic` SDK against `/v1/messages`, served once by an OpenAI-format
/// provider and once by an Anthropic one (the request translated both ways).
#[test]
fn anthropic_python_sdk_against_the_messages_endpoint() {
    let mock = Mock::start(&[]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\n\
         \x20 claude: {{ kind: anthropic, base_url: \"{base}\", api_key: sk-ant }}\n\
         models:\n  via-openai: {{ targets: [ {{ provider: mock, model: gpt-mock }} ] }}\n\
         \x20 via-anthropic: {{ targets: [ {{ provider: claude, model: claude-mock }} ] }}\n\
         keys:\n  - {{ name: sdk, key: sk-switchyard-sdk }}\n",
        mock.base_url()
    );
    let gw = Gateway::start("", &body);
    for model in ["via-openai", "via-anthropic"] {
        let root = gw.url("");
        let env =
            [("SWITCHYARD_MODEL", model), ("SWITCHYARD_KEY", "sk-switchyard-sdk"), ("SWITCHYARD_BASE_URL", &root)];
        run_script("anthropic_sdk_check.py", &gw, &[env[0], env[1], env[2], ("SWITCHYARD_TOOLS", "1")]);
    }
}
