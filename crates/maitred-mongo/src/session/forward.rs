//! Forwarding a client's commands over leased server connections ([`crate::relay`] holds
//! what is read from a command and the exchange with the server): leasing, transaction
//! pins, cursor tracking, the query timeout, and the clean-up after the client left.

use super::{ReplyKind, Session};
use crate::backend::is_ok;
use crate::codec::{op_msg, Header};
use crate::error::SessionError;
use crate::errors_to_client::checkout_error;
use crate::pool::PinReason;
use crate::relay::{exchange, reply_cursor, run_ignoring_errors, Route};
use crate::txn::TxnPin;
use bson::{RawDocument, RawDocumentBuf};
use bytes::BytesMut;
use maitred_admin::ClientState;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
                        self.reply(
                            ReplyKind::Msg,
                            h.request_id,
                            &checkout_error(&e, route.retry_kind()),
                        )
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
