//! The seam between OpenAI's wire format (what clients speak to Switchyard) and a provider's own
//! (Anthropic Messages, Gemini generateContent, Bedrock Converse). One implementation per file;
//! the proxy hooks call these and never look inside a provider's JSON themselves.
//!
//! Requests are translated once, in `request_filter`. Non-streaming answers are translated at the
//! end of the body; streams incrementally, event by event, as the provider's bytes arrive — the
//! client gets OpenAI `chat.completion.chunk` events without waiting for the end.

use crate::spend::usage::Usage;

/// What the gateway sends upstream for one OpenAI chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    /// Path after the provider's base URL, query included (e.g. `/v1/messages`).
    pub path: String,
    pub body: Vec<u8>,
    /// Headers this format needs besides the provider's auth (e.g. `anthropic-version`).
    pub headers: Vec<(String, String)>,
}

/// Options from config that change the translation.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslateOptions {
    /// Drop parameters the provider has no equivalent for instead of answering 400.
    pub drop_unsupported_params: bool,
    /// `max_tokens` when the client sent none and the provider requires it (Anthropic).
    pub default_max_tokens: u64,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions { drop_unsupported_params: false, default_max_tokens: 4096 }
    }
}

/// Why a request or answer could not be translated.
#[derive(Debug, Clone, PartialEq)]
pub enum TranslateError {
    /// The client asked for something the provider cannot do: a 400 naming both.
    Unsupported { param: String, provider: &'static str },
    /// The client's request is malformed for translation: a 400.
    InvalidRequest(String),
    /// The provider's answer did not parse: a 502.
    BadUpstream(String),
}

/// A provider error mapped to what the client sees (OpenAI error shape) after routing gives up.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedError {
    /// 429 rate limit, 503 overloaded, 502 auth/other upstream fault, 400 invalid request...
    pub status: u16,
    /// OpenAI `error.type`: `rate_limit_error`, `server_error`, `invalid_request_error`, ...
    pub kind: &'static str,
    pub message: String,
    /// Seconds, when the provider said how long to wait.
    pub retry_after: Option<u64>,
}

/// One wire format.
pub trait WireFormat: Send + Sync {
    /// `kind` as written in config (`anthropic`, `gemini`, `bedrock`).
    fn kind(&self) -> &'static str;

    /// An OpenAI chat-completions request body → the provider's request for `upstream_model`.
    fn translate_request(
        &self,
        openai_body: &[u8],
        upstream_model: &str,
        stream: bool,
        opts: &TranslateOptions,
    ) -> Result<ProviderRequest, TranslateError>;

    /// The provider's complete (non-streaming) answer → an OpenAI `chat.completion` JSON body.
    /// `public_model` is the model name the client asked for.
    fn translate_response(&self, body: &[u8], public_model: &str) -> Result<Vec<u8>, TranslateError>;

    /// A fresh translator for one streamed answer.
    fn stream_translator(&self, public_model: &str, include_usage: bool) -> Box<dyn StreamTranslator>;

    /// A non-2xx answer from the provider → the client's error.
    fn map_error(&self, status: u16, body: &[u8], retry_after: Option<u64>) -> MappedError;
}

/// Turns a provider's stream into OpenAI SSE bytes, chunk by chunk. Provider events may be split
/// across chunks arbitrarily; the translator buffers partial events itself.
pub trait StreamTranslator: Send + Sync {
    /// Translates what `chunk` completes; returns the OpenAI SSE bytes to send now (maybe none).
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;

    /// At the end of the provider's stream: whatever is left, ending with `data: [DONE]\n\n` when
    /// the provider's stream completed normally; without it (and with an SSE error event) when it
    /// was cut short.
    fn finish(&mut self) -> Vec<u8>;

    /// The usage the provider reported, once seen.
    fn usage(&self) -> Option<Usage>;

    /// Whether the provider's terminal event arrived (the answer is complete and cacheable).
    fn completed(&self) -> bool;
}

/// Appends `items` as a turn of `role` under `field` (`content`, `parts`...), merged into the
/// previous turn when it has the same role: providers that want user and assistant to alternate.
pub(crate) fn push_merged(turns: &mut Vec<serde_json::Value>, role: &str, field: &str, items: Vec<serde_json::Value>) {
    if items.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut() {
        if last["role"] == role {
            if let Some(existing) = last[field].as_array_mut() {
                existing.extend(items);
                return;
            }
        }
    }
    turns.push(serde_json::json!({ "role": role, field: items }));
}
