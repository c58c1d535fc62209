//! Builds the pools and listeners a configuration describes, and runs them until a signal.

use maitred_config::model::{ClientAuth, Config, PoolConfig, PoolMode};
use maitred_pg::{CancelRegistry, PgPool, PgPoolConfig, Router, ServerTarget};
use maitred_pool::PoolSettings;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpListener;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("pool \"{pool}\": {source}")]
    Credentials {
        pool: String,
        #[source]
        source: maitred_pg::auth::AuthError,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Maps a configured pool to the PostgreSQL crate's pool description.
fn pg_pool_config(p: &PoolConfig) -> PgPoolConfig {
    let up = &p.upstream;
    let mut settings = PoolSettings::new(p.name.clone(), p.size);
    settings.min_idle = p.min_idle;
    settings.queue_timeout = p.queue_timeout;
    settings.max_waiting = p.max_waiting;
    settings.idle_timeout = Some(p.idle_timeout);
    settings.max_lifetime = Some(p.max_lifetime);
    settings.connect_timeout = p.server_connect_timeout;
    PgPoolConfig {
        name: p.name.clone(),
        database: p.client_database().to_owned(),
        mode: match p.mode {
            PoolMode::Transaction => maitred_pg::PoolMode::Transaction,
            PoolMode::Session => maitred_pg::PoolMode::Session,
        },
        client_auth: match p.client_auth {
            ClientAuth::ScramSha256 => maitred_pg::ClientAuth::ScramSha256,
            ClientAuth::Md5 => maitred_pg::ClientAuth::Md5,
            ClientAuth::Trust => maitred_pg::ClientAuth::Trust,
        },
        users: p
            .users
            .iter()
            .map(|u| {
                let pw = u.password.as_ref().map(|s| s.expose().to_owned());
                (u.name.clone(), pw.unwrap_or_default())
            })
            .collect(),
        target: ServerTarget {
            host: up.host.clone(),
            port: up.port,
            user: up.user.clone(),
            password: up.password.as_ref().map(|s| s.expose().to_owned()),
            database: up.database.clone(),
            startup_params: up.params.clone(),
        },
        settings,
    }
}

/// Starts every pool and listener, then waits for SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let cancels = Arc::new(CancelRegistry::default());
    let mut by_addr: BTreeMap<SocketAddr, Vec<Arc<PgPool>>> = BTreeMap::new();
    for p in &config.pools {
        let pool = PgPool::new(pg_pool_config(p)).map_err(|source| DaemonError::Credentials {
            pool: p.name.clone(),
            source,
        })?;
        pool.pool.start_maintenance();
        tracing::info!(
            pool = %p.name,
            upstream = %p.upstream.redacted(),
            mode = %p.mode,
            size = p.size,
            "pool ready"
        );
        by_addr.entry(p.listen).or_default().push(Arc::new(pool));
    }
    for (addr, pools) in by_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })?;
        let databases: Vec<&str> = pools.iter().map(|p| p.database.as_str()).collect();
        tracing::info!(%addr, ?databases, "listening");
        let router = Arc::new(Router {
            pools,
            cancels: cancels.clone(),
        });
        tokio::spawn(async move {
            if let Err(e) = maitred_pg::listener::serve(listener, router).await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        });
    }
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
