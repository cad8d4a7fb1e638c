//! Spend: who is calling (virtual keys, teams), what they may spend and how fast (budgets with
//! reservations, RPM/TPM limits), what every request cost (usage x price), and the durable
//! ledger behind it. Policies come from the live config; the books outlive reloads.

pub mod budget;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod period;
pub mod pricing;
pub mod usage;

use std::path::Path;

use budget::Accounts;
use ledger::Ledger;
use limits::RateLimiter;

/// The books and limiter state, shared by every request for the process lifetime.
pub struct SpendState {
    pub accounts: Accounts,
    pub limiter: RateLimiter,
}

impl SpendState {
    /// Opens the ledger at `ledger_path` (replaying it), or keeps books in memory when `None`.
    pub fn open(ledger_path: Option<&Path>) -> std::io::Result<SpendState> {
        let (ledger, history) = match ledger_path {
            Some(p) => {
                let (l, h) = Ledger::open(p, chrono::Utc::now().timestamp())?;
                (Some(l), h)
            }
            None => (None, Vec::new()),
        };
        Ok(SpendState { accounts: Accounts::open(ledger, history), limiter: RateLimiter::default() })
    }
}
