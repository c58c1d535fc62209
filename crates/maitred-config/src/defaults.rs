//! Default values of every optional key, as constants (for the CLI's help
//! and the daemon) and as the functions serde's `default = "..."` needs.

use std::time::Duration;

use crate::model::{ClientAuth, LogFormat, PoolMode};
use crate::upstream::Protocol;

/// `runtime.workers`: 0 lets the daemon choose.
pub const WORKERS: usize = 0;
/// `runtime.shutdown_timeout`.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `log.format`.
pub const LOG_FORMAT: LogFormat = LogFormat::Human;
/// `log.level`.
pub const LOG_LEVEL: &str = "info";
/// `pools.mode`.
pub const POOL_MODE: PoolMode = PoolMode::Transaction;
/// `pools.size`.
pub const POOL_SIZE: usize = 10;
/// `pools.min_idle`.
pub const MIN_IDLE: usize = 0;
/// `pools.queue_timeout`.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// `pools.max_waiting`.
pub const MAX_WAITING: usize = 10_000;
/// `pools.prepared_statements`.
pub const PREPARED_STATEMENTS: usize = 100;
/// `pools.idle_timeout`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// `pools.max_lifetime`.
pub const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// `pools.server_connect_timeout`.
pub const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `pools.client_login_timeout`.
pub const CLIENT_LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
/// `pools.max_clients`.
pub const MAX_CLIENTS: usize = 10_000;
/// `pools.max_databases`: databases a `database = "*"` pool may create pools for at once.
pub const MAX_DATABASES: usize = 100;
/// Whether PostgreSQL pools send a queued client's SELECT ahead on a busy connection.
pub const SEND_AHEAD: bool = true;
/// `pools.max_message_size` of PostgreSQL pools: 256 MiB.
pub const PG_MAX_MESSAGE_SIZE: usize = 256 << 20;
/// `pools.max_message_size` of MySQL pools: 64 MiB (the server's max_allowed_packet applies too).
pub const MYSQL_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// `pools.max_message_size` of MongoDB pools: 48 MB, MongoDB's maxMessageSizeBytes.
pub const MONGO_MAX_MESSAGE_SIZE: usize = 48_000_000;
/// The smallest `pools.max_message_size` accepted.
pub const MIN_MAX_MESSAGE_SIZE: usize = 1024;

/// `pools.max_message_size` when it is left out, by protocol.
pub fn max_message_size(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Postgres => PG_MAX_MESSAGE_SIZE,
        Protocol::Mysql => MYSQL_MAX_MESSAGE_SIZE,
        Protocol::Mongodb => MONGO_MAX_MESSAGE_SIZE,
    }
}

/// `pools.fleet_idle_release`.
pub const FLEET_IDLE_RELEASE: Duration = Duration::from_secs(10);

/// `pools.client_auth`.
pub const CLIENT_AUTH: ClientAuth = ClientAuth::ScramSha256;
/// `pools.auth_query` when `auth_user` is set (PgBouncer's default).
pub const AUTH_QUERY: &str = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";
/// `pools.auth_cache_ttl`.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);

pub(crate) fn shutdown_timeout() -> Duration {
    SHUTDOWN_TIMEOUT
}

pub(crate) fn log_level() -> String {
    LOG_LEVEL.to_owned()
}

pub(crate) fn pool_size() -> usize {
    POOL_SIZE
}

pub(crate) fn prepared_statements() -> usize {
    PREPARED_STATEMENTS
}

pub(crate) fn max_waiting() -> usize {
    MAX_WAITING
}

pub(crate) fn queue_timeout() -> Duration {
    QUEUE_TIMEOUT
}

pub(crate) fn idle_timeout() -> Duration {
    IDLE_TIMEOUT
}

pub(crate) fn max_lifetime() -> Duration {
    MAX_LIFETIME
}

pub(crate) fn server_connect_timeout() -> Duration {
    SERVER_CONNECT_TIMEOUT
}

pub(crate) fn client_login_timeout() -> Duration {
    CLIENT_LOGIN_TIMEOUT
}

pub(crate) fn max_clients() -> usize {
    MAX_CLIENTS
}

pub(crate) fn auth_cache_ttl() -> Duration {
    AUTH_CACHE_TTL
}

pub(crate) fn send_ahead() -> bool {
    SEND_AHEAD
}

pub(crate) fn fleet_idle_release() -> Duration {
    FLEET_IDLE_RELEASE
}
