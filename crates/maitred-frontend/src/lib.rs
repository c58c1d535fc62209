//! The plumbing every protocol's client side and server side uses, written once for
//! PostgreSQL, MySQL/MariaDB and MongoDB alike. What a protocol says on the wire stays in
//! its own crate; what it does around that (accepting, connecting, timing, refusing) is
//! here.
//!
//! Towards clients:
//! - [`listener`]: the accept loop, with each client's task in its `client` span.
//! - [`admission`]: a client's login time and its place under `max_clients`.
//! - [`time_limits`]: which client time limit ran out (logged once), and the protocol's
//!   words for it ([`time_limits::LimitReplies`]).
//! - [`refusal`]: why a client got no server connection ([`Refusal`]), worded once and
//!   classified for each protocol to map to its own error code.
//! - [`flush`]: writing out what a relay gathered for its client or server.
//! - [`buffers`]: buffers lent to busy sessions (an idle client keeps none).
//!
//! Towards servers:
//! - [`server`]: where a pool's server is ([`ServerAddr`]: host and port or a Unix socket,
//!   opened the same way) and the password maitred logs in with ([`Password`], never shown).
//! - [`upstream`]: what a pool's manager keeps about its server: the target a reload
//!   swaps ([`upstream::Upstream`]) and what the server reported ([`upstream::Reported`]).
//! - [`error`]: how a link to a server fails below the protocol ([`LinkError`]), a reset
//!   bounded in time ([`error::within`]), and why a client session ends ([`SessionError`]).
//!
//! Both: [`duration`], durations as the configuration writes them ("300ms", "15s").
//!
//! No module here imports another but `refusal` (durations) and `server` (errors).
#![forbid(unsafe_code)]

pub mod admission;
pub mod buffers;
pub mod duration;
pub mod error;
pub mod flush;
pub mod listener;
pub mod refusal;
pub mod server;
pub mod time_limits;
pub mod upstream;

pub use error::{LinkError, SessionError};
pub use refusal::{Refusal, RefusalClass};
pub use server::{Password, ServerAddr};
