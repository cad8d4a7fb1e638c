//! Anthropic Messages wire format (`POST /v1/messages`): OpenAI chat requests in, Anthropic
//! requests out; Anthropic answers, streams and errors back as OpenAI's.
//!
//! Pure translation: no I/O, no config. Auth (`x-api-key`) is added by the gateway.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::translate::{MappedError, ProviderRequest, StreamTranslator, TranslateError, TranslateOptions, WireFormat};
use crate::spend::usage::Usage;

pub const DEFAULT_VERSION: &str = "2023-06-01";
const PROVIDER: &str = "anthropic";

/// The Anthropic Messages format; `version` is sent as `anthropic-version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anthropic {
    pub version: String,
}

impl Default for Anthropic {
    fn default() -> Self {
        Anthropic { version: DEFAULT_VERSION.to_string() }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn fresh_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// Collects what the target cannot express: a 400 at the first one, or nothing when dropping.
struct Unsupported<'a> {
    opts: &'a TranslateOptions,
}

impl Unsupported<'_> {
    fn check(&self, param: &str) -> Result<(), TranslateError> {
        if self.opts.drop_unsupported_params {
            Ok(())
        } else {
            Err(TranslateError::Unsupported { param: param.to_string(), provider: PROVIDER })
        }
    }
}

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

/// Text of an OpenAI `content`: a string, or the `text` of its text parts, joined.
fn plain_text(content: &Value, what: &str) -> Result<String, TranslateError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(p.get("text").and_then(Value::as_str).unwrap_or("")),
                    _ => return Err(invalid(format!("{what}: only text parts are allowed"))),
                }
            }
            Ok(out.join("\n"))
        }
        _ => Err(invalid(format!("{what}: content must be a string or an array of parts"))),
    }
}

/// `image_url` part → Anthropic image block.
fn image_block(part: &Value) -> Result<Value, TranslateError> {
    let url = match part.get("image_url") {
        Some(Value::String(s)) => s.as_str(),
        Some(o) => o.get("url").and_then(Value::as_str).unwrap_or(""),
        None => "",
    };
    if let Some(rest) = url.strip_prefix("data:") {
        // data:<media_type>;base64,<data>
        let (meta, data) = rest.split_once(',').ok_or_else(|| invalid("image_url: malformed data URL"))?;
        let media_type =
            meta.strip_suffix(";base64").ok_or_else(|| invalid("image_url: data URLs must be base64-encoded"))?;
        return Ok(json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data } }));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(invalid("image_url: expected a data: or http(s) URL"))
}

/// User/assistant `content` → Anthropic content blocks (empty text is dropped: Anthropic rejects it).
fn content_blocks(content: &Value, un: &Unsupported) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({ "type": "text", "text": s })]),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            out.push(json!({ "type": "text", "text": t }));
                        }
                    }
                    Some("image_url") => out.push(image_block(p)?),
                    Some("refusal") => {
                        let t = p.get("refusal").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            out.push(json!({ "type": "text", "text": t }));
                        }
                    }
                    Some(other) => un.check(&format!("messages[].content[].type={other}"))?,
                    None => return Err(invalid("messages[].content[]: part without a type")),
                }
            }
            Ok(out)
        }
        _ => Err(invalid("messages[].content must be a string, an array of parts or null")),
    }
}

/// A `tool` message's content → `tool_result` content (a string, or text/image blocks).
fn tool_result_content(content: &Value, un: &Unsupported) -> Result<Value, TranslateError> {
    match content {
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Null => Ok(Value::String(String::new())),
        Value::Array(_) => Ok(Value::Array(content_blocks(content, un)?)),
        _ => Err(invalid("tool message content must be a string or an array of parts")),
    }
}

fn push_message(out: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match out.last_mut() {
        // Anthropic requires alternation: consecutive same-role turns become one.
        Some((r, existing)) if *r == role => existing.extend(blocks),
        _ => out.push((role, blocks)),
    }
}

/// One turn's content as Anthropic wants it: a plain string when it is a single text block;
/// `tool_result` blocks first (Anthropic rejects text before them in a user turn).
fn finish_content(mut blocks: Vec<Value>) -> Value {
    if blocks.len() == 1 && blocks[0]["type"] == "text" {
        return blocks.pop().map(|mut b| b["text"].take()).unwrap_or_default();
    }
    let is_result = |b: &Value| b["type"] == "tool_result";
    if blocks.iter().any(is_result) {
        let (mut results, rest): (Vec<Value>, Vec<Value>) = blocks.into_iter().partition(is_result);
        results.extend(rest);
        blocks = results;
    }
    Value::Array(blocks)
}

fn translate_messages(messages: &[Value], un: &Unsupported) -> Result<(Vec<String>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| invalid(format!("messages[{i}]: no role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let t = plain_text(content, &format!("messages[{i}]"))?;
                if !t.is_empty() {
                    system.push(t);
                }
            }
            "user" => push_message(&mut turns, "user", content_blocks(content, un)?),
            "assistant" => {
                let mut blocks = content_blocks(content, un)?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for c in calls {
                        let id = c.get("id").and_then(Value::as_str).unwrap_or_default();
                        let f = c.get("function").unwrap_or(&Value::Null);
                        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                        let input: Value = if args.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(args).map_err(|e| {
                                invalid(format!("messages[{i}].tool_calls: arguments are not valid JSON: {e}"))
                            })?
                        };
                        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
                    }
                }
                if m.get("function_call").is_some_and(|v| !v.is_null()) {
                    un.check("messages[].function_call")?;
                }
                push_message(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}]: tool message without tool_call_id")))?;
                let block =
                    json!({ "type": "tool_result", "tool_use_id": id, "content": tool_result_content(content, un)? });
                push_message(&mut turns, "user", vec![block]);
            }
            "function" => un.check("messages[].role=function")?,
            other => return Err(invalid(format!("messages[{i}]: unknown role `{other}`"))),
        }
    }
    let messages = turns.into_iter().map(|(role, blocks)| json!({ "role": role, "content": finish_content(blocks) }));
    Ok((system, messages.collect()))
}

fn translate_tools(tools: &[Value], un: &Unsupported) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(tools.len());
    for t in tools {
        if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
            un.check("tools[].type")?;
            continue;
        }
        let f = t.get("function").ok_or_else(|| invalid("tools[]: missing function"))?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tools[].function: missing name"))?;
        let mut tool = Map::new();
        tool.insert("name".into(), name.into());
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            tool.insert("description".into(), d.into());
        }
        let schema = f.get("parameters").filter(|p| !p.is_null()).cloned();
        tool.insert("input_schema".into(), schema.unwrap_or_else(|| json!({ "type": "object", "properties": {} })));
        out.push(Value::Object(tool));
    }
    Ok(out)
}

fn translate_tool_choice(choice: &Value) -> Result<Value, TranslateError> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({ "type": "auto" })),
            "none" => Ok(json!({ "type": "none" })),
            "required" => Ok(json!({ "type": "any" })),
            other => Err(invalid(format!("tool_choice: unknown value `{other}`"))),
        },
        Value::Object(o) => {
            let name =
                o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
                    invalid("tool_choice: expected {\"type\":\"function\",\"function\":{\"name\":...}}")
                })?;
            Ok(json!({ "type": "tool", "name": name }))
        }
        _ => Err(invalid("tool_choice: expected a string or an object")),
    }
}

/// Present with a value that asks for something (null, false and 0 ask for nothing).
fn set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

impl Anthropic {
    fn request_body(
        &self,
        req: &Map<String, Value>,
        upstream_model: &str,
        stream: bool,
        opts: &TranslateOptions,
    ) -> Result<Value, TranslateError> {
        let un = Unsupported { opts };
        for param in ["logit_bias", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "seed"] {
            if set(req.get(param)) {
                un.check(param)?;
            }
        }
        for param in ["audio", "prediction", "functions", "function_call"] {
            if req.get(param).is_some_and(|v| !v.is_null()) {
                un.check(param)?;
            }
        }
        if req.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
            un.check("n")?;
        }
        if let Some(rf) = req.get("response_format").filter(|v| !v.is_null()) {
            if rf.get("type").and_then(Value::as_str) != Some("text") {
                un.check("response_format")?;
            }
        }
        if let Some(m) = req.get("modalities").and_then(Value::as_array) {
            if m.iter().any(|x| x.as_str() != Some("text")) {
                un.check("modalities")?;
            }
        }

        let messages = req
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("`messages` must be an array of message objects"))?;
        let (system, messages) = translate_messages(messages, &un)?;
        if messages.is_empty() {
            return Err(invalid("`messages` has no user or assistant turn"));
        }

        let mut out = Map::new();
        out.insert("model".into(), upstream_model.into());
        if !system.is_empty() {
            out.insert("system".into(), system.join("\n\n").into());
        }
        out.insert("messages".into(), Value::Array(messages));
        let max_tokens = req
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| req.get("max_tokens").and_then(Value::as_u64))
            .unwrap_or(opts.default_max_tokens);
        out.insert("max_tokens".into(), max_tokens.into());
        for param in ["temperature", "top_p"] {
            if let Some(v) = req.get(param).filter(|v| !v.is_null()) {
                out.insert(param.into(), v.clone());
            }
        }
        match req.get("stop") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                out.insert("stop_sequences".into(), json!([s]));
            }
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                out.insert("stop_sequences".into(), Value::Array(a.clone()));
            }
            Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
        }
        if stream {
            out.insert("stream".into(), true.into());
        }
        let tools = match req.get("tools").and_then(Value::as_array) {
            Some(t) => translate_tools(t, &un)?,
            None => Vec::new(),
        };
        if !tools.is_empty() {
            out.insert("tools".into(), Value::Array(tools));
            let mut choice = match req.get("tool_choice").filter(|v| !v.is_null()) {
                Some(c) => translate_tool_choice(c)?,
                None => json!({ "type": "auto" }),
            };
            if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) && choice["type"] != "none" {
                choice["disable_parallel_tool_use"] = true.into();
            }
            // `auto` alone is Anthropic's default: only send what changes something.
            if choice != json!({ "type": "auto" }) || req.get("tool_choice").is_some_and(|v| !v.is_null()) {
                out.insert("tool_choice".into(), choice);
            }
        }
        if let Some(user) = req.get("user").and_then(Value::as_str) {
            out.insert("metadata".into(), json!({ "user_id": user }));
        }
        Ok(Value::Object(out))
    }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, unknown
        _ => "stop",
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct WireUsage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl WireUsage {
    /// Updates from an Anthropic `usage` object (fields absent keep their value).
    fn update(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(v) = get("input_tokens") {
            self.input = v;
        }
        if let Some(v) = get("output_tokens") {
            self.output = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            self.cache_read = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            self.cache_creation = v;
        }
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.input + self.cache_read + self.cache_creation,
            completion_tokens: self.output,
            cached_tokens: self.cache_read,
            estimated: false,
        }
    }

    fn openai(&self) -> Value {
        let u = self.usage();
        json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": u.cached_tokens },
        })
    }
}

fn bad_upstream(msg: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn map_error(status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let etype = err.and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("");
    let upstream_msg =
        err.and_then(|e| e.get("message")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("status {status}")
            } else {
                text.chars().take(300).collect()
            }
        });
    let mapped = |status, kind, message: String, retry| MappedError { status, kind, message, retry_after: retry };
    match (status, etype) {
        (429, _) | (_, "rate_limit_error") => {
            mapped(429, "rate_limit_error", format!("anthropic rate limit: {upstream_msg}"), retry_after)
        }
        (529, _) | (_, "overloaded_error") => {
            mapped(503, "server_error", format!("anthropic is overloaded: {upstream_msg}"), retry_after)
        }
        (401 | 403, _) | (_, "authentication_error" | "permission_error") => mapped(
            502,
            "server_error",
            format!("upstream authentication failed (anthropic {status}: {upstream_msg})"),
            None,
        ),
        (404, _) | (_, "not_found_error") => mapped(
            502,
            "server_error",
            format!("anthropic does not know the configured model or endpoint ({upstream_msg})"),
            None,
        ),
        (400 | 413 | 422, _) | (_, "invalid_request_error" | "request_too_large") if status < 500 => {
            mapped(400, "invalid_request_error", upstream_msg, None)
        }
        _ => mapped(502, "server_error", format!("anthropic error (status {status}): {upstream_msg}"), None),
    }
}

/// An OpenAI error object for an Anthropic stream `error` event's `error`.
fn stream_error_json(etype: &str, message: &str) -> Value {
    let (kind, code) = match etype {
        "rate_limit_error" => ("rate_limit_error", "rate_limit_exceeded"),
        "overloaded_error" => ("server_error", "overloaded"),
        "invalid_request_error" => ("invalid_request_error", "invalid_request"),
        _ => ("server_error", "upstream_error"),
    };
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

pub struct AnthropicStream {
    id: String,
    created: u64,
    /// The model as a JSON string literal, ready to splice.
    model: String,
    include_usage: bool,
    /// Bytes of an incomplete line.
    partial: Vec<u8>,
    /// `data:` lines of the event being read.
    data: String,
    event: String,
    started: bool,
    /// Anthropic content block index → OpenAI tool call index.
    tool_index: Vec<(u64, usize)>,
    next_tool: usize,
    usage: WireUsage,
    usage_seen: bool,
    finish_sent: bool,
    completed: bool,
    /// The provider's `error` event, as the OpenAI error JSON to send at `finish`.
    error: Option<Value>,
    finished: bool,
}

impl AnthropicStream {
    pub fn new(public_model: &str, include_usage: bool) -> Self {
        AnthropicStream {
            id: fresh_id(),
            created: now_secs(),
            model: Value::String(public_model.to_string()).to_string(),
            include_usage,
            partial: Vec::new(),
            data: String::new(),
            event: String::new(),
            started: false,
            tool_index: Vec::new(),
            next_tool: 0,
            usage: WireUsage::default(),
            usage_seen: false,
            finish_sent: false,
            completed: false,
            error: None,
            finished: false,
        }
    }

    /// One chunk; `delta` is the delta object's JSON, `finish` a `finish_reason`.
    fn chunk(&self, out: &mut Vec<u8>, delta: &str, finish: Option<&str>) {
        self.chunk_head(out);
        out.extend_from_slice(b"{\"index\":0,\"delta\":");
        out.extend_from_slice(delta.as_bytes());
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => {
                out.push(b'"');
                out.extend_from_slice(f.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if self.include_usage { b"}],\"usage\":null}\n\n" } else { b"}]}\n\n" });
    }

    /// A `delta.content` chunk, the text escaped straight into `out`.
    fn text_chunk(&self, out: &mut Vec<u8>, text: &str) {
        self.chunk_head(out);
        out.extend_from_slice(b"{\"index\":0,\"delta\":{\"content\":");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
        out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null");
        out.extend_from_slice(if self.include_usage { b"}],\"usage\":null}\n\n" } else { b"}]}\n\n" });
    }

    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[` — fields in OpenAI's order.
    fn chunk_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"id\":\"");
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.created).as_bytes());
        out.extend_from_slice(b",\"model\":");
        out.extend_from_slice(self.model.as_bytes());
        out.extend_from_slice(b",\"choices\":[");
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(out, r#"{"role":"assistant","content":""}"#, None);
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            "event" => self.event = value.to_string(),
            _ => {} // comments (`:`), id, retry
        }
    }

    fn dispatch(&mut self, out: &mut Vec<u8>) {
        let data = std::mem::take(&mut self.data);
        let event = std::mem::take(&mut self.event);
        if data.is_empty() || self.completed || self.error.is_some() {
            return;
        }
        let v: StreamEvent = match serde_json::from_str(&data) {
            Ok(v) => v,
            Err(e) => {
                self.error = Some(stream_error_json("", &format!("anthropic sent an unreadable event: {e}")));
                return;
            }
        };
        match v.kind.as_deref().unwrap_or(event.as_str()) {
            "message_start" => {
                if let Some(u) = v.message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.usage.update(u);
                    self.usage_seen = true;
                }
                self.ensure_started(out);
            }
            "content_block_start" => {
                self.ensure_started(out);
                let block = v.content_block.unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            self.text_chunk(out, t);
                        }
                    }
                    Some("tool_use") => {
                        let n = self.next_tool;
                        self.next_tool += 1;
                        self.tool_index.push((v.index, n));
                        let call = json!({
                            "index": n, "id": block.get("id"), "type": "function",
                            "function": { "name": block.get("name"), "arguments": "" },
                        });
                        self.chunk(out, &json!({ "tool_calls": [call] }).to_string(), None);
                    }
                    _ => {} // thinking, redacted_thinking, server tools: not part of OpenAI's answer
                }
            }
            "content_block_delta" => {
                self.ensure_started(out);
                let Some(delta) = v.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(t) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.text_chunk(out, t);
                        }
                    }
                    Some("input_json_delta") => {
                        let part = delta.partial_json.as_deref().unwrap_or("");
                        let tool = self.tool_index.iter().find(|(i, _)| *i == v.index).map(|(_, n)| *n);
                        if let (false, Some(n)) = (part.is_empty(), tool) {
                            let call = json!({ "index": n, "function": { "arguments": part } });
                            self.chunk(out, &json!({ "tool_calls": [call] }).to_string(), None);
                        }
                    }
                    _ => {} // thinking_delta, signature_delta, citations_delta
                }
            }
            "message_delta" => {
                if let Some(u) = &v.usage {
                    self.usage.update(u);
                    self.usage_seen = true;
                }
                if let Some(reason) = v.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    self.ensure_started(out);
                    if !self.finish_sent {
                        self.finish_sent = true;
                        self.chunk(out, "{}", Some(finish_reason(Some(reason))));
                    }
                }
            }
            "message_stop" => {
                self.ensure_started(out);
                if !self.finish_sent {
                    self.finish_sent = true;
                    self.chunk(out, "{}", Some("stop"));
                }
                self.completed = true;
                if self.include_usage {
                    self.chunk_head(out);
                    out.extend_from_slice(b"],\"usage\":");
                    out.extend_from_slice(self.usage.openai().to_string().as_bytes());
                    out.extend_from_slice(b"}\n\n");
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            "error" => {
                let e = v.error.unwrap_or(Value::Null);
                let etype = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("anthropic stream error");
                self.error = Some(stream_error_json(etype, &format!("anthropic: {msg}")));
            }
            _ => {} // ping, content_block_stop, and events added later
        }
    }
}

/// One Anthropic stream event; the hot fields (text deltas) borrow from the event's bytes.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<StreamDelta<'a>>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    message: Option<StreamMessage>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamMessage {
    #[serde(default)]
    usage: Option<Value>,
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..nl], &mut out);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..nl]);
                self.line(&line, &mut out);
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let mut out = Vec::new();
        // A last event not followed by its blank line still counts.
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, &mut out);
        }
        self.dispatch(&mut out);
        if !self.completed {
            let e = self.error.take().unwrap_or_else(|| {
                stream_error_json("", "anthropic stream ended before the answer was complete (no message_stop)")
            });
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(e.to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage_seen.then(|| self.usage.usage())
    }

    fn completed(&self) -> bool {
        self.completed
    }
}

// ---------------------------------------------------------------------------------------------
// WireFormat
// ---------------------------------------------------------------------------------------------

impl WireFormat for Anthropic {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    fn translate_request(
        &self,
        openai_body: &[u8],
        upstream_model: &str,
        stream: bool,
        opts: &TranslateOptions,
    ) -> Result<ProviderRequest, TranslateError> {
        let req: Value =
            serde_json::from_slice(openai_body).map_err(|e| invalid(format!("the request is not valid JSON: {e}")))?;
        let req = req.as_object().ok_or_else(|| invalid("the request must be a JSON object"))?;
        let body = self.request_body(req, upstream_model, stream, opts)?;
        Ok(ProviderRequest {
            path: "/v1/messages".to_string(),
            body: serde_json::to_vec(&body).map_err(|e| invalid(e.to_string()))?,
            headers: vec![
                ("anthropic-version".to_string(), self.version.clone()),
                ("content-type".to_string(), "application/json".to_string()),
            ],
        })
    }

    fn translate_response(&self, body: &[u8], public_model: &str) -> Result<Vec<u8>, TranslateError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| bad_upstream(format!("anthropic answer is not JSON: {e}")))?;
        match v.get("type").and_then(Value::as_str) {
            Some("message") => {}
            Some("error") => {
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(bad_upstream(format!("anthropic answered with an error: {msg}")));
            }
            _ => return Err(bad_upstream("anthropic answer is not a message")),
        }
        let blocks = v.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut text = String::new();
        let mut calls = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                Some("tool_use") => {
                    let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                    calls.push(json!({
                        "id": b.get("id"), "type": "function",
                        "function": { "name": b.get("name"), "arguments": input.to_string() },
                    }));
                }
                _ => {}
            }
        }
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
            "refusal": null,
        });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let mut usage = WireUsage::default();
        if let Some(u) = v.get("usage") {
            usage.update(u);
        }
        let out = json!({
            "id": fresh_id(),
            "object": "chat.completion",
            "created": now_secs(),
            "model": public_model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(v.get("stop_reason").and_then(Value::as_str)),
            }],
            "usage": usage.openai(),
        });
        serde_json::to_vec(&out).map_err(|e| bad_upstream(e.to_string()))
    }

    fn stream_translator(&self, public_model: &str, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream::new(public_model, include_usage))
    }

    fn map_error(&self, status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError {
        map_error(status, body, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ_OPENAI: &str = include_str!("../../tests/data/anthropic/request_full.openai.json");
    const REQ_ANTHROPIC: &str = include_str!("../../tests/data/anthropic/request_full.anthropic.json");
    const RESP_TEXT: &str = include_str!("../../tests/data/anthropic/response_text.json");
    const RESP_TOOL: &str = include_str!("../../tests/data/anthropic/response_tool_use.json");
    const RESP_MAX: &str = include_str!("../../tests/data/anthropic/response_max_tokens.json");
    const SSE_TEXT: &str = include_str!("../../tests/data/anthropic/stream_text.sse");
    const SSE_TOOL: &str = include_str!("../../tests/data/anthropic/stream_tool_use.sse");
    const SSE_ERROR: &str = include_str!("../../tests/data/anthropic/stream_error.sse");

    fn fmt() -> Anthropic {
        Anthropic::default()
    }

    fn translate(body: &Value, opts: &TranslateOptions) -> Result<Value, TranslateError> {
        let r = fmt().translate_request(body.to_string().as_bytes(), "claude-x", false, opts)?;
        Ok(serde_json::from_slice(&r.body).unwrap())
    }

    fn chat(extra: Value) -> Value {
        let mut v = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn request_golden_full() {
        let r = fmt()
            .translate_request(REQ_OPENAI.as_bytes(), "claude-sonnet-4-20250514", true, &TranslateOptions::default())
            .unwrap();
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(
            r.headers,
            vec![
                ("anthropic-version".to_string(), "2023-06-01".to_string()),
                ("content-type".to_string(), "application/json".to_string())
            ]
        );
        let got: Value = serde_json::from_slice(&r.body).unwrap();
        let want: Value = serde_json::from_str(REQ_ANTHROPIC).unwrap();
        assert_eq!(got, want, "\ngot:  {}\nwant: {}", serde_json::to_string_pretty(&got).unwrap(), want);
    }

    #[test]
    fn request_minimal_defaults() {
        let got = translate(&chat(json!({})), &TranslateOptions::default()).unwrap();
        assert_eq!(
            got,
            json!({ "model": "claude-x", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4096 })
        );
        let opts = TranslateOptions { default_max_tokens: 77, ..Default::default() };
        let got = translate(&chat(json!({ "max_tokens": 9, "stop": "x", "stream": true })), &opts).unwrap();
        assert_eq!(got["max_tokens"], 9);
        assert_eq!(got["stop_sequences"], json!(["x"]));
        assert!(got.get("stream").is_none(), "stream follows the argument, not the body");
        assert_eq!(translate(&chat(json!({})), &opts).unwrap()["max_tokens"], 77);
    }

    #[test]
    fn request_tool_choice_variants() {
        let tools = json!([{ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } }]);
        let choice = |c: Value| {
            let got = translate(&chat(json!({ "tools": tools, "tool_choice": c })), &TranslateOptions::default());
            got.unwrap().get("tool_choice").cloned()
        };
        assert_eq!(choice(json!("auto")), Some(json!({ "type": "auto" })));
        assert_eq!(choice(json!("none")), Some(json!({ "type": "none" })));
        assert_eq!(choice(json!("required")), Some(json!({ "type": "any" })));
        assert_eq!(
            choice(json!({ "type": "function", "function": { "name": "f" } })),
            Some(json!({ "type": "tool", "name": "f" }))
        );
        assert_eq!(choice(Value::Null), None);
        assert!(matches!(
            translate(&chat(json!({ "tools": tools, "tool_choice": "sometimes" })), &TranslateOptions::default()),
            Err(TranslateError::InvalidRequest(_))
        ));
    }

    #[test]
    fn request_rejects_malformed() {
        let bad = |v: Value| translate(&v, &TranslateOptions::default());
        assert!(matches!(bad(json!({ "model": "m" })), Err(TranslateError::InvalidRequest(_))));
        assert!(matches!(
            bad(json!({ "model": "m", "messages": [{ "role": "system", "content": "only system" }] })),
            Err(TranslateError::InvalidRequest(_))
        ));
        let args = json!([{ "role": "user", "content": "x" }, { "role": "assistant", "tool_calls": [
            { "id": "a", "type": "function", "function": { "name": "f", "arguments": "{not json" } }] }]);
        assert!(matches!(bad(json!({ "model": "m", "messages": args })), Err(TranslateError::InvalidRequest(_))));
        let img = json!([{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "ftp://x" } }] }]);
        assert!(matches!(bad(json!({ "model": "m", "messages": img })), Err(TranslateError::InvalidRequest(_))));
        assert!(fmt().translate_request(b"{nope", "m", false, &TranslateOptions::default()).is_err());
    }

    #[test]
    fn unsupported_params_400_or_dropped() {
        let strict = TranslateOptions::default();
        let lax = TranslateOptions { drop_unsupported_params: true, ..Default::default() };
        let cases = [
            ("logit_bias", json!({ "logit_bias": { "50256": -100 } })),
            ("logprobs", json!({ "logprobs": true })),
            ("top_logprobs", json!({ "top_logprobs": 3 })),
            ("presence_penalty", json!({ "presence_penalty": 0.5 })),
            ("frequency_penalty", json!({ "frequency_penalty": -0.2 })),
            ("n", json!({ "n": 2 })),
            ("seed", json!({ "seed": 7 })),
            ("response_format", json!({ "response_format": { "type": "json_object" } })),
            ("response_format", json!({ "response_format": { "type": "json_schema", "json_schema": {} } })),
        ];
        for (param, extra) in cases {
            let body = chat(extra);
            assert_eq!(
                translate(&body, &strict),
                Err(TranslateError::Unsupported { param: param.to_string(), provider: "anthropic" }),
                "{param}"
            );
            let dropped = translate(&body, &lax).unwrap();
            assert_eq!(dropped, translate(&chat(json!({})), &strict).unwrap(), "{param} is dropped silently");
        }
        // Values that ask for nothing are not errors.
        let harmless = json!({ "n": 1, "logprobs": false, "presence_penalty": 0, "seed": null,
            "response_format": { "type": "text" }, "stream_options": { "include_usage": true }, "store": false });
        assert!(translate(&chat(harmless), &strict).is_ok());
    }

    fn openai_response(fixture: &str) -> Value {
        let out = fmt().translate_response(fixture.as_bytes(), "my-claude").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "my-claude");
        v
    }

    #[test]
    fn response_text() {
        let v = openai_response(RESP_TEXT);
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "Hi! My name is Claude. How can I help?");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            v["usage"],
            json!({ "prompt_tokens": 3995, "completion_tokens": 503, "total_tokens": 4498,
                "prompt_tokens_details": { "cached_tokens": 1800 } })
        );
    }

    #[test]
    fn response_tool_use() {
        let v = openai_response(RESP_TOOL);
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], "I'll check the weather.");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(m["tool_calls"][0]["type"], "function");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
        let args: Value = serde_json::from_str(m["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({ "location": "San Francisco, CA", "unit": "celsius" }));
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"]["prompt_tokens"], 472);
        assert_eq!(v["usage"]["completion_tokens"], 89);
    }

    #[test]
    fn response_max_tokens_and_stop_reasons() {
        let v = openai_response(RESP_MAX);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["choices"][0]["message"]["content"], "Once upon a time, there");
        for (reason, want) in
            [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")]
                .into_iter()
                .chain([("refusal", "content_filter")])
        {
            let body = json!({ "type": "message", "content": [], "stop_reason": reason, "usage": {} });
            assert_eq!(openai_response(&body.to_string())["choices"][0]["finish_reason"], want);
        }
        assert!(matches!(fmt().translate_response(b"<html>", "m"), Err(TranslateError::BadUpstream(_))));
        let err = br#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#;
        assert!(matches!(fmt().translate_response(err, "m"), Err(TranslateError::BadUpstream(_))));
    }

    /// The OpenAI SSE events of a translated stream, with the random id and time made fixed.
    fn run(chunks: &[&[u8]], include_usage: bool) -> (String, Box<dyn StreamTranslator>) {
        let mut t = fmt().stream_translator("my-claude", include_usage);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(t.feed(c));
        }
        out.extend(t.finish());
        (String::from_utf8(out).unwrap(), t)
    }

    fn events(sse: &str) -> Vec<Value> {
        assert!(sse.ends_with("\n\n"));
        sse.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let d = e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}"));
                if d == "[DONE]" {
                    Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(d).unwrap()
                }
            })
            .collect()
    }

    fn deltas(evs: &[Value]) -> Vec<Value> {
        evs.iter().filter(|e| e.get("choices").is_some_and(|c| !c.as_array().unwrap().is_empty())).cloned().collect()
    }

    #[test]
    fn stream_text() {
        let (out, t) = run(&[SSE_TEXT.as_bytes()], true);
        let evs = events(&out);
        let first = &evs[0];
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["model"], "my-claude");
        assert_eq!(first["choices"][0]["delta"], json!({ "role": "assistant", "content": "" }));
        assert!(first["usage"].is_null() && first.get("usage").is_some());
        let ids: Vec<&Value> = evs.iter().filter_map(|e| e.get("id")).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id for the whole stream");
        let d = deltas(&evs);
        let text: String = d.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Hello, wörld — \"quoted\" ✓");
        assert_eq!(d.len(), 5, "role, three text deltas, finish");
        assert_eq!(d.last().unwrap()["choices"][0]["finish_reason"], "stop");
        assert_eq!(d.last().unwrap()["choices"][0]["delta"], json!({}));
        let usage = &evs[evs.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({ "prompt_tokens": 35, "completion_tokens": 15, "total_tokens": 50,
                "prompt_tokens_details": { "cached_tokens": 10 } })
        );
        assert_eq!(evs.last().unwrap(), "[DONE]");
        assert!(t.completed());
        assert_eq!(
            t.usage(),
            Some(Usage { prompt_tokens: 35, completion_tokens: 15, cached_tokens: 10, estimated: false })
        );

        // Without include_usage: no usage chunk, no `usage` key at all.
        let (out, _) = run(&[SSE_TEXT.as_bytes()], false);
        assert!(!out.contains("usage"));
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn stream_tool_use() {
        let (out, t) = run(&[SSE_TOOL.as_bytes()], false);
        let evs = events(&out);
        let d = deltas(&evs);
        let text: String = d.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");
        let calls: Vec<&Value> = d.iter().filter_map(|e| e["choices"][0]["delta"].get("tool_calls")).collect();
        assert_eq!(
            calls[0],
            &json!([{ "index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                "function": { "name": "get_weather", "arguments": "" } }])
        );
        let args = |i: u64| -> String {
            calls.iter().filter(|c| c[0]["index"] == i).filter_map(|c| c[0]["function"]["arguments"].as_str()).collect()
        };
        let a0: Value = serde_json::from_str(&args(0)).unwrap();
        assert_eq!(a0, json!({ "location": "San Francisco, CA", "unit": "fahrenheit" }));
        assert_eq!(calls.iter().filter(|c| c[0]["index"] == 0).count(), 4, "start + three non-empty fragments");
        assert_eq!(calls.iter().find(|c| c[0]["index"] == 1).unwrap()[0]["id"], "toolu_02Time");
        assert_eq!(args(1), "{}");
        assert_eq!(d.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(evs.last().unwrap(), "[DONE]");
        assert!(t.completed());
        assert_eq!(t.usage().unwrap().prompt_tokens, 472);
        assert_eq!(t.usage().unwrap().completion_tokens, 89);
    }

    /// Replaces the random id and creation time so two runs compare equal.
    fn normalise(sse: &str) -> String {
        let re =
            regex::Regex::new(r#""id":"chatcmpl-[0-9a-f]+","object":"chat.completion.chunk","created":\d+"#).unwrap();
        re.replace_all(sse, r#""id":"X","object":"chat.completion.chunk","created":0"#).into_owned()
    }

    #[test]
    fn stream_split_at_every_byte_is_identical() {
        for (fixture, include_usage) in [(SSE_TEXT, true), (SSE_TOOL, true), (SSE_ERROR, false)] {
            let bytes = fixture.as_bytes();
            let (whole, _) = run(&[bytes], include_usage);
            let whole = normalise(&whole);
            for at in 0..=bytes.len() {
                let (a, b) = bytes.split_at(at);
                let (split, _) = run(&[a, b], include_usage);
                assert_eq!(normalise(&split), whole, "split at byte {at}");
            }
            // One byte at a time, and with CRLF line endings.
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(normalise(&run(&singles, include_usage).0), whole);
            let crlf = fixture.replace('\n', "\r\n");
            let crlf: Vec<&[u8]> = crlf.as_bytes().chunks(7).collect();
            assert_eq!(normalise(&run(&crlf, include_usage).0), whole);
        }
    }

    #[test]
    fn stream_emits_as_events_complete() {
        let mut t = fmt().stream_translator("m", false);
        let (start, rest) = SSE_TEXT.split_at(SSE_TEXT.find("event: content_block_start").unwrap());
        let out = String::from_utf8(t.feed(start.as_bytes())).unwrap();
        assert!(out.contains(r#""role":"assistant""#), "role chunk right after message_start");
        let half = rest.find(r#""text":"Hello"#).unwrap();
        assert!(!String::from_utf8(t.feed(&rest.as_bytes()[..half])).unwrap().contains("Hello"));
        let out = String::from_utf8(t.feed(&rest.as_bytes()[half..])).unwrap();
        assert!(out.contains("Hello") && out.ends_with("data: [DONE]\n\n"));
        assert!(t.finish().is_empty(), "[DONE] already sent at message_stop");
    }

    #[test]
    fn stream_cut_short() {
        let cut = &SSE_TEXT[..SSE_TEXT.find("event: message_delta").unwrap()];
        let (out, t) = run(&[cut.as_bytes()], true);
        assert!(!out.contains("[DONE]"));
        let evs = events(&out);
        let last = evs.last().unwrap();
        assert_eq!(last["error"]["type"], "server_error");
        assert!(last["error"]["message"].as_str().unwrap().contains("message_stop"));
        assert_eq!(evs.iter().filter(|e| e.get("error").is_some()).count(), 1);
        assert!(!t.completed());
        assert_eq!(t.usage().unwrap().prompt_tokens, 35, "input tokens known from message_start");
        // Cut in the middle of a line: the fragment is not mistaken for an event.
        let (out, t) = run(&[&SSE_TEXT.as_bytes()[..SSE_TEXT.len() - 10]], false);
        assert!(!out.contains("[DONE]") && out.contains(r#"{"error":"#));
        assert!(!t.completed());
    }

    #[test]
    fn stream_error_event() {
        let (out, t) = run(&[SSE_ERROR.as_bytes()], true);
        assert!(!out.contains("[DONE]"));
        let evs = events(&out);
        assert_eq!(
            deltas(&evs).iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect::<String>(),
            "Partial"
        );
        let last = evs.last().unwrap();
        assert_eq!(last["error"]["code"], "overloaded");
        assert!(last["error"]["message"].as_str().unwrap().contains("Overloaded"));
        assert_eq!(evs.iter().filter(|e| e.get("error").is_some()).count(), 1);
        assert!(!t.completed());
    }

    #[test]
    fn error_mapping_table() {
        let body = |t: &str, m: &str| json!({ "type": "error", "error": { "type": t, "message": m } }).to_string();
        /// status, body, retry-after in → status, kind, retry-after out
        type Case = (u16, String, Option<u64>, u16, &'static str, Option<u64>);
        let cases: &[Case] = &[
            (429, body("rate_limit_error", "slow down"), Some(12), 429, "rate_limit_error", Some(12)),
            (529, body("overloaded_error", "Overloaded"), None, 503, "server_error", None),
            (529, body("overloaded_error", "Overloaded"), Some(3), 503, "server_error", Some(3)),
            (401, body("authentication_error", "invalid x-api-key"), None, 502, "server_error", None),
            (403, body("permission_error", "no access"), None, 502, "server_error", None),
            (400, body("invalid_request_error", "max_tokens: too big"), None, 400, "invalid_request_error", None),
            (413, body("request_too_large", "too large"), None, 400, "invalid_request_error", None),
            (404, body("not_found_error", "model: claude-nope"), None, 502, "server_error", None),
            (500, body("api_error", "Internal server error"), None, 502, "server_error", None),
            (502, "<html>bad gateway</html>".to_string(), None, 502, "server_error", None),
            (503, String::new(), None, 502, "server_error", None),
        ];
        for (status, b, retry, want_status, want_kind, want_retry) in cases {
            let m = fmt().map_error(*status, b.as_bytes(), *retry);
            assert_eq!((m.status, m.kind, m.retry_after), (*want_status, *want_kind, *want_retry), "{status} {b}");
            assert!(!m.message.is_empty());
        }
        let auth = fmt().map_error(401, body("authentication_error", "invalid x-api-key").as_bytes(), None);
        assert!(auth.message.contains("upstream authentication failed"));
        let inv = fmt().map_error(400, body("invalid_request_error", "max_tokens: too big").as_bytes(), None);
        assert!(inv.message.contains("max_tokens: too big"));
    }

    #[test]
    fn request_merges_turns_and_handles_parts() {
        let strict = TranslateOptions::default();
        let body = json!({ "model": "m", "messages": [
            { "role": "developer", "content": "Rules." },
            { "role": "user", "content": "a" },
            { "role": "assistant", "content": "b" },
            { "role": "assistant", "content": [{ "type": "text", "text": "c" }] },
            { "role": "user", "content": "" },
            { "role": "user", "content": [{ "type": "input_audio", "input_audio": { "data": "x", "format": "wav" } },
                { "type": "text", "text": "d" }] },
        ], "tools": [{ "type": "function", "function": { "name": "f" } }] });
        assert_eq!(
            translate(&body, &strict),
            Err(TranslateError::Unsupported {
                param: "messages[].content[].type=input_audio".into(),
                provider: "anthropic"
            })
        );
        let got = translate(&body, &TranslateOptions { drop_unsupported_params: true, ..Default::default() }).unwrap();
        assert_eq!(got["system"], "Rules.");
        assert_eq!(
            got["messages"],
            json!([
                { "role": "user", "content": "a" },
                { "role": "assistant", "content": [{ "type": "text", "text": "b" }, { "type": "text", "text": "c" }] },
                { "role": "user", "content": "d" },
            ])
        );
        assert!(got.get("tool_choice").is_none(), "auto is Anthropic's default");
        assert_eq!(got["tools"][0], json!({ "name": "f", "input_schema": { "type": "object", "properties": {} } }));
    }

    #[test]
    fn stream_skips_thinking_blocks_and_maps_tool_indexes() {
        let sse = [
            r#"{"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
            r#"{"type":"message_stop"}"#,
        ]
        .iter()
        .map(|d| format!("data: {d}

"))
        .collect::<String>();
        let (out, t) = run(&[sse.as_bytes()], false);
        assert!(!out.contains("hmm"));
        let evs = events(&out);
        let calls: Vec<&Value> = evs.iter().filter_map(|e| e["choices"][0]["delta"].get("tool_calls")).collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0][0]["index"], 0);
        assert_eq!(calls[0][0]["id"], "t1");
        assert_eq!(calls[1][0], json!({ "index": 0, "function": { "arguments": "{\"a\":1}" } }));
        assert!(t.completed());
        assert_eq!(t.usage().unwrap().completion_tokens, 7);
    }

    #[test]
    fn version_header_is_configurable() {
        let a = Anthropic { version: "2024-01-01".into() };
        let r =
            a.translate_request(br#"{"messages":[{"role":"user","content":"x"}]}"#, "c", false, &Default::default());
        assert_eq!(r.unwrap().headers[0], ("anthropic-version".to_string(), "2024-01-01".to_string()));
        assert_eq!(a.kind(), "anthropic");
    }
}
