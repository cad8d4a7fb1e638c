//! The Anthropic-compatible endpoint, `POST /v1/messages`: the Messages request becomes an
//! OpenAI chat request at the door, runs the same pipeline (keys, budgets, cache, routing,
//! spend), and the OpenAI answer — proxied, cached or an error — becomes Anthropic's on the way
//! out: streams event by event in the response body filter.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::Result;

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::providers::anthropic_inbound::{self as wire, OpenAiToAnthropicStream};

/// How the answer to a `/v1/messages` request is being converted.
pub enum ToAnthropic {
    Stream(Box<OpenAiToAnthropicStream>),
    Whole(Vec<u8>),
    Error { status: u16, body: Vec<u8> },
}

impl std::fmt::Debug for ToAnthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToAnthropic::Stream(_) => f.write_str("ToAnthropic::Stream"),
            ToAnthropic::Whole(b) => write!(f, "ToAnthropic::Whole({} bytes)", b.len()),
            ToAnthropic::Error { status, .. } => write!(f, "ToAnthropic::Error({status})"),
        }
    }
}

fn public_model(ctx: &RequestCtx) -> &str {
    ctx.primary.as_ref().map_or("", |r| r.name.as_str())
}

/// The client's Messages body as an OpenAI chat body.
pub fn request(body: &[u8]) -> Result<Bytes, GatewayError> {
    wire::request_to_openai(body).map(|r| Bytes::from(r.openai_body)).map_err(|e| GatewayError::BadRequest {
        message: e.message,
        code: "invalid_request",
        param: None,
    })
}

/// `/v1/messages/count_tokens`: `{"input_tokens": N}` (an estimate; no provider is called).
pub fn count_tokens(body: &[u8]) -> Result<Bytes, GatewayError> {
    wire::count_tokens(body)
        .map(|n| Bytes::from(format!("{{\"input_tokens\":{n}}}")))
        .map_err(|e| GatewayError::bad_request(e.message, "invalid_request"))
}

/// `GET /v1/models` for an Anthropic client (it sends `anthropic-version`): the same models in
/// Anthropic's list shape, `{"data":[{"type":"model","id","display_name","created_at"}],...}`.
pub fn models_list(openai_list: &[u8]) -> Bytes {
    let v: serde_json::Value = serde_json::from_slice(openai_list).unwrap_or_default();
    let data: Vec<serde_json::Value> = v["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let created =
                m["created"].as_i64().and_then(|s| chrono::DateTime::from_timestamp(s, 0)).unwrap_or_default();
            serde_json::json!({
                "type": "model", "id": m["id"], "display_name": m["id"],
                "created_at": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    let first = data.first().map(|m| m["id"].clone()).unwrap_or_default();
    let last = data.last().map(|m| m["id"].clone()).unwrap_or_default();
    let body = serde_json::json!({ "data": data, "has_more": false, "first_id": first, "last_id": last });
    Bytes::from(body.to_string())
}

/// An error the gateway answers itself, in Anthropic's shape.
pub fn error_body(err: &GatewayError) -> Bytes {
    Bytes::from(wire::error_body(err.status(), &err.to_string()))
}

/// An error for a stream already under way: Anthropic's `event: error`.
pub fn error_event(err: &GatewayError) -> Bytes {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&wire::error_body(err.status(), &err.to_string()));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Phase: head on its way to the client. Picks the conversion; the body changes length.
pub fn on_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let status = resp.status.as_u16();
    let conversion = if status == 200 && ctx.event_stream {
        ToAnthropic::Stream(Box::new(OpenAiToAnthropicStream::new(public_model(ctx))))
    } else if status == 200 {
        ToAnthropic::Whole(Vec::new())
    } else {
        ToAnthropic::Error { status, body: Vec::new() }
    };
    resp.remove_header(&http::header::CONTENT_LENGTH);
    if !matches!(conversion, ToAnthropic::Stream(_)) {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    ctx.to_anthropic = Some(conversion);
    Ok(())
}

/// Phase: each body chunk on its way to the client, after the usage tap and cache saw it.
pub fn on_body(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    let Some(mut conversion) = ctx.to_anthropic.take() else { return };
    let out = convert(&mut conversion, body.take(), end_of_stream, public_model(ctx));
    ctx.to_anthropic = Some(conversion);
    *body = out.filter(|b| !b.is_empty()).map(Bytes::from);
}

fn convert(conversion: &mut ToAnthropic, chunk: Option<Bytes>, end: bool, model: &str) -> Option<Vec<u8>> {
    let buf = match conversion {
        ToAnthropic::Stream(s) => {
            let mut out = chunk.map(|c| s.feed(&c)).unwrap_or_default();
            if end {
                out.extend_from_slice(&s.finish());
            }
            return Some(out);
        }
        ToAnthropic::Whole(buf) | ToAnthropic::Error { body: buf, .. } => buf,
    };
    if let Some(c) = chunk {
        buf.extend_from_slice(&c);
    }
    if !end {
        return None;
    }
    Some(match conversion {
        ToAnthropic::Error { status, body } => wire::error_from_openai(*status, body),
        ToAnthropic::Whole(buf) => wire::response_from_openai(buf, model).unwrap_or_else(|e| e.body()),
        ToAnthropic::Stream(_) => Vec::new(),
    })
}

/// A cached answer, as the client would have got it from a provider: SSE events or JSON.
pub fn cached_events(events: Vec<Bytes>, ctx: &RequestCtx) -> Vec<Bytes> {
    let mut s = OpenAiToAnthropicStream::new(public_model(ctx));
    let mut out: Vec<Bytes> = events.iter().map(|e| Bytes::from(s.feed(e))).filter(|b| !b.is_empty()).collect();
    let tail = s.finish();
    if !tail.is_empty() {
        out.push(Bytes::from(tail));
    }
    out
}

pub fn cached_json(body: &[u8], ctx: &RequestCtx) -> Bytes {
    Bytes::from(wire::response_from_openai(body, public_model(ctx)).unwrap_or_else(|e| e.body()))
}
