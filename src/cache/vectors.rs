//! The semantic tier's vector index: one small usearch HNSW index per context key, so a search
//! only ever sees prompts asked under the same scope, route, system prompt, history, tools and
//! sampling parameters — a paraphrase under another context is not even a candidate.
//!
//! Concurrency: searches share a shard's lock; inserts and removals take it exclusively, for one
//! small graph update. Writes are rare next to reads (one per completed cache miss), and being
//! per context, a write only ever makes the searches of that same context wait.

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// usearch hands each concurrent caller a thread slot; more callers than slots would wait.
const THREAD_SLOTS: usize = 64;
const FIRST_CAPACITY: usize = 8;

pub struct VectorIndex {
    dims: usize,
    shards: DashMap<[u8; 32], Arc<Shard>, ahash::RandomState>,
}

struct Shard {
    index: RwLock<Index>,
}

impl VectorIndex {
    pub fn new(dims: usize) -> VectorIndex {
        VectorIndex { dims, shards: DashMap::with_hasher(ahash::RandomState::new()) }
    }

    /// Adds (or replaces) `id` in the shard of `context`. `vector` must be unit length.
    pub fn insert(&self, context: &[u8; 32], id: u64, vector: &[f32]) -> Result<(), String> {
        if vector.len() != self.dims {
            return Err(format!("vector of {} dims, index has {}", vector.len(), self.dims));
        }
        let shard = match self.shards.get(context) {
            Some(s) => s.clone(),
            None => self.shards.entry(*context).or_try_insert_with(|| Shard::new(self.dims))?.clone(),
        };
        let index = shard.index.write().map_err(|_| "poisoned shard")?;
        if index.contains(id) {
            index.remove(id).map_err(|e| e.to_string())?;
        }
        if index.size() + 1 > index.capacity() {
            let grown = (index.capacity() * 2).max(FIRST_CAPACITY);
            index.reserve_capacity_and_threads(grown, THREAD_SLOTS).map_err(|e| e.to_string())?;
        }
        index.add(id, vector).map_err(|e| e.to_string())
    }

    /// Sizes `context`'s shard for `n` vectors up front (bulk loads: no regrowth on the way).
    pub fn reserve(&self, context: &[u8; 32], n: usize) -> Result<(), String> {
        let shard = self.shards.entry(*context).or_try_insert_with(|| Shard::new(self.dims))?.clone();
        let index = shard.index.write().map_err(|_| "poisoned shard")?;
        index.reserve_capacity_and_threads(n.max(index.capacity()), THREAD_SLOTS).map_err(|e| e.to_string())
    }

    pub fn remove(&self, context: &[u8; 32], id: u64) {
        let Some(shard) = self.shards.get(context).map(|s| s.clone()) else { return };
        let empty = match shard.index.write() {
            Ok(index) => {
                let _ = index.remove(id);
                index.size() == 0
            }
            Err(_) => false,
        };
        if empty {
            // Only when still empty under the map's lock: an insert may have raced in.
            self.shards.remove_if(context, |_, s| s.index.read().map(|i| i.size() == 0).unwrap_or(false));
        }
    }

    /// Up to `k` nearest ids in `context`'s shard with their approximate cosine similarity
    /// (the index stores 8-bit vectors; callers confirm with the exact vectors they keep).
    pub fn search(&self, context: &[u8; 32], vector: &[f32], k: usize) -> Vec<(u64, f32)> {
        let Some(shard) = self.shards.get(context).map(|s| s.clone()) else { return Vec::new() };
        let Ok(index) = shard.index.read() else { return Vec::new() };
        match index.search(vector, k) {
            Ok(m) => m.keys.into_iter().zip(m.distances).map(|(id, d)| (id, 1.0 - d)).collect(),
            Err(e) => {
                log::warn!("semantic cache: vector search failed: {e}");
                Vec::new()
            }
        }
    }

    /// Vectors held, over all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.index.read().map(|i| i.size()).unwrap_or(0)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    pub fn shards(&self) -> usize {
        self.shards.len()
    }
}

impl Shard {
    fn new(dims: usize) -> Result<Arc<Shard>, String> {
        let options = IndexOptions {
            dimensions: dims,
            metric: MetricKind::Cos,
            quantization: ScalarKind::I8,
            connectivity: 0,
            expansion_add: 0,
            expansion_search: 0,
            multi: false,
        };
        let index = Index::new(&options).map_err(|e| format!("vector index: {e}"))?;
        index.reserve_capacity_and_threads(FIRST_CAPACITY, THREAD_SLOTS).map_err(|e| e.to_string())?;
        Ok(Arc::new(Shard { index: RwLock::new(index) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() - 0.5).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    #[test]
    fn shards_keep_contexts_apart_and_removal_empties_them() {
        let idx = VectorIndex::new(32);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for i in 0..50 {
            idx.insert(&a, i, &unit(i, 32)).unwrap();
        }
        idx.insert(&b, 1000, &unit(7, 32)).unwrap();
        let found = idx.search(&a, &unit(7, 32), 3);
        assert_eq!(found[0].0, 7);
        assert!(found[0].1 > 0.97, "{found:?}");
        // The same vector in another context is invisible from this one, and vice versa.
        assert_eq!(idx.search(&b, &unit(7, 32), 3).iter().map(|f| f.0).collect::<Vec<_>>(), vec![1000]);
        assert!(idx.search(&[3u8; 32], &unit(7, 32), 3).is_empty());
        idx.remove(&b, 1000);
        assert_eq!(idx.shards(), 1);
        idx.remove(&a, 7);
        assert!(idx.search(&a, &unit(7, 32), 3).iter().all(|f| f.0 != 7));
        assert_eq!(idx.len(), 49);
        assert!(idx.insert(&a, 1, &[0.0; 3]).is_err());
    }

    #[test]
    fn concurrent_inserts_and_searches() {
        let idx = Arc::new(VectorIndex::new(16));
        let ctx = [9u8; 32];
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let idx = idx.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let id = t * 1000 + i;
                        idx.insert(&ctx, id, &unit(id, 16)).unwrap();
                        let _ = idx.search(&ctx, &unit(i, 16), 2);
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(idx.len(), 800);
    }
}
