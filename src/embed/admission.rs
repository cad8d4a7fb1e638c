//! Admission to the embedding queue by predicted wait. Under overload a bounded queue alone makes
//! every caller wait its whole budget before giving up (the queue is full of work that will be
//! thrown away); predicting the wait from the queue depth and the measured cost per prompt lets a
//! caller that cannot be served in time give up at once, so an overloaded semantic tier degrades
//! to plain misses at full speed instead of adding its budget to every request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Prompts admitted and not yet answered (queued or in the running batch) and the moving average
/// of inference time per prompt, shared by the callers and the inference thread.
#[derive(Default)]
pub struct Admission {
    pending: AtomicUsize,
    /// Nanoseconds per prompt, averaged over recent batches; 0 until the first batch ran.
    per_prompt_ns: AtomicU64,
}

impl Admission {
    /// Whether a new prompt can be expected back within `budget`: everything pending ahead of it
    /// (the running batch counted whole: a caller cannot be answered before it ends) plus itself,
    /// at the recent cost per prompt. On `true` the prompt counts as pending; the caller must
    /// [`Admission::withdraw`] it if it is not enqueued after all.
    pub fn admit(&self, budget: Duration) -> bool {
        let per_prompt = self.per_prompt_ns.load(Ordering::Relaxed);
        let ahead = self.pending.load(Ordering::Relaxed) as u64;
        if (ahead + 1).saturating_mul(per_prompt) > budget.as_nanos() as u64 {
            return false;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// An admitted prompt that never reached the queue.
    pub fn withdraw(&self) {
        self.dropped(1);
    }

    /// `n` queued prompts whose callers gave up were thrown away unrun.
    pub fn dropped(&self, n: usize) {
        let _ = self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| Some(q.saturating_sub(n)));
    }

    /// A batch of `n` prompts was answered after `elapsed`: they leave the pending count and their
    /// cost per prompt joins the average (1/8 weight, so one slow batch does not close the door
    /// and a slower machine is learnt within a few).
    pub fn ran(&self, n: usize, elapsed: Duration) {
        if n == 0 {
            return;
        }
        self.dropped(n);
        let sample = (elapsed.as_nanos() / n as u128).min(u64::MAX as u128) as u64;
        let _ = self.per_prompt_ns.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { sample } else { old - old / 8 + sample / 8 })
        });
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn admits_everything_until_the_cost_is_known() {
        let a = Admission::default();
        for _ in 0..1000 {
            assert!(a.admit(MS));
        }
        assert_eq!(a.pending(), 1000);
    }

    #[test]
    fn refuses_when_the_prompts_ahead_cannot_be_answered_within_the_budget() {
        let a = Admission::default();
        assert!(a.admit(MS));
        a.ran(1, 4 * MS); // 4 ms per prompt, nothing pending
        let budget = 50 * MS;
        let admitted = (0..100).take_while(|_| a.admit(budget)).count();
        assert_eq!(admitted, 12, "12 prompts x 4 ms fit in 50 ms, the 13th would wait 52 ms");
        assert!(!a.admit(budget));
        a.dropped(2);
        assert!(a.admit(budget), "callers gave up: room again");
        assert!(a.admit(200 * MS), "a larger budget waits longer");
    }

    #[test]
    fn counts_never_underflow() {
        let a = Admission::default();
        assert!(a.admit(MS));
        a.withdraw();
        a.dropped(5);
        a.ran(3, MS);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn cost_is_a_moving_average() {
        let a = Admission::default();
        a.ran(1, 8 * MS);
        a.ran(1, 16 * MS);
        assert_eq!(a.per_prompt_ns.load(Ordering::Relaxed), 9_000_000);
        a.ran(0, 100 * MS);
        assert_eq!(a.per_prompt_ns.load(Ordering::Relaxed), 9_000_000, "an empty batch teaches nothing");
    }
}
