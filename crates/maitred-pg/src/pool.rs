//! A PostgreSQL pool as the front end sees it: the client-facing database name, the users
//! who may log in, the pooling mode, and the protocol-agnostic pool of server connections.

use crate::auth::secret::Credentials;
use crate::auth::AuthError;
use crate::manager::PgManager;
use crate::target::ServerTarget;
use maitred_pool::{Pool, PoolSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// When a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// At the end of each transaction (ReadyForQuery 'I').
    Transaction,
    /// When the client disconnects.
    Session,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    ScramSha256,
    Md5,
    Trust,
}

/// Why a client in transaction mode was pinned to one server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// A protocol-level named prepared statement (until the statement cache lands).
    NamedStatement,
}

impl PinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::NamedStatement => "named_prepared_statement",
        }
    }
}

/// Everything needed to build a [`PgPool`].
#[derive(Debug, Clone)]
pub struct PgPoolConfig {
    pub name: String,
    /// The database name clients ask for in their startup packet.
    pub database: String,
    pub mode: PoolMode,
    pub client_auth: ClientAuth,
    /// (user, password in any form [`Credentials::from_configured`] accepts).
    pub users: Vec<(String, String)>,
    pub target: ServerTarget,
    pub settings: PoolSettings,
}

/// Counters specific to PostgreSQL sessions (the pool core keeps its own).
#[derive(Debug, Default)]
pub struct PgCounters {
    pub clients_accepted: AtomicU64,
    pub login_failures: AtomicU64,
    pub pins_named_statement: AtomicU64,
    pub transactions: AtomicU64,
}

impl PgCounters {
    pub fn count_pin(&self, reason: PinReason) {
        match reason {
            PinReason::NamedStatement => &self.pins_named_statement,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// One configured PostgreSQL pool.
#[derive(Debug)]
pub struct PgPool {
    pub name: String,
    pub database: String,
    pub mode: PoolMode,
    pub client_auth: ClientAuth,
    users: HashMap<String, Credentials>,
    pub pool: Pool<PgManager>,
    pub counters: PgCounters,
}

impl PgPool {
    /// Builds the pool; derives SCRAM keys of plaintext passwords once, here.
    pub fn new(cfg: PgPoolConfig) -> Result<PgPool, AuthError> {
        let mut users = HashMap::new();
        for (user, password) in &cfg.users {
            users.insert(user.clone(), Credentials::from_configured(user, password)?);
        }
        Ok(PgPool {
            pool: Pool::new(PgManager::new(cfg.target), cfg.settings),
            name: cfg.name,
            database: cfg.database,
            mode: cfg.mode,
            client_auth: cfg.client_auth,
            users,
            counters: PgCounters::default(),
        })
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn credentials(&self, user: &str) -> Option<&Credentials> {
        self.users.get(user)
    }
}
