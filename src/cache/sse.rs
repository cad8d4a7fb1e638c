//! Streams in and out of the cache: recording SSE events as they pass, replaying them with a
//! fresh `id`/`created`, and converting between a streamed and a plain chat answer so either
//! kind of entry serves either kind of request.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::providers::openai::apply_edits;

/// Records the events of a stream (bounded); `complete` once `data: [DONE]` went by.
#[derive(Debug, Default)]
pub struct SseRecorder {
    pending: BytesMut,
    pub events: Vec<Bytes>,
    bytes: usize,
    max: usize,
    pub complete: bool,
    pub overflow: bool,
}

impl SseRecorder {
    pub fn new(max_bytes: usize) -> SseRecorder {
        SseRecorder { max: max_bytes, ..Default::default() }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.overflow || self.complete {
            return;
        }
        self.bytes += chunk.len();
        if self.bytes > self.max {
            self.overflow = true;
            self.events.clear();
            return;
        }
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let event = self.pending.split_to(end + 2).freeze();
            if event.starts_with(b"data: [DONE]") {
                self.complete = true;
            }
            self.events.push(event);
        }
    }
}

fn data_of(event: &[u8]) -> Option<Value> {
    let line = event.split(|&b| b == b'\n').find(|l| l.starts_with(b"data:"))?;
    let data = line.strip_prefix(b"data:")?;
    serde_json::from_slice(data.strip_prefix(b" ").unwrap_or(data)).ok()
}

fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-sy{}", uuid::Uuid::new_v4().simple())
}

fn is_usage_only(v: &Value) -> bool {
    v["choices"].as_array().is_some_and(|c| c.is_empty()) && v["usage"].is_object()
}

/// The recorded events with a fresh id and `created`; the usage-only chunk only when asked for.
pub fn replay(events: &[Bytes], include_usage: bool, now: u64) -> Vec<Bytes> {
    let first = events.first().and_then(|e| data_of(e));
    let old_id = first.as_ref().and_then(|v| v["id"].as_str().map(str::to_string));
    let old_created = first.as_ref().and_then(|v| v["created"].as_u64());
    let new_id = fresh_id(if old_id.as_deref().is_some_and(|i| i.starts_with("cmpl")) { "cmpl" } else { "chatcmpl" });
    // The patterns are built once per replay, not once per event.
    let ids = old_id.map(|old| (format!("\"id\":\"{old}\""), format!("\"id\":\"{new_id}\"")));
    let stamps = old_created.map(|c| (format!("\"created\":{c}"), format!("\"created\":{now}")));
    events
        .iter()
        .filter(|e| include_usage || !is_usage_only_event(e))
        .map(|e| {
            let mut text = String::from_utf8_lossy(e).into_owned();
            if let Some((old, new)) = &ids {
                text = text.replace(old.as_str(), new);
            }
            if let Some((old, new)) = &stamps {
                text = text.replace(old.as_str(), new);
            }
            Bytes::from(text)
        })
        .collect()
}

/// A usage-only chunk has an empty `choices`: only events whose bytes say so are parsed.
fn is_usage_only_event(event: &[u8]) -> bool {
    let maybe = event.windows(12).any(|w| w == b"\"choices\":[]") || event.windows(13).any(|w| w == b"\"choices\": []");
    maybe && data_of(event).is_some_and(|v| is_usage_only(&v))
}

/// The top-level fields a stored answer is re-stamped with, borrowed where they sit in the body.
#[derive(Deserialize)]
struct Stamps<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

/// A plain answer with a fresh id and `created`. The stored bytes are spliced, not re-serialised:
/// one borrowing pass finds the two values, everything else is copied as it was stored.
pub fn refresh_json(body: &[u8], now: u64) -> Option<Bytes> {
    let stamps: Stamps = serde_json::from_slice(body).ok()?;
    let span_of = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    let prefix = if stamps.object.is_some_and(|o| o.get() == "\"text_completion\"") { "cmpl" } else { "chatcmpl" };
    let id = format!("\"{}\"", fresh_id(prefix));
    let mut created = itoa::Buffer::new();
    let mut edits: Vec<(Range<usize>, &[u8])> = Vec::with_capacity(2);
    if let Some(raw) = stamps.id {
        edits.push((span_of(raw), id.as_bytes()));
    }
    if let Some(raw) = stamps.created {
        edits.push((span_of(raw), created.format(now).as_bytes()));
    }
    Some(Bytes::from(apply_edits(body, &mut edits)))
}

/// A `chat.completion` built from a recorded chat stream (text answers only).
pub fn json_from_events(events: &[Bytes], now: u64) -> Option<Bytes> {
    let mut content = String::new();
    let (mut model, mut finish, mut usage) = (Value::Null, Value::Null, Value::Null);
    for e in events {
        let Some(v) = data_of(e) else { continue };
        if v["object"] != "chat.completion.chunk" {
            return None;
        }
        model = v["model"].clone();
        if v["usage"].is_object() {
            usage = v["usage"].clone();
        }
        for c in v["choices"].as_array().into_iter().flatten() {
            if c["index"].as_u64().unwrap_or(0) != 0 || c["delta"].get("tool_calls").is_some() {
                return None; // n > 1 and tool calls are replayed in their own mode only
            }
            if let Some(t) = c["delta"]["content"].as_str() {
                content.push_str(t);
            }
            if !c["finish_reason"].is_null() {
                finish = c["finish_reason"].clone();
            }
        }
    }
    let mut out = json!({
        "id": fresh_id("chatcmpl"), "object": "chat.completion", "created": now, "model": model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "logprobs": null, "finish_reason": finish }],
    });
    if usage.is_object() {
        out["usage"] = usage;
    }
    Some(Bytes::from(out.to_string()))
}

/// A chat stream built from a plain `chat.completion` (text answers only).
pub fn events_from_json(body: &[u8], include_usage: bool, now: u64) -> Option<Vec<Bytes>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v["object"] != "chat.completion" {
        return None;
    }
    let choices = v["choices"].as_array()?;
    if choices.len() != 1 || choices[0]["message"].get("tool_calls").is_some_and(|t| !t.is_null()) {
        return None;
    }
    let content = choices[0]["message"]["content"].as_str().unwrap_or("");
    let id = fresh_id("chatcmpl");
    let chunk = |delta: Value, finish: Value| {
        let c = json!({ "id": id, "object": "chat.completion.chunk", "created": now, "model": v["model"],
                        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }] });
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), Value::Null)];
    // Word-sized pieces, as a model would stream them.
    let mut piece = String::new();
    for ch in content.chars() {
        piece.push(ch);
        if ch == ' ' && piece.len() > 1 {
            events.push(chunk(json!({ "content": std::mem::take(&mut piece) }), Value::Null));
        }
    }
    if !piece.is_empty() {
        events.push(chunk(json!({ "content": piece }), Value::Null));
    }
    events.push(chunk(json!({}), choices[0]["finish_reason"].clone()));
    if include_usage && v["usage"].is_object() {
        let c = json!({ "id": id, "object": "chat.completion.chunk", "created": now, "model": v["model"],
                        "choices": [], "usage": v["usage"] });
        events.push(Bytes::from(format!("data: {c}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<Bytes> {
        [
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hello there"},"finish_reason":null}],"usage":null}"#,
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            "data: [DONE]",
        ]
        .iter()
        .map(|s| Bytes::from(format!("{s}\n\n")))
        .collect()
    }

    #[test]
    fn recorder_keeps_event_boundaries_across_chunks() {
        let all: Vec<u8> = stream().concat();
        let mut r = SseRecorder::new(1 << 20);
        for chunk in all.chunks(7) {
            r.feed(chunk);
        }
        assert!(r.complete);
        assert_eq!(r.events, stream());
        let mut small = SseRecorder::new(10);
        small.feed(&all);
        assert!(small.overflow && small.events.is_empty());
    }

    #[test]
    fn replay_refreshes_ids_and_drops_unasked_usage() {
        let out = replay(&stream(), false, 99);
        assert_eq!(out.len(), 4);
        let text = String::from_utf8(out.concat()).unwrap();
        assert!(!text.contains("chatcmpl-1\"") && !text.contains("\"created\":5"), "{text}");
        assert!(text.contains("\"created\":99"));
        assert_eq!(replay(&stream(), true, 99).len(), 5);
    }

    #[test]
    fn refresh_json_splices_id_and_created_and_keeps_everything_else() {
        let stored = br#"{"id":"chatcmpl-old","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"id \"created\":5"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let out = refresh_json(stored, 1234).unwrap();
        let (old, new): (Value, Value) =
            (serde_json::from_slice(stored).unwrap(), serde_json::from_slice(&out).unwrap());
        assert_eq!(new["created"], 1234);
        let id = new["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-sy") && id != "chatcmpl-old", "{id}");
        assert_eq!(new["choices"], old["choices"], "content that looks like a stamp is untouched");
        assert_eq!((&new["usage"], &new["model"]), (&old["usage"], &old["model"]));
        let again = refresh_json(stored, 1234).unwrap();
        assert_ne!(again, out, "every hit gets its own id");

        let completion = br#"{"object":"text_completion","id":"cmpl-1","created":1,"choices":[]}"#;
        let v: Value = serde_json::from_slice(&refresh_json(completion, 9).unwrap()).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("cmpl-sy"));
        let bare = br#"{"object":"chat.completion","choices":[]}"#;
        assert_eq!(&refresh_json(bare, 9).unwrap()[..], &bare[..], "nothing to stamp, nothing changed");
        assert!(refresh_json(b"{not json", 9).is_none());
    }

    #[test]
    fn modes_convert_both_ways() {
        let j: Value = serde_json::from_slice(&json_from_events(&stream(), 7).unwrap()).unwrap();
        assert_eq!(j["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(j["choices"][0]["finish_reason"], "stop");
        assert_eq!(j["usage"]["completion_tokens"], 2);
        let events = events_from_json(j.to_string().as_bytes(), true, 8).unwrap();
        let mut text = String::new();
        for e in &events {
            if let Some(v) = data_of(e) {
                text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
            }
        }
        assert_eq!(text, "Hello there");
        assert!(events.last().unwrap().starts_with(b"data: [DONE]"));
    }
}
