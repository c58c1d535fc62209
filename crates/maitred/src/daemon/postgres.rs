//! PostgreSQL pools: maps the configuration to maitred-pg's pools and starts listeners.

use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig, PoolMode};
use maitred_pg::{CancelRegistry, PgPool, PgPoolConfig, Router, ServerTarget};
use maitred_pool::PoolSettings;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

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
        prepared_statements_per_connection: p.prepared_statements,
    }
}

/// Starts the PostgreSQL pools and their listeners (pools sharing an address share a
/// listener and are told apart by the client's database name).
pub async fn start(pools: &[&PoolConfig]) -> Result<(), DaemonError> {
    let cancels = Arc::new(CancelRegistry::default());
    let mut by_addr: BTreeMap<SocketAddr, Vec<Arc<PgPool>>> = BTreeMap::new();
    for p in pools {
        let pool = PgPool::new(pg_pool_config(p)).map_err(|source| DaemonError::Credentials {
            pool: p.name.clone(),
            source: Box::new(source),
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
        tracing::info!(%addr, ?databases, protocol = "postgres", "listening");
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
    Ok(())
}
