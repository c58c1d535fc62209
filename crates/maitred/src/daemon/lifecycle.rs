//! The daemon's life after startup: the admin endpoint, signals, and the graceful drain
//! (docs/operations.md, "Graceful drain").
//!
//! SIGTERM: readiness turns 503, listeners close (new connections are refused), clients
//! in a transaction or request may finish until no server connection is leased or
//! `runtime.shutdown_timeout` passes; then the process exits 0. Idle PostgreSQL clients
//! get FATAL 57P01 admin_shutdown as soon as the drain starts (or their transaction
//! ends); other clients are disconnected when the process exits. SIGINT does the same with at most [`SIGINT_DRAIN`]. A second signal
//! during the drain ends it at once.

use super::DaemonError;
use maitred_admin::Admin;
use maitred_config::model::AdminConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::AbortHandle;

/// The longest drain after SIGINT (Ctrl-C).
pub(super) const SIGINT_DRAIN: Duration = Duration::from_secs(5);

/// SIGTERM and SIGINT, caught from startup on.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
}

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Int,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Term,
            _ = self.int.recv() => Stop::Int,
        }
    }
}

/// Binds and serves the admin endpoint when one is configured.
pub(super) async fn start_admin(
    config: Option<&AdminConfig>,
    admin: &Arc<Admin>,
) -> Result<(), DaemonError> {
    let Some(config) = config else {
        return Ok(());
    };
    let addr = config.listen;
    let listener = maitred_admin::http::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })?;
    tracing::info!(%addr, "admin endpoint listening (/metrics, /healthz, /readyz, /pools)");
    tokio::spawn(maitred_admin::http::serve(listener, admin.clone()));
    Ok(())
}

/// Marks the daemon ready, waits for a signal, then drains: readiness off, listeners
/// closed, leased server connections given until `shutdown_timeout` to come back.
pub(super) async fn run_until_drained(
    admin: Arc<Admin>,
    listeners: Vec<AbortHandle>,
    mut signals: Signals,
    shutdown_timeout: Duration,
) -> Result<(), DaemonError> {
    admin.set_listening();
    let stop = signals.next().await;
    let timeout = match stop {
        Stop::Term => shutdown_timeout,
        Stop::Int => shutdown_timeout.min(SIGINT_DRAIN),
    };
    admin.start_draining();
    maitred_pg::shutdown::begin();
    for l in &listeners {
        l.abort();
    }
    tracing::info!(
        signal = ?stop,
        timeout = %humantime::format_duration(timeout),
        "draining: listeners closed, waiting for in-flight transactions"
    );
    tokio::select! {
        idle = admin.wait_until_idle(timeout) => {
            if idle {
                tracing::info!("drained: no server connection in use");
            }
        }
        again = signals.next() => {
            tracing::warn!(signal = ?again, "second signal: stopping without waiting");
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

/// A pool seen through the pool core only (no protocol counters), for protocols whose
/// daemon module has no observer of its own (docs/operations.md, "Adding a protocol").
pub(super) struct CoreObserver<M: maitred_pool::Manager> {
    pub(super) protocol: &'static str,
    pub(super) listen: std::net::SocketAddr,
    pub(super) pool: maitred_pool::Pool<M>,
}

impl<M: maitred_pool::Manager> maitred_admin::PoolObserver for CoreObserver<M> {
    fn name(&self) -> &str {
        self.pool.name()
    }
    fn protocol(&self) -> &'static str {
        self.protocol
    }
    fn listen(&self) -> std::net::SocketAddr {
        self.listen
    }
    fn state(&self) -> maitred_pool::PoolState {
        self.pool.state()
    }
    fn stats(&self) -> maitred_pool::PoolStats {
        self.pool.stats()
    }
}

/// Registers `pool` with the admin endpoint and, when one is configured, opens one server
/// connection as soon as the server answers so that /readyz can turn 200 before the first
/// client.
pub(super) fn observe<M: maitred_pool::Manager>(
    admin: &Admin,
    probe: bool,
    protocol: &'static str,
    listen: std::net::SocketAddr,
    pool: &maitred_pool::Pool<M>,
) {
    admin.register(Arc::new(CoreObserver {
        protocol,
        listen,
        pool: pool.clone(),
    }));
    if !probe {
        return;
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match pool.checkout().await {
                Ok(lease) => {
                    drop(lease);
                    return;
                }
                Err(e) => {
                    tracing::warn!(pool = %pool.name(), error = %e, "server not reachable yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
}
