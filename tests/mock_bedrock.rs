//! The mock provider's Bedrock side (`/model/{modelId}/converse` and `/converse-stream`): SigV4
//! checks, JSON and event-stream shapes, tool use, failures in AWS's error shape, cuts and
//! exception frames — and that the gateway's Bedrock translation and signing and the mock
//! understand each other both ways (OpenAI request → `translate_request` → `sign` → mock →
//! `translate_response` / stream translator → OpenAI).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchyard::providers::bedrock::eventstream::{Decoder, Frame};
use switchyard::providers::bedrock::{map_error_typed, sign, Bedrock};
use switchyard::providers::translate::{StreamTranslator, TranslateOptions, WireFormat};

const AKID: &str = "AKIDMOCKEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn signing_flags() -> [&'static str; 4] {
    ["--aws-access-key-id", AKID, "--aws-secret-access-key", SECRET]
}

fn openai_request(prompt: &str) -> Value {
    json!({
        "model": "pub", "max_tokens": 64,
        "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": prompt }],
    })
}

/// `openai` as the gateway would send it to Bedrock: (path, body, format headers).
fn translated(openai: &Value, stream: bool) -> (String, Vec<u8>, Vec<(String, String)>) {
    let req = Bedrock
        .translate_request(&serde_json::to_vec(openai).unwrap(), MODEL, stream, &TranslateOptions::default())
        .unwrap();
    (req.path, req.body, req.headers)
}

struct Creds<'a> {
    akid: &'a str,
    secret: &'a str,
    /// Signed this many seconds ago.
    ago_secs: i64,
}

const GOOD: Creds<'static> = Creds { akid: AKID, secret: SECRET, ago_secs: 0 };

/// POSTs `body` to `path`, SigV4-signed (host and the format headers signed) unless `creds` is None.
async fn post_signed(
    mock: &Mock,
    path: &str,
    body: Vec<u8>,
    format_headers: &[(String, String)],
    creds: Option<Creds<'_>>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let host = format!("127.0.0.1:{}", mock.port);
    let mut req = client().post(format!("http://{host}{path}"));
    for (k, v) in format_headers {
        req = req.header(k, v);
    }
    if let Some(c) = creds {
        let at = chrono::Utc::now() - chrono::Duration::seconds(c.ago_secs);
        let mut to_sign: Vec<(&str, &str)> = vec![("host", &host)];
        to_sign.extend(format_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (k, v) in sign("POST", path, "", &to_sign, &body, "us-east-1", "bedrock", c.akid, c.secret, None, at) {
            req = req.header(k, v);
        }
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

async fn ask(mock: &Mock, openai: &Value, stream: bool, extra: &[(&str, &str)]) -> reqwest::Response {
    let (path, body, headers) = translated(openai, stream);
    post_signed(mock, &path, body, &headers, Some(GOOD), extra).await
}

fn error_type(resp: &reqwest::Response) -> String {
    resp.headers()["x-amzn-errortype"].to_str().unwrap().to_string()
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

fn frames(body: &[u8]) -> Vec<Frame> {
    let mut d = Decoder::new();
    let f = d.feed(body).unwrap();
    assert_eq!(d.pending(), 0, "no torn frame at the end");
    f
}

/// (event type, payload) of event frames, checking the headers real Bedrock frames carry.
fn events(frames: &[Frame]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|f| {
            assert_eq!(f.header(":message-type"), Some("event"));
            assert_eq!(f.header(":content-type"), Some("application/json"));
            let v: Value = serde_json::from_slice(&f.payload).unwrap();
            assert!(v["p"].is_string(), "padding field");
            (f.header(":event-type").unwrap().to_string(), v)
        })
        .collect()
}

fn translate_stream(body: &[u8], piece: usize) -> (String, Box<dyn StreamTranslator>) {
    let mut t = Bedrock.stream_translator("pub", true);
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        out.extend(t.feed(p));
    }
    out.extend(t.finish());
    (String::from_utf8(out).unwrap(), t)
}

#[tokio::test]
async fn sigv4_is_verified() {
    let mock = Mock::start(&signing_flags());
    let req = openai_request("hi");
    let (path, body, headers) = translated(&req, false);
    assert_eq!(path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");

    let resp = post_signed(&mock, &path, body.clone(), &headers, Some(GOOD), &[]).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let last = mock.last().await;
    assert_eq!(last["path"], path, "the raw, still encoded path");
    assert_eq!(last["model"], MODEL);
    let auth = last["authorization"].as_str().unwrap();
    assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AKID}/")), "{auth}");
    assert!(auth.contains("/us-east-1/bedrock/aws4_request, SignedHeaders="), "{auth}");
    assert!(last["x_amz_date"].is_string() && last["x_amz_content_sha256"].is_string());

    // A wrong secret: the signature does not match.
    let wrong = Creds { secret: "not-the-secret", ..GOOD };
    let resp = post_signed(&mock, &path, body.clone(), &headers, Some(wrong), &[]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        error_type(&resp),
        "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/"
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({ "message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details." })
    );
    let e = map_error_typed(403, Some("InvalidSignatureException:http://internal.amazon.com/coral/"), &bytes, None);
    assert_eq!(e.status, 502);

    // Another access key id.
    let resp = post_signed(&mock, &path, body.clone(), &headers, Some(Creds { akid: "AKIDOTHER", ..GOOD }), &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(error_type(&resp).starts_with("UnrecognizedClientException:"));
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({ "message": "The security token included in the request is invalid." })
    );
    assert_eq!(map_error_typed(403, Some("UnrecognizedClientException"), &bytes, None).status, 502);
    assert_eq!(Bedrock.map_error(403, &bytes, None).status, 502);

    // Unsigned.
    let resp = post_signed(&mock, &path, body.clone(), &headers, None, &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(error_type(&resp).starts_with("MissingAuthenticationTokenException:"));

    // The body changed after signing: its hash no longer matches.
    let (p2, body2, h2) = translated(&openai_request("something else"), false);
    let host = format!("127.0.0.1:{}", mock.port);
    let mut to_sign: Vec<(&str, &str)> = vec![("host", &host)];
    to_sign.extend(h2.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let signed = sign("POST", &p2, "", &to_sign, &body, "us-east-1", "bedrock", AKID, SECRET, None, chrono::Utc::now());
    let mut r = client().post(format!("http://{host}{p2}")).body(body2);
    for (k, v) in
        h2.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        r = r.header(k, v);
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(error_type(&resp).starts_with("InvalidSignatureException:"));

    // Signed an hour ago: expired.
    let old = Creds { ago_secs: 3600, ..GOOD };
    let resp = post_signed(&mock, &path, body.clone(), &headers, Some(old), &[]).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Signature expired"));

    // Without the secret only the format is checked.
    let lax = Mock::start(&[]);
    let (path, body, headers) = translated(&req, false);
    let resp = post_signed(&lax, &path, body.clone(), &headers, Some(Creds { secret: "anything", ..GOOD }), &[]).await;
    assert_eq!(resp.status(), 200);
    let resp = post_signed(&lax, &path, body, &headers, None, &[("authorization", "Bearer sk-nope")]).await;
    assert_eq!(resp.status(), 403);
    assert!(error_type(&resp).starts_with("IncompleteSignatureException:"));
}

#[tokio::test]
async fn converse_json_and_translation() {
    let mock = Mock::start(&signing_flags());
    let resp = ask(&mock, &openai_request("hello there"), false, &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let bytes = resp.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let msg = &v["output"]["message"];
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["content"].as_array().unwrap().len(), 1);
    let text = msg["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("mock answer to: hello there"), "{text}");
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(v["usage"]["outputTokens"], 16);
    let input = v["usage"]["inputTokens"].as_u64().unwrap();
    assert!(input > 0);
    assert_eq!(v["usage"]["totalTokens"], input + 16);
    assert!(v["metrics"]["latencyMs"].is_u64());

    let last = mock.last().await;
    assert_eq!(last["body"]["system"][0]["text"], "Be brief.");
    assert_eq!(last["body"]["inferenceConfig"]["maxTokens"], 64);
    assert_eq!(last["stream"], false);

    let openai: Value = serde_json::from_slice(&Bedrock.translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["choices"][0]["message"]["content"], text);
    assert_eq!(openai["choices"][0]["finish_reason"], "stop");
    assert_eq!(openai["usage"]["completion_tokens"], 16);
    assert_eq!(openai["usage"]["prompt_tokens"], input);

    let mut short = openai_request("hello there");
    short["max_tokens"] = json!(4);
    let bytes = ask(&mock, &short, false, &[]).await.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["stopReason"], "max_tokens");
    assert_eq!(v["usage"]["outputTokens"], 4);
    let openai: Value = serde_json::from_slice(&Bedrock.translate_response(&bytes, "pub").unwrap()).unwrap();
    assert_eq!(openai["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn validates_messages_like_bedrock() {
    let mock = Mock::start(&[]);
    let path = "/model/mock-model/converse";
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    let user = json!({ "role": "user", "content": [{ "text": "hi" }] });
    let assistant = json!({ "role": "assistant", "content": [{ "text": "yo" }] });
    for bad in [
        json!({}),
        json!({ "messages": [] }),
        json!({ "messages": [assistant] }),
        json!({ "messages": [user, user] }),
        json!({ "messages": [{ "role": "system", "content": [{ "text": "hi" }] }] }),
        json!({ "messages": [{ "role": "user", "content": [] }] }),
    ] {
        let resp = post_signed(&mock, path, serde_json::to_vec(&bad).unwrap(), &headers, Some(GOOD), &[]).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let t = error_type(&resp);
        assert!(t.starts_with("ValidationException:"), "{t}");
        let bytes = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&bytes).unwrap()["message"].is_string());
        assert_eq!(map_error_typed(400, Some(&t), &bytes, None).status, 400);
    }
}

#[tokio::test]
async fn converse_stream_arrives_paced_and_translates() {
    let mock = Mock::start(&signing_flags());
    let json_text = {
        let v: Value = ask(&mock, &openai_request("stream me"), false, &[("x-mock-answer-tokens", "10")])
            .await
            .json()
            .await
            .unwrap();
        v["output"]["message"]["content"][0]["text"].as_str().unwrap().to_string()
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
    assert_eq!(resp.headers()["content-type"], "application/vnd.amazon.eventstream");
    let (body, times, broke) = read_chunks(resp).await;
    assert!(!broke);
    // 14 frames, 13 gaps of 10 ms, arriving one by one.
    assert!(started.elapsed() >= Duration::from_millis(130), "{:?}", started.elapsed());
    assert!(times.len() >= 5, "arrived in {} chunks", times.len());
    assert!(times[times.len() - 1] - times[0] >= Duration::from_millis(80));
    assert_eq!(mock.last().await["path"], "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");

    let evs = events(&frames(&body));
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = vec!["messageStart"];
    want.extend(std::iter::repeat_n("contentBlockDelta", 10));
    want.extend(["contentBlockStop", "messageStop", "metadata"]);
    assert_eq!(names, want);
    assert_eq!(evs[0].1["role"], "assistant");
    let text: String = evs[1..11]
        .iter()
        .map(|(_, v)| {
            assert_eq!(v["contentBlockIndex"], 0);
            v["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, json_text);
    assert_eq!(evs[11].1["contentBlockIndex"], 0);
    assert_eq!(evs[12].1["stopReason"], "end_turn");
    assert_eq!(evs[13].1["usage"]["outputTokens"], 10);
    assert!(evs[13].1["metrics"]["latencyMs"].as_u64().unwrap() >= 130);

    let (out, t) = translate_stream(&body, 5);
    assert_eq!(stream_text(&out), json_text);
    assert!(out.contains(r#""finish_reason":"stop""#));
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    assert!(t.completed());
    assert_eq!(t.usage().unwrap().completion_tokens, 10);
    let stats = mock.stats().await;
    assert_eq!((stats["streams_started"].as_u64(), stats["streams_completed"].as_u64()), (Some(1), Some(1)));
}

fn weather_tool() -> Value {
    json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object",
            "properties": { "city": { "type": "string" }, "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] } },
            "required": ["city"] } } }])
}

#[tokio::test]
async fn tool_use_both_ways() {
    let mock = Mock::start(&signing_flags());
    let want_input = json!({ "city": "mock-city", "unit": "celsius" });
    let mut req = openai_request("what's up?");
    req["tools"] = weather_tool();
    let v: Value = ask(&mock, &req, false, &[]).await.json().await.unwrap();
    assert_eq!(v["stopReason"], "end_turn");

    let mut req = openai_request("please use get_weather for Paris");
    req["tools"] = weather_tool();
    let bytes = ask(&mock, &req, false, &[]).await.bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["stopReason"], "tool_use");
    let tool = &v["output"]["message"]["content"][1]["toolUse"];
    assert!(tool["toolUseId"].as_str().unwrap().starts_with("tooluse_"));
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["input"], want_input);
    let openai: Value = serde_json::from_slice(&Bedrock.translate_response(&bytes, "pub").unwrap()).unwrap();
    let choice = &openai["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let tc = &choice["message"]["tool_calls"][0];
    assert_eq!(tc["id"], tool["toolUseId"]);
    assert_eq!(tc["function"]["name"], "get_weather");
    assert_eq!(serde_json::from_str::<Value>(tc["function"]["arguments"].as_str().unwrap()).unwrap(), want_input);

    // tool_choice naming the tool → toolChoice.tool; streamed: fragments rejoin to the input.
    let mut req = openai_request("anything");
    req["tools"] = weather_tool();
    req["tool_choice"] = json!({ "type": "function", "function": { "name": "get_weather" } });
    let body = ask(&mock, &req, true, &[]).await.bytes().await.unwrap();
    let evs = events(&frames(&body));
    let start = evs.iter().find(|(n, _)| n == "contentBlockStart").unwrap();
    assert_eq!(start.1["contentBlockIndex"], 1);
    assert_eq!(start.1["start"]["toolUse"]["name"], "get_weather");
    let input: String =
        evs.iter().filter_map(|(_, v)| v["delta"]["toolUse"]["input"].as_str().map(str::to_string)).collect();
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), want_input);
    assert_eq!(evs.iter().find(|(n, _)| n == "messageStop").unwrap().1["stopReason"], "tool_use");

    let (out, t) = translate_stream(&body, 17);
    assert!(t.completed());
    assert!(out.contains(r#""finish_reason":"tool_calls""#), "{out}");
    let args: String = out
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().map(str::to_string))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), want_input);

    // Forced by header.
    let mut req = openai_request("anything");
    req["tools"] = weather_tool();
    let v: Value = ask(&mock, &req, false, &[("x-mock-tool", "get_weather")]).await.json().await.unwrap();
    assert_eq!(v["stopReason"], "tool_use");
}

#[tokio::test]
async fn failures_in_aws_shape() {
    let mock = Mock::start(&signing_flags());
    let req = openai_request("x");
    let resp = ask(&mock, &req, false, &[("x-mock-fail-status", "429"), ("x-mock-retry-after", "7")]).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let t = error_type(&resp);
    assert!(t.starts_with("ThrottlingException:"), "{t}");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({ "message": "Too many requests, please wait before trying again." })
    );
    let e = map_error_typed(429, Some(&t), &bytes, Some(7));
    assert_eq!((e.status, e.kind, e.retry_after), (429, "rate_limit_error", Some(7)));

    for (status, kind, mapped) in [
        (503, "ServiceUnavailableException", 503),
        (500, "InternalServerException", 502),
        (400, "ValidationException", 400),
        (424, "ModelErrorException", 502),
    ] {
        let resp = ask(&mock, &req, true, &[("x-mock-fail-status", &status.to_string())]).await;
        assert_eq!(resp.status(), status);
        let t = error_type(&resp);
        assert!(t.starts_with(&format!("{kind}:")), "{t}");
        let bytes = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&bytes).unwrap()["message"].is_string());
        assert_eq!(map_error_typed(status, Some(&t), &bytes, None).status, mapped, "{status}");
        assert_eq!(Bedrock.map_error(status, &bytes, None).status, mapped, "{status}");
    }

    let started = Instant::now();
    let resp = ask(&mock, &req, false, &[("x-mock-latency-ms", "150")]).await;
    let v: Value = resp.json().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(v["metrics"]["latencyMs"].as_u64().unwrap() >= 150);
}

#[tokio::test]
async fn mid_stream_cut_and_exception_frame() {
    let mock = Mock::start(&signing_flags());
    let resp = ask(&mock, &openai_request("cut me"), true, &[("x-mock-cut-after-chunks", "4")]).await;
    assert_eq!(resp.status(), 200);
    let (body, _, broke) = read_chunks(resp).await;
    assert!(broke, "the connection is dropped, not ended cleanly");
    assert_eq!(events(&frames(&body)).len(), 4);
    let (out, t) = translate_stream(&body, 9);
    assert!(!out.contains("[DONE]") && out.contains(r#"{"error":"#), "{out}");
    assert!(!t.completed());
    assert_eq!(mock.stats().await["streams_cut"], 1);

    // An exception frame after 3 events, then a clean end.
    let resp = ask(
        &mock,
        &openai_request("throttle me"),
        true,
        &[("x-mock-stream-exception", "1"), ("x-mock-cut-after-chunks", "3")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (body, _, broke) = read_chunks(resp).await;
    assert!(!broke);
    let fs = frames(&body);
    assert_eq!(fs.len(), 4);
    events(&fs[..3]);
    let last = &fs[3];
    assert_eq!(last.header(":message-type"), Some("exception"));
    assert_eq!(last.header(":exception-type"), Some("throttlingException"));
    let (out, t) = translate_stream(&body, 9);
    assert!(!out.contains("[DONE]") && out.contains("throttlingException"), "{out}");
    assert!(!t.completed());
}
