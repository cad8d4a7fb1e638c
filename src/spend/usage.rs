//! Token usage out of every answer, as it passes: the `usage` object of a JSON answer, or of
//! the final SSE chunk of a stream. When the gateway itself asked the upstream for that chunk
//! (the client did not), the chunk is cut out before it reaches the client. No usage at all (or
//! a broken stream): tokens are counted with a real tokenizer and the record marked `estimated`.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the provider served from its own prompt cache.
    pub cached_tokens: u64,
    pub estimated: bool,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<WireDetails>,
}

#[derive(Deserialize)]
struct WireDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Usage {
        Usage {
            prompt_tokens: w.prompt_tokens,
            completion_tokens: w.completion_tokens,
            cached_tokens: w.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            estimated: false,
        }
    }
}

/// Largest answer body kept to read `usage` from (non-streaming) or to estimate from.
const MAX_KEEP: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct UsageTap {
    sse: bool,
    /// Cut the usage-only chunk out of the stream (the gateway added `include_usage`).
    strip: bool,
    /// SSE: bytes of an incomplete event carried to the next chunk. JSON: the body so far.
    pending: BytesMut,
    /// SSE: the `data:` payloads that carry content, newline-separated, parsed only if no usage
    /// arrives (then the tokenizer counts their text).
    deltas: BytesMut,
    pub usage: Option<Usage>,
    pub completed: bool,
}

impl UsageTap {
    pub fn new(event_stream: bool, strip: bool) -> UsageTap {
        UsageTap {
            sse: event_stream,
            strip,
            pending: BytesMut::new(),
            deltas: BytesMut::new(),
            usage: None,
            completed: false,
        }
    }

    /// Sees one body chunk (and may rewrite it, when stripping). Runs in the response body
    /// filter: O(chunk), no await.
    pub fn feed(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if let Some(chunk) = body.as_ref() {
            if self.sse {
                let out = self.feed_sse(chunk);
                if self.strip {
                    *body = Some(out);
                }
            } else if self.pending.len() + chunk.len() <= MAX_KEEP {
                self.pending.extend_from_slice(chunk);
            }
        }
        if end_of_stream {
            self.completed = true;
            if !self.sse {
                if let Ok(parsed) = serde_json::from_slice::<WithUsage>(&self.pending) {
                    self.usage = parsed.usage.map(Usage::from);
                }
            } else if self.strip && !self.pending.is_empty() {
                // A trailing event without its blank line: pass it on as it is.
                let rest = self.pending.split().freeze();
                let mut out = BytesMut::from(&body.take().unwrap_or_default()[..]);
                out.extend_from_slice(&rest);
                *body = Some(out.freeze());
            }
        }
    }

    /// Scans complete events; returns what the client should get for this chunk when stripping.
    fn feed_sse(&mut self, chunk: &Bytes) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let mut out = BytesMut::with_capacity(if self.strip { chunk.len() } else { 0 });
        while let Some((end, sep)) = find_event_end(&self.pending) {
            let event = self.pending.split_to(end + sep).freeze();
            let keep = self.inspect_event(&event[..end]);
            if self.strip && keep {
                out.extend_from_slice(&event);
            }
        }
        out.freeze()
    }

    /// Reads usage and text out of one event; `false` when it is the usage-only chunk to cut.
    fn inspect_event(&mut self, event: &[u8]) -> bool {
        let Some(data) = event_data(event) else { return true };
        if memchr(data, b"\"usage\":{") || memchr(data, b"\"usage\": {") {
            if let Ok(parsed) = serde_json::from_slice::<WithUsage>(data) {
                if let Some(u) = parsed.usage {
                    self.usage = Some(u.into());
                    let no_choices = parsed.choices.is_none_or(|c| c.is_empty());
                    return !(self.strip && no_choices);
                }
            }
        } else if self.usage.is_none() && self.deltas.len() + data.len() < MAX_KEEP && data != b"[DONE]" {
            self.deltas.extend_from_slice(data);
            self.deltas.extend_from_slice(b"\n");
        }
        true
    }

    /// The whole body of a plain (non-stream) answer, when it was kept.
    pub fn json_body(&self) -> Option<&[u8]> {
        (!self.sse && self.completed && !self.pending.is_empty()).then_some(&self.pending[..])
    }

    /// The usage to account: reported, or estimated from the prompt and what was seen. The
    /// estimate runs the tokenizer (loaded on first use, tens of MB): call it off the workers.
    pub fn finish(&self, request_body: &[u8]) -> Usage {
        if let Some(u) = self.usage {
            return u;
        }
        let completion = if self.sse {
            let mut text = String::new();
            for data in self.deltas[..].split(|&b| b == b'\n') {
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { continue };
                for choice in v["choices"].as_array().into_iter().flatten() {
                    if let Some(t) = choice["delta"]["content"].as_str().or(choice["text"].as_str()) {
                        text.push_str(t);
                    }
                }
            }
            text
        } else {
            serde_json::from_slice::<serde_json::Value>(&self.pending)
                .ok()
                .map(|v| {
                    v["choices"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["message"]["content"].as_str().or(c["text"].as_str()).map(str::to_string))
                        .collect::<Vec<_>>()
                        .join("")
                })
                .unwrap_or_default()
        };
        Usage {
            prompt_tokens: estimate_prompt_tokens(request_body),
            completion_tokens: count_tokens(&completion),
            cached_tokens: 0,
            estimated: true,
        }
    }
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The payload of an event's `data:` line (single-line data, as OpenAI sends).
fn event_data(event: &[u8]) -> Option<&[u8]> {
    event.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line.strip_prefix(b"data:").map(|d| d.strip_prefix(b" ").unwrap_or(d))
    })
}

fn memchr(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn tokenizer() -> &'static tiktoken_rs::CoreBPE {
    static BPE: OnceLock<tiktoken_rs::CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("bundled o200k encoding"))
}

pub fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer().encode_ordinary(text).len() as u64
}

/// Prompt tokens of a chat/completions/embeddings request: message text plus a few tokens of
/// framing per message, as OpenAI counts them.
pub fn estimate_prompt_tokens(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return 0 };
    let text_of = |c: &serde_json::Value| match c {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => {
            parts.iter().filter_map(|p| p["text"].as_str().or(p.as_str())).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    };
    if let Some(messages) = v["messages"].as_array() {
        return messages.iter().map(|m| 4 + count_tokens(&text_of(&m["content"]))).sum::<u64>() + 3;
    }
    count_tokens(&text_of(if v["prompt"].is_null() { &v["input"] } else { &v["prompt"] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(tap: &mut UsageTap, chunks: &[&str]) -> String {
        let mut out = String::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut body = Some(Bytes::from(c.to_string()));
            tap.feed(&mut body, i + 1 == chunks.len());
            out.push_str(std::str::from_utf8(&body.unwrap_or_default()).unwrap());
        }
        out
    }

    const CHUNK: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n";

    #[test]
    fn strips_the_usage_chunk_it_asked_for_even_when_split() {
        let mut tap = UsageTap::new(true, true);
        let all = format!("{CHUNK}{USAGE}data: [DONE]\n\n");
        let (a, b) = all.split_at(CHUNK.len() + 20);
        let out = feed_all(&mut tap, &[a, b]);
        assert_eq!(out, format!("{CHUNK}data: [DONE]\n\n"));
        assert_eq!(
            tap.usage,
            Some(Usage { prompt_tokens: 7, completion_tokens: 2, cached_tokens: 3, estimated: false })
        );
    }

    #[test]
    fn passes_everything_through_when_the_client_asked() {
        let mut tap = UsageTap::new(true, false);
        let all = format!("{CHUNK}{USAGE}data: [DONE]\n\n");
        assert_eq!(feed_all(&mut tap, &[&all]), all);
        assert_eq!(tap.usage.unwrap().prompt_tokens, 7);
    }

    #[test]
    fn json_answers_and_estimates() {
        let mut tap = UsageTap::new(false, false);
        feed_all(
            &mut tap,
            &[
                "{\"choices\":[{\"message\":{\"content\":\"x\"}}],",
                "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}",
            ],
        );
        assert_eq!(tap.usage.unwrap().completion_tokens, 1);

        let mut tap = UsageTap::new(true, false);
        feed_all(&mut tap, &[CHUNK, "data: [DONE]\n\n"]);
        let req = br#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#;
        let u = tap.finish(req);
        assert!(u.estimated);
        assert_eq!(u.completion_tokens, 1);
        assert_eq!(u.prompt_tokens, 4 + 2 + 3);
    }
}
