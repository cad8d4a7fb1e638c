//! Amazon Bedrock Converse API wire format (`/model/{modelId}/converse` and `/converse-stream`),
//! the AWS event-stream framing its streams use, and SigV4 request signing.
//!
//! Requests: OpenAI messages become Converse messages of content blocks (`text`, `image`,
//! `toolUse`, `toolResult`), system messages go to `system`, sampling to `inferenceConfig`, tools
//! to `toolConfig`. Streams are binary event-stream frames, one Converse event each, whose type is
//! in the `:event-type` header; they are decoded incrementally and turned into OpenAI chunks.

use serde_json::{json, Map, Value};

use super::gemini::{
    check_unsupported, completion_json, content_text, error_kind, new_id, parse_arguments, parse_data_url, sse_error,
    stop_list, unix_now, ChunkWriter, DONE,
};
use super::translate::{
    push_merged, MappedError, ProviderRequest, StreamTranslator, TranslateError, TranslateOptions, WireFormat,
};
use crate::spend::usage::Usage;

pub struct Bedrock;

const PROVIDER: &str = "bedrock";

/// OpenAI parameters with no Converse equivalent.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "prediction",
    "audio",
    "modalities",
    "functions",
    "function_call",
    "presence_penalty",
    "frequency_penalty",
    "seed",
];

impl WireFormat for Bedrock {
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
        let action = if stream { "converse-stream" } else { "converse" };
        Ok(ProviderRequest {
            path: format!("/model/{}/{action}", uri_encode(upstream_model)),
            body: serde_json::to_vec(&body).expect("a Value serialises"),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "accept".into(),
                    if stream { "application/vnd.amazon.eventstream" } else { "application/json" }.into(),
                ),
            ],
        })
    }

    fn translate_response(&self, body: &[u8], public_model: &str) -> Result<Vec<u8>, TranslateError> {
        translate_response_at(body, public_model, &new_id(), unix_now())
    }

    fn stream_translator(&self, public_model: &str, include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(BedrockStream::new(public_model, include_usage, new_id(), unix_now()))
    }

    fn map_error(&self, status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError {
        map_error_typed(status, None, body, retry_after)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(msg.into())
}

fn image_format(mime: &str) -> Option<&'static str> {
    match mime.to_ascii_lowercase().as_str() {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

fn user_block(part: &Value) -> Result<Value, TranslateError> {
    match part["type"].as_str() {
        Some("text") => Ok(json!({"text": part["text"].as_str().unwrap_or_default()})),
        Some("image_url") => {
            let url = part["image_url"]["url"].as_str().or(part["image_url"].as_str()).unwrap_or_default();
            let (mime, data) =
                parse_data_url(url).ok_or_else(|| invalid("bedrock takes images only as base64 data: URLs"))?;
            let format = image_format(mime).ok_or_else(|| invalid(format!("bedrock cannot take `{mime}` images")))?;
            Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
        }
        Some(other) => {
            Err(TranslateError::Unsupported { param: format!("messages[].content[].type={other}"), provider: PROVIDER })
        }
        None => Err(invalid("content part without a type")),
    }
}

fn content_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"text": s})]),
        Value::Array(parts) => parts.iter().map(user_block).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(invalid("message content must be a string or an array of parts")),
    }
}

fn build_request(req: &Value, opts: &TranslateOptions) -> Result<Value, TranslateError> {
    if !req.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    check_unsupported(req, UNSUPPORTED, PROVIDER, opts)?;
    if !opts.drop_unsupported_params {
        if req["n"].as_u64().is_some_and(|n| n != 1) {
            return Err(TranslateError::Unsupported { param: "n".into(), provider: PROVIDER });
        }
        if req["response_format"]["type"].as_str().is_some_and(|t| t != "text") {
            return Err(TranslateError::Unsupported { param: "response_format".into(), provider: PROVIDER });
        }
        if req["tool_choice"] == "none" {
            return Err(TranslateError::Unsupported { param: "tool_choice=none".into(), provider: PROVIDER });
        }
    }
    let messages = req["messages"].as_array().ok_or_else(|| invalid("`messages` must be an array"))?;

    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        match m["role"].as_str() {
            Some("system") | Some("developer") => {
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
            }
            Some("user") => push_merged(&mut out, "user", "content", content_blocks(&m["content"])?),
            Some("assistant") => {
                let mut blocks = Vec::new();
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    blocks.push(json!({"text": text}));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let name = call["function"]["name"].as_str().ok_or_else(|| invalid("tool call without a name"))?;
                    let id = call["id"].as_str().ok_or_else(|| invalid("tool call without an id"))?;
                    let input = parse_arguments(&call["function"]["arguments"])?;
                    blocks.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
                }
                push_merged(&mut out, "assistant", "content", blocks);
            }
            Some("tool") => {
                let id = m["tool_call_id"].as_str().ok_or_else(|| invalid("tool message without a tool_call_id"))?;
                let text = content_text(&m["content"]);
                push_merged(
                    &mut out,
                    "user",
                    "content",
                    vec![json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}})],
                );
            }
            Some(other) => return Err(invalid(format!("unknown message role `{other}`"))),
            None => return Err(invalid("message without a role")),
        }
    }

    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(out));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inf = Map::new();
    if let Some(n) = req["max_completion_tokens"].as_u64().or(req["max_tokens"].as_u64()) {
        inf.insert("maxTokens".into(), n.into());
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if req[from].is_number() {
            inf.insert(to.into(), req[from].clone());
        }
    }
    if let Some(stop) = stop_list(&req["stop"]) {
        inf.insert("stopSequences".into(), stop);
    }
    if !inf.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inf));
    }

    if let Some(tools) = req["tools"].as_array().filter(|t| !t.is_empty()) {
        let mut specs = Vec::new();
        for t in tools {
            if t["type"].as_str().unwrap_or("function") != "function" {
                if opts.drop_unsupported_params {
                    continue;
                }
                return Err(TranslateError::Unsupported { param: "tools[].type".into(), provider: PROVIDER });
            }
            let f = &t["function"];
            let mut spec = Map::new();
            spec.insert("name".into(), f["name"].as_str().ok_or_else(|| invalid("tool without a name"))?.into());
            if let Some(d) = f["description"].as_str() {
                spec.insert("description".into(), d.into());
            }
            let schema = if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object"}) };
            spec.insert("inputSchema".into(), json!({"json": schema}));
            specs.push(json!({"toolSpec": spec}));
        }
        if !specs.is_empty() {
            let mut cfg = Map::new();
            cfg.insert("tools".into(), Value::Array(specs));
            let choice = match &req["tool_choice"] {
                Value::String(s) if s == "auto" => Some(json!({"auto": {}})),
                Value::String(s) if s == "required" => Some(json!({"any": {}})),
                Value::Object(o) => {
                    let name = o
                        .get("function")
                        .and_then(|f| f["name"].as_str())
                        .ok_or_else(|| invalid("tool_choice without a function name"))?;
                    Some(json!({"tool": {"name": name}}))
                }
                // `none` (only reaching here when dropped) and absent: the default.
                _ => None,
            };
            if let Some(c) = choice {
                cfg.insert("toolChoice".into(), c);
            }
            body.insert("toolConfig".into(), Value::Object(cfg));
        }
    }
    Ok(Value::Object(body))
}

// ---------------------------------------------------------------------------------------------
// Responses

fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn bedrock_usage(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    Some(Usage {
        // Cached prompt tokens are reported apart from `inputTokens`; OpenAI counts them in.
        prompt_tokens: n("inputTokens") + n("cacheReadInputTokens") + n("cacheWriteInputTokens"),
        completion_tokens: n("outputTokens"),
        cached_tokens: n("cacheReadInputTokens"),
        estimated: false,
    })
}

pub(crate) fn translate_response_at(
    body: &[u8],
    public_model: &str,
    id: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("bedrock answer is not valid JSON: {e}")))?;
    let blocks = v["output"]["message"]["content"]
        .as_array()
        .ok_or_else(|| TranslateError::BadUpstream("bedrock answer has no output.message.content".into()))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        if let Some(t) = b["text"].as_str() {
            text.push_str(t);
        } else if b["toolUse"].is_object() {
            let t = &b["toolUse"];
            calls.push(json!({
                "id": t["toolUseId"], "type": "function",
                "function": {"name": t["name"], "arguments": t["input"].to_string()},
            }));
        }
    }
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let reason = finish_reason(v["stopReason"].as_str().unwrap_or("end_turn"));
    let choice = json!({"index": 0, "message": message, "logprobs": null, "finish_reason": reason});
    let usage = bedrock_usage(&v["usage"]);
    Ok(serde_json::to_vec(&completion_json(id, created, public_model, vec![choice], usage.as_ref()))
        .expect("serialises"))
}

// ---------------------------------------------------------------------------------------------
// AWS event-stream framing

pub mod eventstream {
    //! The `application/vnd.amazon.eventstream` binary framing: a 12-byte prelude (total length,
    //! headers length, CRC32 of those 8 bytes), typed headers, the payload and a CRC32 of
    //! everything before it. Integers are big-endian.

    /// Largest frame accepted; Bedrock's are a few KiB.
    const MAX_FRAME: usize = 16 * 1024 * 1024;

    #[derive(Debug, Clone, PartialEq)]
    pub struct Frame {
        /// String-valued headers (type 7); other header types are skipped.
        pub headers: Vec<(String, String)>,
        pub payload: Vec<u8>,
    }

    impl Frame {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// Incremental decoder: frames may be split across chunks at any byte.
    #[derive(Debug, Default)]
    pub struct Decoder {
        buf: Vec<u8>,
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    impl Decoder {
        pub fn new() -> Decoder {
            Decoder::default()
        }

        /// Bytes held of an incomplete frame.
        pub fn pending(&self) -> usize {
            self.buf.len()
        }

        /// Adds `chunk` and returns the frames it completes, or the first framing error.
        pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, String> {
            self.buf.extend_from_slice(chunk);
            let mut frames = Vec::new();
            let mut at = 0;
            while self.buf.len() - at >= 12 {
                let b = &self.buf[at..];
                let total = be32(b) as usize;
                let headers_len = be32(&b[4..]) as usize;
                if crc32fast::hash(&b[..8]) != be32(&b[8..]) {
                    return Err("event-stream prelude CRC mismatch".into());
                }
                if !(16..=MAX_FRAME).contains(&total) || headers_len > total - 16 {
                    return Err(format!("event-stream frame of impossible size {total} (headers {headers_len})"));
                }
                if b.len() < total {
                    break;
                }
                if crc32fast::hash(&b[..total - 4]) != be32(&b[total - 4..]) {
                    return Err("event-stream message CRC mismatch".into());
                }
                let headers = parse_headers(&b[12..12 + headers_len])?;
                frames.push(Frame { headers, payload: b[12 + headers_len..total - 4].to_vec() });
                at += total;
            }
            self.buf.drain(..at);
            Ok(frames)
        }
    }

    fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
        let short = || "event-stream headers are truncated".to_string();
        let mut out = Vec::new();
        while !b.is_empty() {
            let name_len = b[0] as usize;
            let name = b.get(1..1 + name_len).ok_or_else(short)?;
            let name = String::from_utf8_lossy(name).into_owned();
            b = &b[1 + name_len..];
            let kind = *b.first().ok_or_else(short)?;
            b = &b[1..];
            let fixed = match kind {
                0 | 1 => 0,
                2 => 1,
                3 => 2,
                4 => 4,
                5 | 8 => 8,
                9 => 16,
                6 | 7 => {
                    let len = b.get(..2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize).ok_or_else(short)?;
                    let value = b.get(2..2 + len).ok_or_else(short)?;
                    if kind == 7 {
                        out.push((name, String::from_utf8_lossy(value).into_owned()));
                    }
                    b = &b[2 + len..];
                    continue;
                }
                other => return Err(format!("unknown event-stream header type {other}")),
            };
            if b.len() < fixed {
                return Err(short());
            }
            b = &b[fixed..];
        }
        Ok(out)
    }

    /// One frame with string headers: what Bedrock sends (used by the tests, benches and mocks).
    pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(7);
            h.extend_from_slice(&(value.len() as u16).to_be_bytes());
            h.extend_from_slice(value.as_bytes());
        }
        let total = 12 + h.len() + payload.len() + 4;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let prelude_crc = crc32fast::hash(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// A Converse stream event frame.
    pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
        encode(
            &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
            payload,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Streams

pub struct BedrockStream {
    w: ChunkWriter,
    include_usage: bool,
    decoder: eventstream::Decoder,
    started: bool,
    /// contentBlockIndex → OpenAI tool call index.
    tool_blocks: Vec<(u64, usize)>,
    usage: Option<Usage>,
    stopped: bool,
    failed: bool,
    done: bool,
}

impl BedrockStream {
    pub fn new(public_model: &str, include_usage: bool, id: String, created: u64) -> BedrockStream {
        BedrockStream {
            w: ChunkWriter { id, created, model: public_model.to_string() },
            include_usage,
            decoder: eventstream::Decoder::new(),
            started: false,
            tool_blocks: Vec::new(),
            usage: None,
            stopped: false,
            failed: false,
            done: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.w.choice(out, 0, json!({"role": "assistant", "content": ""}), None);
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str, code: &str) {
        self.failed = true;
        sse_error(out, message, code);
    }

    fn frame(&mut self, f: &eventstream::Frame, out: &mut Vec<u8>) {
        match f.header(":message-type").unwrap_or("event") {
            "event" => {}
            "exception" => {
                let kind = f.header(":exception-type").unwrap_or("exception");
                let v: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
                let msg = v["message"].as_str().or(v["Message"].as_str()).unwrap_or("bedrock stream exception");
                return self.fail(out, &format!("{kind}: {msg}"), kind);
            }
            _ => {
                let code = f.header(":error-code").unwrap_or("error");
                let msg = f.header(":error-message").unwrap_or("bedrock stream error");
                return self.fail(out, &format!("{code}: {msg}"), code);
            }
        }
        let v: Value = match serde_json::from_slice(&f.payload) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(out, &format!("bedrock sent an unreadable stream event: {e}"), "bad_upstream_event")
            }
        };
        match f.header(":event-type").unwrap_or_default() {
            "messageStart" => self.start(out),
            "contentBlockStart" => {
                let tool = &v["start"]["toolUse"];
                if tool.is_object() {
                    self.start(out);
                    let n = self.tool_blocks.len();
                    self.tool_blocks.push((v["contentBlockIndex"].as_u64().unwrap_or(0), n));
                    let call = json!({"index": n, "id": tool["toolUseId"], "type": "function",
                                      "function": {"name": tool["name"], "arguments": ""}});
                    self.w.choice(out, 0, json!({"tool_calls": [call]}), None);
                }
            }
            "contentBlockDelta" => {
                let delta = &v["delta"];
                if let Some(t) = delta["text"].as_str() {
                    self.start(out);
                    if !t.is_empty() {
                        self.w.choice(out, 0, json!({"content": t}), None);
                    }
                } else if let Some(input) = delta["toolUse"]["input"].as_str() {
                    let block = v["contentBlockIndex"].as_u64().unwrap_or(0);
                    let Some(&(_, n)) = self.tool_blocks.iter().find(|(b, _)| *b == block) else {
                        return self.fail(out, "bedrock sent tool input for an unknown block", "bad_upstream_event");
                    };
                    let call = json!({"index": n, "function": {"arguments": input}});
                    self.w.choice(out, 0, json!({"tool_calls": [call]}), None);
                }
            }
            "messageStop" => {
                self.start(out);
                let reason = finish_reason(v["stopReason"].as_str().unwrap_or("end_turn"));
                self.w.choice(out, 0, json!({}), Some(reason));
                self.stopped = true;
            }
            "metadata" => {
                if let Some(u) = bedrock_usage(&v["usage"]) {
                    self.usage = Some(u);
                }
            }
            // contentBlockStop and anything newer carry nothing for the client.
            _ => {}
        }
    }
}

impl StreamTranslator for BedrockStream {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.failed || self.done {
            return out;
        }
        match self.decoder.feed(chunk) {
            Ok(frames) => {
                for f in &frames {
                    self.frame(f, &mut out);
                    if self.failed {
                        break;
                    }
                }
            }
            Err(e) => self.fail(&mut out, &format!("bedrock stream: {e}"), "bad_upstream_event"),
        }
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
        if !self.stopped {
            self.fail(&mut out, "the bedrock stream ended before its last event", "upstream_stream_cut");
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
        self.stopped && !self.failed
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// `com.amazon.coral.validate#ValidationException` / `ThrottlingException:http://...` → the bare name.
fn bare_error_type(t: &str) -> &str {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t).trim()
}

/// Maps a Bedrock error; `error_type` is the `x-amzn-errortype` header when the caller has it
/// (the body's `__type` is used otherwise).
pub fn map_error_typed(status: u16, error_type: Option<&str>, body: &[u8], retry_after: Option<u64>) -> MappedError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = bare_error_type(error_type.or(v["__type"].as_str()).unwrap_or_default());
    let mapped = match kind {
        "ThrottlingException" | "TooManyRequestsException" => 429,
        "ServiceUnavailableException" | "ModelNotReadyException" => 503,
        "AccessDeniedException" | "UnrecognizedClientException" | "ExpiredTokenException" => 502,
        "ValidationException" => 400,
        _ => match status {
            429 => 429,
            503 => 503,
            400 => 400,
            _ => 502,
        },
    };
    let detail = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .map_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect(), str::to_string);
    let message = if kind.is_empty() { format!("bedrock: {detail}") } else { format!("bedrock {kind}: {detail}") };
    MappedError { status: mapped, kind: error_kind(mapped), message, retry_after }
}

// ---------------------------------------------------------------------------------------------
// SigV4

/// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 wants.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
                out.push(h << 4 | l);
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

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The path as SigV4 canonicalises it: every segment URI-encoded (again, for all services but S3,
/// whose paths are taken as they are).
fn canonical_uri(path: &str, service: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    if service == "s3" {
        return path.to_string();
    }
    path.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// Query parameters decoded, re-encoded the SigV4 way and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k)), uri_encode(&percent_decode(v)))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The steps of one signature, kept apart for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureSteps {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signed_headers: String,
    pub signature: String,
}

/// Signs with exactly `headers` (which must include `host` and `x-amz-date`).
#[allow(clippy::too_many_arguments)]
pub fn signature_steps(
    method: &str,
    url_path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    secret_access_key: &str,
) -> SignatureSteps {
    let mut canon: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    canon.sort_by(|a, b| a.0.cmp(&b.0));
    // Repeated headers become one, values comma-separated in order.
    let mut merged: Vec<(String, String)> = Vec::with_capacity(canon.len());
    for (n, v) in canon {
        match merged.last_mut() {
            Some((ln, lv)) if *ln == n => {
                lv.push(',');
                lv.push_str(&v);
            }
            _ => merged.push((n, v)),
        }
    }
    let signed_headers = merged.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let mut canonical_request = format!("{method}\n{}\n{}\n", canonical_uri(url_path, service), canonical_query(query));
    for (n, v) in &merged {
        canonical_request.push_str(n);
        canonical_request.push(':');
        canonical_request.push_str(v);
        canonical_request.push('\n');
    }
    canonical_request.push('\n');
    canonical_request.push_str(&signed_headers);
    canonical_request.push('\n');
    canonical_request.push_str(payload_hash);

    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let key = signing_key(secret_access_key, date, region, service);
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    SignatureSteps { canonical_request, string_to_sign, signed_headers, signature }
}

/// SigV4 headers for one request: `authorization`, `x-amz-date`, `x-amz-content-sha256` and, with
/// temporary credentials, `x-amz-security-token`. `headers` are the other headers to sign and
/// must include `host`; `url_path` is the path as sent (already URI-encoded once).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    url_path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    region: &str,
    service: &str,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, String)> {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let payload_hash = sha256_hex(body);
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("x-amz-date", &amz_date));
    all.push(("x-amz-content-sha256", &payload_hash));
    if let Some(t) = session_token {
        all.push(("x-amz-security-token", t));
    }
    let steps =
        signature_steps(method, url_path, query, &all, &payload_hash, &amz_date, region, service, secret_access_key);
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let mut out = vec![
        (
            "authorization".to_string(),
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={}",
                steps.signed_headers, steps.signature
            ),
        ),
        ("x-amz-date".to_string(), amz_date.clone()),
        ("x-amz-content-sha256".to_string(), payload_hash.clone()),
    ];
    if let Some(t) = session_token {
        out.push(("x-amz-security-token".to_string(), t.to_string()));
    }
    out
}

/// Credentials and region a `kind: bedrock` provider signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    /// Never prints the secret or the session token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// The SigV4 headers for a `POST` of `body` to `host` + `path_and_query`, signed now.
    pub fn sign_post(&self, host: &str, path_and_query: &str, body: &[u8]) -> Vec<(String, String)> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        sign(
            "POST",
            path,
            query,
            &[("host", host)],
            body,
            &self.region,
            "bedrock",
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.as_deref(),
            chrono::Utc::now(),
        )
    }
}

#[cfg(test)]
#[path = "bedrock_tests.rs"]
mod tests;
