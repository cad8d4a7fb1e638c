//! Amazon Bedrock Converse wire format: `POST /model/{modelId}/converse` (JSON) and
//! `/converse-stream` (binary `application/vnd.amazon.eventstream` frames, one Converse event
//! each), errors as `{"message"}` with an `x-amzn-errortype` header, with the same knobs as the
//! other sides. The model id arrives URL-encoded (`...-v1%3A0`) and is decoded.
//!
//! Auth is SigV4: the `authorization` header's format, `x-amz-date`, the signed headers and
//! `x-amz-content-sha256` (the body's hash) are always checked; with `--aws-access-key-id` the key
//! id must match, and with `--aws-secret-access-key` the signature is recomputed over the request
//! as received and compared. Failures are AWS's 403s (`MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException`, `InvalidSignatureException`).
//!
//! Tool use: when `toolConfig.tools` is offered and the last user message names one (or the
//! `x-mock-tool` header, or a `toolChoice` of `tool`/`any`, picks one), the answer is a short text
//! block then a `toolUse` block, stop reason `tool_use`; streamed, its input comes in fragments.
//!
//! `x-mock-stream-exception: 1` (or an exception type such as `modelStreamErrorException`) ends a
//! stream after `x-mock-cut-after-chunks` frames (default 2) with an exception frame instead of a
//! clean end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use switchyard::providers::bedrock::{eventstream, sign};

use super::answer;
use super::openai::{full, stream_events_as, Behaviour, MockBody, State};

const CORAL: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";
const BEDROCK: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

fn error_in(status: u16, kind: &str, namespace: &str, message: &str) -> Response<MockBody> {
    let mut resp = full(status, "application/json", json!({ "message": message }).to_string());
    let h = resp.headers_mut();
    h.insert("x-amzn-errortype", format!("{kind}:{namespace}").parse().expect("valid header"));
    h.insert("x-amzn-requestid", "00000000-mock-0000-0000-000000000000".parse().expect("static header"));
    resp
}

fn error(status: u16, kind: &str, message: &str) -> Response<MockBody> {
    error_in(status, kind, BEDROCK, message)
}

/// A SigV4 rejection.
fn denied(kind: &str, message: &str) -> Response<MockBody> {
    error_in(403, kind, CORAL, message)
}

fn fail(status: u16, retry_after: u64) -> Response<MockBody> {
    let mut resp = match status {
        429 => error(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        503 => error(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
        500 => error(
            500,
            "InternalServerException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        400 => error(400, "ValidationException", "Invalid request (mock)."),
        403 => error(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
        404 => error(404, "ResourceNotFoundException", "The requested resource could not be found."),
        408 => error(408, "ModelTimeoutException", "The model took too long to respond."),
        424 => error(424, "ModelErrorException", "The model returned an error (mock)."),
        s => error(s, "InternalServerException", &format!("Mock failure with status {s}")),
    };
    if status == 429 {
        resp.headers_mut().insert("retry-after", retry_after.into());
    }
    resp
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// `AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..` → (credential, signed headers, signature).
fn parse_authorization(auth: &str) -> Option<(String, String, String)> {
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v.to_string()),
            "SignedHeaders" => signed = Some(v.to_string()),
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some((cred?, signed?, sig?))
}

/// SigV4 checks (see the module doc); `Err` is the 403 to answer.
fn check_sigv4(state: &State, req: &hyper::http::request::Parts, body: &[u8]) -> Result<(), Box<Response<MockBody>>> {
    let deny = |kind: &str, msg: &str| Err(Box::new(denied(kind, msg)));
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return deny("MissingAuthenticationTokenException", "Missing Authentication Token");
    };
    let Some((credential, signed_headers, signature)) = parse_authorization(auth) else {
        return deny(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' \
             parameter. Authorization header requires 'SignedHeaders' parameter.",
        );
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return deny("IncompleteSignatureException", &format!("Credential is malformed: {credential}"));
    };
    if service != "bedrock" {
        return deny("InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.");
    }
    let Some(amz_date) = header("x-amz-date") else {
        return deny(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    };
    let Ok(when) = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map(|t| t.and_utc()) else {
        return deny(
            "IncompleteSignatureException",
            &format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        );
    };
    if !amz_date.starts_with(date) {
        return deny(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        );
    }
    if (chrono::Utc::now() - when).num_seconds().abs() > 15 * 60 {
        return deny(
            "InvalidSignatureException",
            &format!("Signature expired: {amz_date} is now earlier or later than 15 minutes from now."),
        );
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return deny(
            "IncompleteSignatureException",
            "'Host' and 'X-Amz-Date' must be SignedHeaders in the AWS Authorization.",
        );
    }
    let payload_hash = sha256_hex(body);
    if header("x-amz-content-sha256") != Some(payload_hash.as_str()) {
        return deny(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
    }
    if state.knobs.aws_access_key_id.as_deref().is_some_and(|k| k != access_key_id) {
        return deny("UnrecognizedClientException", "The security token included in the request is invalid.");
    }
    let Some(secret) = &state.knobs.aws_secret_access_key else { return Ok(()) };
    // `sign` adds these itself.
    let added = ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in signed.iter().filter(|n| !added.contains(n)) {
        for v in req.headers.get_all(*name) {
            headers.push((*name, v.to_str().unwrap_or_default()));
        }
    }
    let token = signed.contains(&"x-amz-security-token").then(|| header("x-amz-security-token")).flatten();
    let path = req.uri.path();
    let query = req.uri.query().unwrap_or_default();
    let expected =
        sign(req.method.as_str(), path, query, &headers, body, region, service, access_key_id, secret, token, when);
    let want = expected
        .iter()
        .find(|(n, _)| n == "authorization")
        .and_then(|(_, v)| parse_authorization(v))
        .map(|(_, _, s)| s)
        .unwrap_or_default();
    if want != signature {
        return deny(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        );
    }
    Ok(())
}

/// `rest` is the raw path after `/model/`: `{modelId}/converse` or `{modelId}/converse-stream`.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, b: Behaviour, rest: &str) -> Response<MockBody> {
    let started = Instant::now();
    let Some((raw_model, action)) = rest.rsplit_once('/') else {
        return error(404, "UnknownOperationException", "");
    };
    let stream = match action {
        "converse" => false,
        "converse-stream" => true,
        _ => return error(404, "UnknownOperationException", ""),
    };
    let model = percent_decode(raw_model);
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let forced_tool = header("x-mock-tool");
    let stream_exception = header("x-mock-stream-exception").filter(|v| !v.is_empty() && v != "0");
    let body_bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "ValidationException", "could not read body"),
    };
    if let Err(resp) = check_sigv4(&state, &parts, &body_bytes) {
        return *resp;
    }
    let body: Value = match serde_json::from_slice(&body_bytes) {
        Ok(v) => v,
        Err(e) => return error(400, "SerializationException", &format!("invalid JSON: {e}")),
    };
    if let Ok(mut last) = state.last.lock() {
        *last = json!({
            "path": parts.uri.path(), "query": parts.uri.query(), "model": model, "stream": stream,
            "authorization": header("authorization"), "x_amz_date": header("x-amz-date"),
            "x_amz_content_sha256": header("x-amz-content-sha256"),
            "x_amz_security_token": header("x-amz-security-token"), "host": header("host"),
            "x_request_id": header("x-request-id"), "body_len": body_bytes.len(), "body": body,
        });
    }
    if b.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.latency_ms)).await;
    }
    if let Some(status) = b.fail_status {
        return fail(status, b.retry_after);
    }
    if let Err(msg) = validate(&body) {
        return error(400, "ValidationException", &msg);
    }
    converse(&state, &body, stream, forced_tool.as_deref(), stream_exception.as_deref(), &b, started)
}

fn validate(body: &Value) -> Result<(), String> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Err("1 validation error detected: Value null at 'messages' failed to satisfy constraint: \
                    Member must not be null"
            .into());
    };
    let mut prev = None;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !matches!(role, "user" | "assistant") {
            return Err(format!(
                "1 validation error detected: Value '{role}' at 'messages.{}.member.role' failed to satisfy \
                 constraint: Member must satisfy enum value set: [user, assistant]",
                i + 1
            ));
        }
        if i == 0 && role != "user" {
            break;
        }
        if prev == Some(role) {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation \
                        alternates between user and assistant roles and try again."
                .into());
        }
        if m.get("content").and_then(Value::as_array).is_none_or(|c| c.is_empty()) {
            return Err(format!("The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."));
        }
        prev = Some(role);
    }
    if messages.first().and_then(|m| m.get("role")).and_then(Value::as_str) != Some("user") {
        return Err("A conversation must start with a user message. Try again with a conversation that starts with \
                    a user message."
            .into());
    }
    Ok(())
}

/// The random-length `p` padding real Bedrock stream payloads carry.
fn pad(i: usize) -> &'static str {
    const P: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    &P[..1 + (i * 7) % 40]
}

fn frame(i: usize, event_type: &str, mut payload: Value) -> Bytes {
    payload["p"] = pad(i).into();
    Bytes::from(eventstream::encode_event(event_type, payload.to_string().as_bytes()))
}

fn converse(
    state: &Arc<State>,
    body: &Value,
    stream: bool,
    forced_tool: Option<&str>,
    stream_exception: Option<&str>,
    b: &Behaviour,
    started: Instant,
) -> Response<MockBody> {
    let prompt = answer::last_user_text(body);
    let system = answer::content_text(&body["system"]).split_whitespace().count() as u64;
    let input_tokens = answer::prompt_tokens(body) + system;
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);

    let specs: Vec<&Value> =
        body["toolConfig"]["tools"].as_array().into_iter().flatten().filter_map(|t| t.get("toolSpec")).collect();
    let names: Vec<&str> = specs.iter().filter_map(|s| s.get("name").and_then(Value::as_str)).collect();
    let choice = &body["toolConfig"]["toolChoice"];
    let forced = forced_tool.map(str::to_string).or_else(|| {
        if let Some(name) = choice["tool"]["name"].as_str() {
            Some(name.to_string())
        } else if choice["any"].is_object() {
            names.first().map(|n| n.to_string())
        } else {
            None
        }
    });
    let tool = answer::tool_to_call(&names, &prompt, forced.as_deref());
    let (tokens, stop_reason) = match &tool {
        Some(name) => (vec!["Calling".to_string(), format!(" {name}.")], "tool_use"),
        None => {
            let mut t = answer::answer_tokens(&prompt, b.answer_tokens);
            match body["inferenceConfig"]["maxTokens"].as_u64() {
                Some(max) if t.len() as u64 > max => {
                    t.truncate(max as usize);
                    (t, "max_tokens")
                }
                _ => (t, "end_turn"),
            }
        }
    };
    let tool_use = tool.map(|name| {
        let spec = specs.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()));
        let schema = spec.map_or(&Value::Null, |s| &s["inputSchema"]["json"]);
        (format!("tooluse_mock{n:010}"), name, answer::tool_input(schema))
    });
    let args_json = tool_use.as_ref().map(|(_, _, input)| input.to_string()).unwrap_or_default();
    let fragments = answer::split_fragments(&args_json, 3);
    let output_tokens = tokens.len() as u64 + fragments.len() as u64;
    let usage = json!({ "inputTokens": input_tokens, "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens });

    if !stream {
        let mut content = Vec::new();
        if !tokens.is_empty() {
            content.push(json!({ "text": tokens.concat() }));
        }
        if let Some((id, name, input)) = &tool_use {
            content.push(json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }));
        }
        let out = json!({
            "output": { "message": { "role": "assistant", "content": content } },
            "stopReason": stop_reason, "usage": usage,
            "metrics": { "latencyMs": started.elapsed().as_millis() as u64 },
        });
        return full(200, "application/json", out.to_string());
    }

    let mut events = Vec::with_capacity(tokens.len() + fragments.len() + 8);
    let push = |events: &mut Vec<Bytes>, event_type: &str, payload: Value| {
        let i = events.len();
        events.push(frame(i, event_type, payload));
    };
    push(&mut events, "messageStart", json!({ "role": "assistant" }));
    let mut index = 0;
    if !tokens.is_empty() {
        for t in &tokens {
            push(&mut events, "contentBlockDelta", json!({ "contentBlockIndex": index, "delta": { "text": t } }));
        }
        push(&mut events, "contentBlockStop", json!({ "contentBlockIndex": index }));
        index += 1;
    }
    if let Some((id, name, _)) = &tool_use {
        let start = json!({ "contentBlockIndex": index, "start": { "toolUse": { "toolUseId": id, "name": name } } });
        push(&mut events, "contentBlockStart", start);
        for f in &fragments {
            let delta = json!({ "contentBlockIndex": index, "delta": { "toolUse": { "input": f } } });
            push(&mut events, "contentBlockDelta", delta);
        }
        push(&mut events, "contentBlockStop", json!({ "contentBlockIndex": index }));
    }
    push(&mut events, "messageStop", json!({ "stopReason": stop_reason }));
    // What the whole stream will have taken, pacing included (`events.len()` gaps, metadata last).
    let paced = match b.tokens_per_sec {
        0 => 0,
        tps => events.len() as u64 * 1000 / tps,
    };
    let latency_ms = started.elapsed().as_millis() as u64 + paced;
    push(&mut events, "metadata", json!({ "usage": usage, "metrics": { "latencyMs": latency_ms } }));

    let Some(kind) = stream_exception else {
        return stream_events_as(state, events, b, "application/vnd.amazon.eventstream");
    };
    let kind = if kind == "1" || kind == "true" { "throttlingException" } else { kind };
    let message = match kind {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "modelStreamErrorException" => "The model stream was interrupted (mock).",
        "validationException" => "Invalid request (mock).",
        _ => "The system encountered an unexpected error during processing. Try your request again.",
    };
    events.truncate(b.cut_after_chunks.unwrap_or(2));
    events.push(Bytes::from(eventstream::encode(
        &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        json!({ "message": message }).to_string().as_bytes(),
    )));
    let b = Behaviour { cut_after_chunks: None, ..*b };
    stream_events_as(state, events, &b, "application/vnd.amazon.eventstream")
}
