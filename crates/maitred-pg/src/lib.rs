//! PostgreSQL front end and back end of maitred.
//!
//! - [`codec`]: message framing and the messages maitred reads or writes itself (no I/O).
//! - [`auth`]: SCRAM-SHA-256 (server side) and md5 state machines, user secrets (no I/O).
//! - [`auth_query`]: users without a user list: secrets fetched from the server, per-user pools.
//! - [`backend`]: a server connection: login as the pool's user, reset, liveness.
//! - [`manager`]: the pool core's view of PostgreSQL (connect, check, reset).
//! - [`pool`]: a configured pool (database name, users, mode) around the pool core.
//! - [`admin_console`]: the admin console (virtual database `maitred`/`pgbouncer`).
//! - [`frontend`]: a client from accept to the end of login, routing by database.
//! - [`relay`]: the client's session after login: leasing, forwarding, releasing; what
//!   may be sent ahead on another client's busy connection is in `relay/send_ahead.rs`.
//! - [`replies`]: the replies a server connection owes, to slip in maitred's own answers.
//! - [`statements`]: named prepared statements shared across server connections.
//! - [`settings`]: startup settings that follow a client from lease to lease.
//! - [`startup_params`]: a client's startup parameters checked and spelled by the server
//!   (the values clients are shown, or the server's error), and the `options` switches.
//! - [`sql_effects`]: the SQL lexer and what a query predicts about session state; the
//!   server's CommandComplete tags as the authority (`sql_effects::tags`).
//! - [`confirm`]: confirming a session's state with the server when the prediction is unknown.
//! - [`cancel`]: maitred's own cancel keys, mapped to the server connection in use.
//! - [`limits`]: the errors of the client limits (login, idle and query timeouts,
//!   `max_clients`, message size); the relay enforces the time limits in `relay/time_limits.rs`.
//! - [`errors_to_client`]: the ErrorResponses maitred composes itself, and their SQLSTATEs.
//! - [`listener`]: the accept loop.
//! - [`shutdown`]: the drain's goodbye (57P01) to idle sessions.
#![forbid(unsafe_code)]

pub mod admin_console;
pub mod auth;
pub mod auth_query;
pub mod backend;
pub mod cancel;
pub mod codec;
pub mod confirm;
pub mod databases;
pub mod error;
pub mod errors_to_client;
pub mod fleet;
pub mod frontend;
pub mod fuzzing;
pub mod limits;
pub mod listener;
pub mod manager;
pub mod notify;
pub mod pool;
pub mod relay;
pub mod replies;
pub mod settings;
pub mod shutdown;
pub mod sql_effects;
pub mod startup_params;
pub mod statements;
pub mod target;
pub mod tls;

pub use cancel::CancelRegistry;
pub use frontend::Router;
pub use pool::{ClientAuth, PgPool, PgPoolConfig, PoolMode};
pub use target::ServerTarget;
