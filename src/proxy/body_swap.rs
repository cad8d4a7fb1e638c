//! Sending a rewritten request body of any size upstream.
//!
//! Once `request_filter` has consumed the client body, Pingora 0.9 has nothing left to send
//! upstream (its retry buffer stops at 64 KiB and `request_body_filter` is not called again), so
//! the upstream would wait forever. Instead we swap the downstream H1 session for one that reads a
//! serialized copy of the request (headers + rewritten body) before the real socket: Pingora then
//! proxies it as if the client had sent it. The same bytes re-arm every retry attempt.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection with a serialized request in front of it.
#[derive(Debug)]
pub struct PrefixedStream {
    prefix: Cursor<Bytes>,
    inner: Option<Stream>,
}

impl PrefixedStream {
    fn new(prefix: Bytes, inner: Stream) -> Self {
        PrefixedStream { prefix: Cursor::new(prefix), inner: Some(inner) }
    }

    fn placeholder() -> Self {
        PrefixedStream { prefix: Cursor::new(Bytes::new()), inner: None }
    }

    fn prefix_left(&self) -> usize {
        self.prefix.get_ref().len() - self.prefix.position() as usize
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "placeholder stream")
}

impl AsyncRead for PrefixedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.prefix_left() > 0 {
            let pos = self.prefix.position() as usize;
            let n = self.prefix_left().min(buf.remaining());
            buf.put_slice(&self.prefix.get_ref()[pos..pos + n]);
            self.prefix.set_position((pos + n) as u64);
            return Poll::Ready(Ok(()));
        }
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for PrefixedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(closed())),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[async_trait]
impl Shutdown for PrefixedStream {
    async fn shutdown(&mut self) {
        if let Some(s) = self.inner.as_mut() {
            s.shutdown().await
        }
    }
}

impl UniqueID for PrefixedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.as_ref().map_or(0, |s| s.id())
    }
}

impl Ssl for PrefixedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.as_ref().and_then(|s| s.get_ssl())
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.as_ref().and_then(|s| s.get_ssl_digest())
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.as_ref().and_then(|s| s.selected_alpn_proto())
    }
}

impl GetTimingDigest for PrefixedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.as_ref().map(|s| s.get_timing_digest()).unwrap_or_default()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.as_ref().map_or(Duration::ZERO, |s| s.get_read_pending_time())
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.as_ref().map_or(Duration::ZERO, |s| s.get_write_pending_time())
    }
}

impl GetProxyDigest for PrefixedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.as_ref().and_then(|s| s.get_proxy_digest())
    }
}

impl GetSocketDigest for PrefixedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.as_ref().and_then(|s| s.get_socket_digest())
    }
}

#[async_trait]
impl Peek for PrefixedStream {}

/// Serializes the client's request line and headers with a new body (framing headers replaced
/// by one `content-length`).
pub fn serialize_request(req: &RequestHeader, body: &[u8]) -> Bytes {
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = BytesMut::with_capacity(256 + req.headers.len() * 48 + body.len());
    out.put_slice(req.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(if req.version == http::Version::HTTP_10 { b" HTTP/1.0\r\n" } else { b" HTTP/1.1\r\n" });
    for (name, value) in req.headers.iter() {
        if matches!(name.as_str(), "content-length" | "transfer-encoding" | "expect") {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"content-length: ");
    out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
    out.freeze()
}

/// Replaces the downstream session with one that reads `request` (from [`serialize_request`])
/// first and then the client socket. Call again with the same bytes before each retry.
pub async fn arm(session: &mut Session, request: Bytes) -> Result<()> {
    let placeholder = ServerSession::new_http1(Box::new(PrefixedStream::placeholder()));
    let old = std::mem::replace(&mut *session.downstream_session, placeholder);
    let (stream, keepalive) = match old {
        ServerSession::H1(h1) => {
            let keepalive = h1.get_keepalive_timeout();
            (h1.into_inner(), keepalive)
        }
        other => {
            *session.downstream_session = other;
            return Err(Error::explain(ErrorType::InternalError, "body rewrite needs an HTTP/1.x client session"));
        }
    };
    // Unwrap a previous swap (an earlier request on this keep-alive connection, or an earlier
    // attempt of this one) so wrappers never nest.
    let stream: Stream = if stream.as_any().is::<PrefixedStream>() {
        match stream.into_any().downcast::<PrefixedStream>() {
            Ok(prefixed) => match prefixed.inner {
                Some(inner) => inner,
                None => return Err(Error::explain(ErrorType::InternalError, "client stream already gone")),
            },
            Err(_) => return Err(Error::explain(ErrorType::InternalError, "unexpected stream type")),
        }
    } else {
        stream
    };
    let mut fresh = ServerSession::new_http1(Box::new(PrefixedStream::new(request, stream)));
    if !fresh.read_request().await? {
        return Err(Error::explain(ErrorType::InternalError, "re-reading the rewritten request failed"));
    }
    fresh.set_keepalive(keepalive);
    *session.downstream_session = fresh;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_replaces_framing_headers() {
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions?x=1", None).unwrap();
        req.insert_header("host", "gw").unwrap();
        req.insert_header("transfer-encoding", "chunked").unwrap();
        req.insert_header("expect", "100-continue").unwrap();
        let out = serialize_request(&req, b"{\"a\":1}");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("POST /v1/chat/completions?x=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("host: gw\r\n"));
        assert!(!text.contains("transfer-encoding") && !text.contains("expect"));
        assert!(text.ends_with("content-length: 7\r\n\r\n{\"a\":1}"), "{text}");
    }

    #[tokio::test]
    async fn prefixed_stream_reads_prefix_then_inner() {
        use tokio::io::AsyncReadExt;
        let inner: Stream = Box::new(Cursor::new(b"tail".to_vec()));
        let mut s = PrefixedStream::new(Bytes::from_static(b"head-"), inner);
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "head-tail");
    }
}
