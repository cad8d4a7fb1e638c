//! The semantic tier's runtime: the embedding service (loaded off the request path, once, the
//! first time the tier is enabled) and the decision whether a close stored prompt may answer.
//! A missing or broken model never stops the gateway: the tier reports itself off (log, metric,
//! `/readyz`) and every lookup is a counted skip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::gates::Gates;
use super::SemanticConfig;
use crate::embed::EmbedService;
use crate::metrics;

/// Why a semantic lookup did not happen (the `reason` label of the skips metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The model is still loading (the first seconds after start).
    Loading,
    /// The model could not be loaded; the tier is off until a restart.
    ModelMissing,
    /// The embedding queue was full or the answer missed `embed_budget_ms`.
    Overload,
    /// The prompt is longer than `max_prompt_chars`.
    TooLong,
}

impl Skip {
    pub fn label(self) -> &'static str {
        match self {
            Skip::Loading => "loading",
            Skip::ModelMissing => "model_missing",
            Skip::Overload => "overload",
            Skip::TooLong => "too_long",
        }
    }

    pub fn count(self) {
        metrics::get().semantic_skips.with_label_values(&[self.label()]).inc();
    }
}

/// One request's semantic lookup: what is compared, and (once embedded) its vector, kept so a
/// miss's answer is indexed without a second inference.
#[derive(Debug, Clone)]
pub struct SemanticQuery {
    pub context: [u8; 32],
    pub text: String,
    pub vector: Option<Vec<f32>>,
    pub threshold: f32,
    pub ttl_secs: u64,
}

#[derive(Default)]
pub struct SemanticRuntime {
    started: AtomicBool,
    state: OnceLock<Result<EmbedService, String>>,
    /// Loaded before the model, so it is there whenever an embedding is.
    gates: OnceLock<Gates>,
}

impl SemanticRuntime {
    pub fn new() -> Arc<SemanticRuntime> {
        Arc::new(SemanticRuntime::default())
    }

    /// Starts loading the model on its own thread, the first time only (cheap to call per request).
    pub fn ensure_started(self: &Arc<Self>, cfg: &SemanticConfig) {
        if self.started.load(Ordering::Relaxed) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let cfg = cfg.clone();
        let spawned = std::thread::Builder::new().name("embed-load".into()).spawn(move || {
            let started = std::time::Instant::now();
            let gates = me.gates.get_or_init(|| Gates::load(None));
            if !gates.has_wordnet() {
                log::warn!(
                    "semantic cache: WordNet not found (apt install wordnet-base): gates run without word relations"
                );
            }
            let dir = model_dir(&cfg.model_dir);
            let result = EmbedService::start(
                &dir,
                cfg.threads,
                cfg.max_batch,
                Duration::from_millis(cfg.batch_wait_ms),
                cfg.queue,
            );
            match &result {
                Ok(_) => {
                    log::info!("semantic cache: model loaded from {} in {:?}", dir.display(), started.elapsed());
                    metrics::get().semantic_up.set(1);
                }
                Err(e) => log::error!(
                    "semantic cache: OFF — {e}. Exact caching and proxying work as usual; \
                     run scripts/setup-model.sh (or set cache.semantic.model_dir) and restart"
                ),
            }
            let _ = me.state.set(result);
        });
        if let Err(e) = spawned {
            let _ = self.state.set(Err(format!("cannot start the loader thread: {e}")));
        }
    }

    /// Why the tier is not serving, when it is enabled but not ready (for `/readyz`).
    pub fn degraded(&self) -> Option<String> {
        match self.state.get() {
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(format!("semantic cache off: {e}")),
            None if self.started.load(Ordering::Relaxed) => Some("semantic cache: model loading".into()),
            None => None,
        }
    }

    /// The prompt's embedding, or why there is none. Awaits the batching thread; never blocks.
    pub async fn embed(&self, text: &str, cfg: &SemanticConfig) -> Result<Vec<f32>, Skip> {
        if text.len() > cfg.max_prompt_chars {
            return Err(Skip::TooLong);
        }
        let service = match self.state.get() {
            Some(Ok(s)) => s,
            Some(Err(_)) => return Err(Skip::ModelMissing),
            None => return Err(Skip::Loading),
        };
        service.embed(text, Duration::from_millis(cfg.embed_budget_ms)).await.ok_or(Skip::Overload)
    }
}

impl SemanticRuntime {
    /// Whether the answer stored for `cached` may serve `query`: similar enough, and (unless the
    /// gates are off) no difference between the two that changes the answer.
    pub fn accept(&self, query: &str, cached: &str, similarity: f32, threshold: f32, cfg: &SemanticConfig) -> bool {
        if similarity < threshold {
            return false;
        }
        let Some(stage) = cfg.gates.stage() else { return true };
        match self.gates.get() {
            Some(gates) => {
                let cutoff = cfg.gate_cutoff.unwrap_or_else(|| gates.weights().cutoff);
                gates.check_stage_at(query, cached, similarity, stage, cutoff).pass
            }
            None => false,
        }
    }
}

/// `~/x` expanded; empty: the default model directory.
fn model_dir(configured: &str) -> PathBuf {
    if configured.is_empty() {
        return crate::embed::default_model_dir();
    }
    match configured.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest),
        None => PathBuf::from(configured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_model_turns_the_tier_off_without_failing() {
        let rt = SemanticRuntime::new();
        let cfg = SemanticConfig { model_dir: "/nonexistent/models".into(), ..Default::default() };
        assert_eq!(rt.degraded(), None);
        rt.ensure_started(&cfg);
        for _ in 0..200 {
            if rt.state.get().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rt.degraded().unwrap().contains("missing"), "{:?}", rt.degraded());
        assert_eq!(rt.embed("hello", &cfg).await, Err(Skip::ModelMissing));
        let long = "x".repeat(cfg.max_prompt_chars + 1);
        assert_eq!(rt.embed(&long, &cfg).await, Err(Skip::TooLong));
    }

    #[test]
    fn acceptance_needs_the_threshold_and_the_gates() {
        let rt = SemanticRuntime::new();
        let on = SemanticConfig::default();
        let off = SemanticConfig { gates: super::super::GateMode::None, ..Default::default() };
        let rules = SemanticConfig { gates: super::super::GateMode::Rules, ..Default::default() };
        assert!(!rt.accept("how do I enable 2FA", "how do I enable 2FA?", 0.97, 0.9, &on), "no gates loaded yet");
        rt.gates.get_or_init(|| Gates::load(None));
        assert!(rt.accept("how do I enable 2FA", "how do I enable 2FA?", 0.97, 0.9, &on));
        assert!(!rt.accept("how do I enable 2FA", "how do I enable 2FA?", 0.85, 0.9, &on));
        assert!(!rt.accept("how do I enable 2FA", "how do I disable 2FA", 0.95, 0.9, &on));
        assert!(!rt.accept("how do I enable 2FA", "how do I disable 2FA", 0.95, 0.9, &rules));
        assert!(rt.accept("how do I enable 2FA", "how do I disable 2FA", 0.95, 0.9, &off));
        // A cut-off of 1 lets nothing past the combiner; 0 leaves the rules alone to decide.
        let strict = SemanticConfig { gate_cutoff: Some(1.0), ..Default::default() };
        assert!(!rt.accept("how do I enable 2FA", "how do I enable 2FA?", 0.97, 0.9, &strict));
        assert!(model_dir("~/m").ends_with("m") && !model_dir("~/m").starts_with("~"));
    }
}
