//! The lease: checking a server connection out, pinning the client to it, confirming its
//! session with the server, and giving it back (released, handed to a successor, or reset).

use super::rules::{self, LeaseView, ReleaseDecision, SessionView};
use super::{Flow, Relay};
use crate::backend::ServerConn;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::sqlstate;
use crate::manager::PgManager;
use crate::replies::Request;
use crate::settings::sync_settings;
use crate::sql_effects::PinReason;
use bytes::BytesMut;
use maitred_admin::ClientState;
use maitred_pool::{Ahead, CheckoutError, Lease};
use std::sync::atomic::Ordering;

impl Relay {
    /// Leases a server connection, offering `ahead` to be sent by the holder of a busy one
    /// while this client waits. True if it was: the query is on the wire already.
    pub(super) async fn acquire(
        &mut self,
        ahead: Option<Ahead>,
    ) -> Result<bool, CheckoutError<BackendError>> {
        tracing::trace!(client = self.cancel.id, state = ?self.pool.pool.state(), "checkout");
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
        Ok(self.take_lease(checkout?))
    }

    /// Makes `lease` the client's server connection: its settings are brought to the
    /// client's. True if it came with the client's query sent ahead.
    pub(super) fn take_lease(&mut self, mut lease: Lease<PgManager>) -> bool {
        tracing::trace!(client = self.cancel.id, "leased");
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
        sent
    }

    /// At the release point: a session whose state is not accounted for is confirmed with
    /// the server first (`relay/isolation.rs`); otherwise the connection is released.
    pub(super) async fn end_of_batch(&mut self) -> Result<(), SessionError> {
        let view = self.session_view();
        if rules::end_of_batch(&view) == ReleaseDecision::Confirm {
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
        self.release_if_done(&view);
        Ok(())
    }

    /// The session as the rules see it (`relay/rules.rs`), copied out at a decision point.
    pub(super) fn session_view(&self) -> SessionView {
        SessionView {
            mode: self.pool.mode,
            pinned: self.pinned.is_some(),
            successor: self.successor.is_some(),
            replies_owed: !self.replies.is_empty(),
            lease: self.lease.as_deref().map(lease_view),
            needs_confirmation: self.isolation.needs_confirmation(),
            state_unaccounted: self.isolation.state_unaccounted(),
        }
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

    /// In transaction mode, gives the server connection back once the transaction is over
    /// (`rules::release`).
    pub(super) fn release_if_done(&mut self, view: &SessionView) {
        match rules::release(view) {
            ReleaseDecision::PassToSuccessor => self.pass_to_successor(),
            ReleaseDecision::Release { discard } => {
                if let Some(mut lease) = self.lease.take() {
                    if discard {
                        lease.needs_discard = true;
                        lease.mark_dirty();
                    }
                    self.isolation.lease_ended();
                    let cancel_in_flight = self.cancel.clear_server();
                    self.pool
                        .counters
                        .transactions
                        .fetch_add(1, Ordering::Relaxed);
                    if cancel_in_flight {
                        // The client's CancelRequest may still reach this backend.
                        lease.discard();
                    }
                }
            }
            decision => {
                tracing::trace!(client = self.cancel.id, ?decision, server = ?self.lease.as_deref(), "lease kept");
            }
        }
    }

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    pub(super) fn finish(&mut self) {
        // The successor's query owes its reply on our connection, which is reset now.
        self.successor = None;
        let cancel_in_flight = self.cancel.clear_server();
        if self.notifications.take().is_some() {
            self.pool.notifier.unlisten(self.cancel.id, None);
        }
        let view = self.session_view();
        if self.pinned.take().is_some() {
            self.pool.unpin();
        }
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if cancel_in_flight {
            // The client's CancelRequest may still reach this backend.
            lease.discard();
            return;
        }
        // DISCARD ALL drops temp tables, advisory locks, LISTENs, cursors, PREPAREs; and
        // what the client left unconfirmed (isolation rule 7).
        let leave = rules::on_client_gone(&view, lease.is_clean());
        lease.needs_discard = leave.discard;
        if leave.dirty {
            lease.mark_dirty();
        }
    }
}

/// A server connection as the rules see it.
pub(super) fn lease_view(s: &ServerConn) -> LeaseView {
    LeaseView {
        pending_sync: s.pending_sync,
        extended_open: s.extended_open,
        tx_status: s.tx_status,
        unread_body: s.unread_body,
        buffered: !s.rbuf.is_empty(),
        needs_discard: s.needs_discard,
    }
}
