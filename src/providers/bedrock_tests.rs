//! Golden tests for the Bedrock Converse wire format, its event-stream decoder and SigV4;
//! fixtures in tests/data/bedrock/ (stream fixtures are framed by `eventstream::encode`).

use super::*;
use crate::providers::gemini::tests::sse_values;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/bedrock/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// The stream fixture as Bedrock would send it: one event-stream frame per event.
fn stream_bytes() -> Vec<u8> {
    let events = json_fixture("stream_events.json");
    let mut out = Vec::new();
    for e in events.as_array().unwrap() {
        out.extend(eventstream::encode_event(e["event"].as_str().unwrap(), e["payload"].to_string().as_bytes()));
    }
    out
}

fn run(input: &[u8], cuts: &[usize], include_usage: bool) -> (Vec<u8>, BedrockStream) {
    let mut t = BedrockStream::new("claude-haiku", include_usage, "chatcmpl-test".into(), 1_700_000_000);
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
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let req = Bedrock.translate_request(&fixture("request_openai.json"), model, true, &Default::default()).unwrap();
    assert_eq!(req.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, json_fixture("request_bedrock.json"));
    let req = Bedrock.translate_request(&fixture("request_openai.json"), model, false, &Default::default()).unwrap();
    assert_eq!(req.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku";
    let req = Bedrock.translate_request(&fixture("request_openai.json"), arn, false, &Default::default()).unwrap();
    assert_eq!(
        req.path,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku/converse"
    );
}

#[test]
fn request_tool_choice_and_unsupported() {
    let tr = |extra: &str, opts: &TranslateOptions| {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f"}}}}]{extra}}}"#
        );
        Bedrock
            .translate_request(body.as_bytes(), "m", false, opts)
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
    };
    let d = TranslateOptions::default();
    assert_eq!(tr(r#","tool_choice":"auto""#, &d).unwrap()["toolConfig"]["toolChoice"], json!({"auto":{}}));
    assert_eq!(
        tr(r#","tool_choice":{"type":"function","function":{"name":"f"}}"#, &d).unwrap()["toolConfig"]["toolChoice"],
        json!({"tool":{"name":"f"}})
    );
    assert!(tr("", &d).unwrap()["toolConfig"].get("toolChoice").is_none());
    for (extra, param) in [
        (r#","tool_choice":"none""#, "tool_choice=none"),
        (r#","logit_bias":{"1":2}"#, "logit_bias"),
        (r#","n":3"#, "n"),
        (r#","response_format":{"type":"json_object"}"#, "response_format"),
        (r#","seed":7"#, "seed"),
    ] {
        assert_eq!(
            tr(extra, &d).unwrap_err(),
            TranslateError::Unsupported { param: param.into(), provider: "bedrock" },
            "{extra}"
        );
        let dropped = TranslateOptions { drop_unsupported_params: true, ..Default::default() };
        let v = tr(extra, &dropped).unwrap();
        assert!(v["toolConfig"].get("toolChoice").is_none() && v.get("inferenceConfig").is_none(), "{extra}: {v}");
    }
    // Images must be data URLs of a supported format.
    let img = |url: &str| {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]}}"#
        );
        Bedrock.translate_request(body.as_bytes(), "m", false, &d)
    };
    assert!(img("data:image/webp;base64,AAAA").is_ok());
    assert!(matches!(img("https://example.com/cat.png"), Err(TranslateError::InvalidRequest(_))));
    assert!(matches!(img("data:image/tiff;base64,AAAA"), Err(TranslateError::InvalidRequest(_))));
}

#[test]
fn golden_response() {
    let out = translate_response_at(&fixture("response_bedrock.json"), "claude-haiku", "chatcmpl-test", 1_700_000_000)
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, json_fixture("response_openai.json"));
}

#[test]
fn response_stop_reasons() {
    let reason = |r: &str| {
        let body = format!(
            r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"x"}}]}}}},"stopReason":"{r}","usage":{{"inputTokens":1,"outputTokens":1}}}}"#
        );
        let v: Value = serde_json::from_slice(&Bedrock.translate_response(body.as_bytes(), "m").unwrap()).unwrap();
        v["choices"][0]["finish_reason"].as_str().unwrap().to_string()
    };
    assert_eq!(reason("end_turn"), "stop");
    assert_eq!(reason("stop_sequence"), "stop");
    assert_eq!(reason("max_tokens"), "length");
    assert_eq!(reason("tool_use"), "tool_calls");
    assert_eq!(reason("guardrail_intervened"), "content_filter");
    assert_eq!(reason("content_filtered"), "content_filter");
    assert!(matches!(Bedrock.translate_response(b"{}", "m"), Err(TranslateError::BadUpstream(_))));
    assert!(matches!(Bedrock.translate_response(b"nope", "m"), Err(TranslateError::BadUpstream(_))));
}

#[test]
fn eventstream_round_trip_and_crc_checks() {
    let frame = eventstream::encode(&[(":event-type", "messageStop"), ("x", "y")], b"{\"stopReason\":\"end_turn\"}");
    let mut d = eventstream::Decoder::new();
    let frames = d.feed(&frame).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].header(":event-type"), Some("messageStop"));
    assert_eq!(frames[0].header("x"), Some("y"));
    assert_eq!(frames[0].payload, b"{\"stopReason\":\"end_turn\"}");
    assert_eq!(d.pending(), 0);

    // Non-string header types are skipped correctly.
    let mut h = vec![2u8, b'b', b'o', 0]; // bool true
    h.extend([1, b'i', 4, 0, 0, 0, 7]); // int32
    h.extend([1, b'u', 9]);
    h.extend([0u8; 16]); // uuid
    h.extend([1, b's', 7, 0, 2, b'o', b'k']);
    let total = (12 + h.len() + 2 + 4) as u32;
    let mut raw = total.to_be_bytes().to_vec();
    raw.extend((h.len() as u32).to_be_bytes());
    let c = crc32fast::hash(&raw);
    raw.extend(c.to_be_bytes());
    raw.extend(&h);
    raw.extend(b"{}");
    let c = crc32fast::hash(&raw);
    raw.extend(c.to_be_bytes());
    let frames = eventstream::Decoder::new().feed(&raw).unwrap();
    assert_eq!(frames[0].headers, vec![("s".to_string(), "ok".to_string())]);

    // Corruption anywhere is caught by one of the two CRCs (the prelude CRC guards the lengths).
    for i in 0..frame.len() {
        let mut bad = frame.clone();
        bad[i] ^= 0x40;
        assert!(eventstream::Decoder::new().feed(&bad).is_err(), "flip at {i}");
    }
}

#[test]
fn golden_stream() {
    let input = stream_bytes();
    let (out, t) = run(&input, &[], true);
    assert_eq!(sse_values(&out), json_fixture("stream_openai.json").as_array().unwrap().clone());
    assert!(t.completed());
    assert_eq!(t.usage(), Some(Usage { prompt_tokens: 30, completion_tokens: 12, cached_tokens: 0, estimated: false }));

    let (out, t) = run(&input, &[], false);
    let mut expected = json_fixture("stream_openai.json").as_array().unwrap().clone();
    expected.remove(expected.len() - 2);
    assert_eq!(sse_values(&out), expected);
    assert_eq!(t.usage().unwrap().prompt_tokens, 30);
}

#[test]
fn stream_split_at_every_byte_is_identical() {
    let input = stream_bytes();
    let (whole, _) = run(&input, &[], true);
    for cut in 1..input.len() {
        let (out, t) = run(&input, &[cut], true);
        assert_eq!(out, whole, "split at {cut}");
        assert!(t.completed());
    }
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run(&input, &cuts, true).0, whole);
}

#[test]
fn cut_stream_ends_with_one_error_event() {
    let input = stream_bytes();
    // Everything up to (not including) the messageStop frame, cut at several points.
    let events = json_fixture("stream_events.json");
    let before_stop: usize = events.as_array().unwrap()[..8]
        .iter()
        .map(|e| eventstream::encode_event(e["event"].as_str().unwrap(), e["payload"].to_string().as_bytes()).len())
        .sum();
    for cut in [0, 5, 40, before_stop / 2, before_stop, before_stop + 20] {
        let (out, t) = run(&input[..cut], &[], true);
        let events = sse_values(&out);
        assert!(!t.completed(), "cut at {cut}");
        assert!(events.iter().all(|e| e != "[DONE]"));
        assert_eq!(events.iter().filter(|e| e.get("error").is_some()).count(), 1, "cut at {cut}");
        assert_eq!(events.last().unwrap()["error"]["code"], "upstream_stream_cut");
    }

    // An exception frame mid-stream.
    let mut s = eventstream::encode_event("messageStart", br#"{"role":"assistant"}"#);
    s.extend(eventstream::encode(
        &[
            (":message-type", "exception"),
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
        ],
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    ));
    s.extend(eventstream::encode_event("messageStop", br#"{"stopReason":"end_turn"}"#));
    let (out, t) = run(&s, &[], true);
    let events = sse_values(&out);
    assert!(!t.completed());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["error"]["code"], "throttlingException");
    assert!(events[1]["error"]["message"].as_str().unwrap().contains("Too many requests"));

    // A corrupt frame.
    let mut bad = input.clone();
    bad[30] ^= 1;
    let (out, t) = run(&bad, &[], true);
    assert!(!t.completed());
    let events = sse_values(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["error"]["code"], "bad_upstream_event");
}

#[test]
fn error_mapping() {
    let m = |status: u16, t: Option<&str>, body: &str| map_error_typed(status, t, body.as_bytes(), None);
    let e = m(
        429,
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        r#"{"message":"Too many requests"}"#,
    );
    assert_eq!((e.status, e.kind), (429, "rate_limit_error"));
    assert!(e.message.contains("Too many requests"));
    assert_eq!(m(503, Some("ServiceUnavailableException"), r#"{"message":"x"}"#).status, 503);
    assert_eq!(m(429, Some("ModelNotReadyException"), r#"{"message":"x"}"#).status, 503);
    assert_eq!(m(403, Some("AccessDeniedException"), r#"{"message":"x"}"#).status, 502);
    assert_eq!(m(403, Some("UnrecognizedClientException"), r#"{"message":"x"}"#).status, 502);
    let e = m(400, None, r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#);
    assert_eq!((e.status, e.kind), (400, "invalid_request_error"));
    assert_eq!(m(500, None, r#"{"message":"InternalServerException"}"#).status, 502);
    assert_eq!(m(429, None, "").status, 429);
    assert_eq!(m(503, None, "").status, 503);
    assert_eq!(m(400, None, "").status, 400);
    assert_eq!(m(401, None, "").status, 502);
    assert_eq!(Bedrock.map_error(400, br#"{"__type":"ThrottlingException","message":"slow"}"#, Some(2)).status, 429);
    assert_eq!(Bedrock.map_error(429, b"{}", Some(2)).retry_after, Some(2));
}

// ---- SigV4 -----------------------------------------------------------------------------------

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// HMAC-SHA256 written out from RFC 2104, independent of the `hmac` crate.
fn hmac_by_hand(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = sha2::Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[test]
fn sigv4_signing_key_matches_aws_documentation() {
    // "Deriving the signing key" example in AWS's SigV4 documentation.
    assert_eq!(
        hex::encode(signing_key(SECRET, "20120215", "us-east-1", "iam")),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
    // And step by step with the hand-written HMAC.
    let k = hmac_by_hand(format!("AWS4{SECRET}").as_bytes(), b"20150830");
    let k = hmac_by_hand(&k, b"us-east-1");
    let k = hmac_by_hand(&k, b"iam");
    let k = hmac_by_hand(&k, b"aws4_request");
    assert_eq!(signing_key(SECRET, "20150830", "us-east-1", "iam"), k);
}

#[test]
fn sigv4_matches_the_aws_iam_list_users_example() {
    // The GET ListUsers example of AWS's SigV4 documentation (signed headers content-type;host;x-amz-date).
    let empty = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b""));
    let steps = signature_steps(
        "GET",
        "/",
        "Version=2010-05-08&Action=ListUsers",
        &[
            ("Host", "iam.amazonaws.com"),
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("X-Amz-Date", "20150830T123600Z"),
        ],
        &empty,
        "20150830T123600Z",
        "us-east-1",
        "iam",
        SECRET,
    );
    assert_eq!(
        steps.canonical_request,
        "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        steps.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    assert_eq!(steps.signature, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

fn bedrock_sign(body: &[u8], host: &str, token: Option<&str>, secs: i64) -> Vec<(String, String)> {
    use chrono::TimeZone;
    sign(
        "POST",
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "",
        &[("host", host), ("content-type", "application/json")],
        body,
        "us-east-1",
        "bedrock",
        "AKIDEXAMPLE",
        SECRET,
        token,
        chrono::Utc.timestamp_opt(secs, 0).unwrap(),
    )
}

#[test]
fn sigv4_bedrock_request_independently_recomputed() {
    let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let host = "bedrock-runtime.us-east-1.amazonaws.com";
    let h = bedrock_sign(body, host, Some("SESSION/TOKEN=="), 1_700_000_000);
    let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("x-amz-date"), "20231114T221320Z");
    let body_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    assert_eq!(get("x-amz-content-sha256"), body_hash);
    assert_eq!(get("x-amz-security-token"), "SESSION/TOKEN==");

    // The canonical request written out by hand: the path segment is encoded a second time.
    let canonical = format!(
        "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\ncontent-type:application/json\nhost:{host}\nx-amz-content-sha256:{body_hash}\nx-amz-date:20231114T221320Z\nx-amz-security-token:SESSION/TOKEN==\n\ncontent-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n{body_hash}"
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/us-east-1/bedrock/aws4_request\n{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes()))
    );
    let mut k = hmac_by_hand(format!("AWS4{SECRET}").as_bytes(), b"20231114");
    for part in [&b"us-east-1"[..], b"bedrock", b"aws4_request"] {
        k = hmac_by_hand(&k, part);
    }
    let sig = hex::encode(hmac_by_hand(&k, sts.as_bytes()));
    assert_eq!(
        get("authorization"),
        format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature={sig}")
    );
    // No token, no token header.
    assert!(bedrock_sign(body, host, None, 1_700_000_000).iter().all(|(k, _)| k != "x-amz-security-token"));
}

#[test]
fn sigv4_signature_changes_with_every_signed_input() {
    let auth = |h: Vec<(String, String)>| h.into_iter().find(|(k, _)| k == "authorization").unwrap().1;
    let base = auth(bedrock_sign(b"{}", "a.example", None, 1_700_000_000));
    assert_eq!(base, auth(bedrock_sign(b"{}", "a.example", None, 1_700_000_000)), "deterministic");
    assert_ne!(base, auth(bedrock_sign(b"{ }", "a.example", None, 1_700_000_000)));
    assert_ne!(base, auth(bedrock_sign(b"{}", "b.example", None, 1_700_000_000)));
    assert_ne!(base, auth(bedrock_sign(b"{}", "a.example", Some("t"), 1_700_000_000)));
    assert_ne!(base, auth(bedrock_sign(b"{}", "a.example", None, 1_700_000_001)));
    // Header names are case-insensitive and values trimmed; query order does not matter.
    let s = |headers: &[(&str, &str)], q: &str| {
        signature_steps("GET", "/", q, headers, "x", "20150830T123600Z", "us-east-1", "bedrock", SECRET).signature
    };
    assert_eq!(s(&[("Host", " a  b ")], "b=2&a=1"), s(&[("host", "a b")], "a=1&b=2"));
    assert_ne!(s(&[("host", "a")], "a=1"), s(&[("host", "a")], "a=2"));
    assert_eq!(s(&[("host", "a")], "k=a%20b"), s(&[("host", "a")], "k=a b"));
}

#[test]
fn stream_error_frames_and_cut_after_stop() {
    let mut s = eventstream::encode_event("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"x"}}"#);
    s.extend(eventstream::encode(
        &[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "oops")],
        b"",
    ));
    let (out, t) = run(&s, &[], true);
    let events = sse_values(&out);
    assert!(!t.completed());
    assert_eq!(events.len(), 3, "{events:?}"); // role, text, error
    assert_eq!(events[2]["error"]["code"], "InternalFailure");

    // Cut after messageStop: the answer is whole, only usage is missing.
    let mut s = eventstream::encode_event("messageStart", br#"{"role":"assistant"}"#);
    s.extend(eventstream::encode_event("messageStop", br#"{"stopReason":"max_tokens"}"#));
    let meta = eventstream::encode_event("metadata", br#"{"usage":{"inputTokens":1,"outputTokens":2}}"#);
    s.extend(&meta[..meta.len() / 2]);
    let (out, t) = run(&s, &[], true);
    let events = sse_values(&out);
    assert!(t.completed());
    assert_eq!(t.usage(), None);
    assert_eq!(events[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(events.last().unwrap(), "[DONE]");
}
