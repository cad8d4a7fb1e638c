//! The mock provider's Gemini side (`/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`): API-key auth, JSON and SSE shapes, tool calls, failures in
//! Google's error shape — and that the gateway's Gemini translation and the mock understand each
//! other both ways (OpenAI request → `translate_request` → mock → `translate_response` / stream
//! translator → OpenAI).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchyard::providers::gemini::Gemini;
use switchyard::providers::translate::{TranslateOptions, WireFormat};

const KEY: &str = "AIza-mock-key";

fn root(mock: &Mock) -> String {
    format!("http://127.0.0.1:{}", mock.port)
}

fn openai_request(prompt: &str) -> Value {
    json!({
        "model": "pub", "max_tokens": 64,
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": prompt }],
    })
}

/// `openai` as the gateway would send it to Gemini: (path with query, body).
fn translated(openai: &Value, stream: bool) -> (String, Vec<u8>) {
    let req = Gemini
        .translate_request(&serde_json::to_vec(openai).unwrap(), "gemini-mock", stream, &TranslateOptions::default())
        .unwrap();
    assert!(req.headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
    (req.path, req.body)
}

async fn post(mock: &Mock, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", root(mock)))
        .header("x-goog-api-key", KEY)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn ask(mock: &Mock, openai: &Value, stream: bool, headers: &[(&str, &str)]) -> reqwest::Response {
    let (path, body) = translated(openai, stream);
    post(mock, &path, body, headers).await
}

/// The JSON payloads of a Gemini SSE body, checking Google's CRLF event separators.
fn sse_chunks(body: &str) -> Vec<Value> {
    assert!(body.is_empty() || body.ends_with("\r\n\r\n"), "{body:?}");
    body.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("a data line")).unwrap())
        .collect()
}

/// Reads a body chunk by chunk: (bytes, arrival times, whether the connection broke).
async fn read_chunks(mut resp: reqwest::Response) -> (Vec<u8>, Vec<Instant>, bool) {
    let (mut got, mut times) = (Vec::new(), Vec::new());
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                got.extend_from_slice(&c);
                times.push(Instant::now());
            }
            Ok(None) => return (got, times, false),
            Err(_) => return (got, times, true),
        }
    }
}

fn translate_stream(
    body: &[u8],
    piece: usize,
) -> (String, Box<dyn switchyard::providers::translate::StreamTranslator>) {
    let mut t = Gemini.stream_translator("pub", true);
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        out.extend(t.feed(p));
    }
    out.extend(t.finish());
    (String::from_utf8(out).unwrap(), t)
}

#[tokio::test]
async fn requires_api_key_in_googles_shapes() {
    let mock = Mock::start(&["--require-key", KEY]);
    let (path, body) = translated(&openai_request("hi"), false);
    let resp = client()
        .post(format!("{}{path}", root(&mock)))
        .header("x-goog-api-key", "wrong")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let bytes = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["message"], "API key not valid. Please pass a valid API key.");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    // The gateway sees its own credentials rejected, not a bad client request.
    let e = Gemini.map_error(400, &bytes, None);
    assert_eq!(e.status, 502, "{e:?}");
    assert!(e.message.contains("credentials"), "{}", e.message);

    // No key at all: Google's 403 for unregistered callers.
    let resp = client().post(format!("{}{path}", root(&mock))).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(Gemini.map_error(403, &bytes, None).status, 502);

    // The key as a query parameter works too.
    let resp = client().post(format!("{}{path}?key={KEY}", root(&mock))).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.last().await["x_goog_api_key"], KEY);
}

#[tokio::test]
async fn json_answer_shape_and_translation() {
    let mock = Mock::start(&["--require-key", KEY]);
    let resp = ask(&mock, &openai_request("hello there"), false, &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let bytes = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"]["role"], "model");
    assert_eq!(cand["index"], 0);
    assert_eq!(cand["finishReason"], "STOP");
    let text = cand["content"]["parts"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("mock answer to: hello there"), "{text}");
    let usage = &v["usageMetadata"];
    assert_eq!(usage["candidatesTokenCount"], 16);
    let prompt = usage["promptTokenCount"].as_u64().unwrap();
    assert!(prompt > 0);
    assert_eq!(usage["totalTokenCount"], prompt + 16);
    assert_eq!(v["modelVersion"], "gemini-mock");
    assert!(v["responseId"].as_str().is_some_and(|s| !s.is_empty()));

    let last = mock.last().await;
    assert_eq!(last["path"], "/v1beta/models/gemini-mock:generateContent");
    assert_eq!(last["x_goog_api_key"], KEY);
    assert_eq!(last["model"], "gemini-mock");
    assert_eq!(last["stream"], false);
    assert_eq!(last["body"]["contents"][0]["role"], "user");
    assert_eq!(last["body"]["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(last["body"]["generationConfig"]["maxOutputTokens"], 64);

    let openai: Value = serde_json::from_slice(&Gemini.translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["object"], "chat.completion");
    assert_eq!(openai["model"], "pub");
    assert_eq!(openai["choices"][0]["message"]["content"], text);
    assert_eq!(openai["choices"][0]["finish_reason"], "stop");
    assert_eq!(openai["usage"]["completion_tokens"], 16);
    assert_eq!(openai["usage"]["prompt_tokens"], prompt);

    // max_tokens below the answer length: cut, MAX_TOKENS, which the gateway calls `length`.
    let mut short = openai_request("hello there");
    short["max_tokens"] = json!(4);
    let bytes = ask(&mock, &short, false, &[]).await.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 4);
    let openai: Value = serde_json::from_slice(&Gemini.translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["choices"][0]["finish_reason"], "length");
    assert_eq!(openai["choices"][0]["message"]["content"], "mock answer to: hello");
}

#[tokio::test]
async fn validates_contents_like_google() {
    let mock = Mock::start(&[]);
    let path = "/v1beta/models/gemini-mock:generateContent";
    for bad in [
        json!({}),
        json!({ "contents": [] }),
        json!({ "contents": [{ "role": "assistant", "parts": [{ "text": "hi" }] }] }),
        json!({ "contents": [{ "role": "user", "parts": [] }] }),
    ] {
        let resp = post(&mock, path, serde_json::to_vec(&bad).unwrap(), &[]).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let bytes = resp.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{bad}");
        assert_eq!(Gemini.map_error(400, &bytes, None).status, 400);
    }
    let resp = post(&mock, "/v1beta/models/gemini-mock:countTokens", b"{}".to_vec(), &[]).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn stream_arrives_paced_and_translates() {
    let mock = Mock::start(&[]);
    let json_text = {
        let v: Value = ask(&mock, &openai_request("stream me"), false, &[("x-mock-answer-tokens", "10")])
            .await
            .json()
            .await
            .unwrap();
        v["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap().to_string()
    };
    let started = Instant::now();
    let resp = ask(
        &mock,
        &openai_request("stream me"),
        true,
        &[("x-mock-tokens-per-sec", "100"), ("x-mock-answer-tokens", "10")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (body, times, broke) = read_chunks(resp).await;
    assert!(!broke);
    // 10 events, 9 gaps of 10 ms, arriving one by one.
    assert!(started.elapsed() >= Duration::from_millis(90), "{:?}", started.elapsed());
    assert!(times.len() >= 5, "arrived in {} chunks", times.len());
    assert!(times[times.len() - 1] - times[0] >= Duration::from_millis(60));
    assert_eq!(mock.last().await["query"], "alt=sse");

    let body = String::from_utf8(body).unwrap();
    let chunks = sse_chunks(&body);
    assert_eq!(chunks.len(), 10);
    let text: String =
        chunks.iter().map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(text, json_text);
    for c in &chunks[..9] {
        assert!(c["candidates"][0]["finishReason"].is_null());
        assert_eq!(c["candidates"][0]["content"]["role"], "model");
    }
    let last = &chunks[9];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 10);

    let (out, t) = translate_stream(body.as_bytes(), 7);
    assert_eq!(stream_text(&out), json_text);
    assert!(out.contains(r#""finish_reason":"stop""#));
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    assert!(t.completed());
    assert_eq!(t.usage().unwrap().completion_tokens, 10);
    let stats = mock.stats().await;
    assert_eq!((stats["streams_started"].as_u64(), stats["streams_completed"].as_u64()), (Some(1), Some(1)));

    // Without alt=sse the stream method answers one JSON array.
    let (path, body) = translated(&openai_request("stream me"), true);
    let v: Value = post(&mock, path.trim_end_matches("?alt=sse"), body, &[("x-mock-answer-tokens", "10")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 10);
}

fn weather_tool() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "additionalProperties": false,
            "properties": { "city": { "type": "string" }, "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] } },
            "required": ["city"] } } }])
}

#[tokio::test]
async fn tool_calls_both_ways() {
    let mock = Mock::start(&[]);
    // Offered, not asked for: text.
    let mut req = openai_request("what's up?");
    req["tools"] = weather_tool();
    let v: Value = ask(&mock, &req, false, &[]).await.json().await.unwrap();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());

    // The prompt names the tool.
    let mut req = openai_request("please use get_weather for Paris");
    req["tools"] = weather_tool();
    let bytes = ask(&mock, &req, false, &[]).await.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let cand = &v["candidates"][0];
    assert_eq!(cand["finishReason"], "STOP");
    assert_eq!(cand["content"]["parts"].as_array().unwrap().len(), 1);
    let call = &cand["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"], json!({ "city": "mock-city", "unit": "celsius" }));
    let openai: Value = serde_json::from_slice(&Gemini.translate_response(&bytes, "pub").unwrap()).unwrap();
    let choice = &openai["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let tc = &choice["message"]["tool_calls"][0];
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(tc["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({ "city": "mock-city", "unit": "celsius" }));

    // tool_choice none → mode NONE: text even though the prompt names it.
    req["tool_choice"] = json!("none");
    let v: Value = ask(&mock, &req, false, &[]).await.json().await.unwrap();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());

    // Forced by header, streamed: one chunk holding the whole call.
    let mut req = openai_request("anything");
    req["tools"] = weather_tool();
    let body = ask(&mock, &req, true, &[("x-mock-tool", "get_weather")]).await.text().await.unwrap();
    let chunks = sse_chunks(&body);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"], "get_weather");
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");
    let (out, t) = translate_stream(body.as_bytes(), 11);
    assert!(out.contains(r#""finish_reason":"tool_calls""#), "{out}");
    assert!(out.contains(r#""name":"get_weather""#), "{out}");
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert!(t.completed());
}

#[tokio::test]
async fn failures_in_googles_shape() {
    let mock = Mock::start(&[]);
    let req = openai_request("x");
    let resp = ask(&mock, &req, false, &[("x-mock-fail-status", "429"), ("x-mock-retry-after", "7")]).await;
    assert_eq!(resp.status(), 429);
    let bytes = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(v["error"]["message"], "Resource has been exhausted (e.g. check quota).");
    assert_eq!(v["error"]["details"][0]["retryDelay"], "7s");
    let e = Gemini.map_error(429, &bytes, None);
    assert_eq!((e.status, e.kind, e.retry_after), (429, "rate_limit_error", Some(7)));

    for (status, name, mapped) in [
        (503, "UNAVAILABLE", 503),
        (500, "INTERNAL", 502),
        (400, "INVALID_ARGUMENT", 400),
        (403, "PERMISSION_DENIED", 502),
    ] {
        let resp = ask(&mock, &req, true, &[("x-mock-fail-status", &status.to_string())]).await;
        assert_eq!(resp.status(), status);
        let bytes = resp.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((v["error"]["code"].as_u64(), v["error"]["status"].as_str()), (Some(status as u64), Some(name)));
        assert_eq!(Gemini.map_error(status, &bytes, None).status, mapped, "{status}");
    }

    let started = Instant::now();
    let resp = ask(&mock, &req, false, &[("x-mock-latency-ms", "150")]).await;
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn mid_stream_cut_is_not_a_clean_end() {
    let mock = Mock::start(&[]);
    let resp = ask(&mock, &openai_request("cut me"), true, &[("x-mock-cut-after-chunks", "4")]).await;
    assert_eq!(resp.status(), 200);
    let (body, _, broke) = read_chunks(resp).await;
    assert!(broke, "the connection is dropped, not ended cleanly");
    let body = String::from_utf8(body).unwrap();
    let chunks = sse_chunks(&body);
    assert_eq!(chunks.len(), 4);
    assert!(chunks.iter().all(|c| c["candidates"][0]["finishReason"].is_null()));
    let (out, t) = translate_stream(body.as_bytes(), 9);
    assert!(!out.contains("[DONE]") && out.contains(r#"{"error":"#), "{out}");
    assert!(!t.completed());
    assert_eq!(mock.stats().await["streams_cut"], 1);
}
