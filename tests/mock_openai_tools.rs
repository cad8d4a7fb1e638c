//! The mock provider's OpenAI side answers with tool calls (`tool_calls`, `finish_reason:
//! "tool_calls"`, arguments streamed in fragments), directly and through the gateway.

mod common;

use common::*;
use serde_json::{json, Value};

fn tools() -> Value {
    json!([{ "type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": { "type": "object", "properties": {
            "city": { "type": "string" },
            "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] },
            "days": { "type": "integer" },
        }, "required": ["city", "unit"] },
    } }])
}

fn request(model: &str, prompt: &str) -> Value {
    json!({ "model": model, "tools": tools(), "messages": [{ "role": "user", "content": prompt }] })
}

async fn post(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The JSON payloads of an OpenAI SSE body, which must end with `data: [DONE]`.
fn chunks(sse: &str) -> Vec<Value> {
    let events: Vec<&str> = sse.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{sse}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("a data line")).unwrap())
        .collect()
}

fn assert_tool_message(v: &Value) {
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let m = &choice["message"];
    assert_eq!(m["role"], "assistant");
    assert!(m["content"].is_null(), "{m}");
    let call = &m["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    let suffix = id.strip_prefix("call_").unwrap();
    assert!(suffix.len() == 24 && suffix.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({ "city": "mock-city", "unit": "celsius", "days": 1 }));
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{v}");
}

/// Checks a streamed tool call; returns the joined arguments, parsed.
fn assert_tool_stream(sse: &str, include_usage: bool) -> Value {
    let cs = chunks(sse);
    let first = &cs[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert!(first["content"].is_null());
    let call = &first["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "");
    let with_choice: Vec<&Value> = cs.iter().filter(|c| !c["choices"].as_array().unwrap().is_empty()).collect();
    let fragments: Vec<&str> = with_choice[1..with_choice.len() - 1]
        .iter()
        .map(|c| {
            let d = &c["choices"][0]["delta"];
            assert!(c["choices"][0]["finish_reason"].is_null());
            assert_eq!(d["tool_calls"][0]["index"], 0);
            assert!(d["tool_calls"][0].get("id").is_none(), "{d}");
            d["tool_calls"][0]["function"]["arguments"].as_str().unwrap()
        })
        .collect();
    assert!(fragments.len() >= 3, "{fragments:?}");
    let last = with_choice.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    let usage = cs.last().unwrap();
    if include_usage {
        assert!(usage["choices"].as_array().unwrap().is_empty());
        assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    } else {
        assert!(cs.iter().all(|c| c.get("usage").is_none()));
    }
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    let obj = args.as_object().expect("arguments are a JSON object");
    for key in tools()[0]["function"]["parameters"]["required"].as_array().unwrap() {
        assert!(obj.contains_key(key.as_str().unwrap()), "{args} lacks {key}");
    }
    args
}

#[tokio::test]
async fn json_tool_calls_by_prompt_header_and_tool_choice() {
    let mock = Mock::start(&[]);
    let url = format!("{}/chat/completions", mock.base_url());

    // The last user message names the tool.
    let resp = post(&url, &request("mock-1", "please get_weather for Paris"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_tool_message(&resp.json().await.unwrap());
    let last = mock.last().await;
    assert_eq!(last["tools"], json!(["get_weather"]));

    // x-mock-tool, with a prompt that does not name it.
    let v: Value = post(&url, &request("mock-1", "Weather in Paris?"), &[("x-mock-tool", "get_weather")])
        .await
        .json()
        .await
        .unwrap();
    assert_tool_message(&v);

    // tool_choice required / named.
    for choice in [json!("required"), json!({ "type": "function", "function": { "name": "get_weather" } })] {
        let mut body = request("mock-1", "Weather in Paris?");
        body["tool_choice"] = choice;
        assert_tool_message(&post(&url, &body, &[]).await.json().await.unwrap());
    }

    // Tools offered but not asked for: text.
    let v: Value = post(&url, &request("mock-1", "Weather in Paris?"), &[]).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().starts_with("mock answer to:"));
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());

    // A tool_choice naming a tool not offered, or without tools: OpenAI's 400.
    let mut body = request("mock-1", "hi");
    body["tool_choice"] = json!({ "type": "function", "function": { "name": "nope" } });
    assert_eq!(post(&url, &body, &[]).await.status(), 400);
    let body = json!({ "model": "mock-1", "tool_choice": "auto", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(post(&url, &body, &[]).await.status(), 400);
}

#[tokio::test]
async fn tool_choice_none_and_tool_results_give_text() {
    let mock = Mock::start(&[]);
    let url = format!("{}/chat/completions", mock.base_url());
    let mut body = request("mock-1", "please get_weather for Paris");
    body["tool_choice"] = json!("none");
    let v: Value = post(&url, &body, &[("x-mock-tool", "get_weather")]).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("get_weather"));

    // The follow-up carrying the tool's result is answered in text.
    let first: Value = post(&url, &request("mock-1", "please get_weather for Paris"), &[]).await.json().await.unwrap();
    let call = first["choices"][0]["message"]["tool_calls"][0].clone();
    let follow = json!({ "model": "mock-1", "tools": tools(), "messages": [
        { "role": "user", "content": "please get_weather for Paris" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "18C, sunny" },
    ] });
    let v: Value = post(&url, &follow, &[]).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().starts_with("mock answer to:"));
}

#[tokio::test]
async fn streamed_tool_calls_paced_and_cut() {
    let mock = Mock::start(&[]);
    let url = format!("{}/chat/completions", mock.base_url());
    let mut body = request("mock-1", "please get_weather for Paris");
    body["stream"] = json!(true);
    let resp = post(&url, &body, &[]).await;
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_tool_stream(&resp.text().await.unwrap(), false);

    body["stream_options"] = json!({ "include_usage": true });
    let started = std::time::Instant::now();
    let sse = post(&url, &body, &[("x-mock-tokens-per-sec", "50")]).await.text().await.unwrap();
    let args = assert_tool_stream(&sse, true);
    assert_eq!(args["city"], "mock-city");
    // Paced like tokens: one chunk every 20 ms.
    let n = chunks(&sse).len() as u32;
    assert!(started.elapsed() >= std::time::Duration::from_millis(20) * (n - 1), "{:?}", started.elapsed());

    // Cut mid-arguments: the client sees a broken body.
    let mut resp = post(&url, &body, &[("x-mock-cut-after-chunks", "3")]).await;
    let mut got = Vec::new();
    let broke = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broke, "{}", String::from_utf8_lossy(&got));
    assert!(!String::from_utf8_lossy(&got).contains("[DONE]"));
    assert_eq!(mock.stats().await["streams_cut"], 1);
}

#[tokio::test]
async fn tool_calls_through_the_gateway() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start("", &demo_body(&mock));
    let url = gw.url("/v1/chat/completions");

    let resp = post(&url, &request("demo", "please get_weather for Paris"), &[]).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_tool_message(&v);
    assert_eq!(mock.last().await["tools"], json!(["get_weather"]));

    let v: Value =
        post(&url, &request("demo", "Weather?"), &[("x-mock-tool", "get_weather")]).await.json().await.unwrap();
    assert_tool_message(&v);

    let mut body = request("demo", "please get_weather for Paris");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let (_, _, sse) = ask(&gw, body.clone(), &[]).await;
    assert_tool_stream(&sse, true);

    body["tool_choice"] = json!("none");
    let (_, _, sse) = ask(&gw, body, &[]).await;
    assert!(stream_text(&sse).starts_with("mock answer to: please get_weather"), "{sse}");
    assert!(!sse.contains("tool_calls"));
}
