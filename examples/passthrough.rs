//! The framework floor: the leanest Pingora 0.9.1 HTTP pass-through we know how to write.
//!
//! Load tests compare Switchyard against this, not only against nginx, to separate what the
//! gateway's own work costs from what any Pingora proxy costs on the same machine. Anything this
//! binary does, Switchyard also has to do; everything Switchyard adds on top is its own overhead.
//!
//!     cargo build --release --example passthrough
//!     passthrough [LISTEN] [UPSTREAM]       (or PASSTHROUGH_LISTEN / PASSTHROUGH_UPSTREAM)
//!     defaults: 127.0.0.1:18090 -> 127.0.0.1:9001
//!
//! Kept deliberately bare so the floor stays a floor: one fixed peer (no load balancer, no health
//! check), no request/response rewriting, no logger, no metrics.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

// The gateway runs on mimalloc; the floor must too, or allocator differences would be billed
// to Switchyard's code.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Passthrough {
    // Built once: constructing an HttpPeer per request (address parse, SNI string) would put
    // work in the floor that a real gateway can also avoid.
    peer: HttpPeer,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The clone is a handful of small copies; the pool is keyed by the peer's hash, so every
        // request finds the same idle upstream connections.
        Ok(Box::new(self.peer.clone()))
    }

    // Pingora's default hooks (request_filter, logging, ...) are already no-ops; nothing else to
    // override.
}

fn arg_or_env(pos: usize, env: &str, default: &str) -> String {
    std::env::args().nth(pos).or_else(|| std::env::var(env).ok()).unwrap_or_else(|| default.to_string())
}

fn main() {
    let listen = arg_or_env(1, "PASSTHROUGH_LISTEN", "127.0.0.1:18090");
    let upstream = arg_or_env(2, "PASSTHROUGH_UPSTREAM", "127.0.0.1:9001");

    let conf = ServerConf {
        // Same thread count as Switchyard's default, so the comparison is per-thread fair.
        threads: 2,
        // Measured on this machine: with 2 threads, stealing lowers tail latency (an idle thread
        // picks up the other's ready tasks instead of waiting for its own socket).
        work_stealing: true,
        // Pingora's default, spelled out because the floor's numbers depend on it: at 50 client
        // connections the pool never runs dry, so no request pays for a fresh upstream connect.
        upstream_keepalive_pool_size: 128,
        // The load runner stops this with SIGTERM; without a short grace, Pingora waits minutes.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    // new_with_opt_and_conf(None, ..) skips Pingora's own CLI parsing, which would reject our
    // positional arguments.
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let peer = HttpPeer::new(upstream.as_str(), false, String::new());
    let mut proxy = http_proxy_service(&server.configuration, Passthrough { peer });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("passthrough listening on {listen} -> {upstream}");
    server.run_forever();
}
