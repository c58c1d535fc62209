//! Builds the pools and listeners a configuration describes, one module per protocol, and
//! runs them until a signal.

mod any_database;
mod console;
mod fleet;
mod lifecycle;
mod listen;
mod live;
mod mongo;
mod mysql;
mod observed;
mod postgres;
mod protocol;
mod reload;

use maitred_config::model::{Config, PoolConfig};
use maitred_config::upstream::{Protocol, UpstreamUrl};
use maitred_frontend::{Password, ServerAddr};
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
        source: maitred_tls::TlsError,
    },
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

/// The client limits of a configured pool (the same for every protocol; zero durations
/// are off).
fn client_limits(p: &PoolConfig) -> maitred_pool::ClientLimits {
    let on = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    maitred_pool::ClientLimits {
        login_timeout: p.client_login_timeout,
        idle_transaction_timeout: on(p.idle_transaction_timeout),
        idle_timeout: on(p.client_idle_timeout),
        query_timeout: on(p.query_timeout),
        max_clients: p.max_clients,
        max_message_size: p.max_message_size(),
    }
}

/// The upstream's server (`socket`: the Unix socket its URL names instead of host and
/// port, in its protocol's way) and password.
fn upstream_server(
    up: &UpstreamUrl,
    socket: Option<std::path::PathBuf>,
) -> (ServerAddr, Option<Password>) {
    let server = ServerAddr {
        host: up.host.clone(),
        port: up.port,
        socket,
    };
    (server, up.password.as_ref().map(|s| s.expose().into()))
}

/// The configured users and their plaintext passwords (empty without one).
fn listed_passwords(p: &PoolConfig) -> Vec<(String, String)> {
    let password =
        |u: &maitred_config::model::UserConfig| u.password.as_ref().map(|s| s.expose().to_owned());
    let users = p.users.iter();
    users
        .map(|u| (u.name.clone(), password(u).unwrap_or_default()))
        .collect()
}

/// Re-reads the configuration for a reload (the `--config` file, with the command line's
/// daemon flags on top); `Err` says why it is invalid.
pub type Reloader = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// The admin endpoint's `protocol` label of a protocol.
fn protocol_label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Postgres => "postgres",
        Protocol::Mysql => "mysql",
        Protocol::Mongodb => "mongodb",
    }
}

/// Starts `pools` (any protocols) and their listeners; registers them with `admin`.
async fn start_pools(
    pools: &[PoolConfig],
    admin: &std::sync::Arc<maitred_admin::Admin>,
    probe: bool,
) -> Result<live::Started, DaemonError> {
    let of = |protocol: Protocol| -> Vec<&PoolConfig> {
        pools
            .iter()
            .filter(|p| p.upstream.protocol == protocol)
            .collect()
    };
    let mut to = protocol::Starting {
        admin,
        probe,
        started: live::Started::default(),
    };
    postgres::start(&of(Protocol::Postgres), &mut to).await?;
    mongo::start(&of(Protocol::Mongodb), &mut to).await?;
    mysql::start(&of(Protocol::Mysql), &mut to).await?;
    Ok(to.started)
}

/// Starts the admin endpoint, every pool and listener, then serves until SIGINT or
/// SIGTERM and drains; SIGHUP reloads with `reloader` (see `lifecycle`, `reload`).
pub async fn run(config: Config, reloader: Reloader) -> Result<(), DaemonError> {
    let signals = lifecycle::Signals::install()?;
    let admin = maitred_admin::Admin::new();
    console::configure(&admin, &config);
    lifecycle::start_admin(config.admin.as_ref(), &admin).await?;
    let started = start_pools(&config.pools, &admin, config.admin.is_some()).await?;
    let running = reload::Running {
        config,
        pools: started.pools,
        listeners: started.listeners,
    };
    lifecycle::serve_until_drained(admin, running, signals, reloader).await
}
