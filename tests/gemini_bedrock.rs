//! `kind: gemini` and `kind: bedrock` end to end: OpenAI requests through the real gateway to
//! the mock's Gemini (`generateContent`, SSE) and Bedrock (Converse, event-stream, SigV4
//! checked against the configured secret) sides, and back in OpenAI's shape.

mod common;

use common::*;
use serde_json::{json, Value};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct Kind {
    provider: &'static str,
    mock: Mock,
    gw: Gateway,
}

fn gemini(model_extra: &str) -> Kind {
    let mock = Mock::start(&["--require-key", "g-key"]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  gem: {{ kind: gemini, base_url: \"{base}/\", api_key: g-key }}\n\
         models:\n  smart: {{ targets: [ {{ provider: gem, model: gemini-2.0-flash }} ], retry: {{ max_attempts: 1 }}{model_extra} }}\n"
    );
    Kind { provider: "gem", gw: Gateway::start("", &body), mock }
}

fn bedrock(model_extra: &str, secret: &str) -> Kind {
    let mock = Mock::start(&["--aws-access-key-id", AKID, "--aws-secret-access-key", SECRET]);
    let base = mock.base_url().trim_end_matches("/v1").to_string();
    let body = format!(
        "providers:\n  aws: {{ kind: bedrock, region: us-east-1, base_url: \"{base}\", access_key_id: {AKID}, \
         secret_access_key: \"{secret}\", session_token: tok-123 }}\n\
         models:\n  smart: {{ targets: [ {{ provider: aws, model: \"anthropic.claude-3-haiku-20240307-v1:0\" }} ], \
         retry: {{ max_attempts: 1 }}{model_extra} }}\n"
    );
    Kind { provider: "aws", gw: Gateway::start("", &body), mock }
}

async fn post(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap_or_default())
}

fn chunks(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad chunk {d}: {e}")))
        .collect()
}

fn tools() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }])
}

/// JSON and streamed answers, tool calls both ways, and the usage chunk on request.
async fn answers_streams_and_tools(k: &Kind) {
    let ask = json!({ "model": "smart", "max_tokens": 64,
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Explain caching" }] });
    let (status, headers, body) = post(&k.gw, &ask, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-switchyard-provider"], k.provider);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["model"], "smart");
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(!text.is_empty(), "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{answer}");

    // Streamed, paced upstream: incremental chunks, same text, usage when asked.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let started = std::time::Instant::now();
    let resp = client()
        .post(k.gw.url("/v1/chat/completions"))
        .header("x-mock-tokens-per-sec", "40")
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut s = resp.bytes_stream();
    let (mut sse, mut first_at) = (String::new(), None);
    while let Some(b) = futures_util::StreamExt::next(&mut s).await {
        first_at.get_or_insert_with(|| started.elapsed());
        sse.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    assert!(first_at.unwrap() * 2 < started.elapsed(), "first bytes at {first_at:?}: buffered?");
    assert!(sse.trim_end().ends_with("data: [DONE]"), "{sse}");
    assert_eq!(stream_text(&sse), text);
    let last = chunks(&sse).pop().unwrap();
    assert_eq!(last["choices"], json!([]), "{sse}");
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{sse}");

    // Tool call, JSON then streamed.
    let call_req =
        json!({ "model": "smart", "tools": tools(), "messages": [{ "role": "user", "content": "Weather in Oslo?" }] });
    let (status, _, body) = post(&k.gw, &call_req, &[("x-mock-tool", "get_weather")]).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls", "{answer}");
    let call = answer["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap().is_object());
    let followup = json!({ "model": "smart", "tools": tools(), "messages": [
        { "role": "user", "content": "Weather in Oslo?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "-3C, snow" },
    ] });
    let (status, _, body) = post(&k.gw, &followup, &[]).await;
    assert_eq!(status, 200, "the tool result is accepted by the provider: {body}");
    let mut streamed = call_req;
    streamed["stream"] = json!(true);
    let (status, _, sse) = post(&k.gw, &streamed, &[("x-mock-tool", "get_weather")]).await;
    assert_eq!(status, 200);
    let events = chunks(&sse);
    let args: String = events
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(serde_json::from_str::<Value>(&args).unwrap().is_object(), "{sse}");
    assert!(events.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"), "{sse}");
}

/// Provider failures in OpenAI's shape with the contract's statuses; a cut stream says so.
async fn errors(k: &Kind) {
    let ask = chat("smart", "hello");
    for (fail, want) in [("400", 400), ("503", 503), ("429", 429)] {
        let (status, headers, body) = post(&k.gw, &ask, &[("x-mock-fail-status", fail)]).await;
        assert_eq!(status, want, "upstream {fail}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        if fail == "400" {
            assert_eq!(err["error"]["type"], "invalid_request_error", "{body}");
        }
        if fail == "429" && k.provider == "aws" {
            assert!(headers.get("retry-after").is_some(), "Bedrock's Retry-After is kept");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the 429 rested the target
    let (status, _, body) = post(
        &k.gw,
        &json!({ "model": "smart", "logit_bias": { "1": 1 }, "messages": [{ "role": "user", "content": "x" }] }),
        &[],
    )
    .await;
    assert_eq!(status, 400);
    let kind = if k.provider == "aws" { "bedrock" } else { "gemini" };
    assert!(body.contains("logit_bias") && body.contains(kind), "{body}");

    let mut cut = chat("smart", "cut this stream");
    cut["stream"] = json!(true);
    let (status, _, sse) = post(&k.gw, &cut, &[("x-mock-cut-after-chunks", "3")]).await;
    assert_eq!(status, 200);
    assert!(!sse.contains("[DONE]") && sse.contains("\"error\""), "{sse}");
}

#[tokio::test]
async fn gemini_end_to_end() {
    let k = gemini("");
    answers_streams_and_tools(&k).await;
    let last = k.mock.last().await;
    assert!(last["path"].as_str().unwrap().starts_with("/v1beta/models/gemini-2.0-flash:"), "{last}");
    assert_eq!(last["x_goog_api_key"], "g-key", "the provider's key, in its header");
    errors(&k).await;
}

#[tokio::test]
async fn bedrock_end_to_end_signed() {
    let k = bedrock("", SECRET);
    answers_streams_and_tools(&k).await;
    let last = k.mock.last().await;
    assert_eq!(last["path"], "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", "{last}");
    assert!(last["authorization"].as_str().unwrap().starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    assert_eq!(last["x_amz_security_token"], "tok-123");
    errors(&k).await;
    // A mid-stream exception frame becomes an SSE error event; the stream is not completed.
    let mut ask = chat("smart", "throttle me mid-way");
    ask["stream"] = json!(true);
    let (status, _, sse) = post(&k.gw, &ask, &[("x-mock-stream-exception", "throttlingException")]).await;
    assert_eq!(status, 200);
    assert!(!sse.contains("[DONE]") && sse.contains("\"error\""), "{sse}");
}

#[tokio::test]
async fn bedrock_wrong_secret_is_a_502_with_the_cause_in_the_log() {
    let k = bedrock("", "not-the-secret");
    let (status, _, body) = post(&k.gw, &chat("smart", "hello"), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HTTP 403"), "{body}");
    assert!(k.gw.log().contains("refused the gateway's credentials"), "{}", k.gw.log());
}
