//! Builds the pools and listeners a configuration describes, one module per protocol, and
//! runs them until a signal.

mod lifecycle;
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
    #[error("pool \"{pool}\": {source}")]
    Tls {
        pool: String,
        #[source]
        source: maitred_pg::tls::TlsError,
    },
    #[error("pool \"{pool}\": {protocol} pools are not served by this build yet")]
    UnsupportedProtocol { pool: String, protocol: Protocol },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Starts the admin endpoint, every pool and listener, then waits for SIGINT or SIGTERM
/// and drains (see `lifecycle`).
/// The pool core's settings of a configured pool (the same for every protocol).
fn pool_settings(p: &PoolConfig) -> maitred_pool::PoolSettings {
    let mut settings = maitred_pool::PoolSettings::new(p.name.clone(), p.size);
    settings.min_idle = p.min_idle;
    settings.queue_timeout = p.queue_timeout;
    settings.max_waiting = p.max_waiting;
    settings.idle_timeout = Some(p.idle_timeout);
    settings.max_lifetime = Some(p.max_lifetime);
    settings.connect_timeout = p.server_connect_timeout;
    settings
}

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
    let signals = lifecycle::Signals::install()?;
    let admin = maitred_admin::Admin::new();
    lifecycle::start_admin(config.admin.as_ref(), &admin).await?;
    let with_admin = config.admin.is_some();
    let mut listeners = postgres::start(&of(Protocol::Postgres), &admin, with_admin).await?;
    listeners.extend(mongo::start(&of(Protocol::Mongodb), &admin, with_admin).await?);
    listeners.extend(mysql::start(&of(Protocol::Mysql), &admin, with_admin).await?);
    let timeout = config.runtime.shutdown_timeout;
    lifecycle::run_until_drained(admin, listeners, signals, timeout).await
}
