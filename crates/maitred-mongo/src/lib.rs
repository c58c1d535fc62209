//! MongoDB front end and back end of maitred.
//!
//! - [`codec`]: message header, OP_MSG, OP_QUERY / OP_REPLY (no I/O).
//! - [`auth`]: SCRAM-SHA-1 / SCRAM-SHA-256, server and client side (no I/O).
//! - [`backend`]: a server connection: hello, login, reading whole messages.
//! - [`manager`]: the pool core's view of MongoDB (connect, check), and the server's hello facts.
//! - [`pool`]: a configured pool (users, counters) around the pool core.
//! - [`hello`]: hello / isMaster answered locally.
//! - [`session`]: one client: local commands (hello, SASL: `session/local.rs`,
//!   `session/sasl.rs`), then forwarding the rest (`session/forward.rs`: leasing, pinning
//!   for transactions, cursor tracking and cleanup).
//! - [`relay`]: what is read from a command and its reply, and the exchange with a server
//!   connection (no session state: [`session`] depends on it, never the other way).
//! - [`txn`]: transaction pins shared by a pool's sessions.
//! - [`user_pools`]: server connections of client users with their own server login.
//! - [`limits`]: the error replies of the client limits (`max_clients`, message size,
//!   `query_timeout`); the login and idle timeouts are in `session/time_limits.rs`.
//! - [`errors_to_client`]: the error replies maitred composes itself, and their codes.
//! - [`listener`]: the accept loop.
//! - [`tls`]: TLS with clients (detected from the first bytes) and with the server (URL
//!   options).
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod codec;
pub mod error;
pub mod errors_to_client;
pub mod fleet;
pub mod fuzzing;
pub mod hello;
pub mod limits;
pub mod listener;
pub mod manager;
pub mod pool;
pub mod relay;
pub mod session;
pub mod target;
pub mod tls;
pub mod txn;
pub mod user_pools;

pub use pool::{MongoPool, MongoPoolConfig};
pub use target::ServerTarget;
