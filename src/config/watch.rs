//! Hot reload triggers: file changes (notify, watching the directory so write-to-temp + rename,
//! `sed -i` and Kubernetes ConfigMap symlink swaps are all seen) and SIGHUP. Runs as a Pingora
//! background service; every reload happens on a blocking thread, off the request path.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info, warn};
use notify::{RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use super::live::Live;

/// Changes closer together than this are one edit (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(150);
const POLL: Duration = Duration::from_secs(2);

pub struct ConfigWatcher {
    live: Arc<Live>,
}

impl ConfigWatcher {
    pub fn new(live: Arc<Live>) -> Self {
        ConfigWatcher { live }
    }
}

/// Reloads on a blocking thread and logs the outcome (errors are logged and counted by `Live`).
pub async fn reload_off_thread(live: Arc<Live>) -> Result<u64, super::ConfigError> {
    tokio::task::spawn_blocking(move || live.reload())
        .await
        .unwrap_or_else(|e| Err(super::ConfigError::new(format!("reload task failed: {e}"))))
}

/// Whether a directory event may have changed the config: an event on its file name, on a
/// Kubernetes ConfigMap's `..data` symlink swap, or one that lost its paths (a rescan). Other
/// files in the directory (an audit log beside the config, say) never wake the reload task.
fn concerns(ev: &notify::Event, config_name: &std::ffi::OsStr) -> bool {
    ev.need_rescan()
        || ev.paths.is_empty()
        || ev
            .paths
            .iter()
            .filter_map(|p| p.file_name())
            .any(|n| n == config_name || n.as_encoded_bytes().starts_with(b".."))
}

#[async_trait]
impl BackgroundService for ConfigWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let path = self.live.path().to_path_buf();
        let dir =
            path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")).to_path_buf();
        let (tx, mut rx) = mpsc::channel::<()>(16);
        let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !ev.kind.is_access() && concerns(&ev, &name) {
                    // A full channel already holds a pending reload; dropping is fine.
                    let _ = tx.try_send(());
                }
            }
        });
        let _watcher = match watcher.and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|_| w)) {
            Ok(w) => {
                info!("watching {} for config changes", dir.display());
                Some(w)
            }
            Err(e) => {
                warn!("cannot watch {}: {e}; hot reload only via SIGHUP or POST /admin/reload", dir.display());
                None
            }
        };
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        // Compare with what is live, not with the file now: an edit made before the watch was
        // registered is picked up here, at once.
        let mut last_seen = self.live.loaded_bytes();
        let now = std::fs::read(&path).ok();
        if now.is_some() && now != last_seen {
            last_seen = now;
            if let Err(e) = reload_off_thread(self.live.clone()).await {
                error!("config change not applied: {e}");
            }
        }

        // A slow poll as well: a missed or unavailable inotify event still ends in a reload.
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let by_signal = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = rx.recv() => false,
                _ = poll.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            if !by_signal {
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                // Reload only when the file's bytes changed (an editor's touch, a no-op save).
                let now = std::fs::read(&path).ok();
                if now.is_none() || now == last_seen {
                    continue;
                }
                last_seen = now;
            } else {
                info!("SIGHUP: reloading {}", path.display());
                last_seen = std::fs::read(&path).ok();
            }
            if let Err(e) = reload_off_thread(self.live.clone()).await {
                error!("config change not applied: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use notify::event::{CreateKind, EventKind, ModifyKind, RenameMode};
    use notify::Event;

    use super::concerns;

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths.iter().fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn only_events_that_can_change_the_config_wake_the_reloader() {
        let name = std::ffi::OsStr::new("gateway.yaml");
        let write = EventKind::Modify(ModifyKind::Any);
        assert!(concerns(&event(write, &["/etc/sy/gateway.yaml"]), name));
        // write-to-temp + rename (editors, `sed -i`): the rename lands on our name
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert!(concerns(&event(to, &["/etc/sy/gateway.yaml"]), name));
        assert!(concerns(
            &event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/etc/sy/.tmp1", "/etc/sy/gateway.yaml"]),
            name
        ));
        // Kubernetes ConfigMap: the `..data` symlink is swapped
        assert!(concerns(&event(EventKind::Create(CreateKind::Any), &["/etc/sy/..data_tmp"]), name));
        assert!(concerns(&event(write, &[]), name), "no paths: cannot rule it out");
        // an audit log written beside the config is not a reason to read the config
        assert!(!concerns(&event(write, &["/etc/sy/audit.jsonl"]), name));
        assert!(!concerns(&event(write, &["/etc/sy/gateway.yaml.bak"]), name));
    }
}
