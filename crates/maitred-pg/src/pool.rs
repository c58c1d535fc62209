//! A PostgreSQL pool as the front end sees it: the client-facing database name, the users
//! who may log in, the pooling mode, and the protocol-agnostic pool of server connections.

use crate::auth::secret::Credentials;
use crate::auth::AuthError;
use crate::auth_query::user_pools::UserPools;
use crate::auth_query::{AuthQuery, AuthQueryConfig};
use crate::databases::DatabasePools;
use crate::manager::PgManager;
use crate::notify::Notifier;
use crate::sql_effects::PinReason;
use crate::startup_params::StartupValues;
use crate::statements::StatementRegistry;
use crate::target::ServerTarget;
use arc_swap::ArcSwap;
use maitred_admin::PoolClients;
use maitred_pool::{ClientCount, ClientLimits, Pool, PoolSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// When a server connection goes back to the pool: in transaction mode at ReadyForQuery
/// 'I'; in statement mode after each statement outside a transaction block (blocks are
/// refused).
pub use maitred_pool::PoolMode;

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    ScramSha256,
    Md5,
    Trust,
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
    /// Named statements kept prepared per server connection (least recently used closed).
    pub prepared_statements_per_connection: usize,
    /// At most this many clients may be pinned to a server connection at once.
    pub max_pinned: usize,
    /// Whether a queued client's lone SELECT may be sent ahead on a busy connection
    /// (see `relay/send_ahead.rs`).
    pub send_ahead: bool,
    /// Login, idle and query timeouts, `max_clients`, message size.
    pub limits: ClientLimits,
    /// Users not in `users` are looked up on the server (auth_query), if set.
    pub auth_query: Option<AuthQueryConfig>,
    /// `database = "*"`: clients naming a database no pool of the address serves get a
    /// pool created for it from this one, at most this many at once (`max_databases`).
    pub any_database: Option<usize>,
}

/// Counters specific to PostgreSQL sessions (the pool core keeps its own).
#[derive(Debug, Default)]
pub struct PgCounters {
    pub clients_accepted: AtomicU64,
    pub login_failures: AtomicU64,
    pub transactions: AtomicU64,
    /// Parse messages answered without asking the server (statement already prepared).
    pub statement_cache_hits: AtomicU64,
    /// Statements prepared on a server connection (client Parse or maitred's own).
    pub statement_prepares: AtomicU64,
    /// Clients pinned so far, by reason (index: position in [`PinReason::ALL`]).
    pub pins: [AtomicU64; PinReason::ALL.len()],
    /// Pins refused because `max_pinned` clients were pinned already.
    pub pins_refused: AtomicU64,
    /// Sessions confirmed with the server, by cause (index: position in
    /// `relay::ConfirmCause::ALL`).
    pub confirmations: [AtomicU64; crate::relay::ConfirmCause::ALL.len()],
}

impl PgCounters {
    pub fn confirmations_by_cause(&self) -> Vec<(&'static str, u64)> {
        crate::relay::ConfirmCause::ALL
            .iter()
            .zip(&self.confirmations)
            .map(|(c, n)| (c.as_str(), n.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn pins_by_reason(&self) -> Vec<(PinReason, u64)> {
        PinReason::ALL
            .iter()
            .zip(&self.pins)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One configured PostgreSQL pool.
#[derive(Debug)]
pub struct PgPool {
    pub name: String,
    pub database: String,
    pub mode: PoolMode,
    pub client_auth: ClientAuth,
    /// Swapped whole by a reload ([`PgPool::set_users`]).
    users: ArcSwap<HashMap<String, Arc<Credentials>>>,
    pub pool: Pool<PgManager>,
    pub counters: PgCounters,
    pub statements: StatementRegistry,
    max_pinned: AtomicUsize,
    pinned_now: AtomicUsize,
    send_ahead: AtomicBool,
    /// The shared LISTEN connection of this pool.
    pub notifier: Notifier,
    pub limits: ClientLimits,
    /// Clients logged in to this pool, bounded by `limits.max_clients`.
    pub client_count: ClientCount,
    /// The pool's logged-in clients and their traffic (admin console, metrics).
    pub clients: Arc<PoolClients>,
    /// The lookup of users not in `users`, and their own pools.
    pub auth_query: Option<AuthQuery>,
    /// What the server said of the startup parameters clients sent.
    pub startup_values: StartupValues,
    /// With `database = "*"`: the pools created for the other databases of the server.
    pub databases: Option<Arc<DatabasePools>>,
}

impl PgPool {
    /// Builds the pool; derives SCRAM keys of plaintext passwords once, here.
    pub fn new(cfg: PgPoolConfig) -> Result<PgPool, AuthError> {
        let users = credentials_of(&cfg.users)?;
        let auth_query = cfg.auth_query.clone().map(|aq| {
            let template = PgPoolConfig {
                users: Vec::new(),
                auth_query: None,
                any_database: None,
                ..cfg.clone()
            };
            AuthQuery::new(aq, UserPools::new(template))
        });
        let databases = cfg
            .any_database
            .map(|max| Arc::new(DatabasePools::new(cfg.clone(), max)));
        let manager = PgManager::new(cfg.target, cfg.prepared_statements_per_connection);
        let notifier = Notifier::new(manager.target().clone());
        Ok(PgPool {
            notifier,
            pool: Pool::new(manager, cfg.settings),
            statements: StatementRegistry::default(),
            max_pinned: AtomicUsize::new(cfg.max_pinned),
            pinned_now: AtomicUsize::new(0),
            send_ahead: AtomicBool::new(cfg.send_ahead && cfg.mode != PoolMode::Session),
            name: cfg.name,
            database: cfg.database,
            mode: cfg.mode,
            client_auth: cfg.client_auth,
            users: ArcSwap::from_pointee(users),
            counters: PgCounters::default(),
            client_count: ClientCount::new(cfg.limits.max_clients),
            limits: cfg.limits,
            clients: PoolClients::new(),
            auth_query,
            startup_values: StartupValues::default(),
            databases,
        })
    }

    /// Takes one of the `max_pinned` places; false when they are all taken.
    pub fn try_pin(&self, reason: PinReason) -> bool {
        let taken = self
            .pinned_now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_pinned.load(Ordering::Relaxed)).then_some(n + 1)
            })
            .is_ok();
        if taken {
            let i = PinReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            self.counters.pins[i].fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.pins_refused.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub fn unpin(&self) {
        self.pinned_now.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn pinned_now(&self) -> usize {
        self.pinned_now.load(Ordering::Acquire)
    }

    pub fn has_users(&self) -> bool {
        !self.users.load().is_empty()
    }

    pub fn credentials(&self, user: &str) -> Option<Arc<Credentials>> {
        self.users.load().get(user).cloned()
    }

    /// Replaces the users who may log in (a reload); clients logged in stay.
    pub fn set_users(&self, users: &[(String, String)]) -> Result<(), AuthError> {
        self.users.store(Arc::new(credentials_of(users)?));
        Ok(())
    }

    /// Whether queued clients' lone SELECTs may be sent ahead (never in session mode).
    pub fn send_ahead(&self) -> bool {
        self.send_ahead.load(Ordering::Relaxed)
    }

    /// Turns sending ahead on or off (a reload); requests already sent ahead finish.
    pub fn set_send_ahead(&self, on: bool) {
        self.send_ahead
            .store(on && self.mode != PoolMode::Session, Ordering::Relaxed);
    }

    /// Changes the cap on pinned clients (a reload); clients pinned now stay pinned.
    pub fn set_max_pinned(&self, max_pinned: usize) {
        self.max_pinned.store(max_pinned, Ordering::Relaxed);
    }
}

/// Derives each configured user's SCRAM keys / md5 hash once.
fn credentials_of(
    users: &[(String, String)],
) -> Result<HashMap<String, Arc<Credentials>>, AuthError> {
    users
        .iter()
        .map(|(user, password)| {
            Credentials::from_configured(user, password).map(|c| (user.clone(), Arc::new(c)))
        })
        .collect()
}
