//! Spend accounts per key, team and model, with reservations: a request reserves its estimated
//! cost before going upstream and settles the real cost afterwards, so concurrent requests
//! cannot overshoot a budget by more than one request's worth. Totals live in hourly buckets
//! (so any period can be summed) and every settlement goes to the durable ledger.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keys::Budget;
use super::ledger::{Ledger, LedgerRecord};
use super::period::Period;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub spend_usd: f64,
    pub saved_usd: f64,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.spend_usd += o.spend_usd;
        self.saved_usd += o.saved_usd;
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

#[derive(Debug, Default)]
struct Account {
    hours: BTreeMap<i64, Totals>,
    reserved: f64,
    /// (period start, spend in it) for the budget period last asked about.
    cached: Option<(i64, f64)>,
}

impl Account {
    fn totals_between(&self, start: i64, end: i64) -> Totals {
        let mut t = Totals::default();
        for (_, h) in self.hours.range(start / 3600..(end + 3599) / 3600) {
            t.add(h);
        }
        t
    }

    fn spend_in(&mut self, period: Period, now: DateTime<Utc>) -> f64 {
        let (start, end) = period.bounds(now);
        let (start, end) = (start.timestamp(), end.timestamp());
        match self.cached {
            Some((s, v)) if s == start => v,
            _ => {
                let v = self.totals_between(start, end).spend_usd;
                self.cached = Some((start, v));
                v
            }
        }
    }

    fn record(&mut self, ts: i64, t: &Totals) {
        self.hours.entry(ts.div_euclid(3600)).or_default().add(t);
        if let Some((start, v)) = self.cached.as_mut() {
            if ts >= *start {
                *v += t.spend_usd;
            }
        }
    }
}

#[derive(Default)]
struct Books {
    keys: HashMap<String, Account>,
    teams: HashMap<String, Account>,
    models: HashMap<String, Account>,
}

/// Who a request is charged to, and the budgets that apply.
#[derive(Debug, Clone, Default)]
pub struct Payer {
    pub key: Option<(String, Option<Budget>)>,
    pub team: Option<(String, Option<Budget>)>,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub payer: Payer,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub scope: &'static str,
    pub name: String,
    pub budget_usd: f64,
    pub spent_usd: f64,
    pub reset_at: DateTime<Utc>,
}

pub struct Accounts {
    books: Mutex<Books>,
    ledger: Option<Ledger>,
}

impl Accounts {
    /// Opens (and replays) the ledger; `None` keeps the books in memory only.
    pub fn open(ledger: Option<Ledger>, history: Vec<LedgerRecord>) -> Accounts {
        let accounts = Accounts { books: Mutex::new(Books::default()), ledger };
        for r in &history {
            accounts.apply(r);
        }
        accounts
    }

    fn apply(&self, r: &LedgerRecord) {
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let t = r.totals();
        if let Some(k) = &r.key {
            books.keys.entry(k.clone()).or_default().record(r.ts, &t);
        }
        if let Some(team) = &r.team {
            books.teams.entry(team.clone()).or_default().record(r.ts, &t);
        }
        books.models.entry(r.model.clone()).or_default().record(r.ts, &t);
    }

    /// Reserves `amount` against every budget of the payer, or says which one it would break.
    pub fn reserve(&self, payer: Payer, amount: f64, now: DateTime<Utc>) -> Result<Reservation, Exceeded> {
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let books = &mut *books;
        let scopes = [("key", &payer.key, &mut books.keys), ("team", &payer.team, &mut books.teams)];
        let mut to_reserve = Vec::with_capacity(2);
        for (scope, who, map) in scopes {
            let Some((name, budget)) = who else { continue };
            let Some(budget) = budget else { continue };
            let account = map.entry(name.clone()).or_default();
            let spent = account.spend_in(budget.period, now);
            if spent >= budget.usd || spent + account.reserved + amount > budget.usd {
                return Err(Exceeded {
                    scope,
                    name: name.clone(),
                    budget_usd: budget.usd,
                    spent_usd: spent,
                    reset_at: budget.period.bounds(now).1,
                });
            }
            to_reserve.push((scope, name.clone()));
        }
        for (scope, name) in to_reserve {
            let map = if scope == "key" { &mut books.keys } else { &mut books.teams };
            map.entry(name).or_default().reserved += amount;
        }
        Ok(Reservation { payer, amount })
    }

    /// Replaces the reservation by the real totals and writes the ledger line.
    pub fn settle(&self, r: &Reservation, model: &str, t: Totals, now: DateTime<Utc>) {
        let ts = now.timestamp();
        {
            let mut guard = self.books.lock().unwrap_or_else(|p| p.into_inner());
            let books = &mut *guard;
            for (who, map) in [(&r.payer.key, &mut books.keys), (&r.payer.team, &mut books.teams)] {
                if let Some((name, budget)) = who {
                    let account = map.entry(name.clone()).or_default();
                    if budget.is_some() {
                        account.reserved = (account.reserved - r.amount).max(0.0);
                    }
                    account.record(ts, &t);
                }
            }
            books.models.entry(model.to_string()).or_default().record(ts, &t);
        }
        if let Some(ledger) = &self.ledger {
            ledger.append(LedgerRecord {
                ts,
                key: r.payer.key.as_ref().map(|k| k.0.clone()),
                team: r.payer.team.as_ref().map(|t| t.0.clone()),
                model: model.to_string(),
                spend_usd: t.spend_usd,
                saved_usd: t.saved_usd,
                requests: t.requests,
                prompt_tokens: t.prompt_tokens,
                completion_tokens: t.completion_tokens,
            });
        }
    }

    /// Spend of a scope in the budget period containing `now` (for gauges and soft limits).
    pub fn spent(&self, scope: &str, name: &str, period: Period, now: DateTime<Utc>) -> f64 {
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let map = match scope {
            "key" => &mut books.keys,
            "team" => &mut books.teams,
            _ => &mut books.models,
        };
        map.get_mut(name).map_or(0.0, |a| a.spend_in(period, now))
    }

    /// Totals per name of a scope between two instants (reporting; not the request path).
    pub fn report(&self, scope: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> BTreeMap<String, Totals> {
        let books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let map = match scope {
            "key" => &books.keys,
            "team" => &books.teams,
            _ => &books.models,
        };
        map.iter().map(|(n, a)| (n.clone(), a.totals_between(start.timestamp(), end.timestamp()))).collect()
    }

    pub fn flush(&self) {
        if let Some(l) = &self.ledger {
            l.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payer(budget: f64) -> Payer {
        Payer {
            key: Some(("k".into(), Some(Budget { usd: budget, period: Period::Monthly }))),
            team: Some(("t".into(), None)),
        }
    }

    fn cost(usd: f64) -> Totals {
        Totals { spend_usd: usd, requests: 1, ..Totals::default() }
    }

    #[test]
    fn reservations_stop_concurrent_overshoot() {
        let a = Accounts::open(None, Vec::new());
        let now = Utc::now();
        // Budget 1.0, each request reserves 0.3: only three may be in flight at once.
        let held: Vec<_> = (0..3).map(|_| a.reserve(payer(1.0), 0.3, now).unwrap()).collect();
        let e = a.reserve(payer(1.0), 0.3, now).unwrap_err();
        assert_eq!((e.scope, e.name.as_str()), ("key", "k"));
        assert!(e.reset_at > now);
        for r in &held {
            a.settle(r, "m", cost(0.2), now);
        }
        // 0.6 spent, nothing reserved: one more fits, then the budget is done.
        let r = a.reserve(payer(1.0), 0.3, now).unwrap();
        a.settle(&r, "m", cost(0.45), now);
        assert!(a.reserve(payer(1.0), 0.01, now).is_err());
        assert!((a.spent("key", "k", Period::Monthly, now) - 1.05).abs() < 1e-9);
        assert!((a.spent("team", "t", Period::Monthly, now) - 1.05).abs() < 1e-9);
        assert_eq!(
            a.report("model", now - chrono::Duration::hours(1), now + chrono::Duration::hours(1))["m"].requests,
            4
        );
    }

    #[test]
    fn periods_reset_spend() {
        let a = Accounts::open(None, Vec::new());
        let p = Payer { key: Some(("k".into(), Some(Budget { usd: 1.0, period: Period::Daily }))), team: None };
        let yesterday = Utc::now() - chrono::Duration::days(1);
        let r = a.reserve(p.clone(), 0.1, yesterday).unwrap();
        a.settle(&r, "m", cost(5.0), yesterday);
        assert!(a.reserve(p.clone(), 0.1, yesterday).is_err());
        assert!(a.reserve(p, 0.1, Utc::now()).is_ok(), "a new day, a new budget");
    }
}
