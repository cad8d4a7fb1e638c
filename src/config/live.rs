//! The live configuration: one `ArcSwap<Snapshot>` that a reload replaces whole, so a request sees
//! either the old config and route table or the new pair, never a mix. In-flight requests keep the
//! `Arc` they loaded.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use log::{error, info, warn};

use super::{redacted, Config, ConfigError};
use crate::metrics;
use crate::routing::RouteTable;
use crate::spend::pricing::PriceBook;

/// Everything a request needs from the configuration, built together.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    pub loaded_at: SystemTime,
    pub config: Config,
    pub routes: RouteTable,
    pub prices: PriceBook,
}

impl Snapshot {
    pub fn build(config: Config, version: u64, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigError> {
        let loaded_at = SystemTime::now();
        let created = loaded_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let routes = RouteTable::build(&config, created, previous.map(|p| &p.routes)).map_err(ConfigError::new)?;
        let pricing_file = config.pricing_file()?;
        if pricing_file.is_none() {
            log::warn!("no pricing file found (config/pricing.yaml): models without an override are priced at 0");
        }
        let mut prices =
            PriceBook::load(pricing_file.as_deref(), &config.raw.pricing.overrides).map_err(ConfigError::new)?;
        prices.precompute(
            config
                .models
                .iter()
                .flat_map(|(name, m)| std::iter::once(name.as_str()).chain(m.targets.iter().map(|t| t.model.as_str()))),
        );
        Ok(Snapshot { version, loaded_at, config, routes, prices })
    }
}

/// The live snapshot, where it came from, and how the last reload went.
pub struct Live {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
    last_error: Mutex<Option<ConfigError>>,
    /// Serialises reloads (watcher, SIGHUP and admin may race) so versions increase in order.
    reload_lock: Mutex<()>,
    /// The file's bytes when the live snapshot was loaded, so the watcher can tell a change it
    /// did not see happen (an edit before the watch was registered) from no change.
    loaded_bytes: Mutex<Option<Vec<u8>>>,
}

impl Live {
    /// Loads the file for the first time; an error here stops startup.
    pub fn load(path: PathBuf) -> Result<Arc<Live>, ConfigError> {
        let bytes = std::fs::read(&path).ok();
        let config = Config::load(&path)?;
        log_warnings(&config);
        let snapshot = Snapshot::build(config, 1, None)?;
        Ok(Arc::new(Live {
            path,
            current: ArcSwap::from_pointee(snapshot),
            last_error: Mutex::new(None),
            reload_lock: Mutex::new(()),
            loaded_bytes: Mutex::new(bytes),
        }))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn loaded_bytes(&self) -> Option<Vec<u8>> {
        self.loaded_bytes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the file. On success the new snapshot is live and its version returned; on
    /// failure the old one stays live and the error is recorded for `/admin/config`.
    /// Blocking (file read, DNS): call it off the request path.
    pub fn reload(&self) -> Result<u64, ConfigError> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.current.load_full();
        let next_version = previous.version + 1;
        let bytes = std::fs::read(&self.path).ok();
        let result = Config::load(&self.path).and_then(|c| {
            log_warnings(&c);
            Snapshot::build(c, next_version, Some(&previous))
        });
        match result {
            Ok(snapshot) => {
                let old = self.current.load();
                if snapshot.config.server.listen != old.config.server.listen
                    || snapshot.config.server.admin_listen != old.config.server.admin_listen
                    || snapshot.config.server.threads != old.config.server.threads
                {
                    warn!("server.listen, server.admin_listen and server.threads take effect only after a restart");
                }
                self.current.store(Arc::new(snapshot));
                *self.loaded_bytes.lock().unwrap_or_else(|p| p.into_inner()) = bytes;
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                metrics::get().config_reloads.with_label_values(&["ok"]).inc();
                info!("config reloaded from {} (version {next_version})", self.path.display());
                Ok(next_version)
            }
            Err(e) => {
                metrics::get().config_reloads.with_label_values(&["error"]).inc();
                error!("config reload rejected, keeping version {}: {}: {e}", next_version - 1, self.path.display());
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                Err(e)
            }
        }
    }

    /// `GET /admin/config`: `{"version","loaded_at","last_error","config"}`, secrets redacted.
    pub fn describe(&self) -> serde_json::Value {
        let snap = self.snapshot();
        let last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        serde_json::json!({
            "version": snap.version,
            "loaded_at": humantime::format_rfc3339_seconds(snap.loaded_at).to_string(),
            "path": self.path.display().to_string(),
            "last_error": last_error.map(|e| serde_json::json!({ "message": e.message, "line": e.line })),
            "config": redacted(&snap.config.raw),
        })
    }
}

fn log_warnings(config: &Config) {
    for w in &config.warnings {
        warn!("{w}");
    }
}
