//! Per-request state, created by `new_ctx` and dropped after `logging`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;

use crate::config::live::Snapshot;
use crate::providers::Endpoint;
use crate::routing::{Route, Target};
use crate::shutdown::InFlight;

#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    /// The client's `x-request-id`, or one we generated.
    pub request_id: HeaderValue,
    /// The config this request started with; kept to the end, whatever reloads happen meanwhile.
    pub snapshot: Option<Arc<Snapshot>>,
    pub endpoint: Option<Endpoint>,
    pub route: Option<Arc<Route>>,
    /// Index into `route.targets` of the target serving the current attempt.
    pub target: usize,
    pub stream: bool,
    /// The serialized request sent upstream (headers + rewritten body), re-armed on each attempt.
    pub replay: Option<Bytes>,
    pub attempts: u32,
    pub upstream_sent: Option<Instant>,
    pub upstream_head: Option<Instant>,
    pub upstream_done: Option<Instant>,
    /// Final status we told the client (0 when the client went away before one was sent).
    pub status: u16,
    pub event_stream: bool,
    _in_flight: InFlight,
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            snapshot: None,
            endpoint: None,
            route: None,
            target: 0,
            stream: false,
            replay: None,
            attempts: 0,
            upstream_sent: None,
            upstream_head: None,
            upstream_done: None,
            status: 0,
            event_stream: false,
            _in_flight: InFlight::start(),
        }
    }

    pub fn target(&self) -> Option<&Target> {
        self.route.as_ref().and_then(|r| r.targets.get(self.target))
    }

    /// Microseconds spent in the gateway so far, time waiting on the upstream excluded.
    pub fn overhead_us(&self, now: Instant) -> u64 {
        let before = self.upstream_sent.map_or(now - self.started, |s| s - self.started);
        let after = self.upstream_head.map_or_else(Default::default, |h| now.saturating_duration_since(h));
        (before + after).as_micros() as u64
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
