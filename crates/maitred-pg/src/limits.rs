//! The errors a client gets when it hits one of its pool's client limits
//! ([`maitred_pool::ClientLimits`]), worded as PostgreSQL words its own (see docs/postgres.md):
//!
//! - login not finished within `client_login_timeout`: FATAL 08P01;
//! - `max_clients` reached: FATAL 53300 (as PostgreSQL's "sorry, too many clients already");
//! - a message over `max_message_size`: FATAL 08P01;
//! - silent inside a transaction for `idle_transaction_timeout`: FATAL 25P03
//!   (PostgreSQL's idle_in_transaction_session_timeout);
//! - silent outside one for `client_idle_timeout`: FATAL 57P05 (idle_session_timeout);
//! - the server did not answer within `query_timeout`: FATAL 57014 (query_canceled).

use crate::codec::server_msgs::{error_response, ErrorFields, Severity};
use bytes::BytesMut;
use maitred_frontend::duration::human;
use maitred_frontend::time_limits::LimitReplies;
use std::time::Duration;

pub mod sqlstate {
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
    pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
    pub const QUERY_CANCELED: &str = "57014";
}

fn fatal(o: &mut BytesMut, code: &str, message: &str, hint: &str) {
    error_response(
        o,
        &ErrorFields {
            severity: Severity::Fatal,
            code,
            message,
            detail: None,
            hint: Some(hint),
        },
    );
}

pub fn login_timeout(o: &mut BytesMut, timeout: Duration) {
    let message = format!(
        "maitred: the client did not finish logging in within client_login_timeout ({})",
        human(timeout)
    );
    fatal(
        o,
        sqlstate::PROTOCOL_VIOLATION,
        &message,
        "Check the client's network, TLS and password settings, or raise client_login_timeout.",
    );
}

pub fn too_many_clients(o: &mut BytesMut, pool: &str, max: usize) {
    let message = format!(
        "sorry, too many clients already: pool \"{pool}\" has max_clients ({max}) connected in maitred"
    );
    fatal(
        o,
        sqlstate::TOO_MANY_CONNECTIONS,
        &message,
        "Close idle client connections, or raise max_clients of the pool.",
    );
}

pub fn message_too_large(o: &mut BytesMut, pool: &str, len: usize, max: usize) {
    let message = format!(
        "maitred: a message of {len} bytes exceeds max_message_size ({max} bytes) of pool \"{pool}\""
    );
    fatal(
        o,
        sqlstate::PROTOCOL_VIOLATION,
        &message,
        "Send smaller messages, or raise max_message_size of the pool.",
    );
}

/// The FATAL errors of the time limits the relay enforces (`relay/time_limits.rs`).
pub struct TimeLimitErrors;

impl LimitReplies for TimeLimitErrors {
    fn idle_in_transaction(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "terminating connection due to idle-in-transaction timeout (idle_transaction_timeout {} of maitred pool \"{pool}\"); the transaction was rolled back",
            human(timeout)
        );
        fatal(
            o,
            sqlstate::IDLE_IN_TRANSACTION_TIMEOUT,
            &message,
            "Keep transactions short, or raise idle_transaction_timeout.",
        );
    }

    fn idle_session(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "terminating connection due to idle-session timeout (client_idle_timeout {} of maitred pool \"{pool}\")",
            human(timeout)
        );
        fatal(
            o,
            sqlstate::IDLE_SESSION_TIMEOUT,
            &message,
            "Reconnect when needed, or raise client_idle_timeout.",
        );
    }

    fn query_timeout(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "canceling statement due to query_timeout ({}) of maitred pool \"{pool}\"; the server connection was closed",
            human(timeout)
        );
        fatal(
            o,
            sqlstate::QUERY_CANCELED,
            &message,
            "The transaction in progress, if any, was rolled back; reconnect and retry, or raise query_timeout.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_fatal_with_their_sqlstate() {
        let mut o = BytesMut::new();
        TimeLimitErrors::idle_in_transaction(&mut o, "app", Duration::from_millis(300));
        let body = String::from_utf8_lossy(&o);
        assert_eq!(o[0], b'E');
        assert!(body.contains("SFATAL\0"), "{body}");
        assert!(body.contains("C25P03\0"), "{body}");
        assert!(body.contains("idle_transaction_timeout 300ms"), "{body}");
    }
}
