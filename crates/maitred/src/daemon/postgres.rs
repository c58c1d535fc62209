//! PostgreSQL pools: maps the configuration to maitred-pg's pools and starts listeners.

use super::live::new_upstream;
use super::observed::{Observed, PoolFacts};
use super::protocol::{
    listening, pool_ready, ByAddress, PoolHandle, ProtocolNumbers, ProtocolPool, Starting,
};
use super::DaemonError;
use maitred_admin::{Admin, LabeledCounter};
use maitred_config::model::{ClientAuth, PoolConfig};
use maitred_pg::auth_query::user_pools::UserPoolHooks;
use maitred_pg::auth_query::AuthQueryConfig;
use maitred_pg::manager::PgManager;
use maitred_pg::target::socket_in;
use maitred_pg::tls::{ServerTls, SslMode};
use maitred_pg::{CancelRegistry, PgPool, PgPoolConfig, Router, ServerTarget};
use std::path::Path;
use std::sync::Arc;

impl ProtocolPool for PgPool {
    const PROTOCOL: &'static str = "postgres";

    fn numbers(&self) -> ProtocolNumbers {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        let counters = vec![
            ("clients_accepted_total", c.clients_accepted.load(Relaxed)),
            ("login_failures_total", c.login_failures.load(Relaxed)),
            ("transactions_total", c.transactions.load(Relaxed)),
            (
                "statement_cache_hits_total",
                c.statement_cache_hits.load(Relaxed),
            ),
            (
                "statement_prepares_total",
                c.statement_prepares.load(Relaxed),
            ),
            ("pins_refused_total", c.pins_refused.load(Relaxed)),
            (
                "statement_registry_evictions_total",
                self.statements.evictions(),
            ),
        ];
        let pins = c
            .pins_by_reason()
            .into_iter()
            .map(|(reason, count)| LabeledCounter {
                name: "pins_total",
                label: "reason",
                value: reason.as_str(),
                count,
            });
        let confirmations = c
            .confirmations_by_cause()
            .into_iter()
            .map(|(cause, count)| LabeledCounter {
                name: "session_confirmations_total",
                label: "reason",
                value: cause,
                count,
            });
        let gauges = vec![
            ("clients_pinned", self.pinned_now() as f64),
            ("statement_registry_size", self.statements.len() as f64),
        ];
        ProtocolNumbers {
            counters,
            labeled: pins.chain(confirmations).collect(),
            gauges,
        }
    }

    /// Users and passwords, the upstream (new server connections go to the new one; open
    /// ones are retired as they come back), `max_pinned` and `send_ahead` take effect at
    /// once.
    fn apply(&self, old: &PoolConfig, new: &PoolConfig, waiting: &mut Vec<&'static str>) {
        // The lookup connection and the users' pools keep the settings they started with.
        if (
            old.auth_user.clone(),
            old.auth_query.clone(),
            old.auth_cache_ttl,
        ) != (
            new.auth_user.clone(),
            new.auth_query.clone(),
            new.auth_cache_ttl,
        ) || (old.auth_user.is_some() && old.upstream != new.upstream)
        {
            waiting.push("auth_user/auth_query");
        }
        if old.max_pinned() != new.max_pinned() {
            self.set_max_pinned(new.max_pinned());
        }
        if old.send_ahead != new.send_ahead {
            self.set_send_ahead(new.send_ahead);
        }
        // users and upstream are derived together: rebuild both from the new file.
        let cfg = match pg_pool_config(new) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::warn!(pool = %new.name, error = %e, "reload: users and upstream not changed");
                return;
            }
        };
        if old.users != new.users || old.client_auth != new.client_auth {
            if let Err(e) = self.set_users(&cfg.users) {
                tracing::warn!(pool = %new.name, error = %e, "reload: users not changed");
                waiting.push("users");
            }
        }
        if let Some(databases) = &self.databases {
            super::any_database::apply(databases, old, new, &cfg);
        }
        if old.upstream != new.upstream {
            new_upstream(&self.pool, new, |m| m.set_target(cfg.target));
        }
    }

    fn retire(&self) {
        if let Some(aq) = &self.auth_query {
            aq.users.close_all();
        }
        if let Some(databases) = &self.databases {
            databases.close_all();
        }
    }
}

/// TLS towards the server, from the upstream URL's sslmode and sslrootcert.
fn server_tls(p: &PoolConfig) -> Result<ServerTls, DaemonError> {
    let param = |name: &str| param(p, name);
    let tls_error = |source: maitred_pg::tls::TlsError| DaemonError::Tls {
        pool: p.name.clone(),
        source,
    };
    let mode = SslMode::parse(param("sslmode").unwrap_or("prefer")).map_err(tls_error)?;
    if let Some(dir) = param(SOCKET_DIR_PARAM) {
        // No TLS over a Unix socket (libpq does not try it either).
        if mode.requires_tls() {
            return Err(tls_error(maitred_pg::tls::TlsError::Setting(format!(
                "sslmode {} cannot be met over the Unix socket in {dir} (no TLS there); use host and port, or sslmode=disable",
                param("sslmode").unwrap_or_default()
            ))));
        }
        return Ok(ServerTls::disabled());
    }
    ServerTls::new(mode, param("sslrootcert").map(Path::new), &p.upstream.host).map_err(tls_error)
}

/// The upstream URL's parameter `name`.
fn param<'a>(p: &'a PoolConfig, name: &str) -> Option<&'a str> {
    let params = &p.upstream.params;
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// libpq's `host=/directory` in the upstream URL: the server's Unix socket is in it.
const SOCKET_DIR_PARAM: &str = "host";

/// Maps a configured pool to the PostgreSQL crate's pool description.
pub(super) fn pg_pool_config(p: &PoolConfig) -> Result<PgPoolConfig, DaemonError> {
    let up = &p.upstream;
    let settings = super::pool_settings(p);
    let socket = param(p, SOCKET_DIR_PARAM).map(|dir| socket_in(Path::new(dir), up.port));
    let (server, password) = super::upstream_server(up, socket);
    let mut cfg = PgPoolConfig {
        name: p.name.clone(),
        database: p.own_database().to_owned(),
        mode: p.mode,
        client_auth: match p.client_auth {
            ClientAuth::ScramSha256 => maitred_pg::ClientAuth::ScramSha256,
            ClientAuth::Md5 => maitred_pg::ClientAuth::Md5,
            ClientAuth::Trust => maitred_pg::ClientAuth::Trust,
        },
        users: super::listed_passwords(p),
        target: ServerTarget {
            server,
            user: up.user.clone(),
            password,
            passthrough: None,
            database: up.database.clone(),
            startup_params: up
                .params
                .iter()
                .filter(|(k, _)| k != "sslmode" && k != "sslrootcert" && k != SOCKET_DIR_PARAM)
                .cloned()
                .collect(),
            tls: server_tls(p)?,
        },
        settings,
        prepared_statements_per_connection: p.prepared_statements,
        max_pinned: p.max_pinned(),
        send_ahead: p.send_ahead,
        limits: super::client_limits(p),
        auth_query: None,
        any_database: p.any_database().then(|| p.max_databases()),
    };
    cfg.auth_query = auth_query_config(p, &cfg.target);
    Ok(cfg)
}

/// The lookup of users not in `users` (auth_user/auth_query): the upstream, logged in as
/// `auth_user` with its plaintext password (validation made sure there is one).
fn auth_query_config(p: &PoolConfig, upstream: &ServerTarget) -> Option<AuthQueryConfig> {
    let auth_user = p.auth_user.as_ref()?;
    let listed = p.users.iter().find(|u| &u.name == auth_user);
    let password = match listed {
        Some(u) => u.password.as_ref().map(|s| s.expose().into()),
        None => upstream.password.clone(),
    };
    let mut target = upstream.clone();
    target.user = auth_user.clone();
    target.password = password;
    Some(AuthQueryConfig {
        query: p.effective_auth_query()?.to_owned(),
        target,
        cache_ttl: p.auth_cache_ttl,
        timeout: p.server_connect_timeout,
    })
}

/// Registers each auth_query user's pool with the admin endpoint while it is open, as
/// `<pool>/<user>`.
pub(super) struct UserPoolMetrics {
    pub(super) admin: std::sync::Weak<Admin>,
    pub(super) config: PoolConfig,
}

impl UserPoolHooks for UserPoolMetrics {
    fn opened(&self, pool: &Arc<PgPool>) {
        if let Some(admin) = self.admin.upgrade() {
            let mut facts = PoolFacts::of(&self.config, pool.clients.clone());
            facts.server_user = pool.pool.manager().target().user.clone();
            facts.database = pool.database.clone();
            admin.register(Arc::new(Observed {
                handle: handle(pool),
                listen: self.config.listen,
                facts,
            }));
        }
    }
    fn closed(&self, pool: &Arc<PgPool>) {
        if let Some(admin) = self.admin.upgrade() {
            admin.unregister("postgres", &pool.name);
        }
    }
}

pub(super) fn handle(pool: &Arc<PgPool>) -> PoolHandle<PgPool, PgManager> {
    PoolHandle {
        pool: pool.clone(),
        core: pool.pool.clone(),
    }
}

/// Starts the PostgreSQL pools and their listeners (pools sharing an address share a
/// listener and are told apart by the client's database name).
pub async fn start(pools: &[&PoolConfig], to: &mut Starting<'_>) -> Result<(), DaemonError> {
    let cancels = Arc::new(CancelRegistry::default());
    let mut by_addr = ByAddress::new();
    for p in pools {
        let pool = PgPool::new(pg_pool_config(p)?).map_err(|source| DaemonError::Credentials {
            pool: p.name.clone(),
            source: Box::new(source),
        })?;
        pool.pool.start_maintenance();
        if let Some(fleet) = &p.fleet {
            let coordinator = maitred_pg::fleet::PgCoordinator::new(&pool.pool, fleet);
            maitred_pool::fleet::start(&pool.pool, coordinator, super::fleet::settings(p));
        }
        pool_ready(p);
        if let Some(aq) = &pool.auth_query {
            aq.users.set_hooks(Arc::new(UserPoolMetrics {
                admin: Arc::downgrade(to.admin),
                config: (*p).clone(),
            }));
        }
        if let Some(databases) = &pool.databases {
            databases.set_hooks(super::any_database::metrics(to.admin, p));
        }
        let pool = Arc::new(pool);
        let mut facts = PoolFacts::of(p, pool.clients.clone());
        facts.database = pool.database.clone();
        to.serve_pool(handle(&pool), p.listen, facts);
        by_addr.add(p, pool)?;
    }
    for (addr, tls, pools) in by_addr.into_addresses() {
        let listener = to.bind(addr)?;
        let any = pools.iter().any(|p| p.databases.is_some()).then_some("*");
        let databases = pools.iter().map(|p| p.database.as_str()).chain(any);
        listening(addr, "postgres", databases);
        let router = Arc::new(Router {
            pools,
            console: Some(to.admin.clone()),
            cancels: cancels.clone(),
            tls,
        });
        to.serve(addr, maitred_pg::listener::serve(listener, router));
    }
    Ok(())
}
