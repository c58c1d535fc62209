//! MySQL/MariaDB front end and back end of maitred.
//!
//! - [`codec`]: packet framing, the packets maitred reads or writes itself, a scanner
//!   that follows command responses, statement-id rewriting (no I/O).
//! - [`auth`]: mysql_native_password and caching_sha2_password scrambles (no I/O).
//! - [`backend`]: a server connection: login, maitred's own commands, reset.
//! - [`manager`]: the pool core's view of MySQL (connect, check, reset).
//! - [`pool`]: a configured pool (users, mode, pins) around the pool core.
//! - [`clients`]: maitred's connection ids, for KILL and CONNECTION_ID().
//! - [`frontend`]: a client from accept to the end of login, routing by database.
//! - [`relay`]: the client's session after login: leasing, forwarding, releasing.
//! - [`sql_effects`]: what SQL text does to session state, read without a full parser:
//!   the one MySQL lexer (`sql_effects::lexer`: comments, executable comments, quotes,
//!   statement lists) every look at SQL text goes through; USE, SET, pins; KILL; which
//!   statements may be sent ahead on another client's busy connection
//!   (`sql_effects::send_ahead`; the relay's part is `relay/send_ahead.rs`); the rewrites.
//! - [`statements`]: prepared statements across server connections.
//! - [`limits`]: the ERR packets of the client limits (login, idle and query timeouts,
//!   `max_clients`); the relay enforces the time limits in `relay/time_limits.rs`.
//! - [`errors_to_client`]: the ERR packets maitred composes itself, and their codes.
//! - [`tls`]: TLS towards clients (CLIENT_SSL) and servers (`ssl-mode`, `ssl-ca`).
//! - [`listener`]: the accept loop.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod clients;
pub mod codec;
pub mod error;
pub mod errors_to_client;
pub mod fleet;
pub mod frontend;
pub mod fuzzing;
pub mod limits;
pub mod listener;
pub mod manager;
pub mod pool;
pub mod relay;
pub mod sql_effects;
pub mod statements;
pub mod target;
pub mod tls;

pub use clients::ClientRegistry;
pub use frontend::Router;
pub use pool::{MysqlPool, MysqlPoolConfig, PinReason, PoolMode};
pub use target::ServerTarget;
