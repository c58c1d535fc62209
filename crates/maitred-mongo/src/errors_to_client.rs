//! The error replies maitred composes itself, as documents a driver understands.
//!
//! Codes (documented in docs/mongodb.md):
//! - 462 `IngressRequestRateLimitExceeded`, labels `RetryableError` and
//!   `SystemOverloadedError`: no server connection within `queue_timeout`, or the wait queue
//!   is full. Drivers retry these with backoff.
//! - 6 `HostUnreachable`: maitred could not open a server connection (drivers retry it).
//!
//! The request did not run, so each of these also carries the labels a mongos gives such
//! an error for the request's kind ([`RetryKind`]): `RetryableWriteError` for a retryable
//! write, commitTransaction or abortTransaction, `TransientTransactionError` for a statement
//! of a transaction; drivers whose server speaks wire version 9+ retry by label, not code.
//! - 13 `Unauthorized`: a command before authentication.
//! - 18 `AuthenticationFailed`.
//! - 91 `ShutdownInProgress`: the pool was removed, or maitred drains (then the connection
//!   is closed after the reply).
//! - 352 `UnsupportedOpQueryCommand`: a legacy OP_QUERY command other than hello.

use crate::error::BackendError;
pub use crate::relay::RetryKind;
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

/// The reply for a failed checkout of a request of kind `kind` (which did not run).
pub fn checkout_error(e: &CheckoutError<BackendError>, kind: RetryKind) -> RawDocumentBuf {
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
    let all: Vec<&str> = labels.iter().chain(kind.labels()).copied().collect();
    error_doc(code, name, &r.one_line(), &all)
}

/// The reply to a request that arrives while maitred drains (outside a transaction).
/// Drivers take 91 as "this node is shutting down": they mark it unknown, retry reads, and
/// retry writes that carry `RetryableWriteError`, on another node or a new connection.
pub fn draining(kind: RetryKind) -> RawDocumentBuf {
    error_doc(
        code::SHUTDOWN_IN_PROGRESS,
        "ShutdownInProgress",
        "maitred is shutting down (draining); reconnect",
        kind.labels(),
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
        let d = checkout_error(&e, RetryKind::Other);
        assert_eq!(d.get_f64("ok"), Ok(0.0));
        assert_eq!(d.get_i32("code"), Ok(462));
        assert_eq!(labels(&d), ["RetryableError", "SystemOverloadedError"]);
        assert!(d.get_str("errmsg").expect("msg").contains("queue_timeout"));
        // The request did not run: labelled for its kind as a mongos would.
        assert_eq!(
            labels(&checkout_error(&e, RetryKind::Write)),
            [
                "RetryableError",
                "SystemOverloadedError",
                "RetryableWriteError"
            ]
        );
        assert_eq!(
            labels(&checkout_error(&e, RetryKind::TransactionStatement)),
            [
                "RetryableError",
                "SystemOverloadedError",
                "TransientTransactionError"
            ]
        );
    }

    fn labels(d: &RawDocumentBuf) -> Vec<&str> {
        d.get_array("errorLabels")
            .map(|a| {
                a.into_iter()
                    .filter_map(|v| v.ok().and_then(|v| v.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The retryable-writes and transactions specifications: which requests are retried by
    /// which label.
    #[test]
    fn the_kind_of_a_request_follows_its_fields() {
        use crate::relay::Route;
        let kind = |body: bson::RawDocumentBuf| {
            let name = body
                .into_iter()
                .next()
                .and_then(Result::ok)
                .map(|(k, _)| k.to_owned())
                .unwrap_or_default();
            Route::of(&name, &body, 0).retry_kind()
        };
        let lsid = rawdoc! { "id": 1 };
        assert_eq!(kind(rawdoc! { "find": "t", "$db": "d" }), RetryKind::Other);
        assert_eq!(
            kind(rawdoc! { "insert": "t", "$db": "d" }),
            RetryKind::Other
        );
        assert_eq!(
            kind(rawdoc! { "insert": "t", "lsid": lsid.clone(), "txnNumber": 1_i64 }),
            RetryKind::Write
        );
        assert_eq!(
            kind(
                rawdoc! { "find": "t", "lsid": lsid.clone(), "txnNumber": 1_i64, "autocommit": false, "startTransaction": true }
            ),
            RetryKind::TransactionStatement
        );
        assert_eq!(
            kind(
                rawdoc! { "commitTransaction": 1, "lsid": lsid.clone(), "txnNumber": 1_i64, "autocommit": false }
            ),
            RetryKind::TransactionEnd
        );
        assert_eq!(RetryKind::TransactionEnd.labels(), ["RetryableWriteError"]);
        assert!(draining(RetryKind::Other).get_array("errorLabels").is_err());
        assert_eq!(labels(&draining(RetryKind::Write)), ["RetryableWriteError"]);
    }
}
