//! Google Gemini wire format (Generative Language API v1beta): `POST
//! /v1beta/models/{model}:generateContent` (JSON) and `:streamGenerateContent?alt=sse` (SSE, one
//! `GenerateContentResponse` per event, CRLF-separated as Google sends them), errors in Google's
//! `{"error":{"code","message","status"}}` shape, with the same knobs as the other sides.
//!
//! Auth: the key in `x-goog-api-key` (or `?key=`). With `--require-key`, a wrong key is Google's 400
//! `API_KEY_INVALID` and a missing one its 403 `PERMISSION_DENIED`. A 429 carries its delay the
//! way Google does, as a `google.rpc.RetryInfo` `retryDelay` detail, not a `Retry-After` header.
//!
//! Tool use: when the request declares functions and the last user turn names one (or the
//! `x-mock-tool` header, or a `functionCallingConfig` of mode `ANY`, picks one), the answer is a
//! single `functionCall` part with arguments shaped by the declaration's `parameters`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::answer;
use super::openai::{full, stream_events, Behaviour, MockBody, State};

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn error_with(code: u16, message: &str, details: Option<Value>) -> Response<MockBody> {
    let mut err = json!({ "code": code, "message": message, "status": status_name(code) });
    if let Some(d) = details {
        err["details"] = d;
    }
    full(code, "application/json; charset=UTF-8", json!({ "error": err }).to_string())
}

fn error(code: u16, message: &str) -> Response<MockBody> {
    error_with(code, message, None)
}

fn fail(status: u16, retry_after: u64) -> Response<MockBody> {
    match status {
        429 => error_with(
            429,
            "Resource has been exhausted (e.g. check quota).",
            Some(json!([{ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{retry_after}s") }])),
        ),
        503 => error(503, "The model is overloaded. Please try again later."),
        500 => error(500, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
        400 => error(400, "Request contains an invalid argument."),
        403 => error(403, "The caller does not have permission"),
        404 => error(404, "Requested entity was not found."),
        s => error(s, &format!("Mock failure with status {s}")),
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|p| p.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// `rest` is the path after `/v1beta/models/`: `{model}:{method}`.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, b: Behaviour, rest: &str) -> Response<MockBody> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let query = req.uri().query().map(str::to_string);
    let api_key = header("x-goog-api-key").or_else(|| query_param(query.as_deref(), "key").map(str::to_string));
    let forced_tool = header("x-mock-tool");
    let seen_host = header("host");
    let seen_request_id = header("x-request-id");
    let seen_auth = header("authorization");
    let Some((model, method)) = rest.rsplit_once(':') else {
        return error(404, &format!("Method not found: models/{rest}"));
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        other => return error(404, &format!("Method not found: {other}")),
    };
    let sse = query_param(query.as_deref(), "alt") == Some("sse");
    if let Some(key) = &state.knobs.require_key {
        match &api_key {
            None => {
                return error(
                    403,
                    "Method doesn't allow unregistered callers (callers without established identity). \
                     Please use API Key or other form of API consumer identity to call this API.",
                )
            }
            Some(k) if k != key => {
                return error_with(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    Some(json!([{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com", "metadata": { "service": "generativelanguage.googleapis.com" } }])),
                )
            }
            Some(_) => {}
        }
    }
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "could not read body"),
    };
    let body: Value = match serde_json::from_slice(&body_bytes) {
        Ok(v) => v,
        Err(e) => return error(400, &format!("Invalid JSON payload received. {e}")),
    };
    if let Ok(mut last) = state.last.lock() {
        *last = json!({
            "path": format!("/v1beta/models/{rest}"), "query": query, "x_goog_api_key": api_key,
            "authorization": seen_auth, "host": seen_host, "x_request_id": seen_request_id,
            "body_len": body_bytes.len(), "model": model, "stream": stream, "body": body,
        });
    }
    if b.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.latency_ms)).await;
    }
    if let Some(status) = b.fail_status {
        return fail(status, b.retry_after);
    }
    let contents = match body.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => return error(400, "* GenerateContentRequest.contents: contents is not specified\n"),
    };
    for (i, c) in contents.iter().enumerate() {
        match c.get("role").and_then(Value::as_str) {
            None | Some("user" | "model") => {}
            Some(_) => return error(400, "Please use a valid role: user, model."),
        }
        if c.get("parts").and_then(Value::as_array).is_none_or(|p| p.is_empty()) {
            return error(
                400,
                &format!("* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"),
            );
        }
    }
    generate(&state, &body, model, stream, sse, forced_tool.as_deref(), &b)
}

/// The request as `answer` reads chat bodies: `messages` of `{role, content: parts}`.
fn as_messages(body: &Value) -> Value {
    let messages: Vec<Value> = body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({ "role": c.get("role").and_then(Value::as_str).unwrap_or("user"), "content": c["parts"] }))
        .collect();
    json!({ "messages": messages })
}

fn generate(
    state: &Arc<State>,
    body: &Value,
    model: &str,
    stream: bool,
    sse: bool,
    forced_tool: Option<&str>,
    b: &Behaviour,
) -> Response<MockBody> {
    let chat = as_messages(body);
    let prompt = answer::last_user_text(&chat);
    let system = answer::content_text(&body["systemInstruction"]["parts"]).split_whitespace().count() as u64;
    let prompt_tokens = answer::prompt_tokens(&chat) + system;
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let response_id = format!("mock-gemini-{n:012}");

    let decls: Vec<&Value> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t.get("functionDeclarations").or(t.get("function_declarations")).and_then(Value::as_array))
        .flatten()
        .collect();
    let names: Vec<&str> = decls.iter().filter_map(|d| d.get("name").and_then(Value::as_str)).collect();
    let config = &body["toolConfig"]["functionCallingConfig"];
    let mode = config["mode"].as_str().unwrap_or("AUTO");
    let forced = forced_tool.map(str::to_string).or_else(|| match mode {
        "ANY" => config["allowedFunctionNames"][0].as_str().or(names.first().copied()).map(str::to_string),
        _ => None,
    });
    let tool = if mode == "NONE" { None } else { answer::tool_to_call(&names, &prompt, forced.as_deref()) };
    let call = tool.map(|name| {
        let decl = decls.iter().find(|d| d.get("name").and_then(Value::as_str) == Some(name.as_str()));
        let schema = decl.and_then(|d| d.get("parameters").or(d.get("parametersJsonSchema"))).unwrap_or(&Value::Null);
        json!({ "functionCall": { "name": name, "args": answer::tool_input(schema) } })
    });

    let max = body["generationConfig"]["maxOutputTokens"].as_u64();
    let (tokens, finish) = match &call {
        Some(_) => (Vec::new(), "STOP"),
        None => {
            let mut t = answer::answer_tokens(&prompt, b.answer_tokens);
            match max {
                Some(m) if t.len() as u64 > m => {
                    t.truncate(m as usize);
                    (t, "MAX_TOKENS")
                }
                _ => (t, "STOP"),
            }
        }
    };
    // A function call counts as one output token per argument, plus one.
    let output_tokens = match &call {
        Some(c) => 1 + c["functionCall"]["args"].as_object().map_or(0, |a| a.len()) as u64,
        None => tokens.len() as u64,
    };
    let usage = json!({
        "promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
        "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": prompt_tokens }],
    });
    let response = |parts: Vec<Value>, finish: Option<&str>, usage: Value| {
        let mut cand = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let Some(f) = finish {
            cand["finishReason"] = f.into();
        }
        json!({ "candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": response_id })
    };

    if !stream {
        let parts = match &call {
            Some(c) => vec![c.clone()],
            None => vec![json!({ "text": tokens.concat() })],
        };
        return full(200, "application/json; charset=UTF-8", response(parts, Some(finish), usage).to_string());
    }

    // One chunk per token; the last carries finishReason and the full usage, the others only the
    // prompt count, as Google streams.
    let partial_usage = json!({ "promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens });
    let mut chunks: Vec<Value> = match &call {
        Some(c) => vec![response(vec![c.clone()], Some(finish), usage.clone())],
        None => tokens.iter().map(|t| response(vec![json!({ "text": t })], None, partial_usage.clone())).collect(),
    };
    match chunks.last_mut() {
        Some(last) if call.is_none() => {
            last["candidates"][0]["finishReason"] = finish.into();
            last["usageMetadata"] = usage;
        }
        Some(_) => {}
        None => chunks.push(response(vec![json!({ "text": "" })], Some(finish), usage)),
    }
    if !sse {
        // Without `alt=sse` the stream method answers one JSON array of the chunks.
        return full(200, "application/json; charset=UTF-8", Value::Array(chunks).to_string());
    }
    let events = chunks.iter().map(|c| Bytes::from(format!("data: {c}\r\n\r\n"))).collect();
    stream_events(state, events, b)
}
