//! The exact-cache key: a SHA-256 over the cache scope, the public model, the endpoint and a
//! canonical form of every request field that can change the answer. Canonical means object
//! keys sorted at every depth and numbers as parsed, so key order and whitespace do not matter.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::providers::Endpoint;
use crate::spend::keys::sha256;

/// Fields that never change the answer (or are replaced by the route): left out of the key.
/// `stream` and `stream_options` are out on purpose: a streamed entry serves a plain request.
const IGNORED: &[&str] =
    &["model", "stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier"];

/// What the cache looks a request up by.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestKeys {
    pub exact: [u8; 32],
    /// Present when the request has a semantic form: the last message is the user's, in text.
    pub semantic: Option<SemanticParts>,
}

/// The semantic tier's view of a request: only the last user message is compared by meaning;
/// everything else that changes the answer (scope, route, system prompt, earlier turns, tools,
/// sampling parameters) is hashed into `context`, which must match exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticParts {
    pub context: [u8; 32],
    pub text: String,
}

/// The exact key and (when `semantic`) the semantic parts, from one parse of the body; `None`
/// when the body is not a JSON object (such a request is never cached).
///
/// The body is walked with borrowed `RawValue`s: objects are re-ordered by key, numbers
/// re-printed as parsed, and strings (the bulk of a request) hashed as their raw JSON bytes, never
/// decoded or copied. Two encodings of one string (`"\u0041"` / `"A"`) are different keys: a
/// cache miss, never a wrong hit.
pub fn request_keys(scope: &str, route: &str, endpoint: Endpoint, body: &[u8], semantic: bool) -> Option<RequestKeys> {
    let top: Object = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + 64);
    let exact = hash_top(&[scope, route, endpoint.label()], &top, false, &mut out)?;
    let semantic = match (semantic && endpoint == Endpoint::ChatCompletions).then(|| last_user_text(&top)).flatten() {
        Some(text) => {
            out.clear();
            let context = hash_top(&["semantic", scope, route, endpoint.label()], &top, true, &mut out)?;
            Some(SemanticParts { context, text })
        }
        None => None,
    };
    Some(RequestKeys { exact, semantic })
}

type Object<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// Stands in for the last user message in the context key: its place is kept, so a request with
/// no user turn cannot share a context with one that has it.
const QUERY_MARKER: &[u8] = b"\"\\u0000semantic-query\"";

/// Hashes the top-level object; `mask_query` replaces the last message's content by the marker.
fn hash_top(prefix: &[&str], top: &Object, mask_query: bool, out: &mut Vec<u8>) -> Option<[u8; 32]> {
    for part in prefix {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out.push(b'{');
    let mut first = true;
    for (k, v) in top.iter().filter(|(k, _)| !IGNORED.contains(&k.as_ref())) {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_key(k, out);
        if mask_query && k == "messages" {
            let messages: Vec<&RawValue> = serde_json::from_str(v.get()).ok()?;
            out.push(b'[');
            for (i, m) in messages.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let object: Object = serde_json::from_str(m.get()).ok()?;
                let masked = (i + 1 == messages.len()).then_some(("content", QUERY_MARKER));
                write_object(&object, masked, out)?;
            }
            out.push(b']');
        } else {
            write_canonical(v, out)?;
        }
    }
    out.push(b'}');
    Some(sha256(out))
}

fn write_key(k: &str, out: &mut Vec<u8>) {
    // Keys are re-encoded (they may have arrived with escapes); they are short.
    serde_json::to_writer(&mut *out, k).expect("writing to a Vec");
    out.push(b':');
}

/// An object with sorted keys; `replace` swaps one member's value for raw bytes.
fn write_object(object: &Object, replace: Option<(&str, &[u8])>, out: &mut Vec<u8>) -> Option<()> {
    out.push(b'{');
    for (i, (k, v)) in object.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(k, out);
        match replace {
            Some((name, raw)) if name == k => out.extend_from_slice(raw),
            _ => write_canonical(v, out)?,
        }
    }
    out.push(b'}');
    Some(())
}

fn write_canonical(v: &RawValue, out: &mut Vec<u8>) -> Option<()> {
    let raw = v.get();
    match raw.as_bytes().first()? {
        b'{' => write_object(&serde_json::from_str(raw).ok()?, None, out)?,
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        b'"' | b't' | b'f' | b'n' => out.extend_from_slice(raw.as_bytes()),
        // Numbers as parsed: 0.5 and 0.50 are one value.
        _ => out.extend_from_slice(serde_json::from_str::<serde_json::Number>(raw).ok()?.to_string().as_bytes()),
    }
    Some(())
}

/// The last message's text when that message is the user's and is all text (a string, or text
/// parts joined by newlines); empty text has no semantic form.
fn last_user_text(top: &Object) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        role: Cow<'a, str>,
        content: Option<Content>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
    }
    #[derive(serde::Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        text: Option<String>,
    }
    let messages: Vec<&RawValue> = serde_json::from_str(top.get("messages")?.get()).ok()?;
    let last: Message = serde_json::from_str(messages.last()?.get()).ok()?;
    if last.role != "user" {
        return None;
    }
    let text = match last.content? {
        Content::Text(s) => s,
        Content::Parts(parts) => {
            let texts: Option<Vec<String>> =
                parts.into_iter().map(|p| if p.kind == "text" { p.text } else { None }).collect();
            texts?.join("\n")
        }
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The request's `temperature`, for `cache.max_temperature` (absent: cacheable).
pub fn temperature(body: &[u8]) -> Option<f64> {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default)]
        temperature: Option<f64>,
    }
    serde_json::from_slice::<T>(body).ok()?.temperature
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_key(scope: &str, route: &str, endpoint: Endpoint, body: &[u8]) -> Option<[u8; 32]> {
        request_keys(scope, route, endpoint, body, false).map(|k| k.exact)
    }

    fn key(body: &str) -> [u8; 32] {
        exact_key("global", "demo", Endpoint::ChatCompletions, body.as_bytes()).unwrap()
    }

    #[test]
    fn order_whitespace_and_stream_do_not_matter() {
        let a = key(r#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#);
        let b =
            key(r#"{ "temperature" : 0.50, "stream": true, "messages":[{"content":"hi","role":"user"}], "model":"x"}"#);
        assert_eq!(a, b);
        let tools = |params: &str| {
            key(&format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{params}}}}}]}}"#
            ))
        };
        assert_eq!(
            tools(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#),
            tools(r#"{ "properties": { "a": { "type": "string" } }, "type": "object" }"#)
        );
        assert_ne!(tools(r#"{"type":"object"}"#), tools(r#"{"type":"array"}"#));
    }

    #[test]
    fn answer_changing_fields_do() {
        let base = key(r#"{"messages":[{"role":"user","content":"hi"}]}"#);
        assert_ne!(base, key(r#"{"messages":[{"role":"user","content":"hi!"}]}"#));
        assert_ne!(base, key(r#"{"messages":[{"role":"user","content":"hi"}],"seed":1}"#));
        assert_ne!(base, key(r#"{"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}"#));
        let other_scope =
            exact_key("team:a", "demo", Endpoint::ChatCompletions, br#"{"messages":[{"role":"user","content":"hi"}]}"#);
        assert_ne!(Some(base), other_scope);
        assert!(exact_key("g", "m", Endpoint::ChatCompletions, b"[1]").is_none());
        assert_eq!(temperature(br#"{"temperature":1.2}"#), Some(1.2));
    }

    fn parts(body: &str) -> Option<SemanticParts> {
        request_keys("global", "demo", Endpoint::ChatCompletions, body.as_bytes(), true).unwrap().semantic
    }

    #[test]
    fn semantic_context_is_everything_but_the_last_user_message() {
        let a = parts(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi there"}]}"#)
            .unwrap();
        let b = parts(r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}]}"#)
            .unwrap();
        assert_eq!(a.text, "hi there");
        assert_eq!(a.context, b.context);
        let other_system =
            parts(r#"{"messages":[{"role":"system","content":"be long"},{"role":"user","content":"hello"}]}"#).unwrap();
        assert_ne!(a.context, other_system.context);
        let hotter = parts(
            r#"{"temperature":1,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert_ne!(a.context, hotter.context);
        let parted = parts(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
        )
        .unwrap();
        assert_eq!(parted.text, "a\nb");
        // Images, tool results and empty prompts have no semantic form.
        assert!(parts(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#)
            .is_none());
        assert!(parts(r#"{"messages":[{"role":"tool","content":"42","tool_call_id":"c"}]}"#).is_none());
        assert!(parts(r#"{"messages":[{"role":"user","content":"  "}]}"#).is_none());
        // Not part of the context: the same as the exact key's view of stream and model.
        let streamed =
            parts(r#"{"stream":true,"model":"q","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"yo"}]}"#)
                .unwrap();
        assert_eq!(a.context, streamed.context);
    }
}
