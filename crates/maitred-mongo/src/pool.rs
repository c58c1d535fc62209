//! A MongoDB pool as the front end sees it: the users clients log in as, counters, and the
//! protocol-agnostic pool of server connections.

use crate::auth::scram::{derive_keys, Mechanism, ScramKeys};
use crate::manager::MongoManager;
use crate::target::ServerTarget;
use arc_swap::ArcSwap;
use maitred_admin::PoolClients;
use maitred_pool::{ClientCount, ClientLimits, Pool, PoolSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a client was pinned to one server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// A multi-document transaction (lsid + txnNumber), from startTransaction to commit/abort.
    Transaction,
}

impl PinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::Transaction => "transaction",
        }
    }
}

/// Everything needed to build a [`MongoPool`].
#[derive(Debug, Clone)]
pub struct MongoPoolConfig {
    pub name: String,
    /// (user, plaintext password) pairs clients may log in as; empty = no client auth.
    pub users: Vec<(String, String)>,
    /// Client users whose requests run as their own server login (their own pool of
    /// server connections); the others run as `target`'s user.
    pub server_logins: HashMap<String, crate::user_pools::ServerLogin>,
    pub target: ServerTarget,
    pub settings: PoolSettings,
    /// Largest message accepted from a client (the server's own limit applies too).
    pub max_message_size: usize,
    /// Login, idle and query timeouts, `max_clients` (its `max_message_size` is the field
    /// above).
    pub limits: ClientLimits,
}

#[derive(Debug, Default)]
pub struct MongoCounters {
    pub clients_accepted: AtomicU64,
    pub login_failures: AtomicU64,
    pub requests: AtomicU64,
    pub pins_transaction: AtomicU64,
    pub overload_replies: AtomicU64,
    /// Awaitable hellos held (streaming monitors count once per stream).
    pub awaitable_hellos: AtomicU64,
}

impl MongoCounters {
    pub fn count_pin(&self, reason: PinReason) {
        match reason {
            PinReason::Transaction => &self.pins_transaction,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// A user's verifiers for both mechanisms.
#[derive(Debug, Clone)]
pub struct UserKeys {
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

impl UserKeys {
    /// Derives both verifiers (fresh salts, the default iteration counts): CPU work of
    /// tens of milliseconds, to run off the reactor.
    pub fn derive(user: &str, password: &str) -> UserKeys {
        UserKeys {
            sha1: derive_keys(
                Mechanism::Sha1,
                user,
                password,
                Mechanism::Sha1.default_iterations(),
            ),
            sha256: derive_keys(
                Mechanism::Sha256,
                user,
                password,
                Mechanism::Sha256.default_iterations(),
            ),
        }
    }

    pub fn for_mechanism(&self, m: Mechanism) -> &ScramKeys {
        match m {
            Mechanism::Sha1 => &self.sha1,
            Mechanism::Sha256 => &self.sha256,
        }
    }
}

#[derive(Debug)]
pub struct MongoPool {
    pub name: String,
    /// Swapped whole by a reload ([`MongoPool::set_users`]).
    users: ArcSwap<HashMap<String, Arc<UserKeys>>>,
    pub pool: Pool<MongoManager>,
    pub counters: MongoCounters,
    pub max_message_size: usize,
    pub limits: ClientLimits,
    /// Clients connected to this pool, bounded by `limits.max_clients`.
    pub client_count: ClientCount,
    /// Pinned transactions, by lsid.
    pub txns: crate::txn::TxnRegistry,
    /// The pool's connected clients and their traffic (admin console, metrics).
    pub clients: Arc<PoolClients>,
    /// The server connections of client users with their own server login.
    pub user_pools: crate::user_pools::UserPools,
}

impl MongoPool {
    /// Builds the pool; derives SCRAM verifiers of the users once, here.
    pub fn new(cfg: MongoPoolConfig) -> MongoPool {
        let users = cfg
            .users
            .iter()
            .map(|(u, pw)| (u.clone(), Arc::new(UserKeys::derive(u, pw))))
            .collect();
        let user_pools =
            crate::user_pools::UserPools::new(&cfg.target, &cfg.settings, &cfg.server_logins);
        MongoPool {
            user_pools,
            pool: Pool::new(MongoManager::new(cfg.target), cfg.settings),
            name: cfg.name,
            users: ArcSwap::from_pointee(users),
            counters: MongoCounters::default(),
            max_message_size: cfg.max_message_size,
            client_count: ClientCount::new(cfg.limits.max_clients),
            limits: cfg.limits,
            txns: crate::txn::TxnRegistry::default(),
            clients: PoolClients::new(),
        }
    }

    /// The server connections a client logged in as `user` runs on: its own server login's
    /// pool if it has one, else the pool of the upstream URL's user.
    pub fn server_pool(&self, user: Option<&str>) -> &Pool<MongoManager> {
        user.and_then(|u| self.user_pools.get(u))
            .unwrap_or(&self.pool)
    }

    /// Whether clients must authenticate.
    pub fn requires_auth(&self) -> bool {
        !self.users.load().is_empty()
    }

    pub fn user(&self, name: &str) -> Option<Arc<UserKeys>> {
        self.users.load().get(name).cloned()
    }

    /// Replaces the users clients log in as (a reload): new logins see them at once;
    /// clients already authenticated stay. With no user left, clients need no
    /// authentication (as when the pool started without users).
    pub fn set_users(&self, users: HashMap<String, Arc<UserKeys>>) {
        self.users.store(Arc::new(users));
    }
}
