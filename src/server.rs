//! Wires the services together: gateway listener, admin listener, config watcher.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::cache::Cache;
use crate::config::live::Live;
use crate::config::watch::ConfigWatcher;
use crate::config::ConfigError;
use crate::proxy::Gateway;
use crate::routing::health::HealthProber;
use crate::shutdown::DrainingShutdown;
use crate::spend::SpendState;

/// Loads the config and serves until a shutdown signal. Returns only on a startup error.
pub fn serve(config_path: PathBuf) -> Result<(), ConfigError> {
    let live = Live::load(config_path)?;
    crate::audit::start(&snapshot_audit(&live))
        .map_err(|e| ConfigError::new(format!("audit log {}: {e}", live.snapshot().config.raw.audit.path)))?;
    let snapshot = live.snapshot();
    let s = &snapshot.config.server;

    let conf = ServerConf {
        threads: s.threads,
        grace_period_seconds: Some(s.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let ledger_path = &snapshot.config.raw.spend.ledger_path;
    let spend = Arc::new(
        SpendState::open((!ledger_path.is_empty()).then(|| std::path::Path::new(ledger_path)))
            .map_err(|e| ConfigError::new(format!("spend ledger {ledger_path}: {e}")))?,
    );
    let cache_cfg = snapshot.config.raw.cache.clone();
    let cache = Cache::new(cache_cfg.max_bytes);
    if snapshot.config.models.values().any(|m| m.semantic_cache.enabled) {
        cache.semantic.ensure_started(&cache_cfg.semantic);
    }
    let snapshot_path = (!cache_cfg.snapshot_path.is_empty()).then(|| PathBuf::from(&cache_cfg.snapshot_path));
    if let Some(path) = &snapshot_path {
        match cache.store.restore(path) {
            Ok(n) => info!("cache: restored {n} entries from {}", path.display()),
            Err(e) if path.exists() => log::warn!("cache: ignoring snapshot {}: {e}", path.display()),
            Err(_) => {}
        }
    }
    let mut gateway = pingora::proxy::http_proxy_service(
        &server.configuration,
        Gateway::new(live.clone(), spend.clone(), cache.clone()),
    );
    gateway.add_tcp(&s.listen);
    gateway.threads = Some(s.threads);

    let mut admin = Service::new("admin".to_string(), Admin::new(live.clone(), spend.clone(), cache.clone()));
    admin.add_tcp(&s.admin_listen);
    admin.threads = Some(1);

    let watcher = background_service("config watcher", ConfigWatcher::new(live.clone()));
    let prober = background_service("health checks", HealthProber::new(live.clone()));

    server.add_service(gateway);
    server.add_service(admin);
    server.add_service(watcher);
    server.add_service(prober);
    if let Some(path) = snapshot_path.clone() {
        let every = Duration::from_secs(cache_cfg.snapshot_interval_secs.max(1));
        server.add_service(background_service("cache snapshots", CacheSnapshots { cache: cache.clone(), path, every }));
    }
    info!(
        "switchyard {} listening on {} (admin {}), {} model(s), config version {}",
        env!("CARGO_PKG_VERSION"),
        s.listen,
        s.admin_listen,
        snapshot.config.models.len(),
        snapshot.version
    );
    let grace = Duration::from_secs(s.grace_period_secs);
    crate::shutdown::on_exit(Box::new(move || {
        spend.accounts.flush();
        if let Some(path) = &snapshot_path {
            match cache.store.snapshot(path) {
                Ok(n) => info!("cache: {n} entries saved to {}", path.display()),
                Err(e) => log::error!("cache: snapshot failed: {e}"),
            }
        }
    }));
    drop(snapshot);
    server.run(RunArgs { shutdown_signal: Box::new(DrainingShutdown { grace }) });
    std::process::exit(0)
}

fn snapshot_audit(live: &Live) -> crate::audit::AuditConfig {
    live.snapshot().config.raw.audit.clone()
}

/// Writes the cache snapshot every `every`, off the request path.
struct CacheSnapshots {
    cache: Arc<Cache>,
    path: PathBuf,
    every: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CacheSnapshots {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
            let (cache, path) = (self.cache.clone(), self.path.clone());
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cache.store.snapshot(&path)).await {
                log::error!("cache: snapshot failed: {e}");
            }
        }
    }
}
