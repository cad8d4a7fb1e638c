//! The inbound Anthropic Messages endpoint (`POST /v1/messages`, `/v1/messages/count_tokens`):
//! the reverse of `anthropic.rs`. An Anthropic SDK client's request becomes an OpenAI chat
//! request, so the gateway's pipeline (cache, routing, spend) stays OpenAI-shaped; the OpenAI
//! answer, stream or error goes back to the client in Anthropic's shape.
//!
//! Pure translation: no I/O, no config.
//!
//! What does not map: `top_k`, `thinking`, `service_tier` and `cache_control` hints are dropped
//! (OpenAI has no equivalent; answers simply come without thinking blocks). Content blocks other
//! than text, image, tool_use and tool_result (`document`, `thinking`, server tools...) and
//! non-custom tools are a 400 naming them. Images inside a `tool_result` move to the user
//! message that follows the tool messages (OpenAI tool messages carry text only).

use serde_json::{json, Map, Value};

use super::gemini::{event_data, find_event_end, sse};
use crate::spend::usage::Usage;

/// An Anthropic request translated for the OpenAI pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRequest {
    /// An OpenAI chat-completions request body.
    pub openai_body: Vec<u8>,
    /// The model the client asked for.
    pub model: String,
    pub stream: bool,
}

/// A request or answer that cannot be translated: the status and message the client gets
/// (as an Anthropic error body, see [`InboundError::body`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundError {
    /// 400 for the client's request, 502 for an upstream answer that does not parse.
    pub status: u16,
    pub message: String,
}

impl InboundError {
    fn bad_request(message: impl Into<String>) -> Self {
        InboundError { status: 400, message: message.into() }
    }

    fn bad_upstream(message: impl Into<String>) -> Self {
        InboundError { status: 502, message: message.into() }
    }

    /// The Anthropic error body for this error.
    pub fn body(&self) -> Vec<u8> {
        error_body(self.status, &self.message)
    }
}

impl std::fmt::Display for InboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for InboundError {}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

fn unsupported_block(at: &str, kind: &str) -> InboundError {
    InboundError::bad_request(format!("{at}: content block type `{kind}` is not supported by this gateway"))
}

/// `system`: a string, or text blocks (joined by a blank line, as `anthropic.rs` joins system
/// messages the other way).
fn system_text(system: &Value) -> Result<String, InboundError> {
    match system {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(b.get("text").and_then(Value::as_str).unwrap_or("")),
                    other => return Err(unsupported_block(&format!("system.{j}"), other.unwrap_or("(none)"))),
                }
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(InboundError::bad_request("system: Input should be a valid string or a list of text blocks")),
    }
}

/// An Anthropic image block → an OpenAI `image_url` part.
fn image_part(block: &Value, at: &str) -> Result<Value, InboundError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = source.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data = source.get("data").and_then(Value::as_str).unwrap_or("");
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => source.get("url").and_then(Value::as_str).unwrap_or("").to_string(),
        other => {
            return Err(InboundError::bad_request(format!(
                "{at}.source: image source type `{}` is not supported by this gateway",
                other.unwrap_or("(none)")
            )))
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `tool_result` block → an OpenAI `tool` message; its images go to `images`.
fn tool_message(block: &Value, at: &str, images: &mut Vec<Value>) -> Result<Value, InboundError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| InboundError::bad_request(format!("{at}.tool_use_id: Field required")))?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (k, p) in parts.iter().enumerate() {
                let at = format!("{at}.content.{k}");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(p.get("text").and_then(Value::as_str).unwrap_or("")),
                    Some("image") => images.push(image_part(p, &at)?),
                    other => return Err(unsupported_block(&at, other.unwrap_or("(none)"))),
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(InboundError::bad_request(format!("{at}.content: Input should be a valid string or list")))
        }
    };
    if block.get("is_error") == Some(&Value::Bool(true)) {
        text = if text.is_empty() { "Error".to_string() } else { format!("Error: {text}") };
    }
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

/// One Anthropic message → OpenAI messages (a user turn with tool results becomes the `tool`
/// messages first, then the user's remaining content).
fn push_message(i: usize, m: &Value, out: &mut Vec<Value>) -> Result<(), InboundError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    if role != "user" && role != "assistant" {
        return Err(InboundError::bad_request(format!("messages.{i}.role: Input should be 'user' or 'assistant'")));
    }
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({ "role": role, "content": s }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        None => return Err(InboundError::bad_request(format!("messages.{i}.content: Field required"))),
        Some(_) => {
            return Err(InboundError::bad_request(format!(
                "messages.{i}.content: Input should be a valid string or list"
            )))
        }
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut calls = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => {
                    let input = b.get("input").filter(|v| !v.is_null()).cloned().unwrap_or_else(|| json!({}));
                    calls.push(json!({
                        "id": b.get("id").and_then(Value::as_str).unwrap_or(""),
                        "type": "function",
                        "function": {
                            "name": b.get("name").and_then(Value::as_str).unwrap_or(""),
                            "arguments": input.to_string(),
                        },
                    }));
                }
                other => {
                    return Err(unsupported_block(&format!("messages.{i}.content.{j}"), other.unwrap_or("(none)")))
                }
            }
        }
        let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
        let mut msg = json!({ "role": "assistant", "content": content });
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
        return Ok(());
    }
    let mut parts = Vec::with_capacity(blocks.len());
    let mut tool_messages = Vec::new();
    let mut tool_images = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({ "type": "text", "text": b.get("text").and_then(Value::as_str) })),
            Some("image") => parts.push(image_part(b, &at)?),
            Some("tool_result") => tool_messages.push(tool_message(b, &at, &mut tool_images)?),
            other => return Err(unsupported_block(&at, other.unwrap_or("(none)"))),
        }
    }
    let had_tools = !tool_messages.is_empty();
    out.extend(tool_messages);
    parts.extend(tool_images);
    match parts.len() {
        0 if had_tools => {}
        0 => out.push(json!({ "role": "user", "content": "" })),
        1 if parts[0]["type"] == "text" => out.push(json!({ "role": "user", "content": parts[0]["text"] })),
        _ => out.push(json!({ "role": "user", "content": parts })),
    }
    Ok(())
}

fn translate_tools(tools: &[Value]) -> Result<Vec<Value>, InboundError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        if let Some(kind) = t.get("type").and_then(Value::as_str).filter(|k| *k != "custom") {
            return Err(InboundError::bad_request(format!(
                "tools.{i}: tool type `{kind}` is not supported by this gateway"
            )));
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| InboundError::bad_request(format!("tools.{i}.name: Field required")))?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            function.insert("description".into(), d.into());
        }
        let schema = t.get("input_schema").filter(|s| !s.is_null()).cloned();
        function.insert("parameters".into(), schema.unwrap_or_else(|| json!({ "type": "object", "properties": {} })));
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok(out)
}

/// Anthropic `tool_choice` → OpenAI `tool_choice`, and whether parallel tool use is disabled.
fn translate_tool_choice(choice: &Value) -> Result<(Value, bool), InboundError> {
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    let openai = match kind {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| InboundError::bad_request("tool_choice.name: Field required"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(InboundError::bad_request("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"))
        }
    };
    Ok((openai, choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true))))
}

/// An Anthropic Messages request → an OpenAI chat-completions request.
pub fn request_to_openai(body: &[u8]) -> Result<InboundRequest, InboundError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let req = req.as_object().ok_or_else(|| InboundError::bad_request("The request body must be a JSON object"))?;
    let model = match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        None | Some(Value::Null) => return Err(InboundError::bad_request("model: Field required")),
        Some(_) => return Err(InboundError::bad_request("model: Input should be a valid string")),
    };
    let max_tokens = match req.get("max_tokens") {
        None | Some(Value::Null) => return Err(InboundError::bad_request("max_tokens: Field required")),
        Some(v) => {
            v.as_u64().ok_or_else(|| InboundError::bad_request("max_tokens: Input should be a valid integer"))?
        }
    };
    let messages = match req.get("messages") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) => return Err(InboundError::bad_request("messages: Field required")),
        Some(_) => return Err(InboundError::bad_request("messages: Input should be a valid list")),
    };

    let mut out_messages = Vec::with_capacity(messages.len() + 1);
    let system = system_text(req.get("system").unwrap_or(&Value::Null))?;
    if !system.is_empty() {
        out_messages.push(json!({ "role": "system", "content": system }));
    }
    for (i, m) in messages.iter().enumerate() {
        push_message(i, m, &mut out_messages)?;
    }

    let mut out = Map::new();
    out.insert("model".into(), model.clone().into());
    out.insert("messages".into(), Value::Array(out_messages));
    out.insert("max_tokens".into(), max_tokens.into());
    for param in ["temperature", "top_p"] {
        if let Some(v) = req.get(param).filter(|v| !v.is_null()) {
            out.insert(param.into(), v.clone());
        }
    }
    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            out.insert("stop".into(), Value::Array(a.clone()));
        }
        Some(_) => return Err(InboundError::bad_request("stop_sequences: Input should be a valid list of strings")),
    }
    let tools = match req.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => translate_tools(t)?,
        Some(_) => return Err(InboundError::bad_request("tools: Input should be a valid list")),
    };
    // OpenAI rejects tool_choice and parallel_tool_calls without tools.
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = req.get("tool_choice").filter(|v| !v.is_null()) {
            let (choice, no_parallel) = translate_tool_choice(choice)?;
            out.insert("tool_choice".into(), choice);
            if no_parallel {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }
    let stream = req.get("stream") == Some(&Value::Bool(true));
    if stream {
        out.insert("stream".into(), true.into());
        // message_delta carries the usage: ask for OpenAI's final usage chunk.
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(user) = req.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), user.into());
    }
    let openai_body = serde_json::to_vec(&Value::Object(out)).expect("a Value serialises");
    Ok(InboundRequest { openai_body, model, stream })
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An OpenAI `usage` object (absent fields are 0).
fn openai_usage(u: &Value) -> Usage {
    let get = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: get("/prompt_tokens"),
        completion_tokens: get("/completion_tokens"),
        cached_tokens: get("/prompt_tokens_details/cached_tokens"),
        estimated: false,
    }
}

/// Anthropic's `usage`: `input_tokens` excludes cache reads (the inverse of `anthropic.rs`).
fn anthropic_usage(u: &Usage) -> Value {
    let mut v = json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens),
        "output_tokens": u.completion_tokens,
    });
    if u.cached_tokens > 0 {
        v["cache_read_input_tokens"] = u.cached_tokens.into();
    }
    v
}

/// `msg_...`: the upstream id when it already is one, else its suffix when that is a plain token
/// (`chatcmpl-abc` → `msg_abc`), else a fresh one.
fn message_id(openai_id: Option<&str>) -> String {
    let id = openai_id.unwrap_or("");
    if id.starts_with("msg_") {
        return id.to_string();
    }
    let suffix = id.strip_prefix("chatcmpl-").unwrap_or(id);
    if !suffix.is_empty() && suffix.len() <= 64 && suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return format!("msg_{suffix}");
    }
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

fn tool_id(id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("toolu_{}", uuid::Uuid::new_v4().simple()),
    }
}

/// An OpenAI `chat.completion` body → an Anthropic Message body.
pub fn response_from_openai(openai_body: &[u8], public_model: &str) -> Result<Vec<u8>, InboundError> {
    let v: Value = serde_json::from_slice(openai_body)
        .map_err(|e| InboundError::bad_upstream(format!("the upstream answer is not JSON: {e}")))?;
    if let Some(msg) = v.pointer("/error/message").and_then(Value::as_str) {
        return Err(InboundError::bad_upstream(format!("the upstream answered with an error: {msg}")));
    }
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| InboundError::bad_upstream("the upstream answer has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    };
    let refusal = message.get("refusal").and_then(Value::as_str).filter(|r| !r.is_empty());
    if let Some(t) = Some(text.as_str()).filter(|t| !t.is_empty()).or(refusal) {
        content.push(json!({ "type": "text", "text": t }));
    }
    let calls = message.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for c in calls {
        let f = c.get("function").unwrap_or(&Value::Null);
        let input = match f.get("arguments") {
            Some(Value::String(s)) if !s.trim().is_empty() => serde_json::from_str(s).map_err(|_| {
                InboundError::bad_upstream(format!("the upstream tool call arguments are not valid JSON: {s}"))
            })?,
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => json!({}),
        };
        content.push(json!({
            "type": "tool_use",
            "id": tool_id(c.get("id").and_then(Value::as_str)),
            "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
            "input": input,
        }));
    }
    let reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some(r) => stop_reason(r),
        None if !calls.is_empty() => "tool_use",
        None if refusal.is_some() && text.is_empty() => "refusal",
        None => "end_turn",
    };
    let usage = openai_usage(v.get("usage").unwrap_or(&Value::Null));
    let out = json!({
        "id": message_id(v.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": public_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": null,
        "usage": anthropic_usage(&usage),
    });
    Ok(serde_json::to_vec(&out).expect("a Value serialises"))
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Anthropic's `error.type` for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_json(etype: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": etype, "message": message } })
}

/// An Anthropic error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    serde_json::to_vec(&error_json(error_type(status), message)).expect("a Value serialises")
}

/// One of the gateway's OpenAI-shaped error bodies (`{"error":{"message":..}}`) as Anthropic's.
pub fn error_from_openai(status: u16, openai_error_json: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(openai_error_json).ok();
    let message = match parsed.as_ref().and_then(|v| v.pointer("/error/message")).and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => {
            let text = String::from_utf8_lossy(openai_error_json);
            match text.trim() {
                "" => format!("upstream error (status {status})"),
                t => t.chars().take(300).collect(),
            }
        }
    };
    error_body(status, &message)
}

/// Anthropic's `error.type` for an OpenAI error object seen mid-stream.
fn stream_error_type(e: &Value) -> &'static str {
    let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
    match (field("type"), field("code")) {
        ("rate_limit_error", _) | (_, "rate_limit_exceeded") => "rate_limit_error",
        ("overloaded_error", _) | (_, "overloaded") => "overloaded_error",
        ("invalid_request_error", _) => "invalid_request_error",
        ("authentication_error", _) => "authentication_error",
        _ => "api_error",
    }
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text(usize),
    Tool(usize),
}

impl Open {
    fn index(self) -> usize {
        match self {
            Open::Text(i) | Open::Tool(i) => i,
        }
    }
}

/// Turns an OpenAI `chat.completion.chunk` stream into Anthropic Messages stream events, event by
/// event. Only `message_delta` waits: OpenAI's usage chunk follows the `finish_reason` chunk, so
/// it is sent at the usage chunk, at `[DONE]`, or at the end of the stream.
pub struct OpenAiToAnthropicStream {
    id: String,
    model: String,
    /// Bytes of an incomplete SSE event.
    buf: Vec<u8>,
    started: bool,
    next_block: usize,
    open: Option<Open>,
    /// OpenAI tool call index → Anthropic block index.
    tools: Vec<(u64, usize)>,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    completed: bool,
    failed: bool,
    finished: bool,
}

/// One Anthropic SSE event: `event: NAME\ndata: JSON\n\n`.
fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    sse(out, data);
}

impl OpenAiToAnthropicStream {
    pub fn new(public_model: &str) -> Self {
        Self::with_id(public_model, format!("msg_{}", uuid::Uuid::new_v4().simple()))
    }

    pub(crate) fn with_id(public_model: &str, id: String) -> Self {
        OpenAiToAnthropicStream {
            id,
            model: public_model.to_string(),
            buf: Vec::new(),
            started: false,
            next_block: 0,
            open: None,
            tools: Vec::new(),
            stop_reason: None,
            usage: None,
            completed: false,
            failed: false,
            finished: false,
        }
    }

    /// Translates what `chunk` completes; returns the Anthropic SSE bytes to send now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some((end, sep)) = find_event_end(&self.buf[start..]) {
            let data = event_data(&self.buf[start..start + end]);
            start += end + sep;
            self.dispatch(&data, &mut out);
        }
        self.buf.drain(..start);
        out
    }

    /// At the end of the OpenAI stream: a last event without its blank line still counts; then
    /// `message_delta` + `message_stop` if the answer finished, else an `error` event.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.finished = true;
        // A fragment cut mid-line is not mistaken for an event: it must parse.
        let data = event_data(&std::mem::take(&mut self.buf));
        if data.trim_ascii() == b"[DONE]" || serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok() {
            self.dispatch(&data, &mut out);
        }
        if self.completed || self.failed {
            return out;
        }
        if self.stop_reason.is_some() {
            self.end(&mut out);
        } else {
            self.fail(&mut out, "api_error", "the upstream stream ended before the answer was complete");
        }
        out
    }

    /// The usage the upstream reported, once seen (OpenAI's terms, for spend accounting).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether the answer finished (`message_stop` sent): complete and cacheable.
    pub fn completed(&self) -> bool {
        self.completed
    }

    fn dispatch(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() || self.completed || self.failed {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.start(out);
            self.end(out);
            return;
        }
        let v: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => return self.fail(out, "api_error", &format!("the upstream sent an unreadable event: {e}")),
        };
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("upstream stream error");
            return self.fail(out, stream_error_type(e), msg);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(openai_usage(u));
        }
        self.start(out);
        let choices = v.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        // Only the first choice: Anthropic answers have one.
        let Some(choice) = choices.iter().find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0) else {
            // The usage chunk (`choices: []`) after the finish_reason chunk.
            if self.stop_reason.is_some() && self.usage.is_some() {
                self.end(out);
            }
            return;
        };
        if let Some(delta) = choice.get("delta") {
            for key in ["content", "refusal"] {
                if let Some(t) = delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    self.text(out, t);
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for c in calls {
                    self.tool_call(out, c);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.close_block(out);
            self.stop_reason = Some(stop_reason(reason));
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let input = self.usage.map_or(0, |u| u.prompt_tokens.saturating_sub(u.cached_tokens));
        event(
            out,
            "message_start",
            &json!({ "type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": input, "output_tokens": 0 },
            }}),
        );
    }

    fn open_block(&mut self, out: &mut Vec<u8>, block: Value) -> usize {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        event(
            out,
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": block }),
        );
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            event(out, "content_block_stop", &json!({ "type": "content_block_stop", "index": open.index() }));
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                let i = self.open_block(out, json!({ "type": "text", "text": "" }));
                self.open = Some(Open::Text(i));
                i
            }
        };
        event(
            out,
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": text } }),
        );
    }

    fn tool_call(&mut self, out: &mut Vec<u8>, call: &Value) {
        let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = call.get("function").unwrap_or(&Value::Null);
        let index = match self.tools.iter().find(|(t, _)| *t == n) {
            // Arguments of a call whose block was closed (calls interleaved) still go to its index.
            Some(&(_, i)) => i,
            None => {
                let block = json!({
                    "type": "tool_use",
                    "id": tool_id(call.get("id").and_then(Value::as_str)),
                    "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                    "input": {},
                });
                let i = self.open_block(out, block);
                self.open = Some(Open::Tool(i));
                self.tools.push((n, i));
                i
            }
        };
        if let Some(args) = f.get("arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            event(
                out,
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": index,
                    "delta": { "type": "input_json_delta", "partial_json": args } }),
            );
        }
    }

    /// `message_delta` and `message_stop`.
    fn end(&mut self, out: &mut Vec<u8>) {
        self.close_block(out);
        let reason = self.stop_reason.unwrap_or(if self.tools.is_empty() { "end_turn" } else { "tool_use" });
        let usage = anthropic_usage(&self.usage.unwrap_or_default());
        event(
            out,
            "message_delta",
            &json!({ "type": "message_delta", "delta": { "stop_reason": reason, "stop_sequence": null },
                "usage": usage }),
        );
        event(out, "message_stop", &json!({ "type": "message_stop" }));
        self.completed = true;
    }

    fn fail(&mut self, out: &mut Vec<u8>, etype: &str, message: &str) {
        self.failed = true;
        event(out, "error", &error_json(etype, message));
    }
}

// ---------------------------------------------------------------------------------------------
// count_tokens
// ---------------------------------------------------------------------------------------------

/// Tokens for one piece of text: about four characters each, rounded up.
fn text_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4)
}

/// Images: Anthropic bills about (width × height) / 750 tokens, capped near 1600; the size is not
/// known without decoding, so the cap is assumed.
const IMAGE_TOKENS: u64 = 1600;
/// Per message (role and separators) and per tool definition.
const MESSAGE_OVERHEAD: u64 = 4;

fn block_tokens(b: &Value) -> u64 {
    match b {
        Value::String(s) => text_tokens(s),
        Value::Array(blocks) => blocks.iter().map(block_tokens).sum(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("text") => text_tokens(o.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("image") => IMAGE_TOKENS,
            Some("tool_use") => {
                text_tokens(o.get("name").and_then(Value::as_str).unwrap_or(""))
                    + text_tokens(&o.get("input").map(Value::to_string).unwrap_or_default())
            }
            Some("tool_result") => MESSAGE_OVERHEAD + o.get("content").map_or(0, block_tokens),
            // Anything else (documents, thinking...): its JSON, as a rough size.
            _ => text_tokens(&b.to_string()),
        },
        _ => 0,
    }
}

/// An estimate of the input tokens of an Anthropic Messages request, for
/// `/v1/messages/count_tokens` (which answers `{"input_tokens": N}`): about a token per four
/// characters of the system prompt, message text, tool calls and results and tool definitions,
/// plus a few per message and tool, and a flat 1600 per image. Not a tokenizer count: models
/// differ, and the gateway does not know which one will answer.
pub fn count_tokens(body: &[u8]) -> Result<u64, InboundError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let messages = match req.get("messages") {
        Some(Value::Array(m)) => m,
        None | Some(Value::Null) => return Err(InboundError::bad_request("messages: Field required")),
        Some(_) => return Err(InboundError::bad_request("messages: Input should be a valid list")),
    };
    let mut n = MESSAGE_OVERHEAD;
    if let Some(system) = req.get("system").filter(|s| !s.is_null()) {
        n += MESSAGE_OVERHEAD + block_tokens(system);
    }
    for m in messages {
        n += MESSAGE_OVERHEAD + m.get("content").map_or(0, block_tokens);
    }
    for t in req.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let field = |k: &str| t.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        n += MESSAGE_OVERHEAD
            + text_tokens(&field("name").unwrap_or_default())
            + text_tokens(&field("description").unwrap_or_default())
            + text_tokens(&field("input_schema").unwrap_or_default());
    }
    Ok(n)
}

#[cfg(test)]
#[path = "anthropic_inbound_tests.rs"]
mod tests;
