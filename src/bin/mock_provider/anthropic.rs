//! Anthropic Messages wire format (`POST /v1/messages`): JSON answers, SSE streams and errors in
//! Anthropic's shapes, with the same knobs (latency, pacing, failures, cuts) as the OpenAI side.
//!
//! Tool use: when the request offers `tools` and the last user message names one (or the
//! `x-mock-tool` header, or a `tool_choice` of `tool`/`any`, picks one), the answer is a short
//! text block then a `tool_use` block with arguments shaped by the tool's `input_schema`.

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

fn error(status: u16, kind: &str, message: &str) -> Response<MockBody> {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    let mut resp = full(status, "application/json", body.to_string());
    resp.headers_mut().insert("request-id", "req_mock".parse().expect("static header"));
    resp
}

fn fail(status: u16, retry_after: u64) -> Response<MockBody> {
    let mut resp = match status {
        429 => error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
        529 | 503 => error(status, "overloaded_error", "Overloaded"),
        401 => error(401, "authentication_error", "invalid x-api-key"),
        403 => error(403, "permission_error", "Your API key does not have permission to use the specified resource."),
        404 => error(404, "not_found_error", "The requested resource could not be found."),
        413 => error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        400 => error(400, "invalid_request_error", "Invalid request (mock)."),
        s => error(s, "api_error", &format!("Mock failure with status {s}")),
    };
    if status == 429 || status == 529 {
        resp.headers_mut().insert("retry-after", retry_after.into());
    }
    resp
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Words of the system prompt plus the messages' (what `usage.input_tokens` reports).
fn input_tokens(body: &Value) -> u64 {
    let system = match body.get("system") {
        Some(s) => answer::content_text(s).split_whitespace().count() as u64,
        None => 0,
    };
    answer::prompt_tokens(body) + system
}

pub async fn handle(state: Arc<State>, req: Request<Incoming>, b: Behaviour) -> Response<MockBody> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let api_key = header("x-api-key");
    let version = header("anthropic-version");
    let forced_tool = header("x-mock-tool");
    let seen_request_id = header("x-request-id");
    if let Some(key) = &state.knobs.require_key {
        if api_key.as_deref() != Some(key.as_str()) {
            return error(401, "authentication_error", "invalid x-api-key");
        }
    }
    if version.is_none() {
        return error(400, "invalid_request_error", "anthropic-version: header is required");
    }
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "invalid_request_error", "could not read body"),
    };
    let body: Value = match serde_json::from_slice(&body_bytes) {
        Ok(v) => v,
        Err(e) => return error(400, "invalid_request_error", &format!("invalid JSON: {e}")),
    };
    if let Ok(mut last) = state.last.lock() {
        *last = json!({
            "path": "/v1/messages", "x_api_key": api_key, "anthropic_version": version,
            "x_request_id": seen_request_id, "body_len": body_bytes.len(),
            "model": body.get("model"), "stream": body.get("stream"), "body": body,
        });
    }
    if b.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.latency_ms)).await;
    }
    if let Some(status) = b.fail_status {
        return fail(status, b.retry_after);
    }
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return error(400, "invalid_request_error", "model: Field required");
    };
    let Some(max_tokens) = body.get("max_tokens").and_then(Value::as_u64) else {
        return error(400, "invalid_request_error", "max_tokens: Field required");
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        return error(400, "invalid_request_error", "messages: Field required");
    }
    messages(&state, &body, model, max_tokens, forced_tool.as_deref(), &b)
}

fn messages(
    state: &Arc<State>,
    body: &Value,
    model: &str,
    max_tokens: u64,
    forced_tool: Option<&str>,
    b: &Behaviour,
) -> Response<MockBody> {
    let prompt = answer::last_user_text(body);
    let input_tokens = input_tokens(body);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("msg_mock_{n:024}");
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);

    let tools: Vec<&Value> =
        body.get("tools").and_then(Value::as_array).map(|t| t.iter().collect()).unwrap_or_default();
    let names: Vec<&str> = tools.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).collect();
    let forced =
        forced_tool.map(str::to_string).or_else(|| match body.pointer("/tool_choice/type").and_then(Value::as_str) {
            Some("tool") => body.pointer("/tool_choice/name").and_then(Value::as_str).map(str::to_string),
            Some("any") => names.first().map(|n| n.to_string()),
            _ => None,
        });
    let tool_none = body.pointer("/tool_choice/type").and_then(Value::as_str) == Some("none");
    let tool = if tool_none { None } else { answer::tool_to_call(&names, &prompt, forced.as_deref()) };

    let (tokens, stop_reason) = match &tool {
        Some(name) => (vec!["Calling".to_string(), format!(" {name}.")], "tool_use"),
        None => {
            let mut t = answer::answer_tokens(&prompt, b.answer_tokens);
            if t.len() as u64 > max_tokens {
                t.truncate(max_tokens as usize);
                (t, "max_tokens")
            } else {
                (t, "end_turn")
            }
        }
    };
    let tool_use = tool.as_ref().map(|name| {
        let schema = tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|t| t.get("input_schema"))
            .cloned()
            .unwrap_or(Value::Null);
        (format!("toolu_mock_{n:020}"), name.clone(), answer::tool_input(&schema))
    });
    // Each tool argument fragment counts as one output token.
    let args_json = tool_use.as_ref().map(|(_, _, input)| input.to_string()).unwrap_or_default();
    let fragments = answer::split_fragments(&args_json, 3);
    let output_tokens = tokens.len() as u64 + fragments.len() as u64;
    let usage = json!({
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    });

    if !stream {
        let mut content = Vec::new();
        if !tokens.is_empty() {
            content.push(json!({ "type": "text", "text": tokens.concat() }));
        }
        if let Some((tid, name, input)) = &tool_use {
            content.push(json!({ "type": "tool_use", "id": tid, "name": name, "input": input }));
        }
        let out = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": null, "usage": usage,
        });
        return full(200, "application/json", out.to_string());
    }

    let mut events = Vec::with_capacity(tokens.len() + fragments.len() + 10);
    events.push(event(
        "message_start",
        json!({ "type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": input_tokens, "output_tokens": 1,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
        } }),
    ));
    events.push(event(
        "content_block_start",
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
    ));
    events.push(event("ping", json!({ "type": "ping" })));
    for t in &tokens {
        events.push(event(
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": t } }),
        ));
    }
    events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
    if let Some((tid, name, _)) = &tool_use {
        events.push(event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 1,
                "content_block": { "type": "tool_use", "id": tid, "name": name, "input": {} } }),
        ));
        for f in &fragments {
            events.push(event(
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 1,
                    "delta": { "type": "input_json_delta", "partial_json": f } }),
            ));
        }
        events.push(event("content_block_stop", json!({ "type": "content_block_stop", "index": 1 })));
    }
    events.push(event(
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": { "output_tokens": output_tokens } }),
    ));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    stream_events(state, events, b)
}
