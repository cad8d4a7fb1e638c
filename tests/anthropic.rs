//! `kind: anthropic` end to end: OpenAI requests in, Anthropic Messages out (through the real
//! gateway to the mock's `/v1/messages`), answers, streams, tool calls and errors back in
//! OpenAI's shape.

mod common;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "sk-ant-test";

fn config(mock: &Mock, model_extra: &str) -> String {
    // Anthropic base URLs carry no version segment; a trailing slash is tolerated.
    let base = mock.base_url().trim_end_matches("/v1").to_string() + "/";
    format!(
        "providers:\n  claude: {{ kind: anthropic, base_url: \"{base}\", api_key: {KEY} }}\n\
         models:\n  sonnet: {{ targets: [ {{ provider: claude, model: claude-mock }} ]{model_extra} }}\n"
    )
}

async fn post(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn chunks(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad chunk {d}: {e}")))
        .collect()
}

#[tokio::test]
async fn openai_request_is_served_by_anthropic_messages() {
    let mock = Mock::start(&["--require-key", KEY]);
    let gw = Gateway::start("", &config(&mock, ""));
    let body = json!({
        "model": "sonnet", "temperature": 0.2, "stop": ["END"],
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "What is a gateway?" },
        ],
    });
    let resp = post(&gw, &body, &[("authorization", "Bearer client-key")]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "claude");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    assert_eq!(answer["model"], "sonnet", "the client's model name: {answer}");
    assert!(!answer["choices"][0]["message"]["content"].as_str().unwrap().is_empty(), "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{answer}");

    let last = mock.last().await;
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["x_api_key"], KEY, "the provider's key, never the client's");
    assert_eq!(last["anthropic_version"], "2023-06-01");
    assert_eq!(last["body"]["model"], "claude-mock");
    assert_eq!(last["body"]["system"], "Be brief.", "{last}");
    assert_eq!(last["body"]["max_tokens"], 4096, "default_max_tokens when the client sent none");
    assert_eq!(last["body"]["stop_sequences"], json!(["END"]));
    assert_eq!(last["body"]["messages"], json!([{ "role": "user", "content": "What is a gateway?" }]));
}

#[tokio::test]
async fn streams_are_translated_event_by_event() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, ", default_max_tokens: 512"));
    let prompt = json!([{ "role": "user", "content": "stream me a story" }]);
    let (_, plain_headers, plain) =
        ask(&gw, json!({ "model": "sonnet", "messages": prompt, "max_tokens": 64 }), &[]).await;
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain_headers["content-type"], "application/json");
    assert_eq!(mock.last().await["body"]["max_tokens"], 64);

    // Paced upstream: chunks must reach the client while the provider is still streaming.
    let started = std::time::Instant::now();
    let resp = post(
        &gw,
        &json!({ "model": "sonnet", "messages": prompt, "stream": true, "max_tokens": 64 }),
        &[("x-mock-tokens-per-sec", "20"), ("x-mock-answer-tokens", "10")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut s = resp.bytes_stream();
    let mut text = String::new();
    let mut first_at = None;
    while let Some(b) = futures_util::StreamExt::next(&mut s).await {
        first_at.get_or_insert_with(|| started.elapsed());
        text.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    let total = started.elapsed();
    assert!(first_at.unwrap() * 2 < total, "first bytes at {first_at:?} of {total:?}: buffered?");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = chunks(&text);
    assert!(events.iter().all(|c| c["object"] == "chat.completion.chunk"), "{text}");
    assert!(events.iter().all(|c| c.get("usage").is_none_or(Value::is_null)), "no usage chunk unless asked: {text}");
    assert_eq!(events.last().unwrap()["choices"][0]["finish_reason"], "stop");
    assert_eq!(mock.last().await["body"]["stream"], true);

    // Same prompt, same deterministic answer as the JSON one (the mock's 16-token default).
    let (_, _, sse) =
        ask(&gw, json!({ "model": "sonnet", "messages": prompt, "stream": true, "max_tokens": 64 }), &[]).await;
    assert_eq!(stream_text(&sse), plain["choices"][0]["message"]["content"].as_str().unwrap());

    // Asked for usage: the last chunk carries it, with empty choices.
    let (_, _, sse) = ask(
        &gw,
        json!({ "model": "sonnet", "messages": prompt, "stream": true, "stream_options": { "include_usage": true } }),
        &[],
    )
    .await;
    let last = chunks(&sse).pop().unwrap();
    assert_eq!(last["choices"], json!([]), "{sse}");
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{sse}");
    assert_eq!(mock.last().await["body"]["max_tokens"], 512, "the model's default_max_tokens");
}

#[tokio::test]
async fn tool_calls_both_ways() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, ""));
    let tools = json!([{ "type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }]);
    let body = json!({ "model": "sonnet", "tools": tools, "tool_choice": "auto",
        "messages": [{ "role": "user", "content": "Weather in Paris?" }] });
    let resp = post(&gw, &body, &[("x-mock-tool", "get_weather")]).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object(), "{args}");
    let last = mock.last().await;
    assert_eq!(last["body"]["tools"][0]["name"], "get_weather", "{last}");
    assert_eq!(last["body"]["tool_choice"], json!({ "type": "auto" }));

    // The result goes back as a tool message: Anthropic gets a tool_result block.
    let followup = json!({ "model": "sonnet", "tools": tools, "messages": [
        { "role": "user", "content": "Weather in Paris?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "18C and sunny" },
    ] });
    let resp = post(&gw, &followup, &[]).await;
    assert_eq!(resp.status(), 200);
    let last = mock.last().await;
    let result = &last["body"]["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{last}");
    assert_eq!(result["tool_use_id"], call["id"]);

    // Streamed: the call arrives as tool_calls deltas whose arguments join into JSON.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, _, sse) = ask(&gw, streamed, &[("x-mock-tool", "get_weather")]).await;
    let events = chunks(&sse);
    let name = events.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    assert_eq!(name, Some("get_weather"), "{sse}");
    let joined: String = events
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(serde_json::from_str::<Value>(&joined).unwrap().is_object(), "{joined}");
    assert!(events.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"), "{sse}");
}

#[tokio::test]
async fn unsupported_parameters_are_named_or_dropped() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &config(&mock, ""));
    let body = json!({ "model": "sonnet", "logit_bias": { "50256": -100 },
        "messages": [{ "role": "user", "content": "hi" }] });
    let before = mock.requests().await;
    let resp = post(&gw, &body, &[]).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("logit_bias") && message.contains("anthropic"), "{err}");
    assert_eq!(err["error"]["code"], "unsupported_parameter");
    assert_eq!(mock.requests().await, before, "nothing was sent upstream");

    gw.write_config("", &config(&mock, ", drop_unsupported_params: true"));
    let served =
        eventually(std::time::Duration::from_secs(10), || async { post(&gw, &body, &[]).await.status() == 200 }).await;
    assert!(served);
    assert!(mock.last().await["body"].get("logit_bias").is_none());
}

#[tokio::test]
async fn provider_errors_map_to_openai_statuses() {
    let mock = Mock::start(&["--require-key", KEY]);
    let gw = Gateway::start("", &config(&mock, ", retry: { max_attempts: 1 }"));
    let body = chat("sonnet", "hello");
    // 429 last: its Retry-After rests the only target for a second.
    let cases = [("400", 400, "invalid_request_error"), ("529", 503, "server_error"), ("429", 429, "rate_limit_error")];
    for (fail, status, kind) in cases {
        let resp = post(&gw, &body, &[("x-mock-fail-status", fail)]).await;
        assert_eq!(resp.status().as_u16(), status, "upstream {fail}");
        if status == 429 {
            assert!(resp.headers().get("retry-after").is_some(), "Retry-After is kept");
        }
        let err: Value = resp.json().await.unwrap();
        assert!(err["error"]["message"].is_string(), "upstream {fail}: {err}");
        if fail == "400" {
            assert_eq!(err["error"]["type"], kind, "{err}");
        } else {
            assert!(err["error"]["message"].as_str().unwrap().contains(&format!("HTTP {fail}")), "{err}");
        }
    }
    // A key the provider refuses is the operator's problem: 502, the cause in the log.
    let wrong = config(&mock, ", retry: { max_attempts: 1 }").replace(KEY, "sk-ant-wrong");
    gw.write_config("", &wrong);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refused =
        eventually(std::time::Duration::from_secs(10), || async { post(&gw, &body, &[]).await.status() == 502 }).await;
    assert!(refused);
    assert!(gw.log().contains("refused the gateway's credentials"), "{}", gw.log());
}

#[tokio::test]
async fn overloaded_anthropic_falls_back_to_another_provider() {
    let claude = Mock::start(&["--fail-status", "529"]);
    let openai = Mock::start(&[]);
    let base = claude.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  claude: {{ kind: anthropic, base_url: \"{base}\", api_key: k }}\n\
         \x20 backup: {{ kind: openai, base_url: \"{}\" }}\n\
         models:\n  sonnet: {{ targets: [ {{ provider: claude, model: claude-mock }} ], fallbacks: [gpt] }}\n\
         \x20 gpt: {{ targets: [ {{ provider: backup, model: gpt-mock }} ] }}\n",
        openai.base_url()
    );
    let gw = Gateway::start("", &body);
    let resp = post(&gw, &chat("sonnet", "hello"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-provider"], "backup");
    assert_eq!(resp.headers()["x-switchyard-fallback"], "gpt");
    assert_eq!(claude.requests().await, 1);
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_and_is_not_cached() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &format!("{}cache: {{ exact: {{ enabled: true }} }}\n", config(&mock, "")));
    let body = json!({ "model": "sonnet", "stream": true, "messages": [{ "role": "user", "content": "cut me" }] });
    let resp = post(&gw, &body, &[("x-mock-cut-after-chunks", "3")]).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap_or_default();
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.contains("\"error\""), "the client learns the stream broke: {text}");

    // Not cached: the next identical request goes upstream again, and that complete one is.
    let before = mock.requests().await;
    let (cache, _, sse) = ask(&gw, body.clone(), &[]).await;
    assert_eq!(cache, "miss");
    assert!(sse.trim_end().ends_with("data: [DONE]"));
    assert_eq!(mock.requests().await, before + 1);
    let (cache, _, replay) = ask(&gw, body, &[]).await;
    assert_eq!(cache, "hit-exact");
    assert_eq!(stream_text(&replay), stream_text(&sse));
}
