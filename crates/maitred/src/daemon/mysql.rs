//! MySQL/MariaDB pools: maps the configuration to maitred-mysql's pools and starts
//! listeners.

use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig, PoolMode};
use maitred_mysql::{ClientRegistry, MyPool, MyPoolConfig, Router, ServerTarget};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// TLS towards the server, from the upstream URL's `ssl-mode` and `ssl-ca`.
fn server_tls(p: &PoolConfig) -> Result<maitred_mysql::tls::ServerTls, DaemonError> {
    maitred_mysql::tls::server_tls(&p.upstream.params, &p.upstream.host).map_err(|source| {
        DaemonError::Tls {
            pool: p.name.clone(),
            source,
        }
    })
}

/// TLS for the pool's clients (CLIENT_SSL), when it has a certificate.
fn client_tls(p: &PoolConfig) -> Result<Option<maitred_mysql::tls::ClientTls>, DaemonError> {
    match (&p.tls_cert, &p.tls_key) {
        (Some(cert), Some(key)) => maitred_mysql::tls::ClientTls::load(cert, key, p.tls_required)
            .map(Some)
            .map_err(|source| DaemonError::Tls {
                pool: p.name.clone(),
                source,
            }),
        _ => Ok(None),
    }
}

/// Maps a configured pool to the MySQL crate's pool description. TLS settings that do not
/// load (checked at start; a reload may bring a broken `ssl-ca`) fail closed: no server
/// connection opens.
fn my_pool_config(p: &PoolConfig) -> MyPoolConfig {
    let tls = server_tls(p).unwrap_or_else(|e| {
        tracing::error!(pool = %p.name, error = %e, "upstream TLS settings do not load: no server connection will open");
        maitred_mysql::tls::ServerTls::refusing()
    });
    let up = &p.upstream;
    let settings = super::pool_settings(p);
    let socket = maitred_mysql::tls::server_socket(&up.params);
    let (server, password) = super::upstream_server(up, socket);
    let database = Some(p.client_database().to_owned()).filter(|d| !d.is_empty());
    MyPoolConfig {
        name: p.name.clone(),
        database,
        mode: match p.mode {
            // Refused by Config::validate for MySQL pools.
            PoolMode::Statement => PoolMode::Transaction,
            mode => mode,
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
            server,
            user: up.user.clone(),
            password,
            database: Some(up.database.clone()).filter(|d| !d.is_empty()),
            tls,
        },
        settings,
        // Same meaning as for PostgreSQL: statements kept prepared per server connection.
        max_statements_per_connection: p.prepared_statements,
        // The server's own max_allowed_packet still applies.
        max_client_packet: p.max_message_size(),
        limits: super::client_limits(p),
        send_ahead: p.send_ahead,
    }
}

/// A MySQL pool as the admin endpoint sees it: the pool core's view, plus pins by reason
/// (`maitred_pins_total{reason=...}`).
struct MyObserver {
    pool: Arc<MyPool>,
    listen: SocketAddr,
    facts: super::observed::PoolFacts,
}

impl maitred_admin::PoolObserver for MyObserver {
    fn name(&self) -> &str {
        &self.pool.name
    }
    fn protocol(&self) -> &'static str {
        "mysql"
    }
    fn listen(&self) -> SocketAddr {
        self.listen
    }
    fn state(&self) -> maitred_pool::PoolState {
        self.pool.pool.state()
    }
    fn stats(&self) -> maitred_pool::PoolStats {
        self.pool.pool.stats()
    }
    fn labeled_counters(&self) -> Vec<maitred_admin::LabeledCounter> {
        self.pool
            .counters
            .pins()
            .into_iter()
            .map(|(reason, count)| maitred_admin::LabeledCounter {
                name: "pins_total",
                label: "reason",
                value: reason,
                count,
            })
            .collect()
    }
    super::observed::observe_facts!(s => s.pool.pool);
}

/// A MySQL pool as a reload changes it: sizes and timeouts, users and passwords (new
/// logins and COM_CHANGE_USER see them at once), and the upstream (new server connections
/// go to the new one; open ones are retired as they come back) take effect at once.
struct MyLive {
    pool: Arc<MyPool>,
}

impl super::live::LivePool for MyLive {
    fn name(&self) -> &str {
        &self.pool.name
    }
    fn protocol(&self) -> &'static str {
        "mysql"
    }
    fn apply(&self, old: &PoolConfig, new: &PoolConfig) -> Vec<&'static str> {
        let mut waiting = super::live::restart_keys(old, new);
        if super::live::core_settings_changed(old, new) {
            self.pool.pool.reconfigure(super::pool_settings(new));
        }
        if old.max_pinned != new.max_pinned {
            // MySQL pools pin without a cap.
            waiting.push("max_pinned");
        }
        if old.send_ahead != new.send_ahead {
            self.pool.set_send_ahead(new.send_ahead);
        }
        let cfg = my_pool_config(new);
        if old.users != new.users {
            self.pool.set_users(&cfg.users);
            tracing::info!(pool = %new.name, users = cfg.users.len(), "reload: users changed");
        }
        if old.upstream != new.upstream {
            self.pool.pool.manager().set_target(cfg.target);
            self.pool.pool.reconnect();
            tracing::info!(
                pool = %new.name,
                upstream = %new.upstream.redacted(),
                "reload: new upstream; open server connections are retired as they come back"
            );
        }
        waiting
    }
    fn retire(&self) {
        self.pool.pool.close();
    }
}

/// Starts the MySQL pools and their listeners (pools sharing an address share a listener
/// and are told apart by the client's database name).
/// Registers each pool with `admin`; returns the listener tasks, which the drain aborts.
pub async fn start(
    pools: &[&PoolConfig],
    admin: &maitred_admin::Admin,
    probe: bool,
) -> Result<super::live::Started, DaemonError> {
    let mut started = super::live::Started::default();
    let clients = Arc::new(ClientRegistry::default());
    let mut by_addr: BTreeMap<SocketAddr, Vec<Arc<MyPool>>> = BTreeMap::new();
    let mut tls_by_addr = BTreeMap::new();
    for p in pools {
        server_tls(p)?;
        if let std::collections::btree_map::Entry::Vacant(e) = tls_by_addr.entry(p.listen) {
            e.insert(client_tls(p)?);
        }
        let pool = MyPool::new(my_pool_config(p));
        pool.pool.start_maintenance();
        let facts = super::observed::PoolFacts::of(p, pool.clients.clone());
        let pool = Arc::new(pool);
        admin.register(Arc::new(MyObserver {
            pool: pool.clone(),
            listen: p.listen,
            facts,
        }));
        if probe {
            super::lifecycle::probe_until_ready(&pool.pool);
        }
        tracing::info!(
            pool = %p.name,
            upstream = %p.upstream.redacted(),
            mode = %p.mode,
            size = p.size,
            "pool ready"
        );
        started.pools.push(Arc::new(MyLive { pool: pool.clone() }));
        by_addr.entry(p.listen).or_default().push(pool);
    }
    for (addr, pools) in by_addr {
        let listener =
            super::listen::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
        let databases: Vec<&str> = pools.iter().filter_map(|p| p.database.as_deref()).collect();
        tracing::info!(%addr, ?databases, protocol = "mysql", "listening");
        let router = Arc::new(Router {
            pools,
            clients: clients.clone(),
            tls: tls_by_addr.remove(&addr).flatten(),
        });
        let task = tokio::spawn(async move {
            if let Err(e) = maitred_mysql::listener::serve(listener, router).await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        });
        started.listeners.push((addr, task.abort_handle()));
    }
    Ok(started)
}
