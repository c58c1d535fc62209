//! The error replies of the client limits ([`maitred_pool::ClientLimits`]), as documents
//! a driver understands (see docs/mongodb.md). MongoDB has no login phase of its own and
//! no way to tell an idle client anything, so the login and idle timeouts just close the
//! connection; the others answer the request first:
//!
//! - `max_clients` reached: the first request gets 462 `IngressRequestRateLimitExceeded`
//!   (label `SystemOverloadedError`), then the connection is closed;
//! - a message over `max_message_size`, or over [`MAX_MESSAGE_BEFORE_AUTH`] from a client
//!   that has not authenticated: 10334 `BSONObjectTooLarge`, then closed;
//! - OP_COMPRESSED with a compressor not negotiated in hello: 17 `ProtocolError`, then
//!   closed;
//! - the server did not answer within `query_timeout`: 50 `MaxTimeMSExpired`, then closed
//!   (the server connection is discarded).

use crate::codec::compressed::Compressor;
use crate::errors_to_client::{code, error_doc};
use bson::RawDocumentBuf;
use maitred_frontend::duration::human;
use std::time::Duration;

pub const BSON_OBJECT_TOO_LARGE: i32 = 10334;
pub const MAX_TIME_MS_EXPIRED: i32 = 50;
pub const PROTOCOL_ERROR: i32 = 17;

/// The largest message (and, for OP_COMPRESSED, decompressed message) a client may send
/// before it has authenticated, in a pool with client authentication. Before then a
/// client may only send hello / isMaster, the SASL steps and a few commands answered
/// locally; the largest of these is a driver's first hello: client metadata (at most 512
/// bytes by the handshake spec), `compression`, `saslSupportedMechs` with the user name,
/// and `speculativeAuthenticate` carrying the SCRAM client-first message (about 100 bytes
/// plus the user name), well under 2 KiB; a saslContinue's client-final message is about
/// 150 bytes. 16 KiB leaves room for long user names and extra driver fields (the test
/// beside this builds such a hello) while an anonymous peer can make maitred hold, or
/// decompress, no more than that per connection.
pub const MAX_MESSAGE_BEFORE_AUTH: usize = 16 * 1024;

/// The largest message accepted from a client: `max` (the pool's `max_message_size`,
/// or the server's limit if smaller) once it is authenticated, at most
/// [`MAX_MESSAGE_BEFORE_AUTH`] before.
pub fn request_limit(authenticated: bool, max: usize) -> usize {
    if authenticated {
        max
    } else {
        max.min(MAX_MESSAGE_BEFORE_AUTH)
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

/// A message over [`MAX_MESSAGE_BEFORE_AUTH`] from a client that has not authenticated.
pub fn message_too_large_before_auth(pool: &str, len: usize, max: usize) -> RawDocumentBuf {
    error_doc(
        BSON_OBJECT_TOO_LARGE,
        "BSONObjectTooLarge",
        &format!(
            "maitred: a message of {len} bytes before authentication exceeds the {max} bytes allowed until the client has authenticated (max_message_size of pool \"{pool}\" applies after login)"
        ),
        &[],
    )
}

/// OP_COMPRESSED whose compressor was not negotiated in hello on this connection.
pub fn compressor_not_negotiated(id: u8, negotiated: &[Compressor]) -> RawDocumentBuf {
    let name = Compressor::from_id(id).map_or("unknown", Compressor::name);
    let agreed = if negotiated.is_empty() {
        "none".to_owned()
    } else {
        negotiated
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    error_doc(
        PROTOCOL_ERROR,
        "ProtocolError",
        &format!(
            "maitred: OP_COMPRESSED with compressor id {id} ({name}), which was not negotiated in hello on this connection (negotiated: {agreed}); the connection is closed"
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
        let d = compressor_not_negotiated(2, &[Compressor::Snappy]);
        assert_eq!(d.get_i32("code").ok(), Some(17));
        let msg = d.get_str("errmsg").unwrap_or("");
        assert!(
            msg.contains("(zlib)") && msg.contains("negotiated: snappy"),
            "{msg}"
        );
        let d = message_too_large_before_auth("app", 20_000, MAX_MESSAGE_BEFORE_AUTH);
        assert_eq!(d.get_i32("code").ok(), Some(10334));
        let msg = d.get_str("errmsg").unwrap_or("");
        assert!(
            msg.contains("before authentication") && msg.contains("16384"),
            "{msg}"
        );
    }

    #[test]
    fn the_cap_before_authentication_is_small() {
        assert_eq!(request_limit(false, 48_000_000), 16 * 1024);
        assert_eq!(request_limit(true, 48_000_000), 48_000_000);
        // A server limit below the cap stays the limit.
        assert_eq!(request_limit(false, 4096), 4096);
    }

    #[test]
    fn a_large_login_hello_fits_the_cap_with_room() {
        // Client metadata at its 512-byte limit, a 256-byte user name in both
        // saslSupportedMechs and the SCRAM client-first message, every compressor.
        let user = "u".repeat(256);
        let hello = bson::rawdoc! {
            "hello": 1,
            "helloOk": true,
            "client": { "application": { "name": "a".repeat(400) }, "driver": { "name": "d", "version": "1" } },
            "compression": ["zstd", "snappy", "zlib"],
            "saslSupportedMechs": format!("admin.{user}"),
            "speculativeAuthenticate": {
                "saslStart": 1,
                "mechanism": "SCRAM-SHA-256",
                "payload": crate::session::binary(format!("n,,n={user},r={}", "r".repeat(48)).into_bytes()),
                "db": "admin",
            },
            "$db": "admin",
        };
        let len = hello.as_bytes().len() + 21;
        assert!(len * 8 < MAX_MESSAGE_BEFORE_AUTH, "{len}");
    }
}
