//! What a client is told when maitred, not the server, has to refuse something.
//!
//! SQLSTATEs (documented in docs/postgres.md):
//! - 53300 `too_many_connections`: no server connection within `queue_timeout`, or the wait
//!   queue is full (`max_waiting`). Severity ERROR: the client's connection stays usable.
//! - 08006 `connection_failure`: maitred could not open a server connection; the message
//!   carries the server's own reason.
//! - 57P03 `cannot_connect_now`: the pool is shutting down.

use crate::codec::server_msgs::{error_response, ErrorFields, Severity};
use crate::error::BackendError;
use bytes::BytesMut;
use maitred_frontend::duration::human;
use maitred_pool::CheckoutError;

pub mod sqlstate {
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
}

/// Writes the ErrorResponse for a failed checkout.
pub fn checkout_error(o: &mut BytesMut, e: &CheckoutError<BackendError>, severity: Severity) {
    let (code, message, detail, hint) = match e {
        CheckoutError::QueueTimeout { pool, waited, state } => (
            sqlstate::TOO_MANY_CONNECTIONS,
            format!(
                "maitred: no server connection free in pool \"{pool}\" within queue_timeout ({})",
                human(*waited)
            ),
            Some(format!(
                "pool size {}: {} busy, {} idle, {} clients waiting",
                state.max_size, state.busy, state.idle, state.waiting
            )),
            Some("Raise the pool size (if the server allows more connections) or queue_timeout, or shorten transactions.".to_owned()),
        ),
        CheckoutError::QueueFull { pool, max_waiting, state } => (
            sqlstate::TOO_MANY_CONNECTIONS,
            format!("maitred: the wait queue of pool \"{pool}\" is full (max_waiting {max_waiting})"),
            Some(format!(
                "pool size {}: {} busy, {} clients waiting",
                state.max_size, state.busy, state.waiting
            )),
            Some("Raise max_waiting or the pool size, or lower client concurrency.".to_owned()),
        ),
        CheckoutError::Connect { pool, source } => (
            sqlstate::CONNECTION_FAILURE,
            format!("maitred: pool \"{pool}\" could not open a server connection: {source}"),
            None,
            Some("Check that the upstream server is up and accepts the pool's credentials.".to_owned()),
        ),
        CheckoutError::ConnectTimeout { pool, timeout } => (
            sqlstate::CONNECTION_FAILURE,
            format!(
                "maitred: pool \"{pool}\" could not open a server connection within server_connect_timeout ({})",
                human(*timeout)
            ),
            None,
            Some("Check that the upstream server is reachable.".to_owned()),
        ),
        CheckoutError::ServerUnreachable { pool, failures, down_for, last_error } => (
            sqlstate::CONNECTION_FAILURE,
            format!(
                "maitred: the server of pool \"{pool}\" is unreachable ({failures} failed attempts over {}): {last_error}",
                human(*down_for)
            ),
            None,
            Some("maitred keeps retrying with backoff; check that the upstream server is up.".to_owned()),
        ),
        CheckoutError::SentAheadLost { pool } => (
            sqlstate::CONNECTION_FAILURE,
            format!("maitred: the server connection of pool \"{pool}\" that this query was sent ahead on was lost before its reply"),
            Some("Its previous client or the server went away; the query may have run.".to_owned()),
            Some("Retry the query; set send_ahead = false on the pool to never share a wait this way.".to_owned()),
        ),
        CheckoutError::Closed { pool } => (
            sqlstate::CANNOT_CONNECT_NOW,
            format!("maitred: pool \"{pool}\" is shutting down"),
            None,
            None,
        ),
    };
    error_response(
        o,
        &ErrorFields {
            severity,
            code,
            message: &message,
            detail: detail.as_deref(),
            hint: hint.as_deref(),
        },
    );
}
