//! The lease: checking a server connection out, pinning the client to it, confirming its
//! session with the server, and giving it back (released, handed to a successor, or reset).

use super::{Flow, Relay};
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::sqlstate;
use crate::pool::PoolMode;
use crate::replies::Request;
use crate::settings::sync_settings;
use crate::sql_effects::PinReason;
use bytes::BytesMut;
use maitred_admin::ClientState;
use maitred_pool::{Ahead, CheckoutError};
use std::sync::atomic::Ordering;

impl Relay {
    /// Leases a server connection, offering `ahead` to be sent by the holder of a busy one
    /// while this client waits. True if it was: the query is on the wire already.
    pub(super) async fn acquire(
        &mut self,
        ahead: Option<Ahead>,
    ) -> Result<bool, CheckoutError<BackendError>> {
        tracing::trace!(client = self.cancel.process_id, state = ?self.pool.pool.state(), "checkout");
        self.ticket.set_state(ClientState::Waiting);
        let checkout = match ahead {
            Some(ahead) => self.pool.pool.checkout_ahead(ahead).await,
            None => self.pool.pool.checkout().await,
        };
        self.ticket.set_state(if checkout.is_ok() {
            ClientState::Active
        } else {
            ClientState::Idle
        });
        let mut lease = checkout?;
        tracing::trace!(client = self.cancel.process_id, "leased");
        self.cancel.set_server(lease.process_id, lease.secret_key);
        let sent = lease.request_sent();
        // A query sent ahead was claimed for the settings this connection has (same
        // affinity): nothing to sync, and nothing may go before it now anyway.
        if !sent && sync_settings(&mut lease.applied, &self.settings, &mut self.swbuf) {
            self.isolation.settings_synced();
            lease.pending_sync += 1;
            self.replies.injected(Request::UntilReady);
        }
        self.lease = Some(lease);
        self.server_bytes_pending = sent;
        Ok(sent)
    }

    /// At the release point: a session whose state is not accounted for is confirmed with
    /// the server first (`relay/isolation.rs`); otherwise the connection is released.
    pub(super) async fn end_of_batch(&mut self) -> Result<(), SessionError> {
        if self.isolation.needs_confirmation()
            && self.successor.is_none()
            && self.pool.mode != PoolMode::Session
            && self.pinned.is_none()
            && self.replies.is_empty()
            && self.at_release_point()
        {
            if let Some(server) = self.lease.as_deref_mut() {
                let known = self.settings.iter().map(|(name, _)| name);
                if let Some((cause, query)) = self.isolation.start_confirmation(known) {
                    tracing::debug!(pool = %self.pool.name, cause = cause.as_str(), "confirming session state with the server");
                    // `query` only fails on a NUL byte; the text has none.
                    let _ = postgres_protocol::message::frontend::query(&query, &mut self.swbuf);
                    server.pending_sync += 1;
                    self.replies.confirmation();
                    self.flush_server().await?;
                    return Ok(());
                }
            }
        }
        self.release_if_done();
        Ok(())
    }

    /// Whether the leased connection owes nothing and is idle outside a transaction.
    pub(super) fn at_release_point(&self) -> bool {
        self.lease.as_deref().is_some_and(|s| {
            s.pending_sync == 0
                && !s.extended_open
                && s.tx_status == b'I'
                && s.unread_body == 0
                && s.rbuf.is_empty()
        })
    }

    /// Pins the client to its server connection for the rest of its session, if a place
    /// under `max_pinned` is free; otherwise answers the query with an error (`in_batch`: the
    /// Bind of an extended-protocol batch, which then skips to its Sync).
    pub(super) fn pin(&mut self, reason: PinReason, in_batch: bool) -> bool {
        if self.pinned.is_some() {
            return true;
        }
        if self.pool.try_pin(reason) {
            self.pinned = Some(reason);
            tracing::debug!(pool = %self.pool.name, reason = reason.as_str(), "client pinned to its server connection");
            return true;
        }
        let status = self.lease.as_deref().map_or(b'I', |s| s.tx_status);
        let message = format!(
            "maitred: this statement ({}) would pin the session to one server connection, and pool \"{}\" already has max_pinned ({}) pinned clients",
            reason.as_str(),
            self.pool.name,
            self.pool.pinned_now()
        );
        let mut e = BytesMut::new();
        out::error_response(
            &mut e,
            &ErrorFields {
                severity: Severity::Error,
                code: sqlstate::TOO_MANY_CONNECTIONS,
                message: &message,
                detail: None,
                hint: Some("Use transaction-scoped alternatives (pg_advisory_xact_lock, ON COMMIT DROP temp tables, protocol-level prepared statements), session mode, or raise max_pinned."),
            },
        );
        if in_batch {
            self.abandon_batch_effects();
            self.skip_until_sync = true;
        } else {
            out::ready_for_query(&mut e, status);
        }
        self.replies.composed(e.freeze(), &mut self.cwbuf);
        false
    }

    /// A confirmation found state that cannot move: the client keeps its connection. If
    /// `max_pinned` clients are pinned already, the state cannot be kept for it either: the
    /// client is told and disconnected, and the connection reset.
    pub(super) async fn pin_after_confirmation(
        &mut self,
        reason: PinReason,
    ) -> Result<Flow, SessionError> {
        if self.pinned.is_some() || self.pool.try_pin(reason) {
            self.pinned.get_or_insert(reason);
            tracing::debug!(pool = %self.pool.name, reason = reason.as_str(), "client pinned after confirming its session");
            return Ok(Flow::Continue);
        }
        if let Some(server) = self.lease.as_deref_mut() {
            server.needs_discard = true;
        }
        let message = format!(
            "maitred: your session now holds state that stays on its server connection ({}), and pool \"{}\" already has max_pinned ({}) pinned clients",
            reason.as_str(),
            self.pool.name,
            self.pool.pinned_now()
        );
        out::error_response(
            &mut self.cwbuf,
            &ErrorFields {
                severity: Severity::Fatal,
                code: sqlstate::TOO_MANY_CONNECTIONS,
                message: &message,
                detail: Some("The session state was discarded; what the transaction wrote to tables is committed."),
                hint: Some("Use transaction-scoped alternatives, session mode, or raise max_pinned."),
            },
        );
        let _ = self.flush_client().await;
        Ok(Flow::ClientDone)
    }

    /// In transaction mode, gives the server connection back once the transaction is over.
    pub(super) fn release_if_done(&mut self) {
        if self.successor.is_some() {
            self.pass_to_successor();
            return;
        }
        if self.pool.mode == PoolMode::Session || !self.replies.is_empty() || self.pinned.is_some()
        {
            tracing::trace!(replies = ?self.replies, "lease kept: replies owed");
            return;
        }
        let done = self.lease.as_deref().is_some_and(|s| {
            s.pending_sync == 0
                && !s.extended_open
                && s.tx_status == b'I'
                && s.unread_body == 0
                && s.rbuf.is_empty()
        });
        tracing::trace!(client = self.cancel.process_id, done, server = ?self.lease.as_deref(), "end of server batch");
        if done {
            if let Some(mut lease) = self.lease.take() {
                if lease.needs_discard || self.isolation.state_unaccounted() {
                    lease.needs_discard = true;
                    lease.mark_dirty();
                }
                self.isolation.lease_ended();
                self.cancel.clear_server();
                self.pool
                    .counters
                    .transactions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    pub(super) fn finish(&mut self) {
        // The successor's query owes its reply on our connection, which is reset now.
        self.successor = None;
        self.cancel.clear_server();
        if self.notifications.take().is_some() {
            self.pool.notifier.unlisten(self.cancel.process_id, None);
        }
        if self.pinned.take().is_some() {
            self.pool.unpin();
            if let Some(lease) = self.lease.as_deref_mut() {
                // DISCARD ALL drops temp tables, advisory locks, LISTENs, cursors, PREPAREs.
                lease.needs_discard = true;
            }
        }
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if self.pool.mode == PoolMode::Session {
            lease.needs_discard = true;
        }
        if self.isolation.state_unaccounted() {
            // Rule 7: what the client left was never confirmed.
            lease.needs_discard = true;
        }
        if !lease.is_clean() || !self.replies.is_empty() || lease.needs_discard {
            lease.mark_dirty();
        }
    }
}
