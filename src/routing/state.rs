//! Per-target live state: circuit breaker, latency EWMA, in-flight count; per-provider active
//! health. Kept across reloads for unchanged targets (see `RouteTable::build`).
//!
//! The request path only reads atomics (`available`) and does one CAS to admit a half-open
//! probe; outcomes take a short uncontended lock on the error-rate window.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::BreakerPolicy;

/// Milliseconds since the process started (monotonic); 0 is never a real deadline.
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// How a target may be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed circuit: normal traffic.
    Normal,
    /// Half-open: this request is the single probe.
    Probe,
}

#[derive(Debug, Default)]
struct Window {
    /// (second, successes, failures) ring, one bucket per second of the window.
    buckets: Vec<(u64, u32, u32)>,
}

impl Window {
    fn record(&mut self, secs: usize, now_s: u64, ok: bool) -> (u32, u32) {
        if self.buckets.len() != secs {
            self.buckets = vec![(0, 0, 0); secs];
        }
        let b = &mut self.buckets[(now_s as usize) % secs];
        if b.0 != now_s {
            *b = (now_s, 0, 0);
        }
        if ok {
            b.1 += 1;
        } else {
            b.2 += 1;
        }
        let oldest = now_s.saturating_sub(secs as u64 - 1);
        self.buckets.iter().filter(|b| b.0 >= oldest && b.0 != 0).fold((0, 0), |(o, f), b| (o + b.1, f + b.2))
    }
}

#[derive(Debug, Default)]
pub struct TargetState {
    in_flight: AtomicU32,
    /// Exponentially weighted time to first byte, microseconds; 0 = no sample yet.
    ewma_ttfb_us: AtomicU64,
    consecutive_failures: AtomicU32,
    /// `now_ms()` until which the circuit is open; 0 = closed.
    open_until_ms: AtomicU64,
    /// A half-open probe is in flight.
    probing: AtomicBool,
    window: Mutex<Window>,
    pub times_opened: AtomicU64,
}

impl TargetState {
    pub fn state(&self, now: u64) -> BreakerState {
        match self.open_until_ms.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            until if now < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Could take a request now (no side effects; selection scans with this).
    pub fn available(&self, now: u64) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.probing.load(Ordering::Acquire),
        }
    }

    /// Takes the target for one attempt; for a half-open circuit only one caller wins.
    pub fn admit(&self, now: u64) -> Option<Admit> {
        match self.state(now) {
            BreakerState::Closed => Some(Admit::Normal),
            BreakerState::Open => None,
            BreakerState::HalfOpen => self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| Admit::Probe),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    pub fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn ewma_ttfb_us(&self) -> u64 {
        self.ewma_ttfb_us.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Milliseconds until the circuit half-opens (0 when not open).
    pub fn open_remaining_ms(&self, now: u64) -> u64 {
        self.open_until_ms.load(Ordering::Acquire).saturating_sub(now)
    }

    pub fn record_success(&self, policy: &BreakerPolicy, admit: Admit, ttfb: Option<Duration>) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if let Some(t) = ttfb {
            let sample = (t.as_micros() as u64).max(1);
            let _ = self.ewma_ttfb_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { sample } else { (old * 7 + sample * 3) / 10 })
            });
        }
        self.window_record(policy, true);
        if admit == Admit::Probe {
            self.open_until_ms.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A failed attempt. `retry_after` (from a 429) opens this target for exactly that long.
    pub fn record_failure(&self, policy: &BreakerPolicy, admit: Admit, retry_after: Option<Duration>) {
        let consecutive = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let (ok, failed) = self.window_record(policy, false);
        let now = now_ms();
        let open_for = if let Some(ra) = retry_after {
            // A provider's Retry-After is trusted up to an hour, never longer.
            Some(ra.min(Duration::from_secs(3600)))
        } else if admit == Admit::Probe || consecutive >= policy.consecutive_failures {
            Some(policy.cooldown)
        } else {
            let total = ok + failed;
            (total >= policy.min_requests.max(1) && failed as f64 / total as f64 >= policy.error_rate)
                .then_some(policy.cooldown)
        };
        if let Some(d) = open_for {
            if !d.is_zero() {
                let was = self.open_until_ms.swap(now.saturating_add(d.as_millis() as u64), Ordering::AcqRel);
                if was == 0 || was <= now {
                    self.times_opened.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if admit == Admit::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// A probe that ended without an outcome (client left) frees the slot for the next one.
    pub fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    fn window_record(&self, policy: &BreakerPolicy, ok: bool) -> (u32, u32) {
        let secs = policy.window.as_secs().clamp(1, 3600) as usize;
        let now_s = now_ms() / 1000 + 1;
        match self.window.lock() {
            Ok(mut w) => w.record(secs, now_s, ok),
            Err(_) => (0, 0),
        }
    }
}

/// Active health of one provider, written only by the prober.
#[derive(Debug)]
pub struct ProviderHealth {
    healthy: AtomicBool,
    pub probed: AtomicBool,
    pub consecutive_ok: AtomicU32,
    pub consecutive_fail: AtomicU32,
    pub last_error: Mutex<Option<String>>,
}

impl Default for ProviderHealth {
    fn default() -> Self {
        ProviderHealth {
            healthy: AtomicBool::new(true),
            probed: AtomicBool::new(false),
            consecutive_ok: AtomicU32::new(0),
            consecutive_fail: AtomicU32::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl ProviderHealth {
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(n: u32, cooldown_ms: u64) -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: n,
            cooldown: Duration::from_millis(cooldown_ms),
            error_rate: 0.5,
            window: Duration::from_secs(60),
            min_requests: 1000,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_half_opens_once() {
        let s = TargetState::default();
        let p = policy(3, 300);
        for _ in 0..2 {
            s.record_failure(&p, Admit::Normal, None);
        }
        assert_eq!(s.state(now_ms()), BreakerState::Closed);
        s.record_failure(&p, Admit::Normal, None);
        assert_eq!(s.state(now_ms()), BreakerState::Open);
        assert!(s.admit(now_ms()).is_none());
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(s.admit(now_ms()), Some(Admit::Probe));
        assert_eq!(s.admit(now_ms()), None, "only one probe at a time");
        s.record_success(&p, Admit::Probe, None);
        assert_eq!(s.state(now_ms()), BreakerState::Closed);
        assert_eq!(s.admit(now_ms()), Some(Admit::Normal));
    }

    #[test]
    fn failed_probe_reopens_and_retry_after_overrides_cooldown() {
        let s = TargetState::default();
        let p = policy(1, 300);
        s.record_failure(&p, Admit::Normal, None);
        std::thread::sleep(Duration::from_millis(350));
        let admit = s.admit(now_ms()).unwrap();
        s.record_failure(&p, admit, None);
        assert_eq!(s.state(now_ms()), BreakerState::Open);

        let s = TargetState::default();
        s.record_failure(&policy(100, 10), Admit::Normal, Some(Duration::from_secs(30)));
        assert!(s.open_remaining_ms(now_ms()) > 29_000);
        let s = TargetState::default();
        s.record_failure(&policy(100, 10), Admit::Normal, Some(Duration::from_secs(u64::MAX / 2)));
        assert!(s.open_remaining_ms(now_ms()) <= 3_600_000, "Retry-After is capped");
    }

    #[test]
    fn error_rate_over_window_opens() {
        let s = TargetState::default();
        let p = BreakerPolicy { min_requests: 10, error_rate: 0.5, ..policy(100, 1000) };
        for i in 0..10 {
            if i % 2 == 0 {
                s.record_success(&p, Admit::Normal, None);
            } else {
                s.record_failure(&p, Admit::Normal, None);
            }
        }
        assert_eq!(s.state(now_ms()), BreakerState::Open);
    }

    #[test]
    fn ewma_tracks_latency() {
        let s = TargetState::default();
        let p = policy(3, 10);
        s.record_success(&p, Admit::Normal, Some(Duration::from_millis(10)));
        assert_eq!(s.ewma_ttfb_us(), 10_000);
        s.record_success(&p, Admit::Normal, Some(Duration::from_millis(20)));
        assert_eq!(s.ewma_ttfb_us(), 13_000);
    }
}
