//! Providers with their own wire format (Anthropic, Gemini, Bedrock): the request is translated
//! once per target when it is armed; the answer is translated as it arrives — streams event by
//! event, whole answers and errors at their end — in the upstream body filter, so the cache
//! recorder, usage tap and client all see OpenAI's format.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};

/// A 200 answer from the provider that does not parse as its format.
const UNTRANSLATABLE: ErrorType = ErrorType::Custom("switchyard: untranslatable upstream answer");

use super::ctx::RequestCtx;
use crate::error::GatewayError;
use crate::providers::translate::{StreamTranslator, TranslateError};
use crate::providers::Endpoint;
use crate::routing::Target;

/// How the current answer is being translated.
pub enum Reply {
    /// A 200 stream: each provider chunk becomes OpenAI SSE now.
    Stream(Box<dyn StreamTranslator>),
    /// A 200 JSON answer, translated once complete.
    Whole(Vec<u8>),
    /// An error answer passed to the client, mapped to OpenAI's error shape once complete.
    Error { status: u16, retry_after: Option<u64>, body: Vec<u8> },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Stream(_) => f.write_str("Reply::Stream"),
            Reply::Whole(b) => write!(f, "Reply::Whole({} bytes)", b.len()),
            Reply::Error { status, .. } => write!(f, "Reply::Error({status})"),
        }
    }
}

/// The provider's request for `target`: body, path and headers (signed for Bedrock). Sets
/// `ctx.upstream_path` / `ctx.upstream_headers`; the bool asks to cut the usage chunk the
/// translation always requests (the client did not ask for it).
pub fn request_for(ctx: &mut RequestCtx, target: &Target) -> Result<(Bytes, bool), GatewayError> {
    let Some(format) = &target.upstream.format else {
        ctx.upstream_path = None;
        ctx.upstream_headers.clear();
        return Err(GatewayError::Internal("request_for called for an OpenAI-format target".into()));
    };
    let format = &format.0;
    if ctx.endpoint != Some(Endpoint::ChatCompletions) {
        return Err(GatewayError::bad_request(
            format!("Provider `{}` (kind {}) serves /v1/chat/completions only", target.upstream.name, format.kind()),
            "unsupported_endpoint",
        ));
    }
    let req = format.translate_request(&ctx.body, &target.model, ctx.stream, &target.translate).map_err(|e| match e {
        TranslateError::Unsupported { param, provider } => GatewayError::BadRequest {
            message: format!(
                "Parameter `{param}` is not supported by provider kind `{provider}` (provider `{}`); set drop_unsupported_params: true on the provider or model to drop it",
                target.upstream.name
            ),
            code: "unsupported_parameter",
            param: None,
        },
        TranslateError::InvalidRequest(m) => GatewayError::bad_request(m, "invalid_request"),
        TranslateError::BadUpstream(m) => GatewayError::Internal(m),
    })?;
    let path = target.upstream.path_with(&req.path);
    let mut headers = req.headers;
    if let Some(aws) = &target.upstream.aws {
        let host = target.upstream.host_header.to_str().unwrap_or_default();
        headers.extend(aws.sign_post(host, &path, &req.body));
    }
    ctx.upstream_path = Some(path);
    ctx.upstream_headers = headers;
    Ok((Bytes::from(req.body), ctx.stream && ctx.include_usage != Some(true)))
}

/// Phase: upstream head of an answer the client will get. Picks how to translate it and fixes
/// the head: the body changes length, and Bedrock's event stream becomes SSE.
pub fn on_head(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let Some(format) = ctx.target().and_then(|t| t.upstream.format.as_ref()) else {
        ctx.reply = None;
        return Ok(());
    };
    let status = resp.status.as_u16();
    let reply = if status == 200 && ctx.stream {
        let model = ctx.primary.as_ref().map_or("", |r| r.name.as_str());
        Reply::Stream(format.0.stream_translator(model, true))
    } else if status == 200 {
        Reply::Whole(Vec::new())
    } else {
        let retry_after = resp
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Reply::Error { status, retry_after, body: Vec::new() }
    };
    if let Reply::Error { status, retry_after, .. } = &reply {
        // The status the mapping gives (Anthropic's 529 overloaded -> 503, auth -> 502...).
        let mapped = format.0.map_error(*status, b"", *retry_after).status;
        if mapped != *status {
            resp.set_status(mapped)?;
        }
    }
    let content_type = if matches!(reply, Reply::Stream(_)) { "text/event-stream" } else { "application/json" };
    ctx.event_stream = matches!(reply, Reply::Stream(_));
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    // Bedrock names its error type in a header; `map_error_typed` reads it.
    if let Some(kind) = resp.remove_header("x-amzn-errortype") {
        ctx.upstream_error_type = kind.to_str().ok().map(str::to_string);
    }
    ctx.reply = Some(reply);
    Ok(())
}

/// Phase: each upstream body chunk. Replaces it with its OpenAI translation (possibly nothing yet).
pub fn on_body(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) -> Result<()> {
    let Some(mut reply) = ctx.reply.take() else { return Ok(()) };
    let out = translate_chunk(&mut reply, body.take(), end_of_stream, ctx);
    ctx.reply = Some(reply);
    *body = out?.filter(|b| !b.is_empty()).map(Bytes::from);
    Ok(())
}

fn translate_chunk(reply: &mut Reply, chunk: Option<Bytes>, end: bool, ctx: &RequestCtx) -> Result<Option<Vec<u8>>> {
    let Some(format) = ctx.target().and_then(|t| t.upstream.format.as_ref()) else { return Ok(None) };
    let format = &format.0;
    let buf = match reply {
        Reply::Stream(t) => {
            let mut out = chunk.map(|c| t.feed(&c)).unwrap_or_default();
            if end {
                out.extend_from_slice(&t.finish());
            }
            return Ok(Some(out));
        }
        Reply::Whole(buf) | Reply::Error { body: buf, .. } => buf,
    };
    if let Some(c) = chunk {
        buf.extend_from_slice(&c);
    }
    if !end {
        return Ok(None);
    }
    let model = ctx.primary.as_ref().map_or("", |r| r.name.as_str());
    match reply {
        Reply::Whole(buf) => format.translate_response(buf, model).map(Some).map_err(|e| {
            Error::create(UNTRANSLATABLE, ErrorSource::Upstream, Some(format!("{}: {e:?}", format.kind()).into()), None)
        }),
        Reply::Error { status, retry_after, body } => {
            let mapped = match ctx.upstream_error_type.as_deref() {
                Some(t) if format.kind() == "bedrock" => {
                    crate::providers::bedrock::map_error_typed(*status, Some(t), body, *retry_after)
                }
                _ => format.map_error(*status, body, *retry_after),
            };
            let json = serde_json::json!({
                "error": { "message": mapped.message, "type": mapped.kind, "param": null, "code": null }
            });
            Ok(Some(json.to_string().into_bytes()))
        }
        Reply::Stream(_) => Ok(None),
    }
}
