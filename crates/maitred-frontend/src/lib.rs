//! The plumbing every protocol's client side and server side uses, written once for
//! PostgreSQL, MySQL/MariaDB and MongoDB alike. What a protocol says on the wire stays in
//! its own crate; what it does around that (accepting, connecting, timing, refusing) is
//! here.
//!
//! - [`duration`]: durations as the configuration writes them ("300ms", "15s").
//! - [`error`]: how a link to a server fails below the protocol ([`LinkError`]), a reset
//!   bounded in time ([`error::within`]), and why a client session ends ([`SessionError`]).
#![forbid(unsafe_code)]

pub mod duration;
pub mod error;

pub use error::{LinkError, SessionError};
