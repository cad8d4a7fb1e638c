//! `mock-provider`: a realistic OpenAI-compatible upstream for tests and load tests.
//!
//! Speaks Chat Completions (with tool calls, see `openai.rs`), Completions, Embeddings and Models
//! (JSON and SSE, with `usage` and the final usage chunk when `stream_options.include_usage` is
//! set). Also speaks, selected by
//! path, Anthropic Messages on `POST /v1/messages` (see `anthropic.rs`), Google Gemini on
//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` (see
//! `gemini.rs`) and Amazon Bedrock Converse on `POST /model/{modelId}/converse` and
//! `/converse-stream`, SigV4-checked (see `bedrock.rs`), each with its own errors, tool calls
//! and stream framing. Answers are deterministic
//! functions of the prompt. Latency, streaming speed, answer length, error statuses and
//! mid-stream disconnects are set by flags, or per request by `x-mock-*` headers.
//!
//! `cargo run --release --bin mock-provider -- --listen 127.0.0.1:9001`

mod answer;
mod anthropic;
mod bedrock;
mod gemini;
mod openai;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Behaviour knobs. Each flag has an `x-mock-<flag>` request header that overrides it.
#[derive(Parser, Debug, Clone)]
#[command(name = "mock-provider", version, about = "OpenAI-compatible mock upstream for Switchyard tests")]
pub struct Knobs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Delay before the response head, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Streaming speed; 0 sends every token at once.
    #[arg(long, default_value_t = 0)]
    pub tokens_per_sec: u64,
    /// Tokens in each answer.
    #[arg(long, default_value_t = 16)]
    pub answer_tokens: usize,
    /// Answer every request with this status (429, 500, 503...) and an OpenAI error body.
    #[arg(long)]
    pub fail_status: Option<u16>,
    /// `Retry-After` seconds sent with a 429.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Drop the connection after this many SSE chunks (no terminating chunk, no [DONE]).
    #[arg(long)]
    pub cut_after_chunks: Option<usize>,
    /// Reject requests whose `Authorization` is not `Bearer <KEY>` (on `/v1/messages`: whose
    /// `x-api-key` is not `<KEY>`) with a 401; Gemini requests whose `x-goog-api-key` is not
    /// `<KEY>` with Google's 400 `API_KEY_INVALID` (403 when missing).
    #[arg(long)]
    pub require_key: Option<String>,
    /// Bedrock: reject SigV4 credentials with another access key id (403 UnrecognizedClientException).
    #[arg(long)]
    pub aws_access_key_id: Option<String>,
    /// Bedrock: recompute each request's SigV4 signature with this secret and reject mismatches
    /// (403 InvalidSignatureException). Without it only the signature's format is checked.
    #[arg(long)]
    pub aws_secret_access_key: Option<String>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

fn main() -> std::io::Result<()> {
    let knobs = Knobs::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(knobs.threads.max(1)).enable_all().build()?;
    runtime.block_on(serve(knobs))
}

async fn serve(knobs: Knobs) -> std::io::Result<()> {
    let listener = TcpListener::bind(knobs.listen).await?;
    eprintln!("mock-provider listening on {}", listener.local_addr()?);
    let state = Arc::new(openai::State::new(knobs));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors under load, a reset during accept...: keep serving.
                eprintln!("mock-provider: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(openai::handle(state, req).await) }
            });
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
