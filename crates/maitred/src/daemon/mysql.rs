//! MySQL/MariaDB pools: maps the configuration to maitred-mysql's pools and starts
//! listeners.

use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig, PoolMode};
use maitred_mysql::{ClientRegistry, MyPool, MyPoolConfig, Router, ServerTarget};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest client packet accepted (the server's own max_allowed_packet still applies).
const MAX_CLIENT_PACKET: usize = 64 << 20;

/// Maps a configured pool to the MySQL crate's pool description.
fn my_pool_config(p: &PoolConfig) -> MyPoolConfig {
    let up = &p.upstream;
    let settings = super::pool_settings(p);
    let database = Some(p.client_database().to_owned()).filter(|d| !d.is_empty());
    MyPoolConfig {
        name: p.name.clone(),
        database,
        mode: match p.mode {
            PoolMode::Transaction => maitred_mysql::PoolMode::Transaction,
            PoolMode::Session => maitred_mysql::PoolMode::Session,
            // Refused by Config::validate for MySQL pools.
            PoolMode::Statement => maitred_mysql::PoolMode::Transaction,
        },
        check_passwords: p.client_auth != ClientAuth::Trust,
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
            database: Some(up.database.clone()).filter(|d| !d.is_empty()),
        },
        settings,
        max_statements_per_connection: maitred_mysql::stmt_cache::DEFAULT_MAX_PER_CONNECTION,
        max_client_packet: MAX_CLIENT_PACKET,
    }
}

/// Starts the MySQL pools and their listeners (pools sharing an address share a listener
/// and are told apart by the client's database name).
/// Registers each pool with `admin`; returns the listener tasks, which the drain aborts.
pub async fn start(
    pools: &[&PoolConfig],
    admin: &maitred_admin::Admin,
    probe: bool,
) -> Result<Vec<tokio::task::AbortHandle>, DaemonError> {
    let clients = Arc::new(ClientRegistry::default());
    let mut by_addr: BTreeMap<SocketAddr, Vec<Arc<MyPool>>> = BTreeMap::new();
    for p in pools {
        let pool = MyPool::new(my_pool_config(p));
        pool.pool.start_maintenance();
        super::lifecycle::observe(admin, probe, "mysql", p.listen, &pool.pool);
        tracing::info!(
            pool = %p.name,
            upstream = %p.upstream.redacted(),
            mode = %p.mode,
            size = p.size,
            "pool ready"
        );
        by_addr.entry(p.listen).or_default().push(Arc::new(pool));
    }
    let mut listeners = Vec::new();
    for (addr, pools) in by_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Bind { addr, source })?;
        let databases: Vec<&str> = pools.iter().filter_map(|p| p.database.as_deref()).collect();
        tracing::info!(%addr, ?databases, protocol = "mysql", "listening");
        let router = Arc::new(Router {
            pools,
            clients: clients.clone(),
        });
        let task = tokio::spawn(async move {
            if let Err(e) = maitred_mysql::listener::serve(listener, router).await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        });
        listeners.push(task.abort_handle());
    }
    Ok(listeners)
}
