//! Graceful shutdown bounded by `server.grace_period_secs`.
//!
//! Pingora's own SIGTERM path stops the listeners and then sleeps the *whole* grace period before
//! stopping, even when nothing is in flight. We keep its listener shutdown but exit as soon as
//! the last in-flight request finishes, or when the grace period runs out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::info;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::metrics;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

type ExitHook = Box<dyn Fn() + Send + Sync>;
static EXIT_HOOK: std::sync::OnceLock<ExitHook> = std::sync::OnceLock::new();

/// Runs once just before a graceful exit (flushing the spend ledger).
pub fn on_exit(hook: ExitHook) {
    let _ = EXIT_HOOK.set(hook);
}

/// Counts one request as in flight for as long as it lives (held in the request context).
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        metrics::get().in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        metrics::get().in_flight.dec();
    }
}

pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// SIGTERM / SIGQUIT: stop accepting and drain (bounded); SIGINT: exit now.
pub struct DrainingShutdown {
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainingShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut quit), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::quit()), signal(SignalKind::interrupt()))
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = term.recv() => {},
            _ = quit.recv() => {},
        }
        let grace = self.grace;
        info!("shutdown requested: draining {} in-flight request(s) for at most {grace:?}", in_flight());
        std::thread::spawn(move || {
            let deadline = Instant::now() + grace;
            // Give the listeners a moment to stop accepting before trusting a zero count.
            std::thread::sleep(Duration::from_millis(50));
            while in_flight() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            info!("shutdown: {} request(s) still in flight, exiting", in_flight());
            crate::audit::flush(Duration::from_secs(2));
            if let Some(hook) = EXIT_HOOK.get() {
                hook();
            }
            std::process::exit(0);
        });
        ShutdownSignal::GracefulTerminate
    }
}
