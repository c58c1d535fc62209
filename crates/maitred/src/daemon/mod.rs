//! Builds the pools and listeners a configuration describes, one module per protocol, and
//! runs them until a signal.

mod mongo;
mod mysql;
mod postgres;

use maitred_config::model::{Config, PoolConfig};
use maitred_config::upstream::Protocol;
use std::net::SocketAddr;
use thiserror::Error;

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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("pool \"{pool}\": {protocol} pools are not served by this build yet")]
    UnsupportedProtocol { pool: String, protocol: Protocol },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Starts every pool and listener, then waits for SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let of = |protocol: Protocol| -> Vec<&PoolConfig> {
        config
            .pools
            .iter()
            .filter(|p| p.upstream.protocol == protocol)
            .collect()
    };
    for p in &config.pools {
        if !matches!(
            p.upstream.protocol,
            Protocol::Postgres | Protocol::Mongodb | Protocol::Mysql
        ) {
            return Err(DaemonError::UnsupportedProtocol {
                pool: p.name.clone(),
                protocol: p.upstream.protocol,
            });
        }
    }
    postgres::start(&of(Protocol::Postgres)).await?;
    mongo::start(&of(Protocol::Mongodb)).await?;
    mysql::start(&of(Protocol::Mysql)).await?;
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
