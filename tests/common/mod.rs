//! Test equipment: start the real `switchyard` and `mock-provider` binaries on free ports and
//! talk to them over HTTP. Every process is killed when its handle drops.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `GET url` answers 200, or panics after 15 s.
pub fn wait_ready(url: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("process exited early ({status}); log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if let Ok(resp) = ureq_get(url) {
            if resp == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A minimal blocking GET (status only) so readiness checks need no runtime.
fn ureq_get(url: &str) -> std::io::Result<u16> {
    use std::io::Read;
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other("bad response"))
}

pub struct Mock {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mock {
    pub fn start(args: &[&str]) -> Mock {
        Self::start_on(free_port(), args)
    }

    /// Starts on a given port (to bring a "killed" provider back at the same address).
    pub fn start_on(port: u16, args: &[&str]) -> Mock {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mock.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock-provider"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_ready(&format!("http://127.0.0.1:{port}/healthz"), &mut child, &log);
        Mock { child, port, _dir: dir }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/mock/stats", self.port)).await.unwrap().json().await.unwrap()
    }

    pub async fn requests(&self) -> u64 {
        self.stats().await["requests"].as_u64().unwrap()
    }

    pub async fn last(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/mock/last", self.port)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Audit log, ledger and cache snapshot inside the test's directory. The cache is off
/// unless the test's own YAML has a `cache:` block (then it must set `snapshot_path` itself):
/// most tests send identical requests on purpose and want them to reach the provider.
fn test_paths(dir: &Path, body: &str) -> String {
    let cache = if body.contains("\ncache:") || body.starts_with("cache:") {
        String::new()
    } else {
        format!(
            "cache: {{ exact: {{ enabled: false }}, semantic: {{ enabled: false }}, snapshot_path: \"{}\" }}\n",
            dir.join("cache.snapshot").display()
        )
    };
    format!(
        "audit: {{ path: \"{}\" }}\nspend: {{ ledger_path: \"{}\" }}\n{cache}",
        dir.join("audit.jsonl").display(),
        dir.join("spend.ledger").display()
    )
}

/// `server:` block on fresh ports plus the given providers/models YAML.
pub fn config_with(port: u16, admin_port: u16, server_extra: &str, body: &str) -> String {
    format!(
        "server:\n  listen: \"127.0.0.1:{port}\"\n  admin_listen: \"127.0.0.1:{admin_port}\"\n  threads: 2\n{server_extra}{body}"
    )
}

/// Providers `mock` (at the mock's URL) and model `demo` -> `mock-1`.
pub fn demo_body(mock: &Mock) -> String {
    format!(
        "providers:\n  mock: {{ kind: openai, base_url: \"{}\" }}\nmodels:\n  demo:\n    targets:\n      - {{ provider: mock, model: mock-1 }}\n",
        mock.base_url()
    )
}

impl Gateway {
    /// Starts the gateway on a config whose `server:` block is filled in with fresh ports.
    pub fn start(server_extra: &str, body: &str) -> Gateway {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("gateway.yaml");
        let audit = test_paths(dir.path(), body);
        std::fs::write(&config_path, config_with(port, admin_port, server_extra, &format!("{body}{audit}"))).unwrap();
        Self::start_with_file(dir, config_path, port, admin_port)
    }

    pub fn start_with_file(dir: tempfile::TempDir, config_path: PathBuf, port: u16, admin_port: u16) -> Gateway {
        let log_path = dir.path().join("gateway.log");
        let child = Self::spawn(&config_path, &log_path, port, admin_port);
        Gateway { child, port, admin_port, config_path, log_path, dir }
    }

    fn spawn(config_path: &Path, log_path: &Path, port: u16, admin_port: u16) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--config"])
            .arg(config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_ready(&format!("http://127.0.0.1:{port}/healthz"), &mut child, log_path);
        wait_ready(&format!("http://127.0.0.1:{admin_port}/healthz"), &mut child, log_path);
        child
    }

    /// SIGTERM (graceful: drains, flushes, snapshots), wait for the exit, start again.
    pub fn stop_and_restart(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "gateway did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Self::spawn(&self.config_path, &self.log_path, self.port, self.admin_port);
    }

    /// `kill -9`, then start again on the same files and ports.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.config_path, &self.log_path, self.port, self.admin_port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Rewrites the config body (keeping this gateway's ports and audit path).
    pub fn write_config(&self, server_extra: &str, body: &str) {
        let audit = test_paths(self.dir.path(), body);
        std::fs::write(
            &self.config_path,
            config_with(self.port, self.admin_port, server_extra, &format!("{body}{audit}")),
        )
        .unwrap();
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The audit lines written so far, parsed.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// POSTs a one-message chat request to the gateway with extra request headers.
pub async fn post_chat(gw: &Gateway, model: &str, prompt: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(&chat(model, prompt));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// POSTs `body` to the chat endpoint in `piece`-byte chunks (chunked framing, no Content-Length).
pub async fn post_chunked(gw: &Gateway, body: &[u8], piece: usize) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(piece).map(|c| Ok(c.to_vec())).collect();
    client()
        .post(gw.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap()
}

/// POSTs a chat body; returns the `x-switchyard-cache` value, the headers and the whole body
/// (read to the end, streams included). Asserts a 200.
pub async fn ask(
    gw: &Gateway,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> (String, reqwest::header::HeaderMap, String) {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let cache = h.get("x-switchyard-cache").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let mut text = String::new();
    let mut s = resp.bytes_stream();
    while let Some(b) = futures_util::StreamExt::next(&mut s).await {
        text.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    (cache, h, text)
}

/// A streaming chat body for the `demo` model.
pub fn streamed(prompt: &str) -> serde_json::Value {
    let mut v = chat("demo", prompt);
    v["stream"] = serde_json::json!(true);
    v
}

/// The text content of an SSE answer, deltas joined.
pub fn stream_text(sse: &str) -> String {
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

pub fn chat(model: &str, prompt: &str) -> serde_json::Value {
    serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": prompt }] })
}

/// Polls `check` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
