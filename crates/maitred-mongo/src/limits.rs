//! The error replies of the client limits ([`maitred_pool::ClientLimits`]), as documents
//! a driver understands (see docs/mongodb.md). MongoDB has no login phase of its own and
//! no way to tell an idle client anything, so the login and idle timeouts just close the
//! connection; the others answer the request first:
//!
//! - `max_clients` reached: the first request gets 462 `IngressRequestRateLimitExceeded`
//!   (label `SystemOverloadedError`), then the connection is closed;
//! - a message over `max_message_size`: 10334 `BSONObjectTooLarge`, then closed;
//! - the server did not answer within `query_timeout`: 50 `MaxTimeMSExpired`, then closed
//!   (the server connection is discarded).

use crate::errors_to_client::{code, error_doc};
use bson::RawDocumentBuf;
use std::time::Duration;

pub const BSON_OBJECT_TOO_LARGE: i32 = 10334;
pub const MAX_TIME_MS_EXPIRED: i32 = 50;

/// `d` as people write it in the configuration ("300ms", "15s").
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn too_many_clients(pool: &str, max: usize) -> RawDocumentBuf {
    error_doc(
        code::OVERLOADED,
        "IngressRequestRateLimitExceeded",
        &format!(
            "maitred: too many clients: pool \"{pool}\" has max_clients ({max}) connected; close idle connections (lower maxPoolSize) or raise max_clients"
        ),
        &["SystemOverloadedError"],
    )
}

pub fn message_too_large(pool: &str, len: usize, max: usize) -> RawDocumentBuf {
    error_doc(
        BSON_OBJECT_TOO_LARGE,
        "BSONObjectTooLarge",
        &format!(
            "maitred: a message of {len} bytes exceeds max_message_size ({max} bytes) of pool \"{pool}\""
        ),
        &[],
    )
}

pub fn query_timeout(pool: &str, timeout: Duration) -> RawDocumentBuf {
    error_doc(
        MAX_TIME_MS_EXPIRED,
        "MaxTimeMSExpired",
        &format!(
            "maitred: the server did not answer within query_timeout ({}) of pool \"{pool}\"; the server connection was closed",
            human(timeout)
        ),
        &[],
    )
}

/// The requestID of the message whose header starts `buf`, to answer it without reading
/// its body.
pub fn request_id(buf: &[u8]) -> i32 {
    buf.get(4..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_the_limit() {
        let d = query_timeout("app", Duration::from_millis(300));
        assert_eq!(d.get_i32("code").ok(), Some(50));
        assert!(d.get_str("errmsg").unwrap_or("").contains("300ms"));
        assert_eq!(request_id(&[0, 0, 0, 0, 7, 0, 0, 0]), 7);
        assert_eq!(request_id(&[1, 2]), 0);
    }
}
