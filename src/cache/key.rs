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

/// `None` when the body is not a JSON object (such a request is never cached).
pub fn exact_key(scope: &str, route: &str, endpoint: Endpoint, body: &[u8]) -> Option<[u8; 32]> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return None };
    let mut out = Vec::with_capacity(body.len() + 64);
    for part in [scope.as_bytes(), route.as_bytes(), endpoint.label().as_bytes()] {
        out.extend_from_slice(part);
        out.push(0);
    }
    let mut keys: Vec<&String> = map.keys().filter(|k| !IGNORED.contains(&k.as_str())).collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_canonical(&Value::String(k.clone()), &mut out);
        out.push(b':');
        write_canonical(&map[k], &mut out);
    }
    out.push(b'}');
    Some(sha256(&out))
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
}
