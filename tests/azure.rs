//! `kind: azure` end to end against the mock: the deployment (the target's `model`) goes in the
//! path, `api-version` in the query, the key in `api-key` (never the client's credentials).

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn azure_gets_deployment_path_api_version_and_api_key() {
    let mock = Mock::start(&["--require-key", "az-secret"]);
    // Azure base URLs have no path; a trailing slash is tolerated.
    let base = mock.base_url().trim_end_matches("/v1").to_string() + "/";
    let body = format!(
        "providers:\n  az: {{ kind: azure, base_url: \"{base}\", api_key: az-secret }}\n\
         models:\n  gpt-4o: {{ targets: [ {{ provider: az, model: my-gpt4o-deployment }} ] }}\n"
    );
    let gw = Gateway::start("", &body);
    let resp = post_chat(&gw, "gpt-4o", "hello azure", &[("authorization", "Bearer client-key")]).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer["choices"][0]["message"]["content"].is_string(), "{answer}");
    let last = mock.last().await;
    assert_eq!(last["path"], "/openai/deployments/my-gpt4o-deployment/chat/completions", "{last}");
    assert_eq!(last["query"], "api-version=2024-10-21");
    assert_eq!(last["api_key"], "az-secret");
    assert_eq!(last["authorization"], Value::Null, "the client's key never goes upstream");

    // Streams work the same way, and an explicit api_version is used as given.
    let body = body.replace("api_key: az-secret }", "api_key: az-secret, api_version: \"2025-01-01-preview\" }");
    gw.write_config("", &body);
    let reloaded = eventually(std::time::Duration::from_secs(10), || async {
        let (cache, _, sse) = ask(
            &gw,
            serde_json::json!({"model": "gpt-4o", "stream": true,
            "messages": [{"role": "user", "content": "stream please"}]}),
            &[],
        )
        .await;
        let _ = cache;
        sse.trim_end().ends_with("data: [DONE]") && mock.last().await["query"] == "api-version=2025-01-01-preview"
    })
    .await;
    assert!(reloaded, "{}", mock.last().await);
}

#[tokio::test]
async fn a_wrong_azure_key_is_a_502_not_the_clients_fault() {
    let mock = Mock::start(&["--require-key", "right"]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  az: {{ kind: azure, base_url: \"{base}\", api_key: wrong }}\n\
         models:\n  gpt-4o: {{ targets: [ {{ provider: az, model: dep }} ] }}\n"
    );
    let gw = Gateway::start("", &body);
    let resp = post_chat(&gw, "gpt-4o", "hi", &[]).await;
    let status = resp.status().as_u16();
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"].is_string(), "{err}");
    assert_eq!(status, 502, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("HTTP 401"), "{err}");
    assert!(gw.log().contains("refused the gateway's credentials"), "{}", gw.log());
}
