//! MongoDB pools: maps the configuration to maitred-mongo's pools and starts listeners.

use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig};
use maitred_mongo::auth::scram::Mechanism;
use maitred_mongo::codec::compressed::Compressor;
use maitred_mongo::{MongoPool, MongoPoolConfig, ServerTarget};
use std::sync::Arc;

fn param<'a>(p: &'a PoolConfig, key: &str) -> Option<&'a str> {
    p.upstream
        .params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Maps a configured pool to the MongoDB crate's pool description.
fn mongo_pool_config(p: &PoolConfig) -> Result<MongoPoolConfig, DaemonError> {
    let up = &p.upstream;
    let settings = super::pool_settings(p);
    let mechanism = match param(p, "authMechanism") {
        None => Mechanism::Sha256,
        Some(m) => Mechanism::from_name(m).ok_or_else(|| DaemonError::Credentials {
            pool: p.name.clone(),
            source: format!("authMechanism {m} is not supported (SCRAM-SHA-256 or SCRAM-SHA-1)")
                .into(),
        })?,
    };
    // `compressors=zstd,snappy,zlib` in the URL: offered to the server (clients negotiate
    // their own compression with maitred in hello).
    let mut compressors = Vec::new();
    for name in param(p, "compressors").unwrap_or_default().split(',') {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let c = Compressor::from_name(name).ok_or_else(|| DaemonError::Credentials {
            pool: p.name.clone(),
            source: format!("compressor {name} is not supported (zstd, snappy or zlib)").into(),
        })?;
        compressors.push(c);
    }
    // Clients authenticate with the listed users' passwords; with client_auth = "trust" or
    // no user with a password (an upstream URL without credentials), they need none.
    let users = if p.client_auth == ClientAuth::Trust {
        Vec::new()
    } else {
        p.users
            .iter()
            .filter(|u| !u.name.is_empty())
            .filter_map(|u| {
                u.password
                    .as_ref()
                    .map(|pw| (u.name.clone(), pw.expose().to_owned()))
            })
            .collect()
    };
    Ok(MongoPoolConfig {
        name: p.name.clone(),
        users,
        target: ServerTarget {
            host: up.host.clone(),
            port: up.port,
            user: up.user.clone(),
            password: up.password.as_ref().map(|s| s.expose().to_owned()),
            auth_source: param(p, "authSource")
                .map(str::to_owned)
                .unwrap_or_else(|| up.database.clone()),
            mechanism,
            compressors,
        },
        settings,
        max_message_size: p.max_message_size(),
        limits: super::client_limits(p),
    })
}

/// Starts the MongoDB pools, one listener each (MongoDB clients do not name a pool).
/// Registers each pool with `admin`; returns the listener tasks, which the drain aborts.
pub async fn start(
    pools: &[&PoolConfig],
    admin: &maitred_admin::Admin,
    probe: bool,
) -> Result<super::live::Started, DaemonError> {
    let mut started = super::live::Started::default();
    for p in pools {
        let cfg = mongo_pool_config(p)?;
        let pool = tokio::task::spawn_blocking(move || MongoPool::new(cfg))
            .await
            .map_err(|e| DaemonError::Credentials {
                pool: p.name.clone(),
                source: Box::new(e),
            })?;
        pool.pool.start_maintenance();
        let facts = super::observed::PoolFacts::of(p, pool.clients.clone());
        super::lifecycle::observe(admin, probe, "mongodb", p.listen, &pool.pool, facts);
        started.pools.push(Arc::new(super::live::CoreLivePool {
            protocol: "mongodb",
            pool: pool.pool.clone(),
        }));
        let addr = p.listen;
        let listener =
            super::listen::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
        tracing::info!(
            pool = %p.name,
            upstream = %p.upstream.redacted(),
            size = p.size,
            client_auth = pool.requires_auth(),
            %addr,
            protocol = "mongodb",
            "listening"
        );
        let pool = Arc::new(pool);
        let task = tokio::spawn(async move {
            if let Err(e) = maitred_mongo::listener::serve(listener, pool).await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        });
        started.listeners.push((addr, task.abort_handle()));
    }
    Ok(started)
}
