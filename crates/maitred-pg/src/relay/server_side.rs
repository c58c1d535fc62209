//! The server's side: forwarding its bytes in bulk while scanning the few messages that
//! matter (ReadyForQuery, ParameterStatus, CommandComplete, ErrorResponse, the
//! confirmation's row), and a lost server connection.

use super::effects::{forgets_statements, settle_effects};
use super::own_notifications;
use super::rules::{self, Lost};
use super::{Flow, Relay};
use crate::backend::MAX_SERVER_MESSAGE;
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::confirm::Verdict as Confirmed;
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::sqlstate;
use crate::pool::PoolMode;
use crate::replies::Verdict;
use bytes::Buf;
use std::sync::atomic::Ordering;

impl Relay {
    /// Forwards server bytes to the client, watching the replies owed to know when the
    /// transaction is over.
    pub(super) async fn handle_server_bytes(&mut self) -> Result<Flow, SessionError> {
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(Flow::Continue);
        };
        let mut confirmed_pin = None;
        loop {
            if self.successor.is_some() && self.replies.is_empty() && server.unread_body == 0 {
                // The rest is the successor's reply.
                break;
            }
            if server.unread_body > 0 {
                let n = server.unread_body.min(server.rbuf.len());
                if n == 0 {
                    break;
                }
                if !self.partial_swallow {
                    self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                }
                server.rbuf.advance(n);
                server.unread_body -= n;
                continue;
            }
            let Some((t, len)) = frame::peek_header(&server.rbuf, MAX_SERVER_MESSAGE)
                .map_err(BackendError::Protocol)?
            else {
                break;
            };
            let confirming = self.replies.front_is_confirmation();
            // A NotificationResponse on the leased connection (a client pinned by a LISTEN it
            // sent itself, outside session mode) may need the client's pid.
            let own_pid_needed = t == b'A' && self.pool.mode != PoolMode::Session;
            let whole_needed = matches!(t, b'Z' | b'E' | b'C') || confirming || own_pid_needed;
            if whole_needed && server.rbuf.len() < len {
                break;
            }
            let verdict = self.replies.on_server_message(t, &mut self.unprepared);
            if t == b'G' {
                let (dropped, ended) = self.replies.copy_in_started();
                server.pending_sync = server.pending_sync.saturating_sub(dropped);
                for _ in 0..dropped {
                    self.query_effects.pop_back();
                }
                self.copy_in = !ended;
            }
            for id in self.unprepared.drain(..) {
                server.prepared.remove(id);
            }
            let forward = verdict == Verdict::Forward;
            if t == b'S' && forward && !self.replies.front_is_injected() {
                self.isolation.on_parameter_status();
            }
            if verdict == Verdict::Capture {
                let msg = &server.rbuf[..len];
                match t {
                    b'D' => self.isolation.on_confirm_row(msg),
                    b'E' => self.isolation.on_confirm_error(),
                    b'Z' => {
                        server.tx_status = msg.get(frame::HEADER_LEN).copied().unwrap_or(b'I');
                        server.pending_sync = server.pending_sync.saturating_sub(1);
                        let login_user = server.params.get("session_authorization").cloned();
                        if let Some((cause, verdict)) =
                            self.isolation.finish_confirmation(login_user.as_deref())
                        {
                            self.pool.counters.confirmations[cause.index()]
                                .fetch_add(1, Ordering::Relaxed);
                            match verdict {
                                Confirmed::Follow(settings) => {
                                    tracing::debug!(pool = %self.pool.name, cause = cause.as_str(), "session confirmed: settings followed");
                                    server.applied = settings.clone();
                                    self.settings = settings;
                                    // Custom settings maitred could not name stay on the
                                    // connection: DISCARD ALL before anyone else gets it.
                                    server.needs_discard = true;
                                }
                                Confirmed::Pin(reason) => confirmed_pin = Some(reason),
                            }
                        }
                    }
                    _ => {}
                }
                server.rbuf.advance(len);
                self.replies.release_composed(&mut self.cwbuf);
                continue;
            }
            if whole_needed {
                let msg = &server.rbuf[..len];
                match t {
                    b'Z' => {
                        server.tx_status = msg.get(frame::HEADER_LEN).copied().unwrap_or(b'I');
                        server.pending_sync = server.pending_sync.saturating_sub(1);
                        if forward {
                            let done = self.query_effects.pop_front().flatten();
                            let notified = settle_effects(
                                done,
                                server.tx_status,
                                self.last_was_commit,
                                &mut self.pending_in_transaction,
                                &mut self.settings,
                                &self.startup,
                                &mut server.applied,
                            );
                            // Session mode: notifications come on this connection, with
                            // the pid the client was told.
                            if !notified.is_empty() && self.pool.mode != PoolMode::Session {
                                self.own_notifications.committed(
                                    server.process_id,
                                    notified,
                                    std::time::Instant::now(),
                                );
                            }
                        }
                    }
                    b'E' if forward => match self.query_effects.front_mut() {
                        Some(Some(q)) => q.failed = true,
                        Some(None) => {}
                        // The error is in the open batch, whose Sync is still to come.
                        None => self.batch_failed = true,
                    },
                    b'C' if forward => {
                        let tag = frame::body(msg);
                        self.isolation.on_command_complete(tag);
                        if tag.starts_with(b"COMMIT") {
                            self.last_was_commit = true;
                        } else if tag.starts_with(b"ROLLBACK") {
                            self.last_was_commit = false;
                        }
                        if forgets_statements(msg) {
                            server.prepared.clear();
                            self.statements.clear();
                        }
                        if tag.starts_with(b"DISCARD ALL\0") {
                            server.applied.clear();
                            self.settings = self.startup.clone();
                        }
                    }
                    b'E' if !forward => {
                        tracing::warn!(pool = %self.pool.name, "a client's startup setting was refused by the server");
                        server.needs_discard = true;
                    }
                    _ => {}
                }
                if forward {
                    let start = self.cwbuf.len();
                    self.cwbuf.extend_from_slice(msg);
                    // Only this client uses a connection pinned since its LISTEN: a
                    // notification sent by that very process is the client's own.
                    if own_pid_needed && own_notifications::sent_by(msg, server.process_id) {
                        own_notifications::set_pid(
                            &mut self.cwbuf[start..],
                            self.cancel.process_id,
                        );
                    }
                }
                server.rbuf.advance(len);
            } else {
                let n = len.min(server.rbuf.len());
                if forward {
                    self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                }
                server.rbuf.advance(n);
                server.unread_body = len - n;
                self.partial_swallow = !forward;
            }
            self.replies.release_composed(&mut self.cwbuf);
        }
        if rules::statement_mode_block(
            self.pool.mode,
            !self.replies.is_empty(),
            self.lease.as_deref().map(|s| s.tx_status),
        ) {
            // A transaction block opened by other means (e.g. the extended protocol).
            let message = format!(
                "maitred: pool \"{}\" is in statement mode, where transaction blocks are not allowed; the block was rolled back",
                self.pool.name
            );
            out::error_response(
                &mut self.cwbuf,
                &ErrorFields {
                    severity: Severity::Fatal,
                    code: sqlstate::FEATURE_NOT_SUPPORTED,
                    message: &message,
                    detail: None,
                    hint: None,
                },
            );
            self.flush_client().await?;
            return Ok(Flow::ClientDone);
        }
        if let Some(reason) = confirmed_pin {
            if self.pin_after_confirmation(reason).await? == Flow::ClientDone {
                return Ok(Flow::ClientDone);
            }
        }
        self.flush_client().await?;
        self.end_of_batch().await?;
        Ok(Flow::Continue)
    }

    /// The server connection failed. If the client had nothing in flight it goes on with
    /// a new server connection next time; otherwise it is told and disconnected.
    pub(super) async fn server_lost(&mut self, e: BackendError) -> Result<Flow, SessionError> {
        // A query sent ahead on this connection is lost with it.
        self.successor = None;
        let view = self.session_view();
        let Some(lease) = self.lease.take() else {
            return Ok(Flow::Continue);
        };
        // The connection is lost: no one gets it, cancel or not.
        let _ = self.cancel.clear_server();
        // A confirmation in flight is maitred's own: its state goes with the connection.
        let lost = rules::on_server_lost(
            &view,
            self.replies.only_confirmation(),
            self.isolation.is_confirming(),
        );
        self.replies.clear();
        self.query_effects.clear();
        self.batch_effects.clear();
        self.batch_failed = false;
        self.isolation.lease_ended();
        lease.discard();
        tracing::warn!(pool = %self.pool.name, error = %e, "server connection lost");
        if lost == Lost::Continue {
            return Ok(Flow::Continue);
        }
        let message = format!(
            "maitred: the server connection of pool \"{}\" was lost: {e}",
            self.pool.name
        );
        out::error_response(
            &mut self.cwbuf,
            &ErrorFields {
                severity: Severity::Fatal,
                code: sqlstate::CONNECTION_FAILURE,
                message: &message,
                detail: None,
                hint: Some(
                    "The transaction in progress, if any, was not committed by maitred; retry it.",
                ),
            },
        );
        let _ = self.flush_client().await;
        Err(e.into())
    }
}
