//! Deterministic content: every answer is a pure function of the request, so tests can check
//! what came back end to end.

use serde_json::Value;

const FILLER: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa",
];

/// Text of a message `content`: a string, or an array of `{type:"text", text}` parts.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// The last user message of a chat request (or the prompt of a completion).
pub fn last_user_text(body: &Value) -> String {
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        return messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default();
    }
    match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Rough token count of everything the model would read: words plus per-message overhead.
pub fn prompt_tokens(body: &Value) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        return messages.iter().map(|m| 3 + m.get("content").map_or(0, |c| words(&content_text(c)))).sum::<u64>() + 3;
    }
    words(&last_user_text(body)).max(1)
}

/// `n` tokens: "mock answer to:" then the prompt's words, then filler chosen by the prompt's hash.
/// Every token after the first carries its leading space, as real tokenizers do.
pub fn answer_tokens(prompt: &str, n: usize) -> Vec<String> {
    let mut words: Vec<&str> = vec!["mock", "answer", "to:"];
    words.extend(prompt.split_whitespace());
    let mut seed = fnv(prompt.as_bytes());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let word = match words.get(i) {
            Some(w) => w,
            None => {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                FILLER[(seed >> 33) as usize % FILLER.len()]
            }
        };
        out.push(if i == 0 { word.to_string() } else { format!(" {word}") });
    }
    out
}

/// Which tool a mock answer calls, if any: the one `forced` names (an `x-mock-tool` header or a
/// forced tool choice), else the first offered tool whose name the prompt mentions.
pub fn tool_to_call(offered: &[&str], prompt: &str, forced: Option<&str>) -> Option<String> {
    if offered.is_empty() {
        return None;
    }
    if let Some(name) = forced {
        return Some(name.to_string());
    }
    offered.iter().find(|name| prompt.contains(**name)).map(|name| name.to_string())
}

/// Deterministic arguments for a tool call, shaped by its JSON schema's `properties`: strings
/// get `mock-<name>` (or the first `enum` value), numbers 1, booleans true.
pub fn tool_input(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let v = match (p.get("enum").and_then(|e| e.get(0)), p.get("type").and_then(Value::as_str)) {
                (Some(first), _) => first.clone(),
                (None, Some("integer" | "number")) => Value::from(1),
                (None, Some("boolean")) => Value::Bool(true),
                (None, Some("array")) => Value::Array(Vec::new()),
                (None, Some("object")) => Value::Object(serde_json::Map::new()),
                _ => Value::String(format!("mock-{name}")),
            };
            out.insert(name.clone(), v);
        }
    }
    Value::Object(out)
}

/// Tool-call arguments JSON cut into `pieces` roughly equal fragments (on char boundaries), as
/// providers stream them: Anthropic and Bedrock in a few large pieces, OpenAI in token-sized ones.
pub fn split_fragments(s: &str, pieces: usize) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A deterministic `len`-character alphanumeric id derived from `seed` (for `call_...` ids).
pub fn alnum_id(seed: &str, len: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = fnv(seed.as_bytes());
    (0..len)
        .map(|_| {
            h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ALNUM[(h >> 33) as usize % ALNUM.len()] as char
        })
        .collect()
}

/// A deterministic unit-length embedding of `dims` floats.
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut seed = fnv(text.as_bytes());
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_sized() {
        let a = answer_tokens("hello world", 8);
        assert_eq!(a.len(), 8);
        assert_eq!(a.concat().split(' ').take(5).collect::<Vec<_>>(), ["mock", "answer", "to:", "hello", "world"]);
        assert_eq!(a, answer_tokens("hello world", 8));
        assert_ne!(answer_tokens("a", 8), answer_tokens("b", 8));
    }

    #[test]
    fn tools_are_chosen_by_prompt_or_force() {
        assert_eq!(
            tool_to_call(&["get_weather", "get_time"], "please get_time now", None).as_deref(),
            Some("get_time")
        );
        assert_eq!(tool_to_call(&["get_weather"], "hello", None), None);
        assert_eq!(tool_to_call(&["get_weather"], "hello", Some("x")).as_deref(), Some("x"));
        assert_eq!(tool_to_call(&[], "get_weather", Some("x")), None);
        let schema = serde_json::json!({ "properties": { "city": { "type": "string" }, "n": { "type": "integer" },
            "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] } } });
        assert_eq!(tool_input(&schema), serde_json::json!({ "city": "mock-city", "n": 1, "unit": "celsius" }));
    }

    #[test]
    fn fragments_rejoin() {
        let s = r#"{"city":"mock-city","n":1}"#;
        let f = split_fragments(s, 3);
        assert_eq!(f.len(), 3);
        assert_eq!(f.concat(), s);
        assert_eq!(split_fragments(s, 8).concat(), s);
        assert!(split_fragments("", 3).is_empty());
        let id = alnum_id("x", 24);
        assert!(id.len() == 24 && id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(id, alnum_id("x", 24));
    }

    #[test]
    fn embeddings_are_unit_length() {
        let e = embedding("x", 16);
        let n: f32 = e.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-4);
        assert_eq!(e, embedding("x", 16));
    }
}
