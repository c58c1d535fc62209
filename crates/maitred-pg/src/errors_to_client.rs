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
use maitred_frontend::{Refusal, RefusalClass};
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
    pub const SYNTAX_ERROR: &str = "42601";
}

/// Writes the ErrorResponse for a failed checkout.
pub fn checkout_error(o: &mut BytesMut, e: &CheckoutError<BackendError>, severity: Severity) {
    let r = Refusal::of_checkout(e, "query");
    let code = match r.class {
        RefusalClass::Overloaded => sqlstate::TOO_MANY_CONNECTIONS,
        RefusalClass::ConnectFailed | RefusalClass::ServerDown | RefusalClass::SentAheadLost => {
            sqlstate::CONNECTION_FAILURE
        }
        RefusalClass::ShuttingDown => sqlstate::CANNOT_CONNECT_NOW,
    };
    error_response(
        o,
        &ErrorFields {
            severity,
            code,
            message: &r.summary,
            detail: r.detail.as_deref(),
            hint: r.hint.as_deref(),
        },
    );
}
