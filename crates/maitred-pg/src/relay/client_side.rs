//! The client's side: framing its messages, answering locally what needs no server
//! connection (a named Parse, a Close, LISTEN, a DEALLOCATE of the client's own statement),
//! refusing what maitred does not allow, and forwarding the rest with the replies it is owed.

use super::client_rules::{self, AfterRefusal, WithoutServer};
use super::effects::worth_settling;
use super::rules;
use super::{Flow, Relay, LISTEN_TIMEOUT, RESERVE_STEP};
use crate::codec::client_msgs::tag;
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::{checkout_error, sqlstate};
use crate::notify::{listen_command, ListenCommand};
use crate::pool::PoolMode;
use crate::replies::Request;
use crate::sql_effects::{self, Effect, Refusal};
use bytes::BytesMut;
use maitred_pool::CheckoutError;

impl Relay {
    /// Frames and forwards every whole client message in the buffer; leases a server
    /// connection first when none is held.
    pub(super) async fn handle_client_bytes(&mut self) -> Result<Flow, SessionError> {
        let max = self.pool.limits.max_message_size;
        // While a successor's query is queued behind ours, nothing more of ours may go to
        // the server: it would run after the successor's. Held until the hand-over.
        while self.successor.is_none() {
            let Some((t, len)) = self.peek_client_header(max).await? else {
                break;
            };
            if self.crbuf.len() < len {
                self.crbuf
                    .reserve((len - self.crbuf.len()).min(RESERVE_STEP));
                break;
            }
            let msg = self.crbuf.split_to(len);
            // A scan belongs to the one message it was made for.
            self.query_scan = None;
            if t == tag::TERMINATE {
                self.flush_server().await?;
                return Ok(Flow::ClientDone);
            }
            if self.skip_until_sync {
                if t != tag::SYNC {
                    continue;
                }
                self.skip_until_sync = false;
                if self.lease.is_none() {
                    out::ready_for_query(&mut self.cwbuf, b'I');
                    continue;
                }
            }
            if self.lease.is_none() && self.answer_without_server(t, &msg).await? {
                continue;
            }
            if self.lease.is_none() {
                let offer = self.ahead_offer(t, &msg);
                let messages = offer.as_ref().map_or(0, |o| o.messages);
                match self.acquire(offer.map(|o| o.ahead)).await {
                    Ok(sent) => {
                        self.lease_request_safe = messages > 0;
                        self.ahead_messages_left = messages;
                        self.ahead_was_sent = sent;
                    }
                    Err(e) => {
                        self.refuse_message(t, &e);
                        continue;
                    }
                }
            }
            if self.ahead_messages_left > 0 {
                self.ahead_messages_left -= 1;
                if self.ahead_was_sent {
                    self.account_sent_message(t, &msg)?;
                    continue;
                }
            } else {
                self.lease_request_safe = false;
            }
            self.forward_client_message(t, &msg)?;
        }
        self.claim_successor();
        self.flush_server().await?;
        self.flush_client().await?;
        self.end_of_batch().await?;
        Ok(Flow::Continue)
    }

    /// The next client message's tag and length, if its header is in. A message over
    /// `max_message_size` gets the client a FATAL error before the session ends.
    pub(super) async fn peek_client_header(
        &mut self,
        max: usize,
    ) -> Result<Option<(u8, usize)>, SessionError> {
        match frame::peek_header(&self.crbuf, max) {
            Err(crate::codec::CodecError::BadLength { len, .. }) if len > max => {
                tracing::info!(pool = %self.pool.name, len, max, "client message over max_message_size");
                crate::limits::message_too_large(&mut self.cwbuf, &self.pool.name, len, max);
                let _ = self.flush_client().await;
                Err(crate::codec::CodecError::BadLength { len, max }.into())
            }
            r => Ok(r?),
        }
    }

    /// Answers, without leasing a server connection, what needs none while the client is
    /// idle: a named Parse (recorded, prepared lazily where the statement first runs), a
    /// Close of a statement, and the Sync that ends such a batch. This saves a round trip,
    /// and keeps a client that prepares synchronously (pgbench -M prepared) from waiting
    /// for a connection held by another client of the same thread.
    pub(super) async fn answer_without_server(
        &mut self,
        t: u8,
        msg: &[u8],
    ) -> Result<bool, SessionError> {
        match client_rules::without_server(self.pool.mode, t, msg)? {
            WithoutServer::ReadyForQuery => out::ready_for_query(&mut self.cwbuf, b'I'),
            WithoutServer::Nothing => {}
            WithoutServer::Query => {
                let text = query_text(msg);
                if self.deallocate_locally(text) {
                    out::command_complete(&mut self.cwbuf, "DEALLOCATE");
                    out::ready_for_query(&mut self.cwbuf, b'I');
                    return Ok(true);
                }
                let Some(cmd) = text.and_then(listen_command) else {
                    return Ok(false);
                };
                self.listen(cmd).await;
            }
            WithoutServer::NamedParse(parts) => {
                let stmt = self.pool.statements.intern(parts.definition);
                if let Some(refusal) = sql_effects::refusal_of(&stmt.effects) {
                    self.refuse_statement("42501", refusal_message(refusal));
                } else if self.statements.insert(parts.name, stmt) {
                    out::parse_complete(&mut self.cwbuf);
                } else {
                    let m = format!("prepared statement \"{}\" already exists", parts.name);
                    self.refuse_statement("42P05", &m);
                }
            }
            WithoutServer::CloseStatement(name) => {
                self.statements.remove(name);
                out::close_complete(&mut self.cwbuf);
            }
            WithoutServer::Server => return Ok(false),
        }
        Ok(true)
    }

    /// Registers a LISTEN/UNLISTEN with the pool's notifier and answers it (a LISTEN once the
    /// shared connection listens on the channel).
    pub(super) async fn listen(&mut self, cmd: ListenCommand) {
        let client = self.cancel.id;
        let tag = match cmd {
            ListenCommand::Listen(channel) => {
                let (tx, _) = self
                    .notifications
                    .get_or_insert_with(crate::notify::notification_channel);
                self.pool.notifier.listen(client, &channel, tx.clone());
                if !self
                    .pool
                    .notifier
                    .until_listening(&channel, LISTEN_TIMEOUT)
                    .await
                {
                    self.pool.notifier.unlisten(client, Some(&channel));
                    let message = format!(
                        "maitred: pool \"{}\" could not LISTEN on the server within {}s",
                        self.pool.name,
                        LISTEN_TIMEOUT.as_secs()
                    );
                    out::error_response(
                        &mut self.cwbuf,
                        &ErrorFields {
                            severity: Severity::Error,
                            code: sqlstate::CONNECTION_FAILURE,
                            message: &message,
                            detail: None,
                            hint: None,
                        },
                    );
                    out::ready_for_query(&mut self.cwbuf, b'I');
                    return;
                }
                "LISTEN"
            }
            ListenCommand::Unlisten(channel) => {
                self.pool.notifier.unlisten(client, Some(&channel));
                "UNLISTEN"
            }
            ListenCommand::UnlistenAll => {
                self.pool.notifier.unlisten(client, None);
                "UNLISTEN"
            }
        };
        out::command_complete(&mut self.cwbuf, tag);
        out::ready_for_query(&mut self.cwbuf, b'I');
    }

    /// Answers a client message maitred could not get a server connection for.
    pub(super) fn refuse_message(&mut self, t: u8, e: &CheckoutError<BackendError>) {
        tracing::info!(pool = %self.pool.name, error = %e, "checkout failed");
        checkout_error(&mut self.cwbuf, e, Severity::Error);
        match client_rules::after_refusal(t) {
            AfterRefusal::ReadyForQuery => out::ready_for_query(&mut self.cwbuf, b'I'),
            AfterRefusal::SkipToSync => self.skip_until_sync = true,
        }
    }

    /// Sends one client message to the leased server connection (renaming statements in
    /// transaction mode) and records the reply it is owed.
    pub(super) fn forward_client_message(&mut self, t: u8, msg: &[u8]) -> Result<(), SessionError> {
        let rename = self.pool.mode != PoolMode::Session;
        let mut effects = None;
        if t == tag::QUERY && rename {
            let text = query_text(msg);
            let status = self.lease.as_deref().map_or(b'I', |s| s.tx_status);
            // In a failed block the server refuses it (25P02), as it should.
            if status != b'E' && self.deallocate_locally(text) {
                let mut reply = BytesMut::new();
                out::command_complete(&mut reply, "DEALLOCATE");
                out::ready_for_query(&mut reply, status);
                self.replies.composed(reply.freeze(), &mut self.cwbuf);
                return Ok(());
            }
            let scan = self
                .query_scan
                .take()
                .unwrap_or_else(|| sql_effects::scan_text(text));
            if let Some(refusal) = scan.refusal() {
                self.refuse_query(refusal, status);
                return Ok(());
            }
            self.isolation.predicted(&scan.effects);
            self.check_search_path();
            let mut found = scan.effects;
            // A simple query replaces the unnamed statement, and ends an extended batch
            // still open (its implicit transaction goes with the query's).
            self.unnamed_effects.clear();
            if !self.batch_effects.is_empty() {
                let mut all = std::mem::take(&mut self.batch_effects);
                all.append(&mut found);
                found = all;
            }
            if self.pool.mode == PoolMode::Statement && found.contains(&Effect::Begin) {
                self.refuse_transaction_block();
                return Ok(());
            }
            if let Some(reason) = rules::pin_of(&found) {
                if !self.pin(reason, false) {
                    return Ok(());
                }
            }
            effects = worth_settling(found, status != b'I');
        }
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        match t {
            tag::SYNC if self.copy_in => {}
            tag::COPY_DONE | tag::COPY_FAIL => {
                if self.copy_in {
                    self.copy_in = false;
                } else {
                    self.replies.copy_end();
                }
            }
            tag::QUERY | tag::FUNCTION_CALL | tag::SYNC => {
                if t == tag::FUNCTION_CALL && rename {
                    self.isolation.function_call_message();
                }
                server.pending_sync += 1;
                if t == tag::SYNC {
                    server.extended_open = false;
                    if !self.batch_effects.is_empty() {
                        let batch = std::mem::take(&mut self.batch_effects);
                        effects = worth_settling(batch, server.tx_status != b'I');
                    }
                }
                if let Some(q) = effects.as_mut() {
                    q.failed |= self.batch_failed;
                }
                self.batch_failed = false;
                self.replies.client(Request::UntilReady);
                self.query_effects.push_back(effects);
            }
            tag::PARSE | tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH => {
                server.extended_open = true;
            }
            _ => {}
        }
        if t == tag::QUERY || t == tag::EXECUTE {
            self.ticket.traffic().query();
        }
        match t {
            tag::PARSE if rename => return self.forward_parse(msg),
            tag::BIND if rename => return self.forward_bind(msg),
            tag::DESCRIBE | tag::CLOSE if rename => return self.forward_describe_or_close(t, msg),
            tag::PARSE => self.replies.client(Request::Parse(None)),
            tag::BIND => self.replies.client(Request::Bind),
            tag::DESCRIBE => self.replies.client(Request::Describe),
            tag::CLOSE => self.replies.client(Request::Close),
            tag::EXECUTE => self.replies.client(Request::Execute),
            _ => {}
        }
        self.swbuf.extend_from_slice(msg);
        Ok(())
    }

    /// Whether `sql` is a lone SQL `DEALLOCATE name` of one of the client's protocol-level
    /// statements, which the server knows only under maitred's name: then the statement is
    /// forgotten here, like at a Close (the caller answers).
    pub(super) fn deallocate_locally(&mut self, sql: Option<&str>) -> bool {
        let Some(name) = sql.and_then(sql_effects::deallocate_name) else {
            return false;
        };
        if self.statements.get(&name).is_none() {
            return false;
        }
        self.statements.remove(&name);
        true
    }

    /// Statement mode: answers a query that opens a transaction block with an error.
    pub(super) fn refuse_transaction_block(&mut self) {
        let message = format!(
            "maitred: pool \"{}\" is in statement mode, where transaction blocks are not allowed",
            self.pool.name
        );
        let mut e = BytesMut::new();
        out::error_response(
            &mut e,
            &ErrorFields {
                severity: Severity::Error,
                code: sqlstate::FEATURE_NOT_SUPPORTED,
                message: &message,
                detail: None,
                hint: Some("Send statements one at a time (each runs in its own transaction), or use a transaction-mode pool."),
            },
        );
        let status = self.lease.as_deref().map_or(b'I', |s| s.tx_status);
        out::ready_for_query(&mut e, status);
        self.replies.composed(e.freeze(), &mut self.cwbuf);
    }

    /// Answers a simple query that maitred refuses (`status`: the transaction status).
    pub(super) fn refuse_query(&mut self, refusal: Refusal, status: u8) {
        let mut e = BytesMut::new();
        out::error_response(
            &mut e,
            &ErrorFields {
                severity: Severity::Error,
                code: "42501",
                message: refusal_message(refusal),
                detail: None,
                hint: None,
            },
        );
        out::ready_for_query(&mut e, status);
        self.replies.composed(e.freeze(), &mut self.cwbuf);
    }
}

pub(super) fn refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::MaitredStatementName => {
            "maitred: prepared statement names starting with \"mtd_\" are reserved for maitred's own statements"
        }
    }
}

/// The SQL text of a Query message.
pub(super) fn query_text(msg: &[u8]) -> Option<&str> {
    let body = frame::body(msg);
    let end = body.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&body[..end]).ok()
}
