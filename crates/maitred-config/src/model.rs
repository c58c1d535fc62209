//! The configuration model: plain serde structs, one per TOML table.
//!
//! Every struct rejects unknown keys. Optional keys take their defaults
//! from [`crate::defaults`]. Durations are human strings (`"5s"`, `"10m"`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::secret::Secret;
use crate::upstream::UpstreamUrl;

/// A whole maitred configuration: the daemon-wide settings and its pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin/operations endpoint; absent means none is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
    /// Async runtime settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Logging settings.
    #[serde(default)]
    pub log: LogConfig,
    /// The pools, each with its own listen address and upstream.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
}

/// `[admin]`: the admin/operations endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address the admin endpoint listens on, e.g. `127.0.0.1:9930`.
    pub listen: SocketAddr,
    /// Users who may log in to the admin console (PostgreSQL wire, database `maitred`
    /// or `pgbouncer`, through any PostgreSQL pool's listen address), with SCRAM-SHA-256:
    /// passwords are plaintext or SCRAM secrets. None: no console.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
    /// Bearer token that opens the HTTP endpoint's detail surface (`/pools` and every path
    /// but `/metrics`, `/healthz`, `/readyz`) to peers that are not on loopback: they send
    /// `Authorization: Bearer <token>`. None (the default): the detail surface answers only
    /// loopback peers, whatever address `listen` binds. At least 16 characters; write it as
    /// `${VAR}` to keep it out of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_token: Option<Secret>,
}

impl AdminConfig {
    /// An admin endpoint on `listen` without console users or detail token.
    pub fn new(listen: SocketAddr) -> AdminConfig {
        AdminConfig {
            listen,
            users: Vec::new(),
            detail_token: None,
        }
    }
}

/// `[runtime]`: async runtime settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Tokio worker threads; 0 lets the daemon choose.
    #[serde(default)]
    pub workers: usize,
    /// How long SIGTERM waits for in-flight transactions and requests before exiting.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: defaults::WORKERS,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
        }
    }
}

/// `[log]`: logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format of log lines.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` EnvFilter directive such as `info` or
    /// `maitred=debug,info`; `RUST_LOG`, when set, wins.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: defaults::LOG_FORMAT,
            level: defaults::log_level(),
        }
    }
}

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[pools]]`: one pool of server connections and the address its
/// clients connect to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Address clients connect to. Pools may share one address if their
    /// client-facing database names differ.
    pub listen: SocketAddr,
    /// Server URL: `postgres://user:password@host:port/database`.
    pub upstream: UpstreamUrl,
    /// The database name clients ask for; defaults to the upstream's. `"*"`: any name
    /// (PostgreSQL and MySQL): the upstream's database is served by this pool, every other
    /// name by a pool created on first use from this one (see [`ANY_DATABASE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// With `database = "*"`: how many databases may have a pool created at once (default
    /// [`defaults::MAX_DATABASES`]); a client naming one more is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_databases: Option<usize>,
    /// When a server connection goes back to the pool.
    #[serde(default)]
    pub mode: PoolMode,
    /// Maximum number of server connections.
    #[serde(default = "defaults::pool_size")]
    pub size: usize,
    /// Server connections kept open even when idle.
    #[serde(default)]
    pub min_idle: usize,
    /// How long a client waits for a server connection before it gets an
    /// error.
    #[serde(default = "defaults::queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// Clients allowed to wait at once; more are refused at once.
    #[serde(default = "defaults::max_waiting")]
    pub max_waiting: usize,
    /// Prepared statements kept prepared on each server connection (PostgreSQL named
    /// statements in transaction mode, MySQL statements of any mode); the least recently
    /// used is closed beyond it. At least 1.
    #[serde(default = "defaults::prepared_statements")]
    pub prepared_statements: usize,
    /// How many clients may be pinned to a server connection at once (session state that
    /// cannot move: advisory locks, temp tables, LISTEN, WITH HOLD cursors, SQL PREPARE).
    /// Default: half the pool size (at least 1). Must not exceed `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pinned: Option<usize>,
    /// PostgreSQL, transaction and statement modes: while clients queue, the holder of a
    /// busy server connection writes the next queued client's lone SELECT behind its own,
    /// so the server finds it waiting (less server CPU per query). The cost: that client
    /// waits for this connection, not the first one to come free. See docs/postgres.md.
    #[serde(default = "defaults::send_ahead")]
    pub send_ahead: bool,
    /// PEM certificate chain offered to clients that ask for TLS (PostgreSQL SSLRequest,
    /// MySQL CLIENT_SSL).
    /// Pools sharing a listen address must share these TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuse clients that do not use TLS. Needs `tls_cert` and `tls_key`.
    #[serde(default)]
    pub tls_required: bool,
    /// An idle server connection above `min_idle` is closed after this.
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A server connection is closed (when not in use) after this age.
    #[serde(default = "defaults::max_lifetime", with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Time allowed to connect and log in to the server.
    #[serde(default = "defaults::server_connect_timeout", with = "humantime_serde")]
    pub server_connect_timeout: Duration,
    /// A client that has not finished logging in by then gets an error and is closed.
    #[serde(default = "defaults::client_login_timeout", with = "humantime_serde")]
    pub client_login_timeout: Duration,
    /// A client inside a transaction that sends nothing for this long loses it (rolled
    /// back, error, disconnected). Zero: off.
    #[serde(default, with = "humantime_serde")]
    pub idle_transaction_timeout: Duration,
    /// A client outside any transaction, holding no server connection, that sends nothing
    /// for this long is disconnected. Zero: off.
    #[serde(default, with = "humantime_serde")]
    pub client_idle_timeout: Duration,
    /// A request waiting for the server longer than this is cancelled, the client gets an
    /// error and the server connection is discarded. Zero: off.
    #[serde(default, with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Clients connected to this pool at once; more get a protocol error.
    #[serde(default = "defaults::max_clients")]
    pub max_clients: usize,
    /// Largest message (bytes) a client may send; default depends on the protocol
    /// (see [`crate::defaults::max_message_size`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// How clients prove who they are.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The users clients may log in as.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// PostgreSQL: the user of the dedicated connection that looks up users not in `users`
    /// (PgBouncer's auth_user). Setting it turns the lookup on. Its password is the
    /// upstream URL's when it is the upstream user, else its entry in `users`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    /// PostgreSQL: the query returning (user name, SCRAM or md5 secret) for `$1`; default
    /// `SELECT usename, passwd FROM pg_shadow WHERE usename=$1` (needs a superuser
    /// auth_user; a SECURITY DEFINER function is the better way, see docs/postgres.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_query: Option<String>,
    /// How long a secret fetched by `auth_query` may stand in when a lookup fails (every
    /// login checks it with the server).
    #[serde(default = "defaults::auth_cache_ttl", with = "humantime_serde")]
    pub auth_cache_ttl: Duration,
    /// The fleet this pool belongs to: every maitred replica with the same fleet name in
    /// front of the same upstream (PostgreSQL: the same database; MySQL: the same server;
    /// MongoDB: the same database of the URL, which holds the leases) holds at most `budget`
    /// server connections together. See docs/operations.md, "Fleets".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// The fleet's budget: server connections of all its replicas together, their
    /// coordination connections (one per replica) included. A number, or `"auto"`: the
    /// server's connection limit less its reserved slots, read at start. Needs `fleet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// In a fleet: a server connection idle this long is closed and its token given back
    /// to the fleet (the replica keeps one).
    #[serde(default = "defaults::fleet_idle_release", with = "humantime_serde")]
    pub fleet_idle_release: Duration,
}

/// A fleet's budget: a number of server connections, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The server's connection limit less its reserved slots, read when the replica starts.
    Auto,
    /// This many server connections.
    Count(usize),
}

impl Budget {
    /// The number, or `None` for `auto`.
    pub fn count(self) -> Option<usize> {
        match self {
            Budget::Auto => None,
            Budget::Count(n) => Some(n),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Auto => f.write_str("auto"),
            Budget::Count(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Budget::Auto);
        }
        s.parse::<usize>()
            .map(Budget::Count)
            .map_err(|_| format!("budget must be a number or \"auto\", not {s:?}"))
    }
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Budget::Auto => s.serialize_str("auto"),
            Budget::Count(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => Ok(Budget::Count(n as usize)),
            Raw::Word(w) => w.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl PoolConfig {
    /// A pool with every optional key at its default and no users.
    pub fn new(name: impl Into<String>, listen: SocketAddr, upstream: UpstreamUrl) -> Self {
        PoolConfig {
            name: name.into(),
            listen,
            upstream,
            database: None,
            max_databases: None,
            mode: defaults::POOL_MODE,
            size: defaults::POOL_SIZE,
            min_idle: defaults::MIN_IDLE,
            queue_timeout: defaults::QUEUE_TIMEOUT,
            max_waiting: defaults::MAX_WAITING,
            prepared_statements: defaults::PREPARED_STATEMENTS,
            max_pinned: None,
            send_ahead: defaults::SEND_AHEAD,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_lifetime: defaults::MAX_LIFETIME,
            server_connect_timeout: defaults::SERVER_CONNECT_TIMEOUT,
            client_login_timeout: defaults::CLIENT_LOGIN_TIMEOUT,
            idle_transaction_timeout: Duration::ZERO,
            client_idle_timeout: Duration::ZERO,
            query_timeout: Duration::ZERO,
            max_clients: defaults::MAX_CLIENTS,
            max_message_size: None,
            client_auth: defaults::CLIENT_AUTH,
            users: Vec::new(),
            auth_user: None,
            auth_query: None,
            auth_cache_ttl: defaults::AUTH_CACHE_TTL,
            fleet: None,
            budget: None,
            fleet_idle_release: defaults::FLEET_IDLE_RELEASE,
        }
    }

    /// The query that looks users up, when `auth_user` is set: `auth_query` or the default.
    pub fn effective_auth_query(&self) -> Option<&str> {
        self.auth_user.as_ref()?;
        Some(self.auth_query.as_deref().unwrap_or(defaults::AUTH_QUERY))
    }

    /// The database name clients ask for in their startup message:
    /// `database` if set, else the upstream URL's database.
    /// `max_pinned`, or its default: half the pool size, at least 1.
    pub fn max_pinned(&self) -> usize {
        self.max_pinned.unwrap_or((self.size / 2).max(1))
    }

    /// `max_message_size`, or the default of the upstream's protocol.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
            .unwrap_or_else(|| defaults::max_message_size(self.upstream.protocol))
    }

    pub fn client_database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.upstream.database)
    }

    /// `database = "*"`: clients may name any database of the server.
    pub fn any_database(&self) -> bool {
        self.database.as_deref() == Some(ANY_DATABASE)
    }

    /// The database this pool's own server connections use and that clients name to reach
    /// it: the upstream's with `database = "*"`, else [`PoolConfig::client_database`].
    pub fn own_database(&self) -> &str {
        if self.any_database() {
            &self.upstream.database
        } else {
            self.client_database()
        }
    }

    /// `max_databases`, or its default.
    pub fn max_databases(&self) -> usize {
        self.max_databases.unwrap_or(defaults::MAX_DATABASES)
    }
}

/// `database = "*"`: PgBouncer's fallback entry. Clients may name any database of the
/// pool's server; names without a pool of their own get one created from this pool.
pub const ANY_DATABASE: &str = "*";

/// When a server connection is handed back to the pool (defined with the pool core, so
/// that the protocols share it).
pub use maitred_pool::PoolMode;

/// How clients authenticate to maitred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ClientAuth {
    /// SCRAM-SHA-256; passwords must be plaintext or SCRAM secrets.
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// MD5; passwords must be plaintext or `md5` hashes.
    #[serde(rename = "md5")]
    Md5,
    /// No password asked; any listed user (or any user when none are
    /// listed) gets in.
    #[serde(rename = "trust")]
    Trust,
}

impl ClientAuth {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ScramSha256 => "scram-sha-256",
            ClientAuth::Md5 => "md5",
            ClientAuth::Trust => "trust",
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[pools.users]]`: a user clients may log in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name clients send.
    pub name: String,
    /// Plaintext password, `md5<32 hex>` hash or
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` secret;
    /// may be left out only with `client_auth = "trust"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// MongoDB pools: the server login this user's requests run as, on server connections
    /// of its own (a pool per user). Needs `server_password`. Default: the upstream URL's
    /// user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_user: Option<String>,
    /// Plaintext password of `server_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_password: Option<Secret>,
}

#[cfg(test)]
mod budget_tests {
    use super::Budget;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct T {
        budget: Budget,
    }

    #[test]
    fn budget_is_a_number_or_auto() {
        let t: T = toml::from_str("budget = 80").expect("number");
        assert_eq!(t.budget, Budget::Count(80));
        let t: T = toml::from_str("budget = \"auto\"").expect("auto");
        assert_eq!(t.budget, Budget::Auto);
        assert!(toml::from_str::<T>("budget = \"lots\"").is_err());
        assert_eq!("12".parse::<Budget>(), Ok(Budget::Count(12)));
        assert_eq!("AUTO".parse::<Budget>(), Ok(Budget::Auto));
        assert_eq!(
            toml::to_string(&T {
                budget: Budget::Auto
            })
            .expect("ser"),
            "budget = \"auto\"\n"
        );
        assert_eq!(Budget::Count(3).to_string(), "3");
    }
}
