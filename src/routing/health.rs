//! Active health checks: a background service probing each provider that has a
//! `health_check`, with pingora-load-balancing's HTTP/TCP checks. Providers flip unhealthy after
//! `failures` consecutive failed probes and back after `successes` passed ones. Never inline.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::{info, warn};
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::state::ProviderHealth;
use crate::config::live::Live;
use crate::config::HealthCheckConfig;
use crate::providers::Upstream;

const TICK: Duration = Duration::from_millis(100);

pub struct HealthProber {
    live: Arc<Live>,
}

impl HealthProber {
    pub fn new(live: Arc<Live>) -> Self {
        HealthProber { live }
    }
}

#[async_trait]
impl BackgroundService for HealthProber {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_due: HashMap<String, Instant> = HashMap::new();
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let snapshot = self.live.snapshot();
            let now = Instant::now();
            for (name, p) in &snapshot.config.providers {
                let (Some(hc), None) = (&p.health_check, &p.disabled) else { continue };
                let Some((upstream, health)) = snapshot.routes.provider(name) else { continue };
                let key = format!("{name}|{:?}", p.base_url);
                if next_due.get(&key).is_some_and(|due| *due > now) {
                    continue;
                }
                if !running.lock().map(|mut r| r.insert(key.clone())).unwrap_or(false) {
                    continue; // the previous probe is still out
                }
                next_due.insert(key.clone(), now + hc.interval);
                let (hc, running) = (hc.clone(), running.clone());
                tokio::spawn(async move {
                    let result = probe(&upstream, &hc).await;
                    apply(&upstream.name, &health, &hc, result);
                    if let Ok(mut r) = running.lock() {
                        r.remove(&key);
                    }
                });
            }
        }
    }
}

async fn probe(up: &Upstream, hc: &HealthCheckConfig) -> Result<(), String> {
    let addr = match up.addr {
        Some(a) => a,
        None => tokio::net::lookup_host(&up.host_port)
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_string())?,
    };
    let backend = Backend::new(&addr.to_string()).map_err(|e| e.to_string())?;
    let check = async {
        match &hc.http_path {
            Some(path) => {
                let mut check = HttpHealthCheck::new(&up.sni, up.tls);
                check.peer_template.options.connection_timeout = Some(hc.timeout);
                check.peer_template.options.read_timeout = Some(hc.timeout);
                let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
                req.insert_header(http::header::HOST, up.host_header.clone()).map_err(|e| e.to_string())?;
                for (n, v) in &up.headers {
                    req.insert_header(n.clone(), v.clone()).map_err(|e| e.to_string())?;
                }
                check.req = req;
                let expect = hc.expect_status;
                check.validator = Some(Box::new(move |resp| {
                    if resp.status.as_u16() == expect {
                        Ok(())
                    } else {
                        pingora::Error::e_explain(
                            pingora::ErrorType::CustomCode("unexpected status", resp.status.as_u16()),
                            "health check",
                        )
                    }
                }));
                check.check(&backend).await.map_err(|e| e.to_string())
            }
            None => {
                let check = if up.tls { TcpHealthCheck::new_tls(&up.sni) } else { TcpHealthCheck::new() };
                check.check(&backend).await.map_err(|e| e.to_string())
            }
        }
    };
    match tokio::time::timeout(hc.timeout * 2, check).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", hc.timeout)),
    }
}

/// Folds one probe result into the provider's health, flipping it at the thresholds.
fn apply(name: &str, health: &ProviderHealth, hc: &HealthCheckConfig, result: Result<(), String>) {
    use std::sync::atomic::Ordering::Relaxed;
    health.probed.store(true, Relaxed);
    match result {
        Ok(()) => {
            health.consecutive_fail.store(0, Relaxed);
            let ok = health.consecutive_ok.fetch_add(1, Relaxed) + 1;
            if !health.healthy() && ok >= hc.successes {
                health.set_healthy(true);
                info!("provider `{name}` passed {ok} health checks: back in rotation");
            }
            if let Ok(mut e) = health.last_error.lock() {
                *e = None;
            }
        }
        Err(err) => {
            health.consecutive_ok.store(0, Relaxed);
            let failed = health.consecutive_fail.fetch_add(1, Relaxed) + 1;
            if health.healthy() && failed >= hc.failures {
                health.set_healthy(false);
                warn!("provider `{name}` failed {failed} health checks ({err}): out of rotation");
            }
            if let Ok(mut e) = health.last_error.lock() {
                *e = Some(err);
            }
        }
    }
}
