//! The durable spend ledger: settled requests, summed per (hour, key, team, model) and appended
//! by a writer thread once a second, then fsynced (a crash loses at most the last second; the
//! file grows with distinct payers per second, not with requests). Replayed at start and
//! compacted to one line per (hour, key, team, model). The channel is unbounded: the ledger never
//! drops a record.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::budget::Totals;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub ts: i64,
    pub key: Option<String>,
    pub team: Option<String>,
    pub model: String,
    pub spend_usd: f64,
    pub saved_usd: f64,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

type Slot = (i64, Option<String>, Option<String>, String);

impl LedgerRecord {
    fn slot(&self) -> Slot {
        (self.ts.div_euclid(3600) * 3600, self.key.clone(), self.team.clone(), self.model.clone())
    }

    fn merge(&mut self, o: &LedgerRecord) {
        let mut t = self.totals();
        t.add(&o.totals());
        (self.spend_usd, self.saved_usd, self.requests) = (t.spend_usd, t.saved_usd, t.requests);
        (self.prompt_tokens, self.completion_tokens) = (t.prompt_tokens, t.completion_tokens);
    }

    pub fn totals(&self) -> Totals {
        Totals {
            spend_usd: self.spend_usd,
            saved_usd: self.saved_usd,
            requests: self.requests,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
    }
}

/// Records older than this are dropped at compaction (a month of history plus the previous one).
const RETENTION_SECS: i64 = 70 * 24 * 3600;
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Pause between drains of the channel, so records are merged in batches.
const COALESCE: Duration = Duration::from_millis(20);

pub struct Ledger {
    tx: Sender<LedgerRecord>,
    sent: AtomicU64,
    synced: Arc<AtomicU64>,
}

impl Ledger {
    /// Replays `path` (ignoring a torn last line), compacts it, and starts the writer.
    pub fn open(path: &Path, now_ts: i64) -> std::io::Result<(Ledger, Vec<LedgerRecord>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut history = Vec::new();
        let mut skipped = 0usize;
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<LedgerRecord>(&line) {
                    Ok(r) if r.ts >= now_ts - RETENTION_SECS => history.push(r),
                    Ok(_) => {}
                    Err(_) => skipped += 1,
                }
            }
        }
        if skipped > 0 {
            log::warn!("spend ledger {}: skipped {skipped} unreadable line(s) (a torn write)", path.display());
        }
        // Compact: one line per (hour, key, team, model), into a new file swapped in atomically.
        let history = aggregate(history);
        let tmp = PathBuf::from(format!("{}.compact", path.display()));
        {
            let mut w = BufWriter::new(File::create(&tmp)?);
            for r in &history {
                serde_json::to_writer(&mut w, r)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            w.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        let (tx, rx) = channel::<LedgerRecord>();
        let synced = Arc::new(AtomicU64::new(0));
        let synced_w = synced.clone();
        std::thread::Builder::new().name("spend-ledger".into()).spawn(move || {
            let mut out = BufWriter::new(file);
            let mut received = 0u64;
            let mut pending: HashMap<Slot, LedgerRecord> = HashMap::new();
            let mut last_sync = Instant::now();
            loop {
                let disconnected = match rx.recv_timeout(SYNC_EVERY) {
                    Ok(r) => {
                        received += 1;
                        merge_into(&mut pending, r);
                        for r in rx.try_iter() {
                            received += 1;
                            merge_into(&mut pending, r);
                        }
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => true,
                };
                if !pending.is_empty() && (disconnected || last_sync.elapsed() >= SYNC_EVERY) {
                    let mut ok = true;
                    for (_, r) in pending.drain() {
                        let line = serde_json::to_vec(&r).unwrap_or_default();
                        ok &= out.write_all(&line).and_then(|_| out.write_all(b"\n")).is_ok();
                    }
                    ok &= out.flush().and_then(|_| out.get_ref().sync_data()).is_ok();
                    if !ok {
                        log::error!("spend ledger: write or sync failed");
                    }
                    last_sync = Instant::now();
                }
                if pending.is_empty() {
                    synced_w.store(received, Ordering::Release);
                }
                if disconnected {
                    return;
                }
                // Records gather in the channel meanwhile: parked in `recv_timeout`, this thread
                // would be woken (a futex call on the sender's side) by every settled request.
                std::thread::sleep(COALESCE);
            }
        })?;
        Ok((Ledger { tx, sent: AtomicU64::new(0), synced }, history))
    }

    /// Queues a settled request (merged into its hour's line when written).
    pub fn append(&self, r: LedgerRecord) {
        if self.tx.send(r).is_ok() {
            self.sent.fetch_add(1, Ordering::Release);
        }
    }

    /// Waits (bounded) until everything appended so far is on disk.
    pub fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.synced.load(Ordering::Acquire) < self.sent.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Adds `r` to its (hour, key, team, model) line, starting the line at the hour.
fn merge_into(lines: &mut HashMap<Slot, LedgerRecord>, mut r: LedgerRecord) {
    match lines.get_mut(&r.slot()) {
        Some(line) => line.merge(&r),
        None => {
            r.ts = r.ts.div_euclid(3600) * 3600;
            lines.insert(r.slot(), r);
        }
    }
}

/// One record per (hour, key, team, model), in time order.
fn aggregate(records: Vec<LedgerRecord>) -> Vec<LedgerRecord> {
    let mut by_slot: HashMap<Slot, LedgerRecord> = HashMap::new();
    for r in records {
        merge_into(&mut by_slot, r);
    }
    let mut out: Vec<LedgerRecord> = by_slot.into_values().collect();
    out.sort_by(|a, b| (a.ts, &a.key, &a.team, &a.model).cmp(&(b.ts, &b.key, &b.team, &b.model)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64, usd: f64) -> LedgerRecord {
        LedgerRecord {
            ts,
            key: Some("k".into()),
            team: None,
            model: "m".into(),
            spend_usd: usd,
            saved_usd: 0.0,
            requests: 1,
            prompt_tokens: 1,
            completion_tokens: 1,
        }
    }

    #[test]
    fn survives_reopen_and_ignores_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spend.ledger");
        let now = 1_800_000_000;
        {
            let (l, history) = Ledger::open(&path, now).unwrap();
            assert!(history.is_empty());
            l.append(rec(now, 0.5));
            l.append(rec(now + 1, 0.25));
            l.append(rec(now - RETENTION_SECS - 10, 9.0));
            l.flush();
        }
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"ts\":17").unwrap();
        let (_l, history) = Ledger::open(&path, now).unwrap();
        let mut expected = rec(now / 3600 * 3600, 0.75);
        expected.requests = 2;
        expected.prompt_tokens = 2;
        expected.completion_tokens = 2;
        assert_eq!(history, vec![expected], "merged per hour, old lines compacted away, torn line skipped");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
