//! A MySQL pool as the front end sees it: the users who may log in, the pooling mode, the
//! pins, and the protocol-agnostic pool of server connections.

use crate::manager::MyManager;
use crate::target::ServerTarget;
use maitred_admin::PoolClients;
use maitred_pool::{ClientCount, ClientLimits, Pool, PoolSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// When a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// At the end of each transaction (no SERVER_STATUS_IN_TRANS, no more results).
    Transaction,
    /// When the client disconnects.
    Session,
}

/// Why a client in transaction mode was pinned to one server connection for the rest of
/// its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// `SET` of a session variable maitred does not carry over (everything but autocommit).
    SessionVariable,
    /// `@user` variables.
    UserVariable,
    /// `CREATE TEMPORARY TABLE`.
    TemporaryTable,
    /// `LOCK TABLES`.
    LockTables,
    /// `GET_LOCK()`.
    GetLock,
    /// SQL-level `PREPARE`.
    SqlPrepare,
    /// `COM_SET_OPTION` (multi-statements on/off).
    SetOption,
    /// `SQL_CALC_FOUND_ROWS` / `FOUND_ROWS()` / `LAST_INSERT_ID()`: answers tied to one
    /// server connection.
    ConnectionFunction,
}

impl PinReason {
    pub const ALL: [PinReason; 8] = [
        PinReason::SessionVariable,
        PinReason::UserVariable,
        PinReason::TemporaryTable,
        PinReason::LockTables,
        PinReason::GetLock,
        PinReason::SqlPrepare,
        PinReason::SetOption,
        PinReason::ConnectionFunction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::SessionVariable => "session_variable",
            PinReason::UserVariable => "user_variable",
            PinReason::TemporaryTable => "temporary_table",
            PinReason::LockTables => "lock_tables",
            PinReason::GetLock => "get_lock",
            PinReason::SqlPrepare => "sql_prepare",
            PinReason::SetOption => "set_option",
            PinReason::ConnectionFunction => "connection_function",
        }
    }
}

/// Everything needed to build a [`MyPool`].
#[derive(Debug, Clone)]
pub struct MyPoolConfig {
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
}

/// Counters specific to MySQL sessions (the pool core keeps its own).
#[derive(Debug, Default)]
pub struct MyCounters {
    pub clients_accepted: AtomicU64,
    pub login_failures: AtomicU64,
    pub transactions: AtomicU64,
    pub protocol_errors: AtomicU64,
    pins: [AtomicU64; 8],
}

impl MyCounters {
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
pub struct MyPool {
    pub name: String,
    pub database: Option<String>,
    pub mode: PoolMode,
    pub check_passwords: bool,
    users: HashMap<String, String>,
    pub pool: Pool<MyManager>,
    pub counters: MyCounters,
    pub max_client_packet: usize,
    pub limits: ClientLimits,
    /// Clients logged in to this pool, bounded by `limits.max_clients`.
    pub client_count: ClientCount,
    /// The pool's logged-in clients and their traffic (admin console, metrics).
    pub clients: Arc<PoolClients>,
}

impl MyPool {
    pub fn new(cfg: MyPoolConfig) -> MyPool {
        MyPool {
            pool: Pool::new(
                MyManager::new(cfg.target, cfg.max_statements_per_connection),
                cfg.settings,
            ),
            name: cfg.name,
            database: cfg.database,
            mode: cfg.mode,
            check_passwords: cfg.check_passwords,
            users: cfg.users.into_iter().collect(),
            counters: MyCounters::default(),
            max_client_packet: cfg.max_client_packet,
            client_count: ClientCount::new(cfg.limits.max_clients),
            limits: cfg.limits,
            clients: PoolClients::new(),
        }
    }

    /// The plaintext password of a configured user.
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }
}
