//! The audit log: one JSON line per request, written by its own thread through a bounded queue,
//! with size rotation (`audit.jsonl.1`, `.2`, ... — never truncated in place) and optional
//! redaction of request bodies. A full queue applies back-pressure for at most `block_ms`
//! (`on_full: block`, the default) or sheds (`drop`); every dropped record is counted.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub enabled: bool,
    pub path: String,
    /// Add the request body (`request` field) to each line.
    pub include_bodies: bool,
    /// Mask emails, phone numbers, card numbers and API-key-like strings in bodies.
    pub redact: bool,
    pub rotate_bytes: u64,
    pub keep_files: u32,
    /// `block` (wait up to `block_ms` for room) or `drop` (shed, counted).
    pub on_full: String,
    pub block_ms: u64,
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: "logs/audit.jsonl".into(),
            include_bodies: false,
            redact: true,
            rotate_bytes: 100 * 1024 * 1024,
            keep_files: 10,
            on_full: "block".into(),
            block_ms: 50,
            queue: 65_536,
        }
    }
}

/// One line of the audit log; field names are part of the public contract.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub ts: String,
    pub request_id: String,
    pub key: Option<String>,
    pub team: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub status: u16,
    pub cache: &'static str,
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub estimated: bool,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub overhead_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

struct Handle {
    /// Records go as structs: serialising (and redacting) them is the writer thread's work.
    tx: SyncSender<Box<AuditRecord>>,
    config: AuditConfig,
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

static AUDIT: OnceLock<Handle> = OnceLock::new();

/// Starts the writer thread. Called once at startup; the audit settings need a restart.
pub fn start(config: &AuditConfig) -> std::io::Result<()> {
    if !config.enabled || AUDIT.get().is_some() {
        return Ok(());
    }
    let path = PathBuf::from(&config.path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = open(&path)?;
    let (tx, rx) = sync_channel(config.queue.max(1));
    let handle = Handle {
        tx,
        config: config.clone(),
        queued: AtomicU64::new(0),
        written: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    };
    if AUDIT.set(handle).is_err() {
        return Ok(());
    }
    let (rotate, keep, redact) = (config.rotate_bytes.max(1024), config.keep_files.max(1), config.redact);
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || write_loop(rx, path, file, rotate, keep, redact))?;
    Ok(())
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(rx: Receiver<Box<AuditRecord>>, path: PathBuf, file: File, rotate: u64, keep: u32, redact: bool) {
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut line = Vec::with_capacity(1024);
    while let Ok(first) = rx.recv() {
        for mut record in std::iter::once(first).chain(rx.try_iter().take(4096)) {
            if redact {
                record.request = record.request.map(|r| self::redact(&r));
            }
            line.clear();
            match serde_json::to_writer(&mut line, &record) {
                Ok(()) => line.push(b'\n'),
                Err(e) => log::error!("audit: record not serialisable: {e}"),
            }
            if size > 0 && size + line.len() as u64 > rotate {
                let _ = out.flush();
                rotate_files(&path, keep);
                match open(&path) {
                    Ok(f) => {
                        out = BufWriter::with_capacity(256 * 1024, f);
                        size = 0;
                    }
                    Err(e) => log::error!("audit: cannot reopen {}: {e}", path.display()),
                }
            }
            if let Err(e) = out.write_all(&line) {
                log::error!("audit: write failed: {e}");
            }
            size += line.len() as u64;
            if let Some(h) = AUDIT.get() {
                h.written.fetch_add(1, Ordering::Release);
            }
        }
        if let Err(e) = out.flush() {
            log::error!("audit: flush failed: {e}");
        }
        // Let records gather before the next batch: a writer parked in `recv` is woken by every
        // send, a cross-thread wake-up (futex) per request on the request path's side.
        std::thread::sleep(COALESCE);
    }
}

/// How long the writer lets records gather between batches (the queue holds 65k by default).
const COALESCE: Duration = Duration::from_millis(10);

/// audit.jsonl -> .1 -> .2 ... keeping `keep` rotated files.
fn rotate_files(path: &Path, keep: u32) {
    let name = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
    let _ = std::fs::remove_file(name(keep));
    for i in (1..keep).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    let _ = std::fs::rename(path, name(1));
}

pub fn include_bodies() -> bool {
    AUDIT.get().is_some_and(|h| h.config.include_bodies)
}

/// Queues one record. Never blocks longer than `block_ms`; a shed record is counted.
pub async fn submit(record: AuditRecord) {
    let Some(h) = AUDIT.get() else { return };
    let deadline = Instant::now() + Duration::from_millis(h.config.block_ms);
    let mut line = Some(Box::new(record));
    loop {
        match h.tx.try_send(line.take().expect("record present")) {
            Ok(()) => {
                h.queued.fetch_add(1, Ordering::Release);
                return;
            }
            Err(TrySendError::Full(back)) if h.config.on_full == "block" && Instant::now() < deadline => {
                line = Some(back);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => {
                h.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::get().audit_dropped.inc();
                return;
            }
        }
    }
}

/// Waits (bounded) until every queued record is on disk. Used before a graceful exit.
pub fn flush(timeout: Duration) {
    let Some(h) = AUDIT.get() else { return };
    let deadline = Instant::now() + timeout;
    while h.written.load(Ordering::Acquire) < h.queued.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        [
            (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[email]"),
            (r"\b(?:sk|pk|rk|key|api|tok)[-_][A-Za-z0-9_-]{16,}\b", "[api-key]"),
            (r"\b[A-Za-z0-9]{32,}\b", "[secret]"),
            (r"\b(?:\d[ -]?){12,18}\d\b", "[card]"),
            (r"\+?\(?\d{1,4}\)?[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}\b", "[phone]"),
        ]
        .into_iter()
        .map(|(re, with)| (Regex::new(re).expect("static regex"), with))
        .collect()
    })
}

/// Masks emails, API-key-like strings, card numbers and phone numbers.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in patterns() {
        out = re.replace_all(&out, *with).into_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_masks_personal_data_and_secrets() {
        let r = redact("mail bob.smith@example.com, call +1 415-555-0134, card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwx");
        assert!(
            !r.contains("bob.smith") && !r.contains("555-0134") && !r.contains("4111") && !r.contains("sk-abc"),
            "{r}"
        );
        assert!(
            r.contains("[email]") && r.contains("[card]") && r.contains("[api-key]") && r.contains("[phone]"),
            "{r}"
        );
        assert_eq!(redact("how do I bake 2 loaves of bread?"), "how do I bake 2 loaves of bread?");
    }

    #[test]
    fn rotation_shifts_files_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        for i in 0..4 {
            std::fs::write(&p, format!("{i}")).unwrap();
            rotate_files(&p, 2);
        }
        assert_eq!(std::fs::read_to_string(dir.path().join("a.jsonl.1")).unwrap(), "3");
        assert_eq!(std::fs::read_to_string(dir.path().join("a.jsonl.2")).unwrap(), "2");
        assert!(!dir.path().join("a.jsonl.3").exists());
    }
}
