//! A MySQL pool as the front end sees it: the users who may log in, the pooling mode, the
//! pins, and the protocol-agnostic pool of server connections.

use crate::manager::MysqlManager;
pub use crate::sql_effects::PinReason;
use crate::target::ServerTarget;
use arc_swap::ArcSwap;
use maitred_admin::PoolClients;
use maitred_pool::{ClientCount, ClientLimits, Pool, PoolSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// When a server connection goes back to the pool: in transaction mode when the server's
/// status has no SERVER_STATUS_IN_TRANS and no more results are due. Statement mode is
/// refused for MySQL pools by the configuration's validation.
pub use maitred_pool::PoolMode;

/// Everything needed to build a [`MysqlPool`].
#[derive(Debug, Clone)]
pub struct MysqlPoolConfig {
    pub name: String,
    /// The database clients select by default (and route by, when pools share an address).
    pub database: Option<String>,
    pub mode: PoolMode,
    /// `false`: any user name gets in without a password check (client_auth = trust).
    pub check_passwords: bool,
    /// (user, plaintext password).
    pub users: Vec<(String, String)>,
    pub target: ServerTarget,
    pub settings: PoolSettings,
    /// Statements prepared per server connection before the least recently used is closed.
    pub max_statements_per_connection: usize,
    /// Largest client packet accepted (bigger ones close the client with ERR 1153).
    pub max_client_packet: usize,
    /// Login, idle and query timeouts, `max_clients` (its `max_message_size` is
    /// `max_client_packet`).
    pub limits: ClientLimits,
    /// Send a queued client's read-only SELECT ahead on a busy connection (transaction
    /// mode; see `relay/send_ahead.rs`).
    pub send_ahead: bool,
    /// `database = "*"`: the pool of its address for databases no other pool is named for.
    pub any_database: bool,
}

/// Counters specific to MySQL sessions (the pool core keeps its own).
#[derive(Debug, Default)]
pub struct MysqlCounters {
    pub clients_accepted: AtomicU64,
    pub login_failures: AtomicU64,
    pub transactions: AtomicU64,
    pub protocol_errors: AtomicU64,
    pins: [AtomicU64; PinReason::ALL.len()],
}

impl MysqlCounters {
    pub fn count_pin(&self, reason: PinReason) {
        let i = PinReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.pins[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Pins so far, by reason.
    pub fn pins(&self) -> Vec<(&'static str, u64)> {
        PinReason::ALL
            .iter()
            .zip(self.pins.iter())
            .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One configured MySQL pool.
#[derive(Debug)]
pub struct MysqlPool {
    pub name: String,
    pub database: Option<String>,
    /// `database = "*"`: serves the databases no other pool of its address is named for.
    pub any_database: bool,
    pub mode: PoolMode,
    pub check_passwords: bool,
    /// user -> plaintext password; swapped whole by a reload ([`MysqlPool::set_users`]).
    users: ArcSwap<HashMap<String, Arc<str>>>,
    pub pool: Pool<MysqlManager>,
    pub counters: MysqlCounters,
    pub max_client_packet: usize,
    pub limits: ClientLimits,
    /// Clients logged in to this pool, bounded by `limits.max_clients`.
    pub client_count: ClientCount,
    /// The pool's logged-in clients and their traffic (admin console, metrics).
    pub clients: Arc<PoolClients>,
    /// `send_ahead`, changed by a reload.
    send_ahead: AtomicBool,
}

impl MysqlPool {
    pub fn new(cfg: MysqlPoolConfig) -> MysqlPool {
        MysqlPool {
            pool: Pool::new(
                MysqlManager::new(cfg.target, cfg.max_statements_per_connection),
                cfg.settings,
            ),
            name: cfg.name,
            database: cfg.database,
            any_database: cfg.any_database,
            mode: cfg.mode,
            check_passwords: cfg.check_passwords,
            users: ArcSwap::from_pointee(users_of(&cfg.users)),
            counters: MysqlCounters::default(),
            max_client_packet: cfg.max_client_packet,
            client_count: ClientCount::new(cfg.limits.max_clients),
            limits: cfg.limits,
            clients: PoolClients::new(),
            send_ahead: AtomicBool::new(cfg.send_ahead && cfg.mode == PoolMode::Transaction),
        }
    }

    /// Whether queued clients' read-only SELECTs are sent ahead (`send_ahead`).
    pub fn send_ahead(&self) -> bool {
        self.send_ahead.load(Ordering::Relaxed)
    }

    /// A reload changed `send_ahead` (it never applies in session mode).
    pub fn set_send_ahead(&self, on: bool) {
        self.send_ahead
            .store(on && self.mode == PoolMode::Transaction, Ordering::Relaxed);
    }

    /// The plaintext password of a configured user.
    pub fn password(&self, user: &str) -> Option<Arc<str>> {
        self.users.load().get(user).cloned()
    }

    pub fn has_users(&self) -> bool {
        !self.users.load().is_empty()
    }

    /// Replaces the users who may log in (a reload): new logins and COM_CHANGE_USER see
    /// the new list at once; clients logged in stay.
    pub fn set_users(&self, users: &[(String, String)]) {
        self.users.store(Arc::new(users_of(users)));
    }
}

fn users_of(users: &[(String, String)]) -> HashMap<String, Arc<str>> {
    users
        .iter()
        .map(|(user, password)| (user.clone(), Arc::from(password.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(users: &[(&str, &str)]) -> MysqlPoolConfig {
        MysqlPoolConfig {
            name: "app".into(),
            database: None,
            mode: PoolMode::Transaction,
            check_passwords: true,
            users: users
                .iter()
                .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
                .collect(),
            target: ServerTarget {
                server: maitred_frontend::ServerAddr::tcp("127.0.0.1", 3306),
                user: "app".into(),
                password: None,
                database: None,
                tls: crate::tls::ServerTls::disabled(),
            },
            settings: PoolSettings::new("app", 1),
            max_statements_per_connection: 8,
            max_client_packet: 1 << 20,
            limits: ClientLimits::new(1 << 20),
            send_ahead: true,
            any_database: false,
        }
    }

    #[test]
    fn set_users_adds_and_removes_logins() {
        let pool = MysqlPool::new(config(&[("app", "pw")]));
        assert_eq!(pool.password("app").as_deref(), Some("pw"));
        pool.set_users(&[("app".into(), "new".into()), ("other".into(), "x".into())]);
        assert_eq!(pool.password("app").as_deref(), Some("new"));
        assert_eq!(pool.password("other").as_deref(), Some("x"));
        pool.set_users(&[]);
        assert_eq!(pool.password("app"), None);
        assert!(!pool.has_users());
    }

    #[test]
    fn routing_named_pools_then_the_any_database_pool() {
        let pool = |name: &str, database: Option<&str>, any_database: bool| {
            let mut cfg = config(&[]);
            cfg.name = name.into();
            cfg.database = database.map(str::to_owned);
            cfg.any_database = any_database;
            Arc::new(MysqlPool::new(cfg))
        };
        let router = |pools: Vec<Arc<MysqlPool>>| crate::frontend::Router {
            pools,
            clients: Arc::default(),
            tls: None,
        };
        let found =
            |r: &crate::frontend::Router, db: Option<&str>| r.find(db).map(|p| p.name.clone());
        let r = router(vec![
            pool("any", Some("app"), true),
            pool("reports", Some("reports"), false),
        ]);
        assert_eq!(found(&r, Some("reports")).as_deref(), Some("reports"));
        assert_eq!(found(&r, Some("app")).as_deref(), Some("any"));
        assert_eq!(found(&r, Some("other")).as_deref(), Some("any"));
        let r = router(vec![
            pool("app", Some("app"), false),
            pool("reports", Some("reports"), false),
        ]);
        assert_eq!(
            found(&r, Some("other")),
            None,
            "no * pool: unknown schemas refused"
        );
    }
}
