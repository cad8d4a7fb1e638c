//! OpenAI Chat Completions wire format, spoken by OpenAI and every compatible server
//! (vLLM, Ollama, Groq, Together, LM Studio...). Requests pass through byte for byte; only the
//! `model` field is rewritten, by the proxy, when the upstream name differs.

use http::{HeaderName, HeaderValue};

/// `Authorization: Bearer <key>`, marked sensitive so it never shows in debug output.
pub fn auth_header(key: &str) -> Result<(HeaderName, HeaderValue), String> {
    let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| "api_key contains invalid characters".to_string())?;
    v.set_sensitive(true);
    Ok((http::header::AUTHORIZATION, v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_header() {
        let (n, v) = super::auth_header("sk-1").unwrap();
        assert_eq!(n, "authorization");
        assert_eq!(v, "Bearer sk-1");
        assert!(v.is_sensitive());
        assert!(super::auth_header("bad\nkey").is_err());
    }
}

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Endpoint;
use crate::error::GatewayError;

/// The few request fields the gateway reads; everything else passes through untouched.
#[derive(Debug)]
pub struct RequestFields<'a> {
    pub model: Cow<'a, str>,
    /// Byte range of the `model` value (quotes included) in the body, for in-place rewriting.
    pub model_span: Range<usize>,
    pub stream: bool,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: Option<bool>,
    /// Byte range of the `stream_options` value, when present.
    pub stream_options_span: Option<Range<usize>>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Reads `model`, `stream` and checks the endpoint's required field, borrowing from `body`.
pub fn parse_request(body: &[u8], endpoint: Endpoint) -> Result<RequestFields<'_>, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::bad_request("The request body is empty; expected a JSON object", "invalid_json"));
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() { "invalid_request" } else { "invalid_json" };
        let message = if e.is_data() {
            format!("Invalid request: {e}")
        } else {
            format!("The request body is not valid JSON: {e}")
        };
        GatewayError::bad_request(message, code)
    })?;
    let missing = |param: &'static str| GatewayError::BadRequest {
        message: format!("Missing required parameter: '{param}'."),
        code: "missing_required_parameter",
        param: Some(param),
    };
    let raw_model = probe.model.filter(|m| m.get() != "null").ok_or_else(|| missing("model"))?;
    let model: Cow<str> = serde_json::from_str(raw_model.get()).map_err(|_| GatewayError::BadRequest {
        message: "Invalid type for 'model': expected a string.".into(),
        code: "invalid_type",
        param: Some("model"),
    })?;
    if model.is_empty() {
        return Err(missing("model"));
    }
    let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
    let model_span = start..start + raw_model.get().len();

    let field = endpoint.required_field();
    let value = match endpoint {
        Endpoint::ChatCompletions => probe.messages,
        Endpoint::Completions => probe.prompt,
        Endpoint::Embeddings => probe.input,
    }
    .filter(|v| v.get() != "null")
    .ok_or_else(|| missing(field))?;
    if endpoint == Endpoint::ChatCompletions {
        let v = value.get();
        if !v.starts_with('[') {
            return Err(GatewayError::BadRequest {
                message: "Invalid type for 'messages': expected an array of message objects.".into(),
                code: "invalid_type",
                param: Some("messages"),
            });
        }
        if v[1..].trim_start().starts_with(']') {
            return Err(GatewayError::BadRequest {
                message: "Invalid 'messages': empty array. Expected an array with minimum length 1.".into(),
                code: "empty_array",
                param: Some("messages"),
            });
        }
    }
    let span_of = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    let include_usage = probe
        .stream_options
        .and_then(|raw| serde_json::from_str::<StreamOptions>(raw.get()).ok())
        .and_then(|o| o.include_usage);
    let stream_options_span = probe.stream_options.filter(|r| r.get() != "null").map(span_of);
    Ok(RequestFields {
        model,
        model_span,
        stream: probe.stream.unwrap_or(false),
        include_usage,
        stream_options_span,
        max_tokens: probe.max_completion_tokens.or(probe.max_tokens),
    })
}

/// Applies non-overlapping byte edits (range replaced by bytes; an empty range inserts).
pub fn apply_edits(body: &[u8], edits: &mut [(Range<usize>, &[u8])]) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| r.start);
    let extra: usize = edits.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    for (range, bytes) in edits.iter() {
        out.extend_from_slice(&body[at..range.start]);
        out.extend_from_slice(bytes);
        at = range.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// Where `"stream_options":{"include_usage":true},` can be inserted: just inside the top-level `{`.
pub fn object_start(body: &[u8]) -> Option<usize> {
    body.iter().position(|b| !b.is_ascii_whitespace()).filter(|&i| body[i] == b'{').map(|i| i + 1)
}

/// The body with its `model` value replaced by `model_json` (a JSON string literal).
pub fn rewrite_model(body: &[u8], span: Range<usize>, model_json: &[u8]) -> Vec<u8> {
    apply_edits(body, &mut [(span, model_json)])
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn reads_model_stream_and_span() {
        let body = br#"{ "messages":[{"role":"user","content":"hi"}], "model" : "gpt-4o-mini", "stream":true}"#;
        let f = parse_request(body, Endpoint::ChatCompletions).unwrap();
        assert_eq!(f.model, "gpt-4o-mini");
        assert!(f.stream);
        assert_eq!(&body[f.model_span.clone()], br#""gpt-4o-mini""#);
        let out = rewrite_model(body, f.model_span, br#""llama3.1:8b""#);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "llama3.1:8b");
        assert_eq!(v["messages"][0]["content"], "hi");
    }

    #[test]
    fn stream_options_are_found_and_edits_apply() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[1]}"#;
        let f = parse_request(body, Endpoint::ChatCompletions).unwrap();
        assert_eq!(f.include_usage, Some(false));
        let span = f.stream_options_span.clone().unwrap();
        let out = apply_edits(body, &mut [(span, br#"{"include_usage":true}"#), (f.model_span, br#""other""#)]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "other");

        let body = br#"  {"model":"m","messages":[1]}"#;
        let at = object_start(body).unwrap();
        let out = apply_edits(body, &mut [(at..at, br#""stream_options":{"include_usage":true},"#)]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(parse_request(body, Endpoint::ChatCompletions).unwrap().include_usage, None);
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let body = br#"{"model":"a\u002fb","prompt":"x"}"#;
        assert_eq!(parse_request(body, Endpoint::Completions).unwrap().model, "a/b");
    }

    #[test]
    fn rejects_bad_input_with_clear_codes() {
        let code = |b: &[u8], e| match parse_request(b, e) {
            Err(GatewayError::BadRequest { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"", Endpoint::ChatCompletions), "invalid_json");
        assert_eq!(code(b"{not json", Endpoint::ChatCompletions), "invalid_json");
        assert_eq!(code(b"[1,2]", Endpoint::ChatCompletions), "invalid_request");
        assert_eq!(
            code(br#"{"messages":[{"role":"user","content":"x"}]}"#, Endpoint::ChatCompletions),
            "missing_required_parameter"
        );
        assert_eq!(code(br#"{"model":"m"}"#, Endpoint::ChatCompletions), "missing_required_parameter");
        assert_eq!(code(br#"{"model":"m","messages":[]}"#, Endpoint::ChatCompletions), "empty_array");
        assert_eq!(code(br#"{"model":"m","messages":"hi"}"#, Endpoint::ChatCompletions), "invalid_type");
        assert_eq!(code(br#"{"model":7,"messages":[1]}"#, Endpoint::ChatCompletions), "invalid_type");
        assert_eq!(
            code(br#"{"model":"m","messages":[1],"stream":"yes"}"#, Endpoint::ChatCompletions),
            "invalid_request"
        );
        assert_eq!(code(br#"{"model":"m"}"#, Endpoint::Embeddings), "missing_required_parameter");
        assert!(parse_request(br#"{"model":"m","input":"x"}"#, Endpoint::Embeddings).is_ok());
    }
}
