//! MySQL/MariaDB pools: maps the configuration to maitred-mysql's pools and starts
//! listeners.

use super::live::new_upstream;
use super::observed::PoolFacts;
use super::protocol::{
    listening, pool_ready, ByAddress, PoolHandle, ProtocolNumbers, ProtocolPool, Starting,
};
use super::DaemonError;
use maitred_config::model::{ClientAuth, PoolConfig, PoolMode};
use maitred_mysql::{ClientRegistry, MysqlPool, MysqlPoolConfig, Router, ServerTarget};
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

/// Maps a configured pool to the MySQL crate's pool description. TLS settings that do not
/// load (checked at start; a reload may bring a broken `ssl-ca`) fail closed: no server
/// connection opens.
fn mysql_pool_config(p: &PoolConfig) -> MysqlPoolConfig {
    let tls = server_tls(p).unwrap_or_else(|e| {
        tracing::error!(pool = %p.name, error = %e, "upstream TLS settings do not load: no server connection will open");
        maitred_mysql::tls::ServerTls::refusing()
    });
    let up = &p.upstream;
    let settings = super::pool_settings(p);
    let socket = maitred_mysql::tls::server_socket(&up.params);
    let (server, password) = super::upstream_server(up, socket);
    let database = Some(p.own_database().to_owned()).filter(|d| !d.is_empty());
    MysqlPoolConfig {
        name: p.name.clone(),
        database,
        mode: match p.mode {
            // Refused by Config::validate for MySQL pools.
            PoolMode::Statement => PoolMode::Transaction,
            mode => mode,
        },
        check_passwords: p.client_auth != ClientAuth::Trust,
        users: super::listed_passwords(p),
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
        any_database: p.any_database(),
    }
}

/// A MySQL pool's pins by reason (`maitred_pins_total{reason=...}`) for the admin endpoint;
/// a reload changes users and passwords (new logins and COM_CHANGE_USER see them at once),
/// `send_ahead` and the upstream (new server connections go to the new one; open ones are
/// retired as they come back) at once.
impl ProtocolPool for MysqlPool {
    const PROTOCOL: &'static str = "mysql";

    fn numbers(&self) -> ProtocolNumbers {
        let pins = self.counters.pins().into_iter();
        let labeled = pins.map(|(reason, count)| maitred_admin::LabeledCounter {
            name: "pins_total",
            label: "reason",
            value: reason,
            count,
        });
        ProtocolNumbers {
            labeled: labeled.collect(),
            ..ProtocolNumbers::default()
        }
    }

    fn apply(&self, old: &PoolConfig, new: &PoolConfig, waiting: &mut Vec<&'static str>) {
        if old.max_pinned != new.max_pinned {
            // MySQL pools pin without a cap.
            waiting.push("max_pinned");
        }
        if old.send_ahead != new.send_ahead {
            self.set_send_ahead(new.send_ahead);
        }
        let cfg = mysql_pool_config(new);
        if old.users != new.users {
            self.set_users(&cfg.users);
            tracing::info!(pool = %new.name, users = cfg.users.len(), "reload: users changed");
        }
        if old.upstream != new.upstream {
            new_upstream(&self.pool, new, |m| m.set_target(cfg.target));
        }
    }
}

/// Starts the MySQL pools and their listeners (pools sharing an address share a listener
/// and are told apart by the client's database name).
pub async fn start(pools: &[&PoolConfig], to: &mut Starting<'_>) -> Result<(), DaemonError> {
    let clients = Arc::new(ClientRegistry::default());
    let mut by_addr = ByAddress::new();
    for p in pools {
        server_tls(p)?;
        let pool = Arc::new(MysqlPool::new(mysql_pool_config(p)));
        // The address's client TLS loads (or fails) before the pool runs.
        by_addr.add(p, pool.clone())?;
        pool.pool.start_maintenance();
        if let Some(fleet) = &p.fleet {
            let coordinator = maitred_mysql::fleet::MysqlCoordinator::new(&pool.pool, fleet);
            maitred_pool::fleet::start(&pool.pool, coordinator, super::fleet::settings(p));
        }
        let facts = PoolFacts::of(p, pool.clients.clone());
        let handle = PoolHandle {
            pool: pool.clone(),
            core: pool.pool.clone(),
        };
        to.serve_pool(handle, p.listen, facts);
        pool_ready(p);
    }
    for (addr, tls, pools) in by_addr.into_addresses() {
        let listener = to.bind(addr)?;
        let databases = pools.iter().filter_map(|p| p.database.as_deref());
        listening(addr, "mysql", databases);
        let router = Arc::new(Router {
            pools,
            clients: clients.clone(),
            tls,
        });
        to.serve(addr, maitred_mysql::listener::serve(listener, router));
    }
    Ok(())
}
