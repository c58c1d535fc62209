//! Forwarding a client's commands over leased server connections.
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

use crate::backend::{is_ok, next_request_id, ServerConn};
use crate::codec::compressed;
use crate::codec::{op_msg, Header};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::checkout_error;
use crate::pool::PinReason;
use crate::session::{ReplyKind, Session};
use crate::txn::TxnPin;
use bson::{RawDocument, RawDocumentBuf};
use bytes::BytesMut;
use maitred_admin::ClientState;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// What decides routing, read from the command before it is forwarded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub command: String,
    pub lsid: Option<Vec<u8>>,
    pub txn_number: Option<i64>,
    pub start_transaction: bool,
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

    fn ends_transaction(&self) -> bool {
        self.command == "commitTransaction" || self.command == "abortTransaction"
    }
}

/// Cursor facts of a reply: (cursor id, namespace), if the reply has a cursor.
pub fn reply_cursor(body: &RawDocument) -> Option<(i64, String)> {
    let c = body.get_document("cursor").ok()?;
    let id = c.get_i64("id").ok()?;
    let ns = c.get_str("ns").unwrap_or_default().to_owned();
    Some((id, ns))
}

impl Session {
    pub(crate) async fn forward(
        &mut self,
        h: Header,
        mut msg: BytesMut,
        route: Route,
    ) -> Result<(), SessionError> {
        self.pool.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.ticket.traffic().query();
        if route.exhaust_allowed {
            op_msg::clear_flags(&mut msg, op_msg::EXHAUST_ALLOWED);
        }
        self.release_ended_pin();
        // A later txnNumber of the pinned lsid: the pinned transaction is over.
        if let (Some(pin), Some(rl)) = (&self.pin, &route.lsid) {
            if &pin.lsid == rl && route.txn_number != Some(pin.txn_number) {
                self.unpin();
            }
        }
        if self.lease.is_none() {
            self.ticket.set_state(ClientState::Waiting);
            let checkout = self.server_pool().checkout().await;
            self.ticket.set_state(if checkout.is_ok() {
                ClientState::Active
            } else {
                ClientState::Idle
            });
            match checkout {
                Ok(lease) => self.lease = Some(lease),
                Err(e) => {
                    self.pool
                        .counters
                        .overload_replies
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(pool = %self.pool.name, error = %e, "checkout failed");
                    if !route.more_to_come {
                        self.reply(ReplyKind::Msg, h.request_id, &checkout_error(&e))
                            .await?;
                    }
                    return Ok(());
                }
            }
        }
        if route.start_transaction {
            if let (Some(lsid), Some(txn)) = (&route.lsid, route.txn_number) {
                self.unpin();
                let pin = Arc::new(TxnPin::new(lsid.clone(), txn));
                self.pool.txns.register(pin.clone());
                self.pin = Some(pin);
                self.pool.counters.count_pin(PinReason::Transaction);
                tracing::debug!(
                    pool = %self.pool.name,
                    reason = PinReason::Transaction.as_str(),
                    "client pinned to its server connection"
                );
            }
        }
        let max = self.server_max();
        let query_timeout = self.pool.limits.query_timeout;
        let result = {
            let Some(server) = self.lease.as_deref_mut() else {
                return Ok(());
            };
            let exchanged = exchange(server, &msg, route.more_to_come, max);
            match query_timeout {
                None => exchanged.await,
                Some(t) => match tokio::time::timeout(t, exchanged).await {
                    Ok(r) => r,
                    Err(_) => return self.query_timed_out(h, &route, t).await,
                },
            }
        };
        let reply = match result {
            Ok(r) => r,
            Err(e) => {
                // The server connection is in an unknown state: close it; the client sees
                // a network error, which drivers retry.
                tracing::warn!(pool = %self.pool.name, error = %e, "server connection lost");
                if let Some(lease) = self.lease.take() {
                    lease.discard();
                }
                self.unpin();
                return Err(e.into());
            }
        };
        if let Some(reply) = reply {
            if let Ok(parsed) = op_msg::parse(&reply) {
                self.track(&route, parsed.body);
            }
            self.write_client(&reply).await?;
        }
        if route.ends_transaction() {
            if let Some(rl) = &route.lsid {
                match &self.pin {
                    Some(pin) if &pin.lsid == rl => self.unpin(),
                    // Pinned by another client connection of the same driver: tell it.
                    _ => self.pool.txns.end(rl),
                }
            }
        }
        if self.pin.is_none() {
            self.lease = None;
            self.ticket.set_state(ClientState::Idle);
        }
        Ok(())
    }

    /// The server did not answer within `query_timeout`: its connection, in the middle of
    /// a request, is closed; the client gets an error and is closed too (its pinned
    /// transaction, if any, is aborted by [`Session::cleanup`] on a fresh connection).
    async fn query_timed_out(
        &mut self,
        h: Header,
        route: &Route,
        timeout: std::time::Duration,
    ) -> Result<(), SessionError> {
        tracing::warn!(pool = %self.pool.name, command = %route.command, "server did not answer within query_timeout: server connection closed");
        if let Some(lease) = self.lease.take() {
            lease.discard();
        }
        if !route.more_to_come {
            let doc = crate::limits::query_timeout(&self.pool.name, timeout);
            self.reply(ReplyKind::Msg, h.request_id, &doc).await?;
        }
        Err(SessionError::ClientIo(std::io::ErrorKind::TimedOut.into()))
    }

    /// Gives the pin up (the transaction ended, or the connection is gone).
    fn unpin(&mut self) {
        if let Some(pin) = self.pin.take() {
            self.pool.txns.remove(&pin);
        }
    }

    /// If the pinned transaction ended through another client connection, releases the
    /// server connection.
    pub(crate) fn release_ended_pin(&mut self) {
        if self.pin.as_ref().is_some_and(|p| p.ended()) {
            self.pin = None;
            self.lease = None;
            self.ticket.set_state(ClientState::Idle);
        }
    }

    fn server_max(&self) -> usize {
        let info = self.lease.as_deref().map(|s| s.info.max_message_size_bytes);
        (info.unwrap_or(0).max(0) as usize).max(crate::codec::DEFAULT_MAX_MESSAGE) * 2
    }

    /// Records the cursors a reply opened or closed.
    fn track(&mut self, route: &Route, body: &RawDocument) {
        for id in &route.killed {
            self.cursors.remove(id);
        }
        if let Some(id) = route.get_more {
            if !is_ok(body) {
                self.cursors.remove(&id);
            }
        }
        if let Some((id, ns)) = reply_cursor(body) {
            if id != 0 {
                if self.cursors.len() < 10_000 {
                    self.cursors.insert(id, ns);
                }
            } else if let Some(gm) = route.get_more {
                self.cursors.remove(&gm);
            }
        }
    }

    /// After the client left: abort its open transaction and kill its cursors, so the
    /// server connection is clean before anyone else gets it.
    pub(crate) async fn cleanup(&mut self) {
        self.release_ended_pin();
        if self.pin.is_none() && self.cursors.is_empty() {
            self.lease = None;
            return;
        }
        if self.lease.is_none() {
            match self.server_pool().checkout().await {
                Ok(l) => self.lease = Some(l),
                Err(_) => return,
            }
        }
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let mut ok = true;
        if let Some(pin) = self.pin.take() {
            self.pool.txns.remove(&pin);
            let mut d = RawDocumentBuf::new();
            d.append("abortTransaction", 1);
            if let Ok(l) = RawDocumentBuf::from_bytes(pin.lsid.clone()) {
                d.append("lsid", l);
            }
            d.append("txnNumber", pin.txn_number);
            d.append("autocommit", false);
            d.append("$db", "admin");
            ok &= run_ignoring_errors(&mut lease, &d).await;
        }
        let mut by_ns: std::collections::HashMap<String, Vec<i64>> = Default::default();
        for (id, ns) in self.cursors.drain() {
            by_ns.entry(ns).or_default().push(id);
        }
        for (ns, ids) in by_ns {
            let Some((db, coll)) = ns.split_once('.') else {
                continue;
            };
            let mut arr = bson::RawArrayBuf::new();
            for id in ids {
                arr.push(id);
            }
            let mut d = RawDocumentBuf::new();
            d.append("killCursors", coll);
            d.append("cursors", arr);
            d.append("$db", db);
            ok &= run_ignoring_errors(&mut lease, &d).await;
        }
        if !ok {
            lease.discard();
        }
    }
}

/// Runs a cleanup command; a server-side error is fine (the transaction may already be
/// over), an I/O error means the connection must go.
async fn run_ignoring_errors(server: &mut ServerConn, body: &RawDocument) -> bool {
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
async fn exchange(
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
