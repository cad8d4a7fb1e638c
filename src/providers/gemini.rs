//! Google Gemini (Generative Language API, `generateContent`) wire format.
//!
//! Requests: OpenAI messages become `contents` (roles `user`/`model`), system messages become
//! `systemInstruction`, tool calls and results become `functionCall` / `functionResponse` parts.
//! Answers: `candidates[].content.parts` become choices. Streams (`alt=sse`) carry one full
//! `GenerateContentResponse` per SSE event, each holding only the new parts.
//!
//! The small helpers shared with the Bedrock format (OpenAI chunk and usage shapes, data URLs)
//! live here as `pub(crate)`.

use serde_json::{json, Map, Value};

use super::translate::{
    push_merged, MappedError, ProviderRequest, StreamTranslator, TranslateError, TranslateOptions, WireFormat,
};
use crate::spend::usage::Usage;

pub struct Gemini;

const PROVIDER: &str = "gemini";

/// OpenAI parameters with no Gemini equivalent.
const UNSUPPORTED: &[&str] =
    &["logit_bias", "logprobs", "top_logprobs", "prediction", "audio", "modalities", "functions", "function_call"];

impl WireFormat for Gemini {
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
        let req: Value = serde_json::from_slice(openai_body)
            .map_err(|e| TranslateError::InvalidRequest(format!("the request body is not valid JSON: {e}")))?;
        let body = build_request(&req, opts)?;
        let path = if stream {
            format!("/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse")
        } else {
            format!("/v1beta/models/{upstream_model}:generateContent")
        };
        Ok(ProviderRequest {
            path,
            body: serde_json::to_vec(&body).expect("a Value serialises"),
            headers: vec![("content-type".into(), "application/json".into())],
        })
    }

    fn translate_response(&self, body: &[u8], public_model: &str) -> Result<Vec<u8>, TranslateError> {
        translate_response_at(body, public_model, &new_id(), unix_now())
    }

    fn stream_translator(&self, public_model: &str, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream::new(public_model, include_usage, new_id(), unix_now()))
    }

    fn map_error(&self, status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError {
        map_error(status, body, retry_after)
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by the Bedrock format)

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn new_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// Whether an OpenAI parameter was really sent (`null`, `false` and `{}` count as absent).
pub(crate) fn present(v: &Value) -> bool {
    !(v.is_null() || *v == Value::Bool(false) || v.as_object().is_some_and(Map::is_empty))
}

/// `Err(Unsupported)` for the first unsupported parameter present, unless they are dropped.
pub(crate) fn check_unsupported(
    req: &Value,
    params: &[&str],
    provider: &'static str,
    opts: &TranslateOptions,
) -> Result<(), TranslateError> {
    if opts.drop_unsupported_params {
        return Ok(());
    }
    match params.iter().find(|p| present(&req[**p])) {
        Some(p) => Err(TranslateError::Unsupported { param: (*p).to_string(), provider }),
        None => Ok(()),
    }
}

/// `data:<mime>;base64,<data>` → (mime, base64 data).
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((if mime.is_empty() { "application/octet-stream" } else { mime }, data))
}

/// The text of an OpenAI `content` (a string or an array of parts; non-text parts skipped).
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

/// `stop` as a list of strings.
pub(crate) fn stop_list(stop: &Value) -> Option<Value> {
    match stop {
        Value::String(s) => Some(json!([s])),
        Value::Array(a) if !a.is_empty() => Some(Value::Array(a.clone())),
        _ => None,
    }
}

/// A tool call's `arguments` string as a JSON value (`""` is `{}`).
pub(crate) fn parse_arguments(args: &Value) -> Result<Value, TranslateError> {
    match args {
        Value::String(s) if s.trim().is_empty() => Ok(json!({})),
        Value::String(s) => serde_json::from_str(s)
            .map_err(|_| TranslateError::InvalidRequest(format!("tool call arguments are not valid JSON: {s}"))),
        Value::Null => Ok(json!({})),
        other => Ok(other.clone()),
    }
}

/// OpenAI's `usage` object.
pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// One SSE event: `data: <json>\n\n`.
pub(crate) fn sse(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, v).expect("a Value serialises");
    out.extend_from_slice(b"\n\n");
}

/// The SSE error event sent when a stream is cut or the provider reports an error mid-stream.
pub(crate) fn sse_error(out: &mut Vec<u8>, message: &str, code: &str) {
    sse(out, &json!({"error": {"message": message, "type": "upstream_error", "code": code}}));
}

pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// What the OpenAI `chat.completion.chunk` events of one stream share.
#[derive(Debug, Clone)]
pub(crate) struct ChunkWriter {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ChunkWriter {
    pub fn choice(&self, out: &mut Vec<u8>, index: u64, delta: Value, finish_reason: Option<&str>) {
        sse(
            out,
            &json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
            }),
        );
    }

    pub fn usage(&self, out: &mut Vec<u8>, u: &Usage) {
        sse(
            out,
            &json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_json(u),
            }),
        );
    }
}

/// The OpenAI `error.type` for a mapped status.
pub(crate) fn error_kind(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_error",
        400 => "invalid_request_error",
        _ => "upstream_error",
    }
}

/// A complete OpenAI `chat.completion` body.
pub(crate) fn completion_json(
    id: &str,
    created: u64,
    model: &str,
    choices: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    let mut v = json!({"id": id, "object": "chat.completion", "created": created, "model": model, "choices": choices});
    if let Some(u) = usage {
        v["usage"] = usage_json(u);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Requests

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

/// One OpenAI content part → a Gemini part.
fn user_part(part: &Value) -> Result<Value, TranslateError> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"text": part["text"].as_str().unwrap_or_default()})),
        Some("image_url") => {
            let url = part["image_url"]["url"].as_str().or(part["image_url"].as_str()).unwrap_or_default();
            match parse_data_url(url) {
                Some((mime, data)) => Ok(json!({"inlineData": {"mimeType": mime, "data": data}})),
                None if url.is_empty() => Err(invalid("image_url part without a url")),
                None => Ok(json!({"fileData": {"mimeType": guess_image_mime(url), "fileUri": url}})),
            }
        }
        Some(other) => {
            Err(TranslateError::Unsupported { param: format!("messages[].content[].type={other}"), provider: PROVIDER })
        }
        None => Err(invalid("content part without a type")),
    }
}

fn guess_image_mime(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

fn content_parts(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts.iter().map(user_part).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(invalid("message content must be a string or an array of parts")),
    }
}

/// Gemini's `responseSchema` is an OpenAPI subset: drop the JSON Schema keywords it rejects.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "additionalProperties" | "$schema" | "strict"))
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

fn build_request(req: &Value, opts: &TranslateOptions) -> Result<Value, TranslateError> {
    if !req.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    check_unsupported(req, UNSUPPORTED, PROVIDER, opts)?;
    let messages = req["messages"].as_array().ok_or_else(|| invalid("`messages` must be an array"))?;

    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // tool_call_id → function name: OpenAI tool results carry only the id, Gemini wants the name.
    let mut call_names: Vec<(String, String)> = Vec::new();
    for m in messages {
        match m["role"].as_str() {
            Some("system") | Some("developer") => {
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
            }
            Some("user") => push_merged(&mut contents, "user", "parts", content_parts(&m["content"])?),
            Some("assistant") => {
                let mut parts = Vec::new();
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().ok_or_else(|| invalid("tool call without a name"))?;
                    let args = parse_arguments(&call["function"]["arguments"])?;
                    if let Some(id) = call["id"].as_str() {
                        call_names.push((id.to_string(), name.to_string()));
                    }
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_merged(&mut contents, "model", "parts", parts);
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let name = call_names
                    .iter()
                    .rev()
                    .find(|(i, _)| i == id)
                    .map(|(_, n)| n.as_str())
                    .or(m["name"].as_str())
                    .ok_or_else(|| invalid(format!("tool message for unknown tool_call_id `{id}`")))?;
                let text = content_text(&m["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                push_merged(
                    &mut contents,
                    "user",
                    "parts",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            Some(other) => return Err(invalid(format!("unknown message role `{other}`"))),
            None => return Err(invalid("message without a role")),
        }
    }

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }

    if let Some(tools) = req["tools"].as_array().filter(|t| !t.is_empty()) {
        let mut decls = Vec::new();
        for t in tools {
            if t["type"].as_str().unwrap_or("function") != "function" {
                if opts.drop_unsupported_params {
                    continue;
                }
                return Err(TranslateError::Unsupported { param: "tools[].type".into(), provider: PROVIDER });
            }
            let f = &t["function"];
            let mut d = Map::new();
            d.insert("name".into(), f["name"].as_str().ok_or_else(|| invalid("tool without a name"))?.into());
            if let Some(desc) = f["description"].as_str() {
                d.insert("description".into(), desc.into());
            }
            if f["parameters"].is_object() {
                d.insert("parameters".into(), gemini_schema(&f["parameters"]));
            }
            decls.push(Value::Object(d));
        }
        if !decls.is_empty() {
            body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
    }
    let choice = match &req["tool_choice"] {
        Value::Null => None,
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"mode": "AUTO"})),
            "none" => Some(json!({"mode": "NONE"})),
            "required" => Some(json!({"mode": "ANY"})),
            other => return Err(invalid(format!("unknown tool_choice `{other}`"))),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f["name"].as_str())
                .ok_or_else(|| invalid("tool_choice without a function name"))?;
            Some(json!({"mode": "ANY", "allowedFunctionNames": [name]}))
        }
        _ => return Err(invalid("tool_choice must be a string or an object")),
    };
    if let Some(c) = choice {
        body.insert("toolConfig".into(), json!({"functionCallingConfig": c}));
    }

    let mut gen = Map::new();
    if let Some(n) = req["max_completion_tokens"].as_u64().or(req["max_tokens"].as_u64()) {
        gen.insert("maxOutputTokens".into(), n.into());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if req[from].is_number() {
            gen.insert(to.into(), req[from].clone());
        }
    }
    if let Some(stop) = stop_list(&req["stop"]) {
        gen.insert("stopSequences".into(), stop);
    }
    if let Some(n) = req["n"].as_u64().filter(|&n| n != 1) {
        gen.insert("candidateCount".into(), n.into());
    }
    match req["response_format"]["type"].as_str() {
        None | Some("text") => {}
        Some("json_object") => {
            gen.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            gen.insert("responseMimeType".into(), "application/json".into());
            let schema = &req["response_format"]["json_schema"]["schema"];
            if schema.is_object() {
                gen.insert("responseSchema".into(), gemini_schema(schema));
            }
        }
        Some(other) => return Err(invalid(format!("unknown response_format type `{other}`"))),
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }
    Ok(Value::Object(body))
}

// ---------------------------------------------------------------------------------------------
// Responses

fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ if has_calls => "tool_calls",
        "STOP" => "stop",
        "MALFORMED_FUNCTION_CALL" => "stop",
        _ => "stop",
    }
}

fn gemini_usage(meta: &Value) -> Option<Usage> {
    if !meta.is_object() {
        return None;
    }
    let n = |k: &str| meta[k].as_u64().unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
        // Thinking tokens are billed as output.
        completion_tokens: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached_tokens: n("cachedContentTokenCount"),
        estimated: false,
    })
}

/// A `functionCall` part → an OpenAI tool call (id from Gemini when it gives one).
fn tool_call(call: &Value, n: usize) -> Value {
    let id = call["id"].as_str().map_or_else(|| format!("call_{n}"), str::to_string);
    let args = if call["args"].is_null() { "{}".to_string() } else { call["args"].to_string() };
    json!({"id": id, "type": "function", "function": {"name": call["name"].as_str().unwrap_or_default(), "arguments": args}})
}

pub(crate) fn translate_response_at(
    body: &[u8],
    public_model: &str,
    id: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("gemini answer is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(TranslateError::BadUpstream("gemini answer is not a JSON object".into()));
    }
    let mut choices = Vec::new();
    for (i, cand) in v["candidates"].as_array().into_iter().flatten().enumerate() {
        let mut text = String::new();
        let mut calls = Vec::new();
        for part in cand["content"]["parts"].as_array().into_iter().flatten() {
            if part["thought"] == true {
                continue;
            }
            if let Some(t) = part["text"].as_str() {
                text.push_str(t);
            } else if part["functionCall"].is_object() {
                calls.push(tool_call(&part["functionCall"], calls.len()));
            }
        }
        let reason = finish_reason(cand["finishReason"].as_str().unwrap_or("STOP"), !calls.is_empty());
        let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let index = cand["index"].as_u64().unwrap_or(i as u64);
        choices.push(json!({"index": index, "message": message, "logprobs": null, "finish_reason": reason}));
    }
    if choices.is_empty() {
        if v["promptFeedback"]["blockReason"].is_string() {
            choices.push(json!({"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": "content_filter"}));
        } else {
            return Err(TranslateError::BadUpstream("gemini answer has no candidates".into()));
        }
    }
    let usage = gemini_usage(&v["usageMetadata"]);
    Ok(serde_json::to_vec(&completion_json(id, created, public_model, choices, usage.as_ref())).expect("serialises"))
}

// ---------------------------------------------------------------------------------------------
// Streams

/// Finds the end of the first SSE event: (index of the blank line, separator length).
pub(crate) fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// The `data:` payload of one SSE event (several `data:` lines joined by `\n`).
pub(crate) fn event_data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut first = true;
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(d) = line.strip_prefix(b"data:") {
            if !first {
                data.push(b'\n');
            }
            first = false;
            data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
        }
    }
    data
}

pub struct GeminiStream {
    w: ChunkWriter,
    include_usage: bool,
    buf: Vec<u8>,
    /// Per candidate index: role sent, tool calls so far.
    started: Vec<(u64, usize)>,
    usage: Option<Usage>,
    finished: bool,
    failed: bool,
    done: bool,
}

impl GeminiStream {
    pub fn new(public_model: &str, include_usage: bool, id: String, created: u64) -> GeminiStream {
        GeminiStream {
            w: ChunkWriter { id, created, model: public_model.to_string() },
            include_usage,
            buf: Vec::new(),
            started: Vec::new(),
            usage: None,
            finished: false,
            failed: false,
            done: false,
        }
    }

    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() || data == b"[DONE]" {
            return;
        }
        let v: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => {
                self.failed = true;
                sse_error(out, &format!("gemini sent an unreadable stream event: {e}"), "bad_upstream_event");
                return;
            }
        };
        if v["error"].is_object() {
            self.failed = true;
            let msg = v["error"]["message"].as_str().unwrap_or("gemini reported an error mid-stream");
            sse_error(out, msg, v["error"]["status"].as_str().unwrap_or("upstream_error"));
            return;
        }
        if let Some(u) = gemini_usage(&v["usageMetadata"]) {
            self.usage = Some(u);
        }
        let candidates = v["candidates"].as_array().map(Vec::as_slice).unwrap_or_default();
        if candidates.is_empty() && v["promptFeedback"]["blockReason"].is_string() {
            self.w.choice(out, 0, json!({"role": "assistant", "content": ""}), Some("content_filter"));
            self.finished = true;
        }
        for (i, cand) in candidates.iter().enumerate() {
            let index = cand["index"].as_u64().unwrap_or(i as u64);
            let slot = match self.started.iter().position(|(ix, _)| *ix == index) {
                Some(s) => s,
                None => {
                    self.started.push((index, 0));
                    self.w.choice(out, index, json!({"role": "assistant", "content": ""}), None);
                    self.started.len() - 1
                }
            };
            for part in cand["content"]["parts"].as_array().into_iter().flatten() {
                if part["thought"] == true {
                    continue;
                }
                if let Some(t) = part["text"].as_str() {
                    if !t.is_empty() {
                        self.w.choice(out, index, json!({"content": t}), None);
                    }
                } else if part["functionCall"].is_object() {
                    let n = self.started[slot].1;
                    let mut call = tool_call(&part["functionCall"], n);
                    call["index"] = n.into();
                    self.started[slot].1 += 1;
                    self.w.choice(out, index, json!({"tool_calls": [call]}), None);
                }
            }
            if let Some(reason) = cand["finishReason"].as_str() {
                let r = finish_reason(reason, self.started[slot].1 > 0);
                self.w.choice(out, index, json!({}), Some(r));
                self.finished = true;
            }
        }
    }
}

impl StreamTranslator for GeminiStream {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.failed || self.done {
            return out;
        }
        self.buf.extend_from_slice(chunk);
        let mut at = 0;
        while let Some((end, sep)) = find_event_end(&self.buf[at..]) {
            let data = event_data(&self.buf[at..at + end]);
            at += end + sep;
            self.event(&data, &mut out);
            if self.failed {
                self.buf.clear();
                return out;
            }
        }
        self.buf.drain(..at);
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.done = true;
        if self.failed {
            return out;
        }
        // A last event without its blank line, when it is whole; a torn one means the stream was cut.
        let data = event_data(&std::mem::take(&mut self.buf));
        if serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok() {
            self.event(&data, &mut out);
            if self.failed {
                return out;
            }
        }
        if !self.finished {
            self.failed = true;
            sse_error(&mut out, "the gemini stream ended before its last event", "upstream_stream_cut");
            return out;
        }
        if self.include_usage {
            if let Some(u) = self.usage {
                self.w.usage(&mut out, &u);
            }
        }
        out.extend_from_slice(DONE);
        out
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn completed(&self) -> bool {
        self.finished && !self.failed
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// `"17s"` / `"1.5s"` → whole seconds, rounded up.
fn parse_duration_secs(s: &str) -> Option<u64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs >= 0.0).then(|| secs.ceil() as u64)
}

pub(crate) fn map_error(status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // Stream endpoints answer errors as a one-element array.
    let err = if v.is_array() { &v[0]["error"] } else { &v["error"] };
    let code = err["status"].as_str().unwrap_or_default();
    let http = err["code"].as_u64().map_or(status, |c| c as u16);
    // A bad key is a 400 INVALID_ARGUMENT whose ErrorInfo reason says so: the gateway's
    // credentials, not the client's request.
    let bad_key = err["details"].as_array().into_iter().flatten().any(|d| {
        matches!(d["reason"].as_str(), Some("API_KEY_INVALID" | "API_KEY_EXPIRED" | "API_KEY_SERVICE_BLOCKED"))
    });
    let mapped = match code {
        _ if bad_key => 502,
        "RESOURCE_EXHAUSTED" => 429,
        "UNAVAILABLE" => 503,
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => 502,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        _ => match if status >= 400 { status } else { http } {
            429 => 429,
            503 => 503,
            400 => 400,
            _ => 502,
        },
    };
    let retry_after = retry_after.or_else(|| {
        err["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|d| d["retryDelay"].as_str().and_then(parse_duration_secs))
    });
    let detail = err["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect(), str::to_string);
    let message = match mapped {
        502 if bad_key || matches!(code, "UNAUTHENTICATED" | "PERMISSION_DENIED") || matches!(status, 401 | 403) => {
            format!("gemini rejected the gateway's credentials ({status}): {detail}")
        }
        _ => format!("gemini: {detail}"),
    };
    MappedError { status: mapped, kind: error_kind(mapped), message, retry_after }
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
pub(crate) mod tests;
