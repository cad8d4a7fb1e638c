//! The cache store: answers by exact key, bounded in bytes with TTL and LRU-ish eviction (oldest
//! use first; the scan runs on the `cache-evict` thread, never on a request's worker). An entry
//! stored with a semantic form also has its prompt's vector in the
//! [`VectorIndex`]; whatever removes the entry (eviction, expiry, replacement) removes the vector.
//! Snapshotted to a file (entries and vectors) and restored on start. A snapshot carries a
//! SHA-256 of its body: a torn or corrupt file is detected and ignored, never loaded half-way.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use super::vectors::VectorIndex;
use crate::spend::usage::Usage;

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A complete answer, as the provider sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Json(Bytes),
    /// SSE events, each with its blank-line terminator, `[DONE]` included.
    Sse(Vec<Bytes>),
}

impl Answer {
    fn size(&self) -> usize {
        match self {
            Answer::Json(b) => b.len(),
            Answer::Sse(events) => events.iter().map(|e| e.len() + 16).sum(),
        }
    }
}

#[derive(Debug)]
pub struct Entry {
    pub answer: Answer,
    pub expires_at: u64,
    /// The original answer's usage, replayed as is and priced as the saving.
    pub usage: Usage,
    pub upstream_model: String,
    /// The prompt's semantic form, when the semantic tier indexed it.
    pub semantic: Option<SemanticRef>,
    last_used: AtomicU64,
}

/// What the semantic tier keeps of a stored prompt: its context, its text (for the gates) and its
/// exact vector (the index holds a quantised copy).
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticRef {
    pub context: [u8; 32],
    pub prompt: Box<str>,
    pub vector: Box<[f32]>,
    /// The semantic tier's own TTL (the exact key may outlive it).
    pub expires_at: u64,
}

impl Entry {
    pub fn new(answer: Answer, ttl_secs: u64, usage: Usage, upstream_model: String) -> Entry {
        let now = now_secs();
        Entry {
            answer,
            expires_at: now + ttl_secs,
            usage,
            upstream_model,
            semantic: None,
            last_used: AtomicU64::new(now),
        }
    }

    fn size(&self) -> usize {
        let semantic = self.semantic.as_ref().map_or(0, |s| s.prompt.len() + s.vector.len() * 5 + 64);
        self.answer.size() + semantic + 128
    }
}

/// The low 64 bits of an exact key: the entry's id in the vector index.
fn vector_id(key: &[u8; 32]) -> u64 {
    u64::from_le_bytes(key[..8].try_into().expect("8 bytes"))
}

pub struct CacheStore {
    map: DashMap<[u8; 32], Arc<Entry>>,
    vectors: VectorIndex,
    /// Vector id -> exact key, for the entries that have a vector.
    ids: DashMap<u64, [u8; 32], ahash::RandomState>,
    bytes: AtomicUsize,
    max_bytes: usize,
    pub evictions: AtomicU64,
    /// Wakes the eviction thread; `None` (or a dead thread): the inserting caller evicts.
    evictor: Option<SyncSender<()>>,
    /// One eviction at a time: it is a scan of every entry.
    evicting: AtomicBool,
}

impl CacheStore {
    pub fn new(max_bytes: usize) -> CacheStore {
        CacheStore {
            // Many small shards: the eviction scan holds each one's read lock while it walks it,
            // and an insert into that shard waits; 256 keeps the wait to a fraction of a millisecond.
            map: DashMap::with_shard_amount(256),
            vectors: VectorIndex::new(crate::embed::DIMS),
            ids: DashMap::with_hasher(ahash::RandomState::new()),
            bytes: AtomicUsize::new(0),
            max_bytes,
            evictions: AtomicU64::new(0),
            evictor: None,
            evicting: AtomicBool::new(false),
        }
    }

    /// Evictions run where `wake` is received (see [`super::Cache::new`]) instead of inline.
    pub fn evicting_on(mut self, wake: SyncSender<()>) -> CacheStore {
        self.evictor = Some(wake);
        self
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Entry>> {
        let now = now_secs();
        let entry = self.map.get(key)?.clone();
        if entry.expires_at <= now {
            self.remove(key);
            return None;
        }
        entry.last_used.store(now, Ordering::Relaxed);
        Some(entry)
    }

    pub fn insert(&self, key: [u8; 32], mut entry: Entry) {
        let size = entry.size();
        // Past the bound by a quarter, eviction has fallen behind: the answer is not stored.
        if size > self.max_bytes || self.bytes.load(Ordering::Relaxed) > self.max_bytes + self.max_bytes / 4 {
            return;
        }
        if let Some(s) = &entry.semantic {
            if let Err(e) = self.vectors.insert(&s.context, vector_id(&key), &s.vector) {
                log::warn!("semantic cache: not indexed: {e}");
                entry.semantic = None;
            }
        }
        let indexed = entry.semantic.as_ref().map(|s| s.context);
        if indexed.is_some() {
            self.ids.insert(vector_id(&key), key);
        }
        if let Some(old) = self.map.insert(key, Arc::new(entry)) {
            self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
            // A replacement under another context (or none) leaves no stale vector behind.
            if let Some(s) = old.semantic.as_ref().filter(|s| Some(s.context) != indexed) {
                self.vectors.remove(&s.context, vector_id(&key));
                if indexed.is_none() {
                    self.ids.remove(&vector_id(&key));
                }
            }
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if self.bytes.load(Ordering::Relaxed) > self.max_bytes && !self.evicting.swap(true, Ordering::AcqRel) {
            let handed_off = self.evictor.as_ref().is_some_and(|wake| wake.try_send(()).is_ok());
            if !handed_off {
                self.evict();
            }
        }
    }

    fn remove(&self, key: &[u8; 32]) {
        if let Some((_, old)) = self.map.remove(key) {
            self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
            if let Some(s) = &old.semantic {
                self.vectors.remove(&s.context, vector_id(key));
                self.ids.remove(&vector_id(key));
            }
        }
    }

    /// Live entries whose prompt is close to `vector` under `context`, best first, with their
    /// exact cosine similarity (`k` candidates from the index, confirmed on the kept vectors).
    pub fn semantic_candidates(
        &self,
        context: &[u8; 32],
        vector: &[f32],
        k: usize,
    ) -> Vec<([u8; 32], Arc<Entry>, f32)> {
        let now = now_secs();
        let mut found: Vec<([u8; 32], Arc<Entry>, f32)> = Vec::with_capacity(k);
        for (id, _) in self.vectors.search(context, vector, k) {
            let Some(key) = self.ids.get(&id).map(|k| *k) else { continue };
            let Some(entry) = self.get(&key) else { continue };
            let Some(s) = entry.semantic.as_ref().filter(|s| s.context == *context && s.expires_at > now) else {
                continue;
            };
            let cos = crate::embed::cosine(vector, &s.vector);
            found.push((key, entry, cos));
        }
        found.sort_by(|a, b| b.2.total_cmp(&a.2));
        found
    }

    /// Vectors in the semantic index, and how many contexts (shards) they fall in.
    pub fn vector_counts(&self) -> (usize, usize) {
        (self.vectors.len(), self.vectors.shards())
    }

    /// Drops expired entries, then the least recently used, down to 90 % of the bound. Called by
    /// the insert that crossed the bound (through the eviction thread when there is one).
    pub fn evict(&self) {
        let now = now_secs();
        let mut candidates: Vec<([u8; 32], u64, bool)> =
            self.map.iter().map(|e| (*e.key(), e.last_used.load(Ordering::Relaxed), e.expires_at <= now)).collect();
        candidates.sort_unstable_by_key(|(_, used, expired)| (!expired, *used));
        let target = self.max_bytes / 10 * 9;
        for (key, _, _) in candidates {
            if self.bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            self.remove(&key);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        self.evicting.store(false, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Writes every live entry to `path` (temp file + rename, so a crash never leaves half).
    pub fn snapshot(&self, path: &Path) -> std::io::Result<usize> {
        let now = now_secs();
        let entries: Vec<SnapEntry> = self
            .map
            .iter()
            .filter(|e| e.expires_at > now)
            .map(|e| SnapEntry {
                key: hex::encode(e.key()),
                expires_at: e.expires_at,
                upstream_model: e.upstream_model.clone(),
                usage: [e.usage.prompt_tokens, e.usage.completion_tokens, e.usage.cached_tokens],
                json: match &e.answer {
                    Answer::Json(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Answer::Sse(_) => None,
                },
                sse: match &e.answer {
                    Answer::Sse(ev) => Some(ev.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()),
                    Answer::Json(_) => None,
                },
                semantic: e.semantic.as_ref().filter(|s| s.expires_at > now).map(|s| SnapSemantic {
                    context: hex::encode(s.context),
                    prompt: s.prompt.to_string(),
                    vector: s.vector.to_vec(),
                    expires_at: s.expires_at,
                }),
            })
            .collect();
        let body = serde_json::to_vec(&entries).map_err(std::io::Error::other)?;
        let header = serde_json::json!({ "format": "switchyard-cache", "version": 2, "count": entries.len(),
                                         "sha256": hex::encode(crate::spend::keys::sha256(&body)) });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(header.to_string().as_bytes())?;
            f.write_all(b"\n")?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(entries.len())
    }

    /// Loads a snapshot; `Err` (with why) for a missing, corrupt or partial file, leaving the
    /// store untouched.
    pub fn restore(&self, path: &Path) -> Result<usize, String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        let split = data.iter().position(|&b| b == b'\n').ok_or("no header line")?;
        let header: serde_json::Value = serde_json::from_slice(&data[..split]).map_err(|e| format!("header: {e}"))?;
        let body = &data[split + 1..];
        // Version 1 had no vectors; its entries load as exact-only.
        if header["format"] != "switchyard-cache" || !(header["version"] == 1 || header["version"] == 2) {
            return Err("not a switchyard cache snapshot (or another version)".into());
        }
        if header["sha256"].as_str() != Some(&hex::encode(crate::spend::keys::sha256(body))) {
            return Err("checksum mismatch (torn or corrupt file)".into());
        }
        let entries: Vec<SnapEntry> = serde_json::from_slice(body).map_err(|e| format!("entries: {e}"))?;
        let now = now_secs();
        let mut loaded = 0;
        for e in entries.into_iter().filter(|e| e.expires_at > now) {
            let Ok(key) = hex::decode(&e.key).map_err(|_| ()).and_then(|k| <[u8; 32]>::try_from(k).map_err(|_| ()))
            else {
                continue;
            };
            let answer = match (e.json, e.sse) {
                (Some(j), None) => Answer::Json(Bytes::from(j)),
                (None, Some(ev)) => Answer::Sse(ev.into_iter().map(Bytes::from).collect()),
                _ => continue,
            };
            let usage = Usage {
                prompt_tokens: e.usage[0],
                completion_tokens: e.usage[1],
                cached_tokens: e.usage[2],
                estimated: false,
            };
            let mut entry = Entry::new(answer, 0, usage, e.upstream_model);
            entry.expires_at = e.expires_at;
            entry.semantic = e.semantic.and_then(|s| {
                let context = <[u8; 32]>::try_from(hex::decode(&s.context).ok()?).ok()?;
                (s.vector.len() == crate::embed::DIMS && s.expires_at > now).then(|| SemanticRef {
                    context,
                    prompt: s.prompt.into(),
                    vector: s.vector.into(),
                    expires_at: s.expires_at,
                })
            });
            self.insert(key, entry);
            loaded += 1;
        }
        Ok(loaded)
    }
}

#[derive(Serialize, Deserialize)]
struct SnapEntry {
    key: String,
    expires_at: u64,
    upstream_model: String,
    usage: [u64; 3],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sse: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    semantic: Option<SnapSemantic>,
}

#[derive(Serialize, Deserialize)]
struct SnapSemantic {
    context: String,
    prompt: String,
    vector: Vec<f32>,
    expires_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry::new(Answer::Json(Bytes::from(vec![b'x'; n])), 60, Usage::default(), "m".into())
    }

    #[test]
    fn bounded_by_bytes_evicting_least_recently_used() {
        let s = CacheStore::new(10_000);
        for i in 0..5u8 {
            s.insert([i; 32], entry(1500));
        }
        assert!(s.get(&[0; 32]).is_some()); // recently used: survives
        for i in 5..10u8 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            s.insert([i; 32], entry(1500));
        }
        assert!(s.bytes() <= 10_000);
        assert!(s.evictions.load(Ordering::Relaxed) > 0);
        assert!(s.get(&[9; 32]).is_some());
    }

    #[test]
    fn the_eviction_thread_brings_the_store_back_under_its_bound() {
        let cache = crate::cache::Cache::new(10_000);
        for i in 0..10u8 {
            cache.store.insert([i; 32], entry(1500));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.store.bytes() > 10_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(cache.store.bytes() <= 10_000, "{} bytes", cache.store.bytes());
        assert!(cache.store.evictions.load(Ordering::Relaxed) > 0);
        assert!(cache.store.len() >= 5, "down to 90 % of the bound, not emptied");
    }

    #[test]
    fn an_evictor_that_falls_behind_stops_stores_a_quarter_past_the_bound() {
        let (wake, _never_read) = std::sync::mpsc::sync_channel(1);
        let s = CacheStore::new(10_000).evicting_on(wake);
        for i in 0..20u8 {
            s.insert([i; 32], entry(1500));
        }
        assert!(s.len() < 20);
        assert!(s.bytes() <= 12_500 + 1628, "{} bytes", s.bytes());
        s.evict();
        assert!(s.bytes() <= 9_000);
        s.insert([99; 32], entry(1500));
        assert!(s.get(&[99; 32]).is_some(), "under the bound again: stored");
    }

    #[test]
    fn snapshot_round_trip_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.snap");
        let s = CacheStore::new(1 << 20);
        s.insert([1; 32], entry(10));
        s.insert(
            [2; 32],
            Entry::new(Answer::Sse(vec![Bytes::from_static(b"data: [DONE]\n\n")]), 60, Usage::default(), "m".into()),
        );
        assert_eq!(s.snapshot(&path).unwrap(), 2);
        let t = CacheStore::new(1 << 20);
        assert_eq!(t.restore(&path).unwrap(), 2);
        assert_eq!(t.get(&[2; 32]).unwrap().answer, s.get(&[2; 32]).unwrap().answer);

        let mut data = std::fs::read(&path).unwrap();
        let n = data.len();
        data.truncate(n - 5);
        std::fs::write(&path, &data).unwrap();
        let u = CacheStore::new(1 << 20);
        assert!(u.restore(&path).unwrap_err().contains("checksum"));
        assert!(u.is_empty());
    }

    fn semantic_entry(n: u64, context: [u8; 32], prompt: &str) -> Entry {
        let mut rng = fastrand::Rng::with_seed(n);
        let mut v: Vec<f32> = (0..crate::embed::DIMS).map(|_| rng.f32() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        let mut e = entry(10);
        e.semantic =
            Some(SemanticRef { context, prompt: prompt.into(), vector: v.into(), expires_at: now_secs() + 60 });
        e
    }

    #[test]
    fn vectors_follow_their_entries_through_eviction_replacement_and_snapshots() {
        let s = CacheStore::new(1 << 20);
        let ctx = [7u8; 32];
        let e = semantic_entry(1, ctx, "what is rust");
        let v = e.semantic.as_ref().unwrap().vector.clone();
        s.insert([1; 32], e);
        s.insert([2; 32], semantic_entry(2, ctx, "something else"));
        let found = s.semantic_candidates(&ctx, &v, 4);
        assert_eq!(found[0].0, [1; 32]);
        assert!((found[0].2 - 1.0).abs() < 1e-5);
        assert!(s.semantic_candidates(&[8u8; 32], &v, 4).is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.snap");
        s.snapshot(&path).unwrap();
        let t = CacheStore::new(1 << 20);
        assert_eq!(t.restore(&path).unwrap(), 2);
        assert_eq!(t.vector_counts(), (2, 1));
        assert_eq!(t.semantic_candidates(&ctx, &v, 4)[0].0, [1; 32]);

        // Replaced without a semantic form: the vector goes with the old entry.
        s.insert([1; 32], entry(10));
        assert!(s.semantic_candidates(&ctx, &v, 4).iter().all(|c| c.0 != [1; 32]));
        assert_eq!(s.vector_counts(), (1, 1));
        // Evicted: gone from the index too.
        let small = CacheStore::new(12_000);
        for i in 0..10u8 {
            small.insert([i; 32], semantic_entry(i as u64, ctx, "q"));
        }
        assert!(small.evictions.load(Ordering::Relaxed) > 0);
        assert_eq!(small.vector_counts().0, small.len());
    }
}
