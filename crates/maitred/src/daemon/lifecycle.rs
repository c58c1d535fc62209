//! The daemon's life after startup: the admin endpoint, signals, and the graceful drain
//! (docs/operations.md, "Graceful drain").
//!
//! SIGTERM: readiness turns 503, listeners close (new connections are refused), clients
//! in a transaction or request may finish until no server connection is leased or
//! `runtime.shutdown_timeout` passes; then the process exits 0. Idle clients are told
//! goodbye in their protocol as soon as the drain starts (or their transaction ends):
//! PostgreSQL FATAL 57P01 admin_shutdown; MySQL: the connection is closed (a command
//! already sent gets ERR 1053); MongoDB: a request outside a transaction gets error 91
//! ShutdownInProgress and the connection is closed (hellos are still answered, so drivers
//! keep maitred selectable while their transactions finish; idle connections close at
//! exit) (`maitred_pool::shutdown`). SIGINT does the same with
//! at most [`SIGINT_DRAIN`]. A second signal during the drain ends it at once.
//!
//! SIGHUP, and RELOAD on the admin console, reload the configuration (`reload.rs`);
//! SHUTDOWN on the console drains like SIGTERM.

use super::reload::Running;
use super::{DaemonError, Reloader};
use maitred_admin::{Admin, ControlRequest};
use maitred_config::model::AdminConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc::UnboundedReceiver;

/// The longest drain after SIGINT (Ctrl-C).
pub(super) const SIGINT_DRAIN: Duration = Duration::from_secs(5);

/// SIGTERM, SIGINT and SIGHUP, caught from startup on.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// What an operator asked for, by signal or on the admin console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// SIGTERM or the console's SHUTDOWN.
    Term,
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGHUP or the console's RELOAD.
    Reload,
}

impl Signals {
    pub(super) fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
        })
    }

    /// The next signal or console request (a console that is gone is ignored).
    async fn next(&mut self, control: &mut Option<UnboundedReceiver<ControlRequest>>) -> Event {
        let console = async {
            match control.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.term.recv() => Event::Term,
            _ = self.int.recv() => Event::Int,
            _ = self.hup.recv() => Event::Reload,
            request = console => match request {
                Some(ControlRequest::Reload) => Event::Reload,
                Some(ControlRequest::Shutdown) => Event::Term,
                None => {
                    *control = None;
                    Event::Reload
                }
            },
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
    let listener =
        super::listen::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
    tracing::info!(
        %addr,
        detail_token = admin.detail_token().is_set(),
        "admin endpoint listening (/metrics, /healthz, /readyz for anyone; /pools for loopback peers, or with the detail token when one is set)"
    );
    tokio::spawn(maitred_admin::http::serve(listener, admin.clone()));
    Ok(())
}

/// Marks the daemon ready and serves: reloads on SIGHUP (or the console's RELOAD) until
/// SIGTERM, SIGINT (or the console's SHUTDOWN); then drains: readiness off, listeners
/// closed, leased server connections given until `shutdown_timeout` to come back.
pub(super) async fn serve_until_drained(
    admin: Arc<Admin>,
    mut running: Running,
    mut signals: Signals,
    reloader: Reloader,
) -> Result<(), DaemonError> {
    admin.set_listening();
    let mut control = admin.take_control_receiver();
    let stop = loop {
        match signals.next(&mut control).await {
            Event::Reload => {
                tracing::info!("reloading the configuration");
                // Reading and validating the file is quick, blocking file I/O.
                let loaded = reloader();
                running.reload(loaded, &admin).await;
            }
            stop => break stop,
        }
    };
    let shutdown_timeout = running.config.runtime.shutdown_timeout;
    let timeout = match stop {
        Event::Int => shutdown_timeout.min(SIGINT_DRAIN),
        _ => shutdown_timeout,
    };
    admin.start_draining();
    maitred_pool::shutdown::begin();
    running.close_listeners();
    tracing::info!(
        signal = ?stop,
        timeout = %humantime::format_duration(timeout),
        "draining: listeners closed, waiting for in-flight transactions"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let drained = async {
        // Logins already under way finish (and get their goodbye) rather than being cut.
        maitred_pool::shutdown::wait_for_logins(deadline).await;
        admin.wait_until_idle(timeout).await
    };
    tokio::select! {
        idle = drained => {
            if idle {
                tracing::info!("drained: no server connection in use");
            }
        }
        again = async {
            loop {
                match signals.next(&mut control).await {
                    Event::Reload => tracing::warn!("draining: reload ignored"),
                    stop => break stop,
                }
            }
        } => {
            tracing::warn!(signal = ?again, "second signal: stopping without waiting");
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

/// Opens one server connection as soon as the server answers, so that /readyz can say the
/// pool reached its server before any client came.
pub(super) fn probe_until_ready<M: maitred_pool::Manager>(pool: &maitred_pool::Pool<M>) {
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
