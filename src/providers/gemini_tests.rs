//! Golden tests for the Gemini wire format; fixtures in tests/data/gemini/.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// An OpenAI SSE stream as JSON values (`[DONE]` as the string "[DONE]").
pub(crate) fn sse_values(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "unterminated event in {text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}"));
            if data == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

fn translator(include_usage: bool) -> GeminiStream {
    GeminiStream::new("gemini-flash", include_usage, "chatcmpl-test".into(), 1_700_000_000)
}

fn run(input: &[u8], cuts: &[usize], include_usage: bool) -> (Vec<u8>, GeminiStream) {
    let mut t = translator(include_usage);
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        out.extend(t.feed(&input[at..c]));
        at = c;
    }
    out.extend(t.finish());
    (out, t)
}

#[test]
fn golden_request() {
    let req = Gemini
        .translate_request(&fixture("request_openai.json"), "gemini-2.0-flash", false, &Default::default())
        .unwrap();
    assert_eq!(req.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(req.headers, vec![("content-type".to_string(), "application/json".to_string())]);
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, json_fixture("request_gemini.json"));

    let req = Gemini
        .translate_request(&fixture("request_openai.json"), "gemini-2.0-flash", true, &Default::default())
        .unwrap();
    assert_eq!(req.path, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
}

#[test]
fn request_tool_choice_modes_and_json_schema() {
    let tr = |extra: &str| -> Value {
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#);
        let r = Gemini.translate_request(body.as_bytes(), "g", false, &Default::default()).unwrap();
        serde_json::from_slice(&r.body).unwrap()
    };
    assert_eq!(tr(r#","tool_choice":"auto""#)["toolConfig"]["functionCallingConfig"], json!({"mode":"AUTO"}));
    assert_eq!(tr(r#","tool_choice":"none""#)["toolConfig"]["functionCallingConfig"], json!({"mode":"NONE"}));
    assert_eq!(tr(r#","tool_choice":"required""#)["toolConfig"]["functionCallingConfig"], json!({"mode":"ANY"}));
    let v = tr(
        r#","response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}}},"max_completion_tokens":9,"max_tokens":5,"stop":"X""#,
    );
    assert_eq!(
        v["generationConfig"],
        json!({"maxOutputTokens": 9, "stopSequences": ["X"], "responseMimeType": "application/json",
               "responseSchema": {"type":"object","properties":{"a":{"type":"integer"}}}})
    );
    let v = tr("");
    assert_eq!(v, json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]}));
}

#[test]
fn request_unsupported_params_fail_unless_dropped() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"logit_bias":{"42":10},"logprobs":false}"#;
    let err = Gemini.translate_request(body, "g", false, &Default::default()).unwrap_err();
    assert_eq!(err, TranslateError::Unsupported { param: "logit_bias".into(), provider: "gemini" });
    let body2 = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":true}"#;
    assert!(matches!(
        Gemini.translate_request(body2, "g", false, &Default::default()),
        Err(TranslateError::Unsupported { .. })
    ));
    let opts = TranslateOptions { drop_unsupported_params: true, ..Default::default() };
    let r = Gemini.translate_request(body, "g", false, &opts).unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v.get("logit_bias").is_none() && v.get("generationConfig").is_none());
    // Malformed requests.
    assert!(matches!(Gemini.translate_request(b"[1]", "g", false, &opts), Err(TranslateError::InvalidRequest(_))));
    let orphan = br#"{"messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#;
    assert!(matches!(Gemini.translate_request(orphan, "g", false, &opts), Err(TranslateError::InvalidRequest(_))));
}

#[test]
fn golden_response() {
    let out = translate_response_at(&fixture("response_gemini.json"), "gemini-flash", "chatcmpl-test", 1_700_000_000)
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, json_fixture("response_openai.json"));
}

#[test]
fn response_finish_reasons_and_blocks() {
    let reason = |r: &str| {
        let body = format!(r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{r}"}}]}}"#);
        let v: Value = serde_json::from_slice(&Gemini.translate_response(body.as_bytes(), "m").unwrap()).unwrap();
        v["choices"][0]["finish_reason"].as_str().unwrap().to_string()
    };
    assert_eq!(reason("STOP"), "stop");
    assert_eq!(reason("MAX_TOKENS"), "length");
    for r in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT"] {
        assert_eq!(reason(r), "content_filter");
    }
    let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#;
    let v: Value = serde_json::from_slice(&Gemini.translate_response(blocked, "m").unwrap()).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert!(matches!(Gemini.translate_response(b"{oops", "m"), Err(TranslateError::BadUpstream(_))));
    assert!(matches!(Gemini.translate_response(b"{}", "m"), Err(TranslateError::BadUpstream(_))));
}

#[test]
fn golden_stream() {
    let input = fixture("stream.sse");
    let (out, t) = run(&input, &[], true);
    assert_eq!(sse_values(&out), json_fixture("stream_openai.json").as_array().unwrap().clone());
    assert!(t.completed());
    assert_eq!(t.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 12, cached_tokens: 4, estimated: false }));

    // Without include_usage: the same minus the usage chunk; usage is still reported.
    let (out, t) = run(&input, &[], false);
    let mut expected = json_fixture("stream_openai.json").as_array().unwrap().clone();
    expected.remove(expected.len() - 2);
    assert_eq!(sse_values(&out), expected);
    assert_eq!(t.usage().unwrap().completion_tokens, 12);
}

#[test]
fn stream_split_at_every_byte_is_identical() {
    let input = fixture("stream.sse");
    let (whole, _) = run(&input, &[], true);
    for cut in 1..input.len() {
        let (out, t) = run(&input, &[cut], true);
        assert_eq!(out, whole, "split at {cut}");
        assert!(t.completed());
    }
    // One byte at a time.
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run(&input, &cuts, true).0, whole);
    // LF-only separators give the same output.
    let lf = String::from_utf8(input.clone()).unwrap().replace("\r\n", "\n");
    assert_eq!(run(lf.as_bytes(), &[], true).0, whole);
}

#[test]
fn cut_stream_ends_with_one_error_event() {
    let input = fixture("stream.sse");
    // Cut anywhere before the last event is complete.
    let last = input.windows(14).rposition(|w| w == b"\"finishReason\"").unwrap();
    for cut in [0, 10, input.len() / 2, last] {
        let (out, t) = run(&input[..cut], &[], true);
        let events = sse_values(&out);
        assert!(!t.completed(), "cut at {cut}");
        assert!(events.iter().all(|e| e != "[DONE]"));
        let errors: Vec<_> = events.iter().filter(|e| e.get("error").is_some()).collect();
        assert_eq!(errors.len(), 1, "cut at {cut}: {events:?}");
        assert_eq!(events.last().unwrap()["error"]["code"], "upstream_stream_cut");
    }
    // An error event from Gemini mid-stream.
    let mid = b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\ndata: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\n\n";
    let (out, t) = run(mid, &[], true);
    let events = sse_values(&out);
    assert!(!t.completed());
    assert_eq!(events.last().unwrap()["error"]["message"], "overloaded");
    assert!(events.iter().all(|e| e != "[DONE]"));
    // Garbage.
    let (out, t) = run(b"data: {nope\n\n", &[], true);
    assert!(!t.completed());
    assert_eq!(sse_values(&out).len(), 1);
}

#[test]
fn error_mapping() {
    let m = |status: u16, body: &str| Gemini.map_error(status, body.as_bytes(), None);
    let e = m(
        429,
        r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17s"}]}}"#,
    );
    assert_eq!((e.status, e.kind, e.retry_after), (429, "rate_limit_error", Some(17)));
    assert!(e.message.contains("Quota exceeded"));
    assert_eq!(m(503, r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#).status, 503);
    let e = m(400, r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#);
    assert_eq!((e.status, e.kind), (400, "invalid_request_error"));
    // With Google's ErrorInfo reason it is the gateway's key that is bad, not the request.
    let e = m(
        400,
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
    );
    assert_eq!(e.status, 502);
    assert!(e.message.contains("credentials"), "{}", e.message);
    assert_eq!(m(401, r#"{"error":{"code":401,"message":"no","status":"UNAUTHENTICATED"}}"#).status, 502);
    assert_eq!(m(403, r#"{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED"}}"#).status, 502);
    assert_eq!(m(500, r#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#).status, 502);
    assert_eq!(m(429, "not json").status, 429);
    assert_eq!(m(503, "").status, 503);
    assert_eq!(m(404, r#"[{"error":{"code":404,"message":"model not found","status":"NOT_FOUND"}}]"#).status, 502);
    assert_eq!(Gemini.map_error(429, b"{}", Some(3)).retry_after, Some(3));
}

#[test]
fn stream_with_two_candidates_and_a_blocked_prompt() {
    let input = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}],\"role\":\"model\"},\"index\":0},",
        "{\"content\":{\"parts\":[{\"text\":\"B\"}],\"role\":\"model\"},\"index\":1}]}\n\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0},",
        "{\"content\":{\"parts\":[{\"text\":\"b\"}],\"role\":\"model\"},\"finishReason\":\"MAX_TOKENS\",\"index\":1}],",
        "\"usageMetadata\":{\"promptTokenCount\":2,\"candidatesTokenCount\":4}}\n\n",
    );
    let (out, t) = run(input.as_bytes(), &[], false);
    let events = sse_values(&out);
    let per = |i: u64| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["choices"][0]["index"] == i)
            .map(|e| json!([e["choices"][0]["delta"], e["choices"][0]["finish_reason"]]))
            .collect()
    };
    assert_eq!(
        per(0),
        vec![
            json!([{"role":"assistant","content":""}, null]),
            json!([{"content":"A"}, null]),
            json!([{"content":"a"}, null]),
            json!([{}, "stop"])
        ]
    );
    assert_eq!(
        per(1),
        vec![
            json!([{"role":"assistant","content":""}, null]),
            json!([{"content":"B"}, null]),
            json!([{"content":"b"}, null]),
            json!([{}, "length"])
        ]
    );
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(t.completed());

    let blocked =
        b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":5}}\n\n";
    let (out, t) = run(blocked, &[], true);
    let events = sse_values(&out);
    assert_eq!(events[0]["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(events[1]["usage"]["prompt_tokens"], 5);
    assert_eq!(events[2], "[DONE]");
    assert!(t.completed());
}
