//! Per-request state, created by `new_ctx` and dropped after `logging`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;

use crate::config::live::Snapshot;
use crate::providers::Endpoint;
use crate::routing::state::{Admit, TargetState};
use crate::routing::{Route, Target};
use crate::shutdown::InFlight;
use crate::spend::budget::Reservation;
use crate::spend::keys::{KeyInfo, TeamInfo};
use crate::spend::usage::UsageTap;

/// What one attempt ended with, for the aggregated error and metrics.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub provider: String,
    pub model: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The upstream answered with a status listed in `retry.on_status`.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    Timeout(String),
    Error(String),
}

/// The target serving the current attempt; counts it in flight until dropped.
#[derive(Debug)]
pub struct Attempt {
    pub index: usize,
    pub admit: Admit,
    pub started: Instant,
    pub state: Arc<TargetState>,
    /// Success or failure was recorded on the breaker (a probe without one is released).
    pub settled: bool,
}

impl Attempt {
    pub fn new(index: usize, admit: Admit, state: Arc<TargetState>) -> Attempt {
        state.start();
        Attempt { index, admit, started: Instant::now(), state, settled: false }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.state.finish();
        if self.admit == Admit::Probe && !self.settled {
            self.state.release_probe();
        }
    }
}

#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    /// The client's `x-request-id`, or one we generated.
    pub request_id: HeaderValue,
    /// The config this request started with; kept to the end, whatever reloads happen meanwhile.
    pub snapshot: Option<Arc<Snapshot>>,
    pub endpoint: Option<Endpoint>,
    /// The model the client asked for; its retry policy governs the whole request.
    pub primary: Option<Arc<Route>>,
    /// The route of the current attempt: the primary, or one of its fallbacks.
    pub route: Option<Arc<Route>>,
    /// 0: primary; k: `primary.fallbacks[k - 1]`.
    pub chain_pos: usize,
    /// Targets of `route` already tried (bit per target index).
    pub tried: u64,
    /// `x-switchyard-provider`: only this provider may serve the request.
    pub pin: Option<String>,
    pub current: Option<Attempt>,
    /// Targets picked so far (the `x-switchyard-attempts` value).
    pub selections: u32,
    pub log: Vec<AttemptRecord>,
    /// A pooled connection was stale: resend to the same target once, not counted as a failure.
    pub resend_same_target: bool,
    pub stale_resends: u32,
    /// Time spent on failed tries and backoff, excluded from the overhead figure.
    pub retry_wait: std::time::Duration,
    /// The client's body and where its `model` value sits, for per-target rewrites.
    pub body: Bytes,
    /// The current try's body when Pingora's retry buffer holds the client's (bodies up to
    /// 64 KiB): `request_body_filter` sends this instead. `None`: the session was swapped.
    pub armed_body: Option<Bytes>,
    pub armed_sent: bool,
    pub model_span: Range<usize>,
    pub stream: bool,
    pub include_usage: Option<bool>,
    pub stream_options_span: Option<Range<usize>>,
    /// The gateway asked this try for stream usage: cut that chunk before the client sees it.
    pub strip_usage: bool,
    pub usage_tap: Option<UsageTap>,
    /// Translated request (providers with their own format): path and headers for this try.
    pub upstream_path: Option<String>,
    pub upstream_headers: Vec<(String, String)>,
    /// How the answer of a translated try is turned back into OpenAI's format.
    pub reply: Option<super::translated::Reply>,
    /// Bedrock's `x-amzn-errortype` of a failed answer.
    pub upstream_error_type: Option<String>,
    pub max_tokens: Option<u64>,
    pub key: Option<Arc<KeyInfo>>,
    pub team: Option<Arc<TeamInfo>>,
    /// The key's team name (a team absent under `teams:` has no budget but is still reported).
    pub team_name: Option<String>,
    pub reservation: Option<Reservation>,
    /// TPM taken at admission: (scope, per-minute limit, tokens), corrected at the end.
    pub tpm_taken: Vec<(&'static str, u64, f64)>,
    /// The exact key: looked up when the exact tier is on, and what a completed answer is stored under.
    pub cache_key: Option<[u8; 32]>,
    pub cache_exact_lookup: bool,
    /// The semantic lookup, when the tier is on for the route and the request has a semantic form.
    pub semantic: Option<crate::cache::semantic::SemanticQuery>,
    pub cache_ttl: u64,
    /// `x-switchyard-cache` answer: "" (not cacheable), miss, bypass, hit-exact, hit-semantic.
    pub cache_status: &'static str,
    /// On a hit: the original answer's usage and upstream model (for the saving).
    pub cache_hit: Option<(crate::spend::usage::Usage, String)>,
    pub recorder: Option<crate::cache::sse::SseRecorder>,
    /// Pingora-level tries (`upstream_peer` calls).
    pub attempts: u32,
    pub upstream_sent: Option<Instant>,
    pub upstream_head: Option<Instant>,
    pub upstream_done: Option<Instant>,
    /// When the response was complete (the `logging` phase began).
    pub finished: Option<Instant>,
    /// Final status we told the client (0 when the client went away before one was sent).
    pub status: u16,
    pub event_stream: bool,
    /// Arrived on `/v1/messages`: answers and errors go back in Anthropic's format.
    pub inbound_anthropic: bool,
    pub to_anthropic: Option<super::inbound::ToAnthropic>,
    _in_flight: InFlight,
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            snapshot: None,
            endpoint: None,
            primary: None,
            route: None,
            chain_pos: 0,
            tried: 0,
            pin: None,
            current: None,
            selections: 0,
            log: Vec::new(),
            resend_same_target: false,
            stale_resends: 0,
            retry_wait: std::time::Duration::ZERO,
            body: Bytes::new(),
            armed_body: None,
            armed_sent: false,
            model_span: 0..0,
            stream: false,
            include_usage: None,
            stream_options_span: None,
            strip_usage: false,
            usage_tap: None,
            upstream_path: None,
            upstream_headers: Vec::new(),
            reply: None,
            upstream_error_type: None,
            max_tokens: None,
            key: None,
            team: None,
            team_name: None,
            reservation: None,
            tpm_taken: Vec::new(),
            cache_key: None,
            cache_exact_lookup: false,
            semantic: None,
            cache_ttl: 0,
            cache_status: "",
            cache_hit: None,
            recorder: None,
            attempts: 0,
            upstream_sent: None,
            upstream_head: None,
            upstream_done: None,
            finished: None,
            status: 0,
            event_stream: false,
            inbound_anthropic: false,
            to_anthropic: None,
            _in_flight: InFlight::start(),
        }
    }

    pub fn target(&self) -> Option<&Target> {
        let i = self.current.as_ref()?.index;
        self.route.as_ref().and_then(|r| r.targets.get(i))
    }

    /// Microseconds spent in the gateway so far, time waiting on the upstream excluded.
    pub fn overhead_us(&self, now: Instant) -> u64 {
        let before = self.upstream_sent.map_or(now - self.started, |s| s - self.started);
        let after = self.upstream_head.map_or_else(Default::default, |h| now.saturating_duration_since(h));
        (before + after).saturating_sub(self.retry_wait).as_micros() as u64
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
