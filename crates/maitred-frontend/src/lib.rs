//! The plumbing every protocol's client side and server side uses, written once for
//! PostgreSQL, MySQL/MariaDB and MongoDB alike. What a protocol says on the wire stays in
//! its own crate; what it does around that (accepting, connecting, timing, refusing) is
//! here.
//!
//! - [`duration`]: durations as the configuration writes them ("300ms", "15s").
#![forbid(unsafe_code)]

pub mod duration;
