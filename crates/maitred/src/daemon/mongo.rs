//! MongoDB pools: maps the configuration to maitred-mongo's pools and starts listeners.

use super::live::new_upstream;
use super::observed::PoolFacts;
use super::protocol::{client_tls, PoolHandle, ProtocolPool, Starting};
use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig};
use maitred_mongo::auth::scram::Mechanism;
use maitred_mongo::codec::compressed::Compressor;
use maitred_mongo::pool::UserKeys;
use maitred_mongo::user_pools::ServerLogin;
use maitred_mongo::{MongoPool, MongoPoolConfig, ServerTarget};
use std::collections::HashMap;
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
    // `[[pools.users]]` entries with their own server login (validated: both keys or none).
    let server_logins = p
        .users
        .iter()
        .filter_map(|u| {
            let login = ServerLogin {
                user: u.server_user.clone()?,
                password: u.server_password.as_ref()?.expose().into(),
            };
            Some((u.name.clone(), login))
        })
        .collect();
    let tls = maitred_mongo::tls::server_tls(&up.params, &up.host).map_err(|source| {
        DaemonError::Tls {
            pool: p.name.clone(),
            source,
        }
    })?;
    let (server, password) = super::upstream_server(up, None);
    Ok(MongoPoolConfig {
        name: p.name.clone(),
        users,
        server_logins,
        target: ServerTarget {
            server,
            user: up.user.clone(),
            password,
            auth_source: param(p, "authSource")
                .map(str::to_owned)
                .unwrap_or_else(|| up.database.clone()),
            mechanism,
            compressors,
            tls,
        },
        settings,
        max_message_size: p.max_message_size(),
        limits: super::client_limits(p),
    })
}

/// A reload changes users and passwords (new logins see them at once) and the upstream (new
/// server connections go to the new one; open ones are retired as they come back) at once.
impl ProtocolPool for MongoPool {
    const PROTOCOL: &'static str = "mongodb";

    fn apply(&self, old: &PoolConfig, new: &PoolConfig, waiting: &mut Vec<&'static str>) {
        if old.max_pinned != new.max_pinned {
            // MongoDB pins only transactions, without a cap.
            waiting.push("max_pinned");
        }
        let (old_cfg, new_cfg) = match (mongo_pool_config(old), mongo_pool_config(new)) {
            (Ok(o), Ok(n)) => (o, n),
            (_, Err(e)) | (Err(e), _) => {
                tracing::warn!(pool = %new.name, error = %e, "reload: users and upstream not changed");
                waiting.push("upstream");
                return;
            }
        };
        if old_cfg.users != new_cfg.users {
            let users = derive_users(self, &old_cfg.users, &new_cfg.users);
            self.set_users(users);
            tracing::info!(pool = %new.name, users = new_cfg.users.len(), "reload: users changed");
        }
        if old.upstream != new.upstream {
            new_upstream(&self.pool, new, |m| m.set_target(new_cfg.target));
        }
    }
}

/// The SCRAM verifiers of `new` users: kept from the running pool for a user whose
/// password did not change, derived (PBKDF2, off the reactor when the runtime allows)
/// for the others.
fn derive_users(
    pool: &MongoPool,
    old: &[(String, String)],
    new: &[(String, String)],
) -> HashMap<String, Arc<UserKeys>> {
    let derive = || {
        new.iter()
            .map(|(user, password)| {
                let same = old.iter().any(|(u, p)| u == user && p == password);
                let keys = match pool.user(user) {
                    Some(keys) if same => keys,
                    _ => Arc::new(UserKeys::derive(user, password)),
                };
                (user.clone(), keys)
            })
            .collect()
    };
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(derive)
    } else {
        derive()
    }
}

/// Starts the MongoDB pools, one listener each (MongoDB clients do not name a pool).
pub async fn start(pools: &[&PoolConfig], to: &mut Starting<'_>) -> Result<(), DaemonError> {
    for p in pools {
        let cfg = mongo_pool_config(p)?;
        let pool = tokio::task::spawn_blocking(move || MongoPool::new(cfg))
            .await
            .map_err(|e| DaemonError::Credentials {
                pool: p.name.clone(),
                source: Box::new(e),
            })?;
        pool.pool.start_maintenance();
        pool.user_pools.start_maintenance();
        if let Some(fleet) = &p.fleet {
            let settings = super::fleet::settings(p);
            let lease = maitred_mongo::fleet::lease::lease(settings.call_timeout, settings.tick);
            let coordinator = maitred_mongo::fleet::MongoCoordinator::new(
                &pool.pool,
                fleet,
                &p.upstream.database,
                lease,
            );
            maitred_pool::fleet::start(&pool.pool, coordinator, settings);
        }
        let client_tls = client_tls(p)?;
        let facts = PoolFacts::of(p, pool.clients.clone());
        let pool = Arc::new(pool);
        let handle = PoolHandle {
            pool: pool.clone(),
            core: pool.pool.clone(),
        };
        to.serve_pool(handle, p.listen, facts);
        let addr = p.listen;
        let listener = to.bind(addr)?;
        tracing::info!(
            pool = %p.name,
            upstream = %p.upstream.redacted(),
            size = p.size,
            client_auth = pool.requires_auth(),
            %addr,
            protocol = "mongodb",
            "listening"
        );
        to.serve(
            addr,
            maitred_mongo::listener::serve(listener, pool, client_tls),
        );
    }
    Ok(())
}
