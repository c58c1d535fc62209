//! hello / isMaster answered by maitred itself, so monitoring and RTT connections never
//! touch the server.
//!
//! maitred presents itself as one mongos-like endpoint (`msg: "isdbgrid"`) at its own
//! address: drivers then never learn the server's host list (they would bypass maitred),
//! and they allow sessions, retryable writes and transactions, which they refuse on a
//! standalone. No `topologyVersion` is sent, so drivers poll instead of using awaitable hello.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/mongodb-handshake/handshake.md>.

use crate::backend::ServerInfo;
use bson::{rawdoc, RawArrayBuf, RawDocument, RawDocumentBuf};

/// Command names that are a hello, and whether the name is a legacy form.
pub fn hello_kind(name: &str) -> Option<bool> {
    match name {
        "hello" => Some(false),
        "isMaster" | "ismaster" => Some(true),
        _ => None,
    }
}

/// Builds the hello reply, without `speculativeAuthenticate` and `saslSupportedMechs`
/// (appended by the caller when asked for) and without `ok` (appended last by [`finish`]).
pub fn hello_reply(
    request: &RawDocument,
    legacy: bool,
    info: &ServerInfo,
    connection_id: i64,
) -> RawDocumentBuf {
    let mut d = RawDocumentBuf::new();
    if request.get("helloOk").ok().flatten().is_some() {
        d.append("helloOk", true);
    }
    d.append(
        if legacy {
            "ismaster"
        } else {
            "isWritablePrimary"
        },
        true,
    );
    d.append("msg", "isdbgrid");
    d.append("maxBsonObjectSize", info.max_bson_object_size);
    d.append("maxMessageSizeBytes", info.max_message_size_bytes);
    d.append("maxWriteBatchSize", info.max_write_batch_size);
    d.append("localTime", bson::DateTime::now());
    if let Some(m) = info.logical_session_timeout_minutes {
        d.append("logicalSessionTimeoutMinutes", m);
    }
    d.append("connectionId", connection_id);
    d.append("minWireVersion", info.min_wire_version);
    d.append("maxWireVersion", info.max_wire_version);
    d.append("readOnly", false);
    d
}

/// `saslSupportedMechs` for a known user.
pub fn mechanisms() -> RawArrayBuf {
    let mut a = RawArrayBuf::new();
    a.push("SCRAM-SHA-1");
    a.push("SCRAM-SHA-256");
    a
}

/// Appends `ok: 1`.
pub fn finish(mut d: RawDocumentBuf) -> RawDocumentBuf {
    d.append("ok", 1.0);
    d
}

/// An empty success reply.
pub fn ok() -> RawDocumentBuf {
    rawdoc! { "ok": 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ServerInfo {
        ServerInfo {
            min_wire_version: 0,
            max_wire_version: 21,
            max_bson_object_size: 16_777_216,
            max_message_size_bytes: 48_000_000,
            max_write_batch_size: 100_000,
            logical_session_timeout_minutes: Some(30),
        }
    }

    #[test]
    fn reply_never_names_server_hosts_and_echoes_hello_ok() {
        let req = rawdoc! { "isMaster": 1, "helloOk": true, "$db": "admin" };
        let d = finish(hello_reply(&req, true, &info(), 42));
        assert_eq!(d.get_bool("helloOk"), Ok(true));
        assert_eq!(d.get_bool("ismaster"), Ok(true));
        assert_eq!(d.get_i32("maxWireVersion"), Ok(21));
        assert_eq!(d.get_i32("logicalSessionTimeoutMinutes"), Ok(30));
        assert_eq!(d.get_i64("connectionId"), Ok(42));
        assert_eq!(d.get_str("msg"), Ok("isdbgrid"));
        for k in [
            "hosts",
            "setName",
            "me",
            "primary",
            "topologyVersion",
            "compression",
        ] {
            assert!(d.get(k).expect("valid").is_none(), "{k}");
        }
        let req = rawdoc! { "hello": 1 };
        let d = finish(hello_reply(&req, false, &info(), 1));
        assert!(d.get("helloOk").expect("valid").is_none());
        assert_eq!(d.get_bool("isWritablePrimary"), Ok(true));
    }
}
