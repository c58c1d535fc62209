//! The error replies maitred composes itself, as documents a driver understands.
//!
//! Codes (documented in docs/mongodb.md):
//! - 462 `IngressRequestRateLimitExceeded`, labels `RetryableError` and
//!   `SystemOverloadedError`: no server connection within `queue_timeout`, or the wait queue
//!   is full. Drivers retry these with backoff.
//! - 6 `HostUnreachable`: maitred could not open a server connection (drivers retry it).
//! - 13 `Unauthorized`: a command before authentication.
//! - 18 `AuthenticationFailed`.
//! - 91 `ShutdownInProgress`: the pool was removed, or maitred drains (then labelled
//!   `RetryableWriteError`, and the connection is closed after the reply).
//! - 352 `UnsupportedOpQueryCommand`: a legacy OP_QUERY command other than hello.

use crate::error::BackendError;
use bson::{rawdoc, RawArrayBuf, RawDocumentBuf};
use maitred_frontend::{Refusal, RefusalClass};
use maitred_pool::CheckoutError;

pub mod code {
    pub const HOST_UNREACHABLE: i32 = 6;
    pub const UNAUTHORIZED: i32 = 13;
    pub const AUTHENTICATION_FAILED: i32 = 18;
    pub const SHUTDOWN_IN_PROGRESS: i32 = 91;
    pub const UNSUPPORTED_OP_QUERY: i32 = 352;
    pub const OVERLOADED: i32 = 462;
    pub const COMMAND_NOT_FOUND: i32 = 59;
}

/// `{ok: 0, errmsg, code, codeName, errorLabels?}`.
pub fn error_doc(code: i32, code_name: &str, errmsg: &str, labels: &[&str]) -> RawDocumentBuf {
    let mut d = rawdoc! { "ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name };
    if !labels.is_empty() {
        let mut a = RawArrayBuf::new();
        for l in labels {
            a.push(*l);
        }
        d.append("errorLabels", a);
    }
    d
}

/// The reply for a failed checkout.
pub fn checkout_error(e: &CheckoutError<BackendError>) -> RawDocumentBuf {
    let r = Refusal::of_checkout(e, "request");
    let (code, name, labels): (i32, &str, &[&str]) = match r.class {
        RefusalClass::Overloaded => (
            code::OVERLOADED,
            "IngressRequestRateLimitExceeded",
            &["RetryableError", "SystemOverloadedError"],
        ),
        RefusalClass::ConnectFailed => (code::HOST_UNREACHABLE, "HostUnreachable", &[]),
        RefusalClass::ServerDown | RefusalClass::SentAheadLost => (
            code::HOST_UNREACHABLE,
            "HostUnreachable",
            &["RetryableError"],
        ),
        RefusalClass::ShuttingDown => (code::SHUTDOWN_IN_PROGRESS, "ShutdownInProgress", &[]),
    };
    error_doc(code, name, &r.one_line(), labels)
}

/// The reply to a request that arrives while maitred drains (outside a transaction).
/// Drivers take 91 as "this node is shutting down": they mark it unknown, retry reads, and
/// retry writes that carry `RetryableWriteError`, on another node or a new connection.
pub fn draining() -> RawDocumentBuf {
    error_doc(
        code::SHUTDOWN_IN_PROGRESS,
        "ShutdownInProgress",
        "maitred is shutting down (draining); reconnect",
        &["RetryableWriteError"],
    )
}

pub fn unauthorized(command: &str) -> RawDocumentBuf {
    error_doc(
        code::UNAUTHORIZED,
        "Unauthorized",
        &format!("command {command} requires authentication"),
        &[],
    )
}

pub fn auth_failed() -> RawDocumentBuf {
    error_doc(
        code::AUTHENTICATION_FAILED,
        "AuthenticationFailed",
        "Authentication failed.",
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use maitred_pool::PoolState;
    use std::time::Duration;

    #[test]
    fn overload_reply_is_labelled_retryable() {
        let e: CheckoutError<BackendError> = CheckoutError::QueueTimeout {
            pool: "app".into(),
            waited: Duration::from_millis(250),
            state: PoolState {
                size: 10,
                idle: 0,
                busy: 10,
                waiting: 3,
                max_size: 10,
            },
        };
        let d = checkout_error(&e);
        assert_eq!(d.get_f64("ok"), Ok(0.0));
        assert_eq!(d.get_i32("code"), Ok(462));
        let labels: Vec<&str> = d
            .get_array("errorLabels")
            .expect("labels")
            .into_iter()
            .filter_map(|v| v.ok().and_then(|v| v.as_str()))
            .collect();
        assert_eq!(labels, ["RetryableError", "SystemOverloadedError"]);
        assert!(d.get_str("errmsg").expect("msg").contains("queue_timeout"));
    }
}
