//! The exact-cache key: a SHA-256 over the cache scope, the public model, the endpoint and a
//! canonical form of every request field that can change the answer. Canonical means object
//! keys sorted at every depth and numbers as parsed, so key order and whitespace do not matter.

use serde_json::Value;

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

/// `None` when the body is not a JSON object (such a request is never cached).
pub fn exact_key(scope: &str, route: &str, endpoint: Endpoint, body: &[u8]) -> Option<[u8; 32]> {
    request_keys(scope, route, endpoint, body, false).map(|k| k.exact)
}

/// The exact key and (when `semantic`) the semantic parts, from one parse of the body.
pub fn request_keys(scope: &str, route: &str, endpoint: Endpoint, body: &[u8], semantic: bool) -> Option<RequestKeys> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else { return None };
    let mut out = Vec::with_capacity(body.len() + 64);
    let exact = hash_canonical(&[scope, route, endpoint.label()], &map, &mut out);
    let semantic =
        (endpoint == Endpoint::ChatCompletions).then(|| take_last_user_text(&mut map)).flatten().map(|text| {
            out.clear();
            // The text's place is kept (as a marker) so a request that has no user turn at all
            // cannot share a context with one that does.
            let context = hash_canonical(&["semantic", scope, route, endpoint.label()], &map, &mut out);
            SemanticParts { context, text }
        });
    Some(RequestKeys { exact, semantic })
}

fn hash_canonical(prefix: &[&str], map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) -> [u8; 32] {
    for part in prefix {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    let mut keys: Vec<&String> = map.keys().filter(|k| !IGNORED.contains(&k.as_str())).collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_canonical(&Value::String(k.clone()), out);
        out.push(b':');
        write_canonical(&map[k], out);
    }
    out.push(b'}');
    sha256(out)
}

/// Replaces the last message's content with a marker and returns its text, when that message is
/// the user's and is all text (a string, or text parts joined by newlines).
fn take_last_user_text(map: &mut serde_json::Map<String, Value>) -> Option<String> {
    let last = map.get_mut("messages")?.as_array_mut()?.last_mut()?.as_object_mut()?;
    if last.get("role")?.as_str()? != "user" {
        return None;
    }
    let text = match last.get("content")? {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let texts: Option<Vec<&str>> = parts
                .iter()
                .map(|p| (p.get("type")?.as_str()? == "text").then(|| p.get("text")?.as_str()).flatten())
                .collect();
            texts?.join("\n")
        }
        _ => return None,
    };
    if text.trim().is_empty() {
        return None;
    }
    last.insert("content".into(), Value::String("\u{0}semantic-query".into()));
    Some(text)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
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

    fn key(body: &str) -> [u8; 32] {
        exact_key("global", "demo", Endpoint::ChatCompletions, body.as_bytes()).unwrap()
    }

    #[test]
    fn order_whitespace_and_stream_do_not_matter() {
        let a = key(r#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#);
        let b =
            key(r#"{ "temperature" : 0.50, "stream": true, "messages":[{"content":"hi","role":"user"}], "model":"x"}"#);
        assert_eq!(a, b);
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
