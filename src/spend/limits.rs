//! Requests-per-minute and tokens-per-minute limits per key and team, as GCRA (a continuously
//! refilling bucket of one minute's allowance): no fixed windows, so no double burst at a window
//! edge. One small lock per (scope, name, limit) cell.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use dashmap::DashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Rpm,
    Tpm,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Rpm => "rpm",
            Limit::Tpm => "tpm",
        }
    }
}

#[derive(Default)]
pub struct RateLimiter {
    /// Theoretical arrival time (seconds since start) per cell.
    cells: DashMap<(&'static str, String, Limit), Mutex<f64>>,
}

const WINDOW: f64 = 60.0;

fn now_secs() -> f64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64() + WINDOW
}

impl RateLimiter {
    /// Takes `cost` units (1 request, or N tokens) from a per-minute allowance of `per_minute`.
    /// `Err(seconds)` until enough has refilled. A cost above the whole allowance passes only
    /// when the bucket is full (it then empties it), so it is never refused forever.
    pub fn take(&self, scope: &'static str, name: &str, limit: Limit, per_minute: u64, cost: f64) -> Result<(), f64> {
        if per_minute == 0 {
            return Err(WINDOW);
        }
        let now = now_secs();
        let per_unit = WINDOW / per_minute as f64;
        let cell = self.cells.entry((scope, name.to_string(), limit)).or_insert_with(|| Mutex::new(0.0));
        let mut tat = cell.lock().unwrap_or_else(|p| p.into_inner());
        let base = tat.max(now);
        let next = base + per_unit * cost;
        if next - now <= WINDOW || base <= now {
            *tat = next;
            Ok(())
        } else {
            Err(next - now - WINDOW)
        }
    }

    /// Corrects an earlier `take` once the real cost is known (negative gives back).
    pub fn adjust(&self, scope: &'static str, name: &str, limit: Limit, per_minute: u64, delta: f64) {
        if per_minute == 0 || delta == 0.0 {
            return;
        }
        if let Some(cell) = self.cells.get(&(scope, name.to_string(), limit)) {
            let mut tat = cell.lock().unwrap_or_else(|p| p.into_inner());
            *tat = (*tat + WINDOW / per_minute as f64 * delta).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_minute_of_burst_then_refills_continuously() {
        let l = RateLimiter::default();
        for _ in 0..60 {
            assert!(l.take("key", "a", Limit::Rpm, 60, 1.0).is_ok());
        }
        let wait = l.take("key", "a", Limit::Rpm, 60, 1.0).unwrap_err();
        assert!(wait > 0.9 && wait <= 1.0, "{wait}");
        assert!(l.take("key", "b", Limit::Rpm, 60, 1.0).is_ok(), "cells are independent");
    }

    #[test]
    fn token_costs_and_adjustments() {
        let l = RateLimiter::default();
        assert!(l.take("team", "t", Limit::Tpm, 1000, 900.0).is_ok());
        assert!(l.take("team", "t", Limit::Tpm, 1000, 200.0).is_err());
        l.adjust("team", "t", Limit::Tpm, 1000, -500.0);
        assert!(l.take("team", "t", Limit::Tpm, 1000, 200.0).is_ok());
        // Bigger than the allowance: passes on a full bucket only.
        assert!(l.take("team", "u", Limit::Tpm, 100, 5000.0).is_ok());
        assert!(l.take("team", "u", Limit::Tpm, 100, 1.0).is_err());
    }
}
