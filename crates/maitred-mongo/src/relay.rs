//! Forwarding a client's commands over leased server connections: what is read from a
//! command before it is forwarded ([`Route`]), from a reply ([`reply_cursor`]), and the
//! exchange with the server connection. The session's side (leasing, pins, cursor
//! tracking, clean-up) is `session/forward.rs`; this module knows nothing of sessions.
//!
//! Each request that expects a reply leases a server connection, is forwarded unchanged
//! (its requestID too: the server's reply carries `responseTo` = the client's requestID, so
//! the reply goes back byte for byte), and the lease ends with the reply. A `moreToCome`
//! request (w:0) releases at once. `exhaustAllowed` is stripped, so the server answers each
//! getMore once. A multi-document transaction (lsid + txnNumber, from `startTransaction`
//! to commit/abort) pins the client to one server connection. Cursor ids from replies are
//! recorded so that a client that leaves has its cursors killed; MongoDB servers keep
//! cursors per server, not per connection, so a getMore may run on any connection.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/transactions/transactions.md>.

use crate::backend::{next_request_id, ServerConn};
use crate::codec::compressed;
use crate::codec::op_msg;
use crate::error::BackendError;
use bson::RawDocument;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

/// What decides routing, read from the command before it is forwarded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub command: String,
    pub lsid: Option<Vec<u8>>,
    pub txn_number: Option<i64>,
    pub start_transaction: bool,
    /// `autocommit: false`: a statement of a multi-document transaction.
    pub in_transaction: bool,
    pub more_to_come: bool,
    pub exhaust_allowed: bool,
    /// The database the command runs in (`$db`).
    pub db: String,
    /// killCursors: the ids killed.
    pub killed: Vec<i64>,
    /// getMore: the cursor id.
    pub get_more: Option<i64>,
}

impl Route {
    pub fn of(command: &str, body: &RawDocument, flags: u32) -> Route {
        let mut r = Route {
            command: command.to_owned(),
            more_to_come: flags & op_msg::MORE_TO_COME != 0,
            exhaust_allowed: flags & op_msg::EXHAUST_ALLOWED != 0,
            db: body.get_str("$db").unwrap_or("admin").to_owned(),
            ..Route::default()
        };
        if let Ok(lsid) = body.get_document("lsid") {
            r.lsid = Some(lsid.as_bytes().to_vec());
        }
        r.txn_number = body.get_i64("txnNumber").ok();
        r.start_transaction = body.get_bool("startTransaction").unwrap_or(false);
        r.in_transaction = body.get_bool("autocommit") == Ok(false);
        match command {
            "getMore" => r.get_more = body.get_i64("getMore").ok(),
            "killCursors" => {
                if let Ok(ids) = body.get_array("cursors") {
                    r.killed = ids
                        .into_iter()
                        .filter_map(|v| v.ok().and_then(|v| v.as_i64()))
                        .collect();
                }
            }
            _ => {}
        }
        r
    }

    pub(crate) fn ends_transaction(&self) -> bool {
        self.command == "commitTransaction" || self.command == "abortTransaction"
    }

    /// What the request is to a driver's retry logic (the labels of maitred's own errors
    /// follow it).
    pub fn retry_kind(&self) -> RetryKind {
        if self.ends_transaction() {
            RetryKind::TransactionEnd
        } else if self.in_transaction {
            RetryKind::TransactionStatement
        } else if self.txn_number.is_some() {
            RetryKind::Write
        } else {
            RetryKind::Other
        }
    }
}

/// How a driver may retry a request that failed without running (transactions and
/// retryable-writes specifications): by the error's labels, which a mongos (like a
/// replica set member) sets for the request's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// A read or a write without `txnNumber`: retried (reads) by code, not by label.
    Other,
    /// A retryable write (`txnNumber`, not in a transaction): retried on
    /// `RetryableWriteError`.
    Write,
    /// A statement of a multi-document transaction: the whole transaction is retried on
    /// `TransientTransactionError`.
    TransactionStatement,
    /// commitTransaction / abortTransaction: retried once on `RetryableWriteError`.
    TransactionEnd,
}

impl RetryKind {
    /// The labels a mongos gives an error of a request of this kind that did not run.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            RetryKind::Other => &[],
            RetryKind::Write | RetryKind::TransactionEnd => &["RetryableWriteError"],
            RetryKind::TransactionStatement => &["TransientTransactionError"],
        }
    }
}

/// Cursor facts of a reply: (cursor id, namespace), if the reply has a cursor.
pub fn reply_cursor(body: &RawDocument) -> Option<(i64, String)> {
    let c = body.get_document("cursor").ok()?;
    let id = c.get_i64("id").ok()?;
    let ns = c.get_str("ns").unwrap_or_default().to_owned();
    Some((id, ns))
}

/// Runs a cleanup command; a server-side error is fine (the transaction may already be
/// over), an I/O error means the connection must go.
pub(crate) async fn run_ignoring_errors(server: &mut ServerConn, body: &RawDocument) -> bool {
    let mut out = BytesMut::new();
    op_msg::encode(&mut out, next_request_id(), 0, 0, body.as_bytes());
    let fut = async {
        server.stream.write_all(&out).await?;
        server
            .read_message(crate::codec::DEFAULT_MAX_MESSAGE)
            .await
            .map(|_| ())
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), fut).await,
        Ok(Ok(()))
    )
}

/// Sends a request and, unless it is `moreToCome`, reads its reply (and any further
/// replies the server streams with `moreToCome`, which it should not, exhaust being
/// stripped: those are appended).
pub(crate) async fn exchange(
    server: &mut ServerConn,
    msg: &[u8],
    more_to_come: bool,
    max: usize,
) -> Result<Option<BytesMut>, BackendError> {
    match server.compressor {
        Some(c) => {
            let mut out = BytesMut::with_capacity(msg.len() / 2 + 32);
            compressed::compress(msg, c, &mut out)?;
            server.stream.write_all(&out).await?;
        }
        None => server.stream.write_all(msg).await?,
    }
    if more_to_come {
        return Ok(None);
    }
    let mut reply = server.read_reply(max).await?;
    let mut last = reply.len();
    while streams_more(&reply[reply.len() - last..]) {
        let next = server.read_reply(max).await?;
        last = next.len();
        reply.extend_from_slice(&next);
    }
    Ok(Some(reply))
}

/// Whether a reply is an OP_MSG with moreToCome (more replies follow).
fn streams_more(msg: &[u8]) -> bool {
    use crate::codec::header::{i32_at, u32_at};
    use crate::codec::HEADER_LEN;
    msg.len() >= HEADER_LEN + 4
        && i32_at(msg, 12) == crate::codec::OpCode::Msg.as_i32()
        && u32_at(msg, HEADER_LEN) & op_msg::MORE_TO_COME != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn route_reads_transaction_and_cursor_fields() {
        let lsid = rawdoc! { "id": 7 };
        let body = rawdoc! {
            "insert": "c", "lsid": lsid.clone(), "txnNumber": 3_i64,
            "startTransaction": true, "autocommit": false, "$db": "app",
        };
        let r = Route::of("insert", &body, op_msg::EXHAUST_ALLOWED);
        assert_eq!(r.lsid.as_deref(), Some(lsid.as_bytes()));
        assert_eq!(r.txn_number, Some(3));
        assert!(r.start_transaction && r.exhaust_allowed && !r.more_to_come);
        assert_eq!(r.db, "app");
        let k = rawdoc! { "killCursors": "c", "cursors": [5_i64, 6_i64], "$db": "app" };
        assert_eq!(Route::of("killCursors", &k, 0).killed, vec![5, 6]);
        let g = rawdoc! { "getMore": 9_i64, "collection": "c", "$db": "app" };
        assert_eq!(Route::of("getMore", &g, 0).get_more, Some(9));
        assert!(Route::of("commitTransaction", &rawdoc! {}, 0).ends_transaction());
    }

    #[test]
    fn streaming_replies_are_recognised_without_panicking() {
        let mut m = BytesMut::new();
        op_msg::encode(
            &mut m,
            1,
            2,
            op_msg::MORE_TO_COME,
            rawdoc! { "ok": 1.0 }.as_bytes(),
        );
        assert!(streams_more(&m));
        op_msg::clear_flags(&mut m, op_msg::MORE_TO_COME);
        assert!(!streams_more(&m));
        assert!(!streams_more(&m[..16]));
    }

    #[test]
    fn reads_cursor_of_reply() {
        let r = rawdoc! { "cursor": { "id": 12_i64, "ns": "app.c", "firstBatch": [] }, "ok": 1.0 };
        assert_eq!(reply_cursor(&r), Some((12, "app.c".to_owned())));
        assert_eq!(reply_cursor(&rawdoc! { "ok": 1.0 }), None);
    }
}
