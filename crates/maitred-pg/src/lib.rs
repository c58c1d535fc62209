//! PostgreSQL front end and back end of maitred.
//!
//! - [`codec`]: message framing and the messages maitred reads or writes itself (no I/O).
//! - [`auth`]: SCRAM-SHA-256 (server side) and md5 state machines, user secrets (no I/O).
#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;
