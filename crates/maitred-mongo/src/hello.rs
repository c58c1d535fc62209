//! hello / isMaster answered by maitred itself, so monitoring and RTT connections never
//! touch the server.
//!
//! maitred presents itself as one mongos-like endpoint (`msg: "isdbgrid"`) at its own
//! address: drivers then never learn the server's host list (they would bypass maitred),
//! and they allow sessions, retryable writes and transactions, which they refuse on a
//! standalone.
//!
//! Every reply carries maitred's `topologyVersion`: a process id fixed for the life of the
//! process, and a counter that is 0 while maitred runs and 1 once it drains (its only
//! change). Drivers then use awaitable hello and the streaming protocol: a hello carrying
//! the current topologyVersion and `maxAwaitTimeMS` is answered after maxAwaitTimeMS, or
//! at once when the drain starts; with `exhaustAllowed` the answers stream (`moreToCome`)
//! until the client goes. The drain's answer is a normal one (hellos are answered during
//! the drain, so drivers keep the server and finish their transactions). None of this
//! touches the server (`session/awaitable.rs`).
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/mongodb-handshake/handshake.md>,
//! <https://github.com/mongodb/specifications/blob/master/source/server-discovery-and-monitoring/server-monitoring.md>.

use crate::backend::ServerInfo;
use bson::oid::ObjectId;
use bson::{rawdoc, RawArrayBuf, RawDocument, RawDocumentBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// maitred's topologyVersion.processId: one per process, so a driver that reconnects to a
/// restarted maitred sees a new process and asks again at once.
pub fn process_id() -> ObjectId {
    static ID: OnceLock<ObjectId> = OnceLock::new();
    *ID.get_or_init(ObjectId::new)
}

/// topologyVersion.counter: 0 while running, 1 once the drain started.
pub fn topology_counter() -> i64 {
    i64::from(maitred_pool::shutdown::started())
}

/// `{processId, counter}` as maitred advertises it now.
pub fn topology_version() -> RawDocumentBuf {
    rawdoc! { "processId": process_id(), "counter": topology_counter() }
}

/// The longest wait maitred grants an awaitable hello, whatever maxAwaitTimeMS says.
pub const MAX_AWAIT: Duration = Duration::from_secs(60);

/// How long to hold an awaitable hello before answering: `Some` when the request carries
/// `maxAwaitTimeMS` and the topologyVersion maitred advertises now (a driver that saw
/// another process or an older counter is answered at once, as servers do).
pub fn await_time(request: &RawDocument) -> Option<Duration> {
    let max_await = match request.get("maxAwaitTimeMS").ok().flatten()? {
        bson::RawBsonRef::Int32(n) => i64::from(n),
        bson::RawBsonRef::Int64(n) => n,
        bson::RawBsonRef::Double(f) => f as i64,
        _ => return None,
    };
    let tv = request.get_document("topologyVersion").ok()?;
    let same_process = tv.get_object_id("processId").ok() == Some(process_id());
    let counter = match tv.get("counter").ok().flatten()? {
        bson::RawBsonRef::Int64(n) => n,
        bson::RawBsonRef::Int32(n) => i64::from(n),
        _ => return None,
    };
    (same_process && counter == topology_counter() && max_await >= 0)
        .then(|| Duration::from_millis(max_await.unsigned_abs()).min(MAX_AWAIT))
}

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
    d.append("topologyVersion", topology_version());
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
        for k in ["hosts", "setName", "me", "primary", "compression"] {
            assert!(d.get(k).expect("valid").is_none(), "{k}");
        }
        let req = rawdoc! { "hello": 1 };
        let d = finish(hello_reply(&req, false, &info(), 1));
        assert!(d.get("helloOk").expect("valid").is_none());
        assert_eq!(d.get_bool("isWritablePrimary"), Ok(true));
        let tv = d.get_document("topologyVersion").expect("topologyVersion");
        assert_eq!(tv.get_object_id("processId"), Ok(process_id()));
        assert_eq!(tv.get_i64("counter"), Ok(0));
    }

    #[test]
    fn only_a_hello_with_our_topology_version_waits() {
        let ours =
            rawdoc! { "hello": 1, "topologyVersion": topology_version(), "maxAwaitTimeMS": 10_000 };
        assert_eq!(await_time(&ours), Some(Duration::from_secs(10)));
        let long = rawdoc! { "hello": 1, "topologyVersion": topology_version(), "maxAwaitTimeMS": 9_000_000_i64 };
        assert_eq!(await_time(&long), Some(MAX_AWAIT));
        let other_process = rawdoc! {
            "hello": 1,
            "topologyVersion": { "processId": ObjectId::new(), "counter": 0_i64 },
            "maxAwaitTimeMS": 10_000,
        };
        assert_eq!(await_time(&other_process), None);
        let other_counter = rawdoc! {
            "hello": 1,
            "topologyVersion": { "processId": process_id(), "counter": 3_i64 },
            "maxAwaitTimeMS": 10_000,
        };
        assert_eq!(await_time(&other_counter), None);
        let no_wait = rawdoc! { "hello": 1, "topologyVersion": topology_version() };
        assert_eq!(await_time(&no_wait), None);
    }
}
