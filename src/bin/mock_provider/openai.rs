//! OpenAI wire format: JSON answers, SSE streams, errors, plus `/mock/*` introspection.
//!
//! Tool calls: when a chat request offers `tools` (type `function`) and `x-mock-tool` names one,
//! or `tool_choice` is `"required"` or names one, or the last user message mentions one (and
//! `tool_choice` is not `"none"`), the answer is a single `tool_calls` entry whose arguments
//! follow the tool's `parameters` schema, `finish_reason: "tool_calls"`; streamed, the arguments
//! come in token-sized fragments. After a `role: tool` result the answer is text again (unless
//! `x-mock-tool` or `tool_choice` forces another call).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::answer;
use super::Knobs;

pub type MockBody = BoxBody<Bytes, io::Error>;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    /// Streams whose client went away before the end (the gateway cancelled upstream).
    streams_cancelled: AtomicU64,
    streams_cut: AtomicU64,
}

pub struct State {
    pub(super) knobs: Knobs,
    pub(super) counters: Counters,
    /// What the last proxied request looked like, for tests: path, headers of note, body.
    pub(super) last: Mutex<Value>,
    pub(super) next_id: AtomicU64,
}

impl State {
    pub fn new(knobs: Knobs) -> Self {
        State { knobs, counters: Counters::default(), last: Mutex::new(Value::Null), next_id: AtomicU64::new(1) }
    }
}

/// Per-request knobs: flags, overridden by `x-mock-*` headers.
pub(super) struct Behaviour {
    pub(super) latency_ms: u64,
    pub(super) tokens_per_sec: u64,
    pub(super) answer_tokens: usize,
    pub(super) fail_status: Option<u16>,
    pub(super) retry_after: u64,
    pub(super) cut_after_chunks: Option<usize>,
}

fn behaviour(k: &Knobs, req: &Request<Incoming>) -> Behaviour {
    fn header<T: std::str::FromStr>(req: &Request<Incoming>, name: &str) -> Option<T> {
        req.headers().get(name)?.to_str().ok()?.trim().parse().ok()
    }
    Behaviour {
        latency_ms: header(req, "x-mock-latency-ms").unwrap_or(k.latency_ms),
        tokens_per_sec: header(req, "x-mock-tokens-per-sec").unwrap_or(k.tokens_per_sec),
        answer_tokens: header(req, "x-mock-answer-tokens").unwrap_or(k.answer_tokens).min(100_000),
        fail_status: header::<u16>(req, "x-mock-fail-status").or(k.fail_status).filter(|s| (400..=599).contains(s)),
        retry_after: header(req, "x-mock-retry-after").unwrap_or(k.retry_after),
        cut_after_chunks: header(req, "x-mock-cut-after-chunks").or(k.cut_after_chunks),
    }
}

pub(super) fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<MockBody> {
    let body: Bytes = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-request-id", "mock-req-id")
        .body(Full::new(body).map_err(|never| match never {}).boxed())
        .expect("static response parts")
}

fn error(status: u16, message: &str, kind: &str, code: &str) -> Response<MockBody> {
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
    full(status, "application/json", body.to_string())
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<MockBody> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/mock/stats") => {
            let c = &state.counters;
            let body = json!({
                "requests": c.requests.load(Ordering::Relaxed),
                "streams_started": c.streams_started.load(Ordering::Relaxed),
                "streams_completed": c.streams_completed.load(Ordering::Relaxed),
                "streams_cancelled": c.streams_cancelled.load(Ordering::Relaxed),
                "streams_cut": c.streams_cut.load(Ordering::Relaxed),
            });
            return full(200, "application/json", body.to_string());
        }
        (&Method::GET, "/mock/last") => {
            let last = state.last.lock().map(|l| l.clone()).unwrap_or(Value::Null);
            return full(200, "application/json", last.to_string());
        }
        (&Method::GET, "/healthz") => return full(200, "application/json", "{\"status\":\"ok\"}"),
        _ => {}
    }
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let b = behaviour(&state.knobs, &req);
    if method == Method::POST && path.trim_end_matches('/') == "/v1/messages" {
        return super::anthropic::handle(state, req, b).await;
    }
    if let Some(rest) = path.strip_prefix("/v1beta/models/") {
        let rest = rest.to_string();
        return super::gemini::handle(state, req, b, &rest).await;
    }
    if let Some(rest) = path.strip_prefix("/model/") {
        let rest = rest.to_string();
        return super::bedrock::handle(state, req, b, &rest).await;
    }
    // Azure OpenAI: `/openai/deployments/{deployment}/...?api-version=...`, key in `api-key`;
    // what follows the deployment is routed like OpenAI's paths.
    let azure =
        path.strip_prefix("/openai/deployments/").and_then(|rest| rest.split_once('/')).map(|(_, p)| format!("/{p}"));
    if let Some(key) = &state.knobs.require_key {
        let ok = match azure {
            Some(_) => req.headers().get("api-key").and_then(|v| v.to_str().ok()) == Some(key.as_str()),
            None => req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {key}")),
        };
        if !ok {
            return error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key");
        }
    }
    let seen_auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen_api_key = req.headers().get("api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen_host = req.headers().get("host").and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen_request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let forced_tool = req.headers().get("x-mock-tool").and_then(|v| v.to_str().ok()).map(str::to_string);
    let query = req.uri().query().map(str::to_string);
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "could not read body", "invalid_request_error", "bad_body"),
    };
    let body: Value = if method == Method::POST {
        match serde_json::from_slice(&body_bytes) {
            Ok(v) => v,
            Err(e) => return error(400, &format!("invalid JSON: {e}"), "invalid_request_error", "invalid_json"),
        }
    } else {
        Value::Null
    };
    if let Ok(mut last) = state.last.lock() {
        *last = json!({
            "path": path, "query": query, "authorization": seen_auth, "host": seen_host,
            "api_key": seen_api_key,
            "x_request_id": seen_request_id, "body_len": body_bytes.len(),
            "model": body.get("model"), "stream": body.get("stream"),
            "tools": offered_tools(&body).iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            "tool_choice": body.get("tool_choice"),
        });
    }
    if b.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(b.latency_ms)).await;
    }
    if let Some(status) = b.fail_status {
        return fail(status, b.retry_after);
    }
    let route = match &azure {
        Some(rest) if query.as_deref().is_some_and(|q| q.contains("api-version=")) => rest.as_str(),
        Some(_) => {
            return error(400, "Missing api-version query parameter.", "invalid_request_error", "missing_api_version")
        }
        None => path.trim_start_matches("/v1"),
    };
    match (&method, route) {
        (&Method::POST, "/chat/completions") => match tool_call(&body, forced_tool.as_deref()) {
            Ok(Some((name, schema))) => tool_completion(&state, &body, &b, &name, &schema),
            Ok(None) => completion(&state, &body, &b, true),
            Err(message) => error(400, &message, "invalid_request_error", "invalid_value"),
        },
        (&Method::POST, "/completions") => completion(&state, &body, &b, false),
        (&Method::POST, "/embeddings") => embeddings(&body),
        (&Method::GET, "/models") => {
            let data: Vec<Value> = ["mock-1", "mock-2"]
                .iter()
                .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "mock" }))
                .collect();
            full(200, "application/json", json!({ "object": "list", "data": data }).to_string())
        }
        _ => error(404, &format!("Unknown path {path}"), "invalid_request_error", "unknown_url"),
    }
}

fn fail(status: u16, retry_after: u64) -> Response<MockBody> {
    let mut resp = match status {
        429 => error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        500 => error(500, "The server had an error while processing your request.", "server_error", "server_error"),
        503 => error(503, "The engine is currently overloaded, please try again later.", "server_error", "overloaded"),
        400 => error(400, "Invalid request (mock).", "invalid_request_error", "invalid_request"),
        s => error(s, &format!("Mock failure with status {s}"), "server_error", "mock_failure"),
    };
    if status == 429 {
        resp.headers_mut().insert("retry-after", retry_after.into());
    }
    resp
}

/// The `tools` of type `function` a chat request offers: (name, parameters schema).
fn offered_tools(body: &Value) -> Vec<(&str, &Value)> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| Some((t.pointer("/function/name")?.as_str()?, t.pointer("/function/parameters")?)))
        .collect()
}

/// Which offered tool the answer calls, with its parameters schema: the one `x-mock-tool` or a
/// named `tool_choice` picks; with `"required"`, the one the last user message names or else the
/// first; otherwise the one the last user message names, unless the conversation ends with a
/// tool result (then the model answers in text). `tool_choice: "none"` never calls one. Errors
/// are OpenAI's 400s for a `tool_choice` that does not fit `tools`.
fn tool_call(body: &Value, forced: Option<&str>) -> Result<Option<(String, Value)>, String> {
    let tools = offered_tools(body);
    let choice = body.get("tool_choice");
    if choice.is_some_and(|c| !c.is_null()) && body.get("tools").is_none_or(Value::is_null) {
        return Err("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.".into());
    }
    let named = choice.and_then(|c| c.pointer("/function/name")).and_then(Value::as_str);
    if let Some(name) = named {
        if !tools.iter().any(|(n, _)| *n == name) {
            return Err(format!(
                "Invalid value for 'tool_choice': tool choice refers to '{name}', but that tool is not in 'tools'."
            ));
        }
    }
    if tools.is_empty() || choice.and_then(Value::as_str) == Some("none") {
        return Ok(None);
    }
    let names: Vec<&str> = tools.iter().map(|(n, _)| *n).collect();
    let after_tool_result = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("tool"));
    let prompt = if after_tool_result { String::new() } else { answer::last_user_text(body) };
    let forced = forced.filter(|f| names.contains(f)).or(named);
    let mut name = answer::tool_to_call(&names, &prompt, forced);
    if name.is_none() && choice.and_then(Value::as_str) == Some("required") {
        name = answer::tool_to_call(&names, &prompt, None).or_else(|| names.first().map(|n| n.to_string()));
    }
    Ok(name.map(|name| {
        let schema = tools.iter().find(|(n, _)| *n == name).map(|(_, s)| (*s).clone()).unwrap_or(Value::Null);
        (name, schema)
    }))
}

/// A chat completion whose message is one tool call (`finish_reason: "tool_calls"`); streamed,
/// the call's id and name come first, then its arguments in token-sized fragments.
fn tool_completion(state: &Arc<State>, body: &Value, b: &Behaviour, name: &str, schema: &Value) -> Response<MockBody> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock-1").to_string();
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-mock-{n}");
    let call_id = format!("call_{}", answer::alnum_id(&format!("{n}/{name}"), 24));
    let arguments = answer::tool_input(schema).to_string();
    // Fragments of about four characters, like the tokens OpenAI streams arguments in.
    let fragments = answer::split_fragments(&arguments, arguments.chars().count().div_ceil(4));
    let prompt_tokens = answer::prompt_tokens(body);
    let completion_tokens = fragments.len() as u64 + 1;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let created = now_secs();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let call = json!({ "id": call_id, "type": "function", "function": { "name": name, "arguments": arguments } });
        let out = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": null, "tool_calls": [call] },
                "logprobs": null, "finish_reason": "tool_calls" }],
            "usage": usage,
        });
        return full(200, "application/json", out.to_string());
    }
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] });
        if include_usage {
            c["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = Vec::with_capacity(fragments.len() + 4);
    events.push(chunk(
        json!({ "role": "assistant", "content": null, "tool_calls": [{ "index": 0, "id": call_id, "type": "function",
            "function": { "name": name, "arguments": "" } }] }),
        Value::Null,
    ));
    for f in &fragments {
        events.push(chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": f } }] }), Value::Null));
    }
    events.push(chunk(json!({}), json!("tool_calls")));
    if include_usage {
        let c = json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage });
        events.push(Bytes::from(format!("data: {c}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    stream_events(state, events, b)
}

fn completion(state: &Arc<State>, body: &Value, b: &Behaviour, chat: bool) -> Response<MockBody> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock-1").to_string();
    let prompt = answer::last_user_text(body);
    let tokens = answer::answer_tokens(&prompt, b.answer_tokens);
    let prompt_tokens = answer::prompt_tokens(body);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": tokens.len(),
        "total_tokens": prompt_tokens + tokens.len() as u64,
    });
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = if chat { format!("chatcmpl-mock-{n}") } else { format!("cmpl-mock-{n}") };
    let created = now_secs();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let text = tokens.concat();
        let out = if chat {
            json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "logprobs": null, "finish_reason": "stop" }],
                "usage": usage,
            })
        } else {
            json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{ "index": 0, "text": text, "logprobs": null, "finish_reason": "stop" }],
                "usage": usage,
            })
        };
        return full(200, "application/json", out.to_string());
    }

    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |choice: Value| {
        let mut c = if chat {
            json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice] })
        } else {
            json!({ "id": id, "object": "text_completion", "created": created, "model": model, "choices": [choice] })
        };
        if include_usage {
            c["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = Vec::with_capacity(tokens.len() + 4);
    if chat {
        events.push(chunk(json!({ "index": 0, "delta": { "role": "assistant", "content": "" }, "logprobs": null, "finish_reason": null })));
    }
    for t in &tokens {
        events.push(if chat {
            chunk(json!({ "index": 0, "delta": { "content": t }, "logprobs": null, "finish_reason": null }))
        } else {
            chunk(json!({ "index": 0, "text": t, "logprobs": null, "finish_reason": null }))
        });
    }
    events.push(if chat {
        chunk(json!({ "index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop" }))
    } else {
        chunk(json!({ "index": 0, "text": "", "logprobs": null, "finish_reason": "stop" }))
    });
    if include_usage {
        let obj = if chat { "chat.completion.chunk" } else { "text_completion" };
        let c = json!({ "id": id, "object": obj, "created": created, "model": model, "choices": [], "usage": usage });
        events.push(Bytes::from(format!("data: {c}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    stream_events(state, events, b)
}

pub(super) fn stream_events(state: &Arc<State>, events: Vec<Bytes>, b: &Behaviour) -> Response<MockBody> {
    stream_events_as(state, events, b, "text/event-stream")
}

/// Sends `events` paced by `tokens_per_sec`, counting the stream and cutting it as `b` says.
pub(super) fn stream_events_as(
    state: &Arc<State>,
    events: Vec<Bytes>,
    b: &Behaviour,
    content_type: &str,
) -> Response<MockBody> {
    state.counters.streams_started.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let gap = (b.tokens_per_sec > 0).then(|| Duration::from_secs_f64(1.0 / b.tokens_per_sec as f64));
    let cut = b.cut_after_chunks;
    let state = state.clone();
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if cut == Some(i) {
                // Let the chunks already sent leave the socket, as they would before a real cut.
                tokio::time::sleep(Duration::from_millis(20)).await;
                state.counters.streams_cut.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "mock cut"))).await;
                return;
            }
            if i > 0 {
                if let Some(gap) = gap {
                    tokio::time::sleep(gap).await;
                }
            }
            if tx.send(Ok(event)).await.is_err() {
                state.counters.streams_cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        state.counters.streams_completed.fetch_add(1, Ordering::Relaxed);
    });
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("x-request-id", "mock-req-id")
        .body(ChannelBody { rx }.boxed())
        .expect("static response parts")
}

/// A response body fed by the streaming task; an `Err` frame makes hyper drop the connection.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

fn embeddings(body: &Value) -> Response<MockBody> {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("mock-embed");
    let dims = body.get("dimensions").and_then(Value::as_u64).unwrap_or(8).clamp(1, 4096) as usize;
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
        _ => return error(400, "'input' must be a string or an array", "invalid_request_error", "invalid_input"),
    };
    let tokens: usize = inputs.iter().map(|s| s.split_whitespace().count().max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "object": "embedding", "index": i, "embedding": answer::embedding(s, dims) }))
        .collect();
    let out = json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": tokens, "total_tokens": tokens } });
    full(200, "application/json", out.to_string())
}
