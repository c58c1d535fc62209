//! [`OneLine`]: the configuration of
//! `maitred --listen ADDR --upstream URL [...]` — a single pool whose
//! clients log in with the user and password of the upstream URL, so the
//! only change to an application's URL is host:port.

use std::net::SocketAddr;
use std::time::Duration;

use crate::defaults;
use crate::model::{
    AdminConfig, Config, LogConfig, LogFormat, PoolConfig, PoolMode, RuntimeConfig, UserConfig,
};
use crate::upstream::UpstreamUrl;

/// The settings of the one-line form. Build with [`OneLine::new`], change
/// the public fields, then call [`OneLine::into_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct OneLine {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// The server; its user/password become the pool's only login and its
    /// database the client-facing database name.
    pub upstream: UpstreamUrl,
    /// Pool mode.
    pub mode: PoolMode,
    /// Maximum server connections.
    pub size: usize,
    /// How long a client waits for a server connection.
    pub queue_timeout: Duration,
    /// Clients allowed to wait at once.
    pub max_waiting: usize,
    /// Whether queued clients' lone SELECTs are sent ahead (PostgreSQL).
    pub send_ahead: bool,
    /// Admin endpoint address, if any.
    pub admin: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Tokio worker threads; 0 lets the daemon choose.
    pub workers: usize,
    /// The fleet the pool belongs to, with its budget.
    pub fleet: Option<String>,
    /// The fleet's budget.
    pub budget: Option<crate::model::Budget>,
    /// Clients may name any database of the server (`database = "*"`).
    pub any_database: bool,
    /// With `any_database`: `max_databases`.
    pub max_databases: Option<usize>,
}

impl OneLine {
    /// The one-line form with every optional setting at its default.
    pub fn new(listen: SocketAddr, upstream: UpstreamUrl) -> Self {
        OneLine {
            listen,
            upstream,
            mode: defaults::POOL_MODE,
            size: defaults::POOL_SIZE,
            queue_timeout: defaults::QUEUE_TIMEOUT,
            max_waiting: defaults::MAX_WAITING,
            send_ahead: defaults::SEND_AHEAD,
            admin: None,
            log_format: defaults::LOG_FORMAT,
            workers: defaults::WORKERS,
            fleet: None,
            budget: None,
            any_database: false,
            max_databases: None,
        }
    }

    /// The configuration: one pool, named after the upstream database (or the protocol),
    /// whose only user is the upstream URL's user and password. Not yet
    /// validated (an upstream URL without a password fails validation,
    /// as clients would have nothing to log in with).
    pub fn into_config(self) -> Config {
        // No user in the URL (a MongoDB server without authentication): clients need none.
        let users = if self.upstream.user.is_empty() && self.upstream.password.is_none() {
            Vec::new()
        } else {
            vec![UserConfig {
                name: self.upstream.user.clone(),
                password: self.upstream.password.clone(),
                server_user: None,
                server_password: None,
            }]
        };
        // A MySQL URL may name no database (`mysql://u:p@h:3306`): the pool is then named
        // after the protocol.
        let name = match self.upstream.database.as_str() {
            "" => self.upstream.protocol.schemes()[0].to_owned(),
            db => db.to_owned(),
        };
        let mut pool = PoolConfig::new(name, self.listen, self.upstream);
        pool.mode = self.mode;
        pool.size = self.size;
        pool.send_ahead = self.send_ahead;
        pool.queue_timeout = self.queue_timeout;
        pool.max_waiting = self.max_waiting;
        pool.fleet = self.fleet;
        pool.budget = self.budget;
        if self.any_database {
            pool.database = Some(crate::model::ANY_DATABASE.to_owned());
        }
        pool.max_databases = self.max_databases;
        if users.is_empty() {
            pool.client_auth = crate::model::ClientAuth::Trust;
        }
        pool.users = users;
        Config {
            admin: self.admin.map(AdminConfig::new),
            runtime: RuntimeConfig {
                workers: self.workers,
                ..RuntimeConfig::default()
            },
            log: LogConfig {
                format: self.log_format,
                ..LogConfig::default()
            },
            pools: vec![pool],
        }
    }
}
