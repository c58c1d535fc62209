//! The relay between one logged-in client and the server connections it leases.
//!
//! Scan, do not parse: client messages are framed by their headers and forwarded whole
//! (extended-query messages that name a prepared statement are renamed, see
//! [`crate::statements`]); server messages are forwarded in bulk, and only their tags, plus
//! the bodies of ReadyForQuery, ParameterStatus, CommandComplete and ErrorResponse, are
//! looked at. In transaction mode a lease ends when the server owes no reply
//! ([`crate::replies`]), no extended-protocol batch is open and the transaction status is
//! idle.
//!
//! What the client's SQL does to session state ([`crate::sql_effects`]: SET, RESET,
//! `set_config`, statements that pin) is found for each simple query, and once per
//! statement for the extended protocol (named statements when the pool first sees them,
//! the unnamed one at its Parse): a pin applies at the Bind, settings at the ReadyForQuery
//! of the Query or Sync, unless it failed or its transaction rolled back.
//! The prediction is checked against the server's replies, and a lease whose session state
//! is not accounted for is confirmed with the server before release (`relay/isolation.rs`,
//! [`crate::confirm`]).
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html>.

use crate::backend::{ServerConn, MAX_SERVER_MESSAGE};
use crate::cancel::CancelHandle;
use crate::codec::client_msgs::tag;
use crate::codec::extended::{self, parse_query_text, Target};
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::confirm::Verdict as Confirmed;
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::{checkout_error, sqlstate};
use crate::manager::PgManager;
use crate::notify::{listen_command, ListenCommand, NotificationReceiver, NotificationSender};
use crate::pool::{PgPool, PoolMode};
use crate::replies::{Replies, Request, Verdict};
use crate::settings::{sync_settings, Settings};
use crate::sql_effects::{self, Effect, PinReason, Refusal};
use crate::statements::{ClientStatements, Statement};
use crate::tls::Stream;
use bytes::{Buf, Bytes, BytesMut};
use maitred_admin::{ClientState, ClientTicket};
use maitred_frontend::flush::{flush, flush_to_server};
use maitred_frontend::LinkError;
use maitred_pool::{Ahead, CheckoutError, ClientClock, Lease, Successor};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

mod isolation;
mod send_ahead;
mod time_limits;

pub use isolation::ConfirmCause;
use isolation::Tracker;

/// The default largest message accepted from a client (`max_message_size`; PostgreSQL's own
/// limit is 1 GB).
pub const MAX_CLIENT_MESSAGE: usize = 256 << 20;
/// Read size for client and server sockets, and the spare room below which it is restored.
const READ_SIZE: usize = 2048;
const MIN_READ: usize = 256;
/// A buffer larger than this is freed when its client goes idle.
const IDLE_BUFFER_MAX: usize = 16 * 1024;
/// How long a client's LISTEN waits for the pool's listening connection.
const LISTEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// At most this much is reserved ahead for a message still arriving.
const RESERVE_STEP: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    ClientDone,
}

enum Event {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    Notification(Bytes),
    /// The daemon drains: say goodbye while no server connection is held.
    Shutdown,
    /// A client time limit ran out (see `time_limits`).
    Limit,
}

/// One client's session after login.
pub struct Relay {
    client: Stream,
    /// Bytes read from the client and not yet handled.
    crbuf: BytesMut,
    /// Bytes for the client, written once per batch.
    cwbuf: BytesMut,
    /// Bytes for the server, written once per batch.
    swbuf: BytesMut,
    pool: Arc<PgPool>,
    /// The settings of the client's startup packet (what RESET returns to).
    startup: Settings,
    /// The settings the client's session has now, applied to each lease.
    settings: Settings,
    /// For each reply ending in ReadyForQuery still owed: what the client's query does to
    /// session state (None for Sync, FunctionCall and queries without such effects).
    query_effects: VecDeque<Option<QueryEffects>>,
    /// SET/RESET run inside the open transaction block: kept if it commits.
    pending_in_transaction: Vec<Effect>,
    /// What the client's unnamed statement (its last unnamed Parse) does to session state.
    unnamed_effects: Vec<Effect>,
    /// SET/RESET and transaction control of the statements bound in the open
    /// extended-protocol batch: they become the effects of the batch's Sync.
    batch_effects: Vec<Effect>,
    /// The server reported an error in the open batch before the client sent its Sync.
    batch_failed: bool,
    /// The last CommandComplete of the client was COMMIT (not ROLLBACK).
    last_was_commit: bool,
    /// Why the client keeps its server connection, if it does.
    pinned: Option<PinReason>,
    /// The server is in COPY FROM STDIN mode and the client has not ended it yet: the
    /// server ignores Sync meanwhile.
    copy_in: bool,
    /// Notifications for the channels the client listens on (through the pool's notifier).
    notifications: Option<(NotificationSender, NotificationReceiver)>,
    cancel: Arc<CancelHandle>,
    lease: Option<Lease<PgManager>>,
    /// What the leased server connection still owes, in order.
    replies: Replies,
    /// The client's named prepared statements (transaction mode).
    statements: ClientStatements,
    /// maitred answered an extended-protocol message with an error itself: drop client
    /// messages until Sync, as the server would.
    skip_until_sync: bool,
    /// Whether the server message being forwarded in part is to be swallowed.
    partial_swallow: bool,
    /// Statement ids whose Parse did not happen on the server (scratch space).
    unprepared: Vec<u64>,
    /// How long the client has been idle, in a transaction, or waiting for the server.
    clock: ClientClock,
    /// This client in its pool's client registry: state, traffic, KILL.
    ticket: ClientTicket,
    /// A queued client whose query was written behind ours on the leased connection
    /// (`send_ahead`): it gets the connection once our reply is read.
    successor: Option<Successor<PgManager>>,
    /// Everything sent on the lease so far is one request that may have a successor sent
    /// behind it (see `relay/send_ahead.rs`).
    lease_request_safe: bool,
    /// Messages of that request still to be handled.
    ahead_messages_left: usize,
    /// The request was written by the connection's previous holder: its messages are
    /// accounted for, not forwarded.
    ahead_was_sent: bool,
    /// The lease came with our query already sent, and its reply may already sit in the
    /// connection's buffer: read it before waiting for the socket.
    server_bytes_pending: bool,
    /// Client messages held back while a successor was claimed, to handle now.
    client_bytes_pending: bool,
    /// Whether the leased connection's session state is accounted for (see
    /// `relay/isolation.rs`): a confirmation with the server runs before it serves others.
    isolation: Tracker,
    /// The scan of the Query or unnamed Parse being leased for, made when it was offered
    /// to be sent ahead: used when it is forwarded, so the text is scanned once.
    query_scan: Option<sql_effects::Scan>,
}

/// The session effects of one simple query or extended-protocol batch, and whether it
/// failed.
struct QueryEffects {
    effects: Vec<Effect>,
    failed: bool,
    /// A transaction block was open when the query was sent.
    in_block: bool,
}

impl Relay {
    pub fn new(
        client: Stream,
        crbuf: BytesMut,
        pool: Arc<PgPool>,
        startup_params: Vec<(String, String)>,
        cancel: Arc<CancelHandle>,
        ticket: ClientTicket,
    ) -> Relay {
        let startup = Settings::from_startup(&startup_params);
        Relay {
            client,
            crbuf,
            cwbuf: BytesMut::new(),
            swbuf: BytesMut::new(),
            pool,
            settings: startup.clone(),
            startup,
            query_effects: VecDeque::new(),
            pending_in_transaction: Vec::new(),
            unnamed_effects: Vec::new(),
            batch_effects: Vec::new(),
            batch_failed: false,
            last_was_commit: false,
            pinned: None,
            copy_in: false,
            notifications: None,
            cancel,
            lease: None,
            replies: Replies::default(),
            statements: ClientStatements::default(),
            skip_until_sync: false,
            partial_swallow: false,
            unprepared: Vec::new(),
            clock: ClientClock::default(),
            ticket,
            successor: None,
            lease_request_safe: false,
            ahead_messages_left: 0,
            ahead_was_sent: false,
            server_bytes_pending: false,
            client_bytes_pending: false,
            isolation: Tracker::default(),
            query_scan: None,
        }
    }

    /// Runs the session until the client leaves; the lease it holds, if any, is released,
    /// reset or closed on the way out.
    pub async fn run(mut self) -> Result<(), SessionError> {
        let kill = self.ticket.kill_signal();
        let result = tokio::select! {
            r = self.run_loop() => r,
            () = kill.killed() => {
                self.say_killed().await;
                Ok(())
            }
        };
        self.finish();
        result
    }

    /// KILL from the admin console: whatever the session was doing is abandoned (a held
    /// server connection, in an unknown state, is closed) and the client told why.
    async fn say_killed(&mut self) {
        self.successor = None;
        if let Some(lease) = self.lease.take() {
            self.replies.clear();
            lease.discard();
        }
        self.cwbuf.clear();
        out::error_response(
            &mut self.cwbuf,
            &ErrorFields {
                severity: Severity::Fatal,
                code: sqlstate::ADMIN_SHUTDOWN,
                message: "terminating connection: killed by the maitred admin console",
                detail: None,
                hint: None,
            },
        );
        let _ = self.flush_client().await;
    }

    async fn run_loop(&mut self) -> Result<(), SessionError> {
        if self.handle_client_bytes().await? == Flow::ClientDone {
            return Ok(());
        }
        // One drain subscription for the whole session, not one per wait: a new one joins
        // (and leaves) the process-wide waiter list, under its lock, on every transaction.
        // Polled only while idle, and never again once it fired (the session ends).
        let shutdown = crate::shutdown::wait();
        tokio::pin!(shutdown);
        loop {
            if std::mem::take(&mut self.server_bytes_pending) && self.lease.is_some() {
                if self.handle_server_bytes().await? == Flow::ClientDone {
                    return Ok(());
                }
                continue;
            }
            if std::mem::take(&mut self.client_bytes_pending) {
                if self.handle_client_bytes().await? == Flow::ClientDone {
                    return Ok(());
                }
                continue;
            }
            if self.lease.is_none() {
                self.ticket.set_state(ClientState::Idle);
                self.shrink_idle_buffers();
            } else {
                self.ticket.set_state(ClientState::Active);
            }
            // Reading into a buffer whose front was consumed shrinks its spare room; reserve
            // reclaims the front of an emptied buffer, so reads stay large without reallocating.
            if self.crbuf.capacity() - self.crbuf.len() < MIN_READ {
                self.crbuf.reserve(READ_SIZE);
            }
            let deadline = self.limit_deadline();
            let event = match self.lease.as_mut() {
                Some(lease) => {
                    let server: &mut ServerConn = lease;
                    if server.rbuf.capacity() - server.rbuf.len() < MIN_READ {
                        server.rbuf.reserve(READ_SIZE);
                    }
                    tokio::select! {
                        biased;
                        r = server.stream.read_buf(&mut server.rbuf) => Event::Server(r),
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    }
                }
                None => match self.notifications.as_mut() {
                    // Notifications are delivered between transactions, as PostgreSQL does.
                    Some((_, rx)) => tokio::select! {
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        Some(n) = rx.recv() => Event::Notification(n),
                        () = &mut shutdown => Event::Shutdown,
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    },
                    None => tokio::select! {
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        () = &mut shutdown => Event::Shutdown,
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    },
                },
            };
            if matches!(event, Event::Client(Ok(_))) {
                self.clock.client_active();
            }
            let flow = match event {
                Event::Limit => self.limit_reached().await,
                Event::Client(Ok(0)) => Flow::ClientDone,
                Event::Client(Ok(n)) => {
                    self.ticket.traffic().received(n);
                    self.handle_client_bytes().await?
                }
                Event::Client(Err(e)) => return Err(SessionError::ClientIo(e)),
                Event::Server(Ok(0)) => self.server_lost(LinkError::Closed.into()).await?,
                Event::Server(Ok(_)) => self.handle_server_bytes().await?,
                Event::Server(Err(e)) => self.server_lost(e.into()).await?,
                Event::Shutdown => {
                    out::error_response(
                        &mut self.cwbuf,
                        &ErrorFields {
                            severity: Severity::Fatal,
                            code: sqlstate::ADMIN_SHUTDOWN,
                            message: "terminating connection: maitred is shutting down",
                            detail: None,
                            hint: Some("Reconnect; another maitred instance, or this one once restarted, will serve you."),
                        },
                    );
                    let _ = self.flush_client().await;
                    Flow::ClientDone
                }
                Event::Notification(n) => {
                    self.cwbuf.extend_from_slice(&n);
                    self.flush_client().await?;
                    // Fell behind (notify.rs): what was just written is its FATAL.
                    match &self.notifications {
                        Some((_, rx)) if rx.ended() => Flow::ClientDone,
                        _ => Flow::Continue,
                    }
                }
            };
            if flow == Flow::ClientDone {
                return Ok(());
            }
        }
    }

    /// Between transactions a client keeps only small buffers: one that grew for a large
    /// message or result is given back, so idle clients cost little memory. (Freeing every
    /// buffer on every idle wait costs throughput: measured, see docs/benchmarks.md.)
    fn shrink_idle_buffers(&mut self) {
        for buf in [&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf] {
            if buf.is_empty() && buf.capacity() > IDLE_BUFFER_MAX {
                *buf = BytesMut::new();
            }
        }
    }

    /// Frames and forwards every whole client message in the buffer; leases a server
    /// connection first when none is held.
    async fn handle_client_bytes(&mut self) -> Result<Flow, SessionError> {
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
    async fn peek_client_header(
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
    async fn answer_without_server(&mut self, t: u8, msg: &[u8]) -> Result<bool, SessionError> {
        if self.pool.mode == PoolMode::Session {
            return Ok(false);
        }
        match t {
            tag::SYNC => out::ready_for_query(&mut self.cwbuf, b'I'),
            tag::FLUSH => {}
            tag::QUERY => {
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
            tag::PARSE => {
                let parts = extended::split_parse(msg)?;
                if parts.name.is_empty() {
                    return Ok(false);
                }
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
            tag::CLOSE => match extended::describe_or_close_target(msg)? {
                Target::Statement(name) if !name.is_empty() => {
                    self.statements.remove(name);
                    out::close_complete(&mut self.cwbuf);
                }
                _ => return Ok(false),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Registers a LISTEN/UNLISTEN with the pool's notifier and answers it (a LISTEN once the
    /// shared connection listens on the channel).
    async fn listen(&mut self, cmd: ListenCommand) {
        let client = self.cancel.process_id;
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
    fn refuse_message(&mut self, t: u8, e: &CheckoutError<BackendError>) {
        tracing::info!(pool = %self.pool.name, error = %e, "checkout failed");
        checkout_error(&mut self.cwbuf, e, Severity::Error);
        match t {
            tag::QUERY | tag::SYNC | tag::FUNCTION_CALL => {
                out::ready_for_query(&mut self.cwbuf, b'I')
            }
            _ => self.skip_until_sync = true,
        }
    }

    /// Sends one client message to the leased server connection (renaming statements in
    /// transaction mode) and records the reply it is owed.
    fn forward_client_message(&mut self, t: u8, msg: &[u8]) -> Result<(), SessionError> {
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
            if let Some(reason) = found.iter().find_map(|e| match e {
                Effect::Pin(r) => Some(*r),
                _ => None,
            }) {
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

    /// Pins the client to its server connection for the rest of its session, if a place
    /// under `max_pinned` is free; otherwise answers the query with an error (`in_batch`: the
    /// Bind of an extended-protocol batch, which then skips to its Sync).
    fn pin(&mut self, reason: PinReason, in_batch: bool) -> bool {
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

    /// Applies at a Bind what the bound statement does to session state: a pin now (the
    /// Bind is refused when no place is free), SET/RESET and transaction control with the
    /// batch's Sync. False if the Bind was refused.
    fn bind_effects(&mut self, effects: &[Effect]) -> bool {
        self.isolation.predicted(effects);
        for e in effects {
            if let Effect::Pin(reason) = e {
                if !self.pin(*reason, true) {
                    return false;
                }
            }
        }
        self.batch_effects.extend(
            effects
                .iter()
                .filter(|e| !matches!(e, Effect::Pin(_) | Effect::None))
                .cloned(),
        );
        true
    }

    /// maitred refused a message of an extended batch: the client sees the batch fail, yet
    /// what ran before the refusal is committed by the server at Sync. Settings changed that
    /// way are not the client's: the server connection is given DISCARD ALL before reuse.
    fn abandon_batch_effects(&mut self) {
        if self.batch_effects.iter().any(changes_settings) {
            if let Some(server) = self.lease.as_deref_mut() {
                server.needs_discard = true;
            }
        }
        self.batch_effects.clear();
    }

    /// Whether `sql` is a lone SQL `DEALLOCATE name` of one of the client's protocol-level
    /// statements, which the server knows only under maitred's name: then the statement is
    /// forgotten here, like at a Close (the caller answers).
    fn deallocate_locally(&mut self, sql: Option<&str>) -> bool {
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
    fn refuse_transaction_block(&mut self) {
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

    fn forward_parse(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        let parts = extended::split_parse(msg)?;
        if parts.name.is_empty() {
            // Found at each unnamed Parse (once: an offer to send it ahead scanned it).
            let scan = self
                .query_scan
                .take()
                .unwrap_or_else(|| sql_effects::scan_text(parse_query_text(parts.definition)));
            if let Some(refusal) = scan.refusal() {
                self.refuse_statement("42501", refusal_message(refusal));
                return Ok(());
            }
            self.unnamed_effects = scan.effects;
            self.replies.client(Request::Parse(None));
            self.swbuf.extend_from_slice(msg);
            return Ok(());
        }
        let stmt = self.pool.statements.intern(parts.definition);
        if let Some(refusal) = sql_effects::refusal_of(&stmt.effects) {
            self.refuse_statement("42501", refusal_message(refusal));
            return Ok(());
        }
        if !self.statements.insert(parts.name, stmt.clone()) {
            let m = format!("prepared statement \"{}\" already exists", parts.name);
            self.refuse_statement("42P05", &m);
            return Ok(());
        }
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        if server.prepared.touch(stmt.id) {
            self.pool
                .counters
                .statement_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            let mut pc = BytesMut::new();
            out::parse_complete(&mut pc);
            self.replies.composed(pc.freeze(), &mut self.cwbuf);
        } else {
            self.prepare_on_server(&stmt, false);
        }
        Ok(())
    }

    /// Sends a Parse of `stmt` under its maitred name (closing an evicted statement first if
    /// the connection's bound is reached). `injected`: the client did not ask for it.
    fn prepare_on_server(&mut self, stmt: &Statement, injected: bool) {
        let Some(server) = self.lease.as_deref_mut() else {
            return;
        };
        if let Some(evicted) = server.prepared.insert(stmt) {
            extended::write_statement_target(&mut self.swbuf, tag::CLOSE, &evicted);
            self.replies.injected(Request::Close);
        }
        extended::write_parse(&mut self.swbuf, &stmt.server_name, &stmt.definition);
        self.pool
            .counters
            .statement_prepares
            .fetch_add(1, Ordering::Relaxed);
        if injected {
            self.replies.injected(Request::Parse(Some(stmt.id)));
        } else {
            self.replies.client(Request::Parse(Some(stmt.id)));
        }
    }

    /// The client's statement by name, prepared on the leased server connection.
    fn statement_on_server(&mut self, name: &str) -> Option<Arc<Statement>> {
        let Some(stmt) = self.statements.get(name).cloned() else {
            let m = format!("prepared statement \"{name}\" does not exist");
            self.refuse_statement("26000", &m);
            return None;
        };
        let present = self
            .lease
            .as_deref_mut()
            .is_some_and(|s| s.prepared.touch(stmt.id));
        if !present {
            self.prepare_on_server(&stmt, true);
        }
        Some(stmt)
    }

    fn forward_bind(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        let name = extended::bind_statement(msg)?;
        self.check_search_path();
        if name.is_empty() {
            if !self.unnamed_effects.is_empty() {
                let effects = std::mem::take(&mut self.unnamed_effects);
                let bound = self.bind_effects(&effects);
                self.unnamed_effects = effects;
                if !bound {
                    return Ok(());
                }
            }
            self.swbuf.extend_from_slice(msg);
        } else {
            let Some(stmt) = self.statement_on_server(name) else {
                return Ok(());
            };
            if !stmt.effects.is_empty() && !self.bind_effects(&stmt.effects) {
                return Ok(());
            }
            extended::write_bind_renamed(&mut self.swbuf, msg, &stmt.server_name)?;
        }
        self.replies.client(Request::Bind);
        Ok(())
    }

    fn forward_describe_or_close(&mut self, t: u8, msg: &[u8]) -> Result<(), SessionError> {
        let request = if t == tag::DESCRIBE {
            Request::Describe
        } else {
            Request::Close
        };
        match extended::describe_or_close_target(msg)? {
            Target::Statement(name) if !name.is_empty() && t == tag::CLOSE => {
                // The statement stays prepared on the server for other clients.
                self.statements.remove(name);
                let mut cc = BytesMut::new();
                out::close_complete(&mut cc);
                self.replies.composed(cc.freeze(), &mut self.cwbuf);
            }
            Target::Statement(name) if !name.is_empty() => {
                let Some(stmt) = self.statement_on_server(name) else {
                    return Ok(());
                };
                extended::write_statement_target(&mut self.swbuf, t, &stmt.server_name);
                self.replies.client(request);
            }
            _ => {
                self.swbuf.extend_from_slice(msg);
                self.replies.client(request);
            }
        }
        Ok(())
    }

    /// Answers an extended-protocol message with an error as the server would, and skips
    /// the client's messages up to its Sync.
    fn refuse_statement(&mut self, code: &str, message: &str) {
        let mut e = BytesMut::new();
        out::error_response(
            &mut e,
            &ErrorFields {
                severity: Severity::Error,
                code,
                message,
                detail: None,
                hint: None,
            },
        );
        self.replies.composed(e.freeze(), &mut self.cwbuf);
        self.abandon_batch_effects();
        self.skip_until_sync = true;
    }

    /// Leases a server connection, offering `ahead` to be sent by the holder of a busy one
    /// while this client waits. True if it was: the query is on the wire already.
    async fn acquire(&mut self, ahead: Option<Ahead>) -> Result<bool, CheckoutError<BackendError>> {
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

    /// Forwards server bytes to the client, watching the replies owed to know when the
    /// transaction is over.
    async fn handle_server_bytes(&mut self) -> Result<Flow, SessionError> {
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
            let whole_needed = matches!(t, b'Z' | b'E' | b'C') || confirming;
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
                            settle_effects(
                                done,
                                server.tx_status,
                                self.last_was_commit,
                                &mut self.pending_in_transaction,
                                &mut self.settings,
                                &self.startup,
                                &mut server.applied,
                            );
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
                    self.cwbuf.extend_from_slice(msg);
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
        if self.pool.mode == PoolMode::Statement
            && self.replies.is_empty()
            && self.lease.as_deref().is_some_and(|s| s.tx_status != b'I')
        {
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

    /// At the release point: a session whose state is not accounted for is confirmed with
    /// the server first (`relay/isolation.rs`); otherwise the connection is released.
    async fn end_of_batch(&mut self) -> Result<(), SessionError> {
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
    fn at_release_point(&self) -> bool {
        self.lease.as_deref().is_some_and(|s| {
            s.pending_sync == 0
                && !s.extended_open
                && s.tx_status == b'I'
                && s.unread_body == 0
                && s.rbuf.is_empty()
        })
    }

    /// A confirmation found state that cannot move: the client keeps its connection. If
    /// `max_pinned` clients are pinned already, the state cannot be kept for it either: the
    /// client is told and disconnected, and the connection reset.
    async fn pin_after_confirmation(&mut self, reason: PinReason) -> Result<Flow, SessionError> {
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
    fn release_if_done(&mut self) {
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

    /// The server connection failed. If the client had nothing in flight it goes on with
    /// a new server connection next time; otherwise it is told and disconnected.
    async fn server_lost(&mut self, e: BackendError) -> Result<Flow, SessionError> {
        // A query sent ahead on this connection is lost with it.
        self.successor = None;
        let Some(lease) = self.lease.take() else {
            return Ok(Flow::Continue);
        };
        self.cancel.clear_server();
        // A confirmation in flight is maitred's own: its state goes with the connection.
        let idle = (self.replies.is_empty() || self.replies.only_confirmation())
            && lease.pending_sync <= u32::from(self.isolation.is_confirming())
            && !lease.extended_open
            && lease.tx_status == b'I';
        self.replies.clear();
        self.query_effects.clear();
        self.batch_effects.clear();
        self.batch_failed = false;
        self.isolation.lease_ended();
        lease.discard();
        tracing::warn!(pool = %self.pool.name, error = %e, "server connection lost");
        if idle && self.pool.mode != PoolMode::Session && self.pinned.is_none() {
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

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    fn finish(&mut self) {
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

    /// Answers a simple query that maitred refuses (`status`: the transaction status).
    fn refuse_query(&mut self, refusal: Refusal, status: u8) {
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

    /// Rule 5 of `relay/isolation.rs`: a search_path that names pg_catalog lets the client
    /// shadow built-ins, so nothing it runs can be predicted.
    fn check_search_path(&mut self) {
        if self
            .settings
            .get("search_path")
            .is_some_and(isolation::search_path_shadows_builtins)
        {
            self.isolation.shadowable_search_path();
        }
    }

    async fn flush_server(&mut self) -> Result<(), SessionError> {
        let server = self.lease.as_deref_mut().map(|s| &mut s.stream);
        match flush_to_server(server, &mut self.swbuf).await {
            Err(e) => self.server_lost(e.into()).await.map(|_| ()),
            Ok(()) => Ok(()),
        }
    }

    async fn flush_client(&mut self) -> Result<(), SessionError> {
        let traffic = self.ticket.traffic();
        let r = flush(&mut self.client, &mut self.cwbuf, |n| traffic.sent(n)).await;
        r.map_err(SessionError::ClientIo)
    }
}

fn refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::MaitredStatementName => {
            "maitred: prepared statement names starting with \"mtd_\" are reserved for maitred's own statements"
        }
    }
}

/// The SQL text of a Query message.
fn query_text(msg: &[u8]) -> Option<&str> {
    let body = frame::body(msg);
    let end = body.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&body[..end]).ok()
}

/// The effects of a query or batch that must be settled at its ReadyForQuery: those with a
/// SET or RESET (transaction control alone is followed through the transaction status).
fn worth_settling(effects: Vec<Effect>, in_block: bool) -> Option<QueryEffects> {
    effects
        .iter()
        .any(changes_settings)
        .then_some(QueryEffects {
            effects,
            failed: false,
            in_block,
        })
}

fn changes_settings(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Set { .. } | Effect::Reset { .. } | Effect::ResetAll
    )
}

/// Applies what a finished query did to session settings, following its transaction
/// control: SET/RESET outside a transaction block apply at once, inside one at COMMIT, and
/// never when rolled back or when the query failed. A block ended by other means (the
/// extended protocol) keeps its settings if its last command was COMMIT. The server
/// connection's record follows what actually happened on it.
fn settle_effects(
    done: Option<QueryEffects>,
    status: u8,
    last_was_commit: bool,
    pending: &mut Vec<Effect>,
    client: &mut Settings,
    startup: &Settings,
    server: &mut Settings,
) {
    let mut apply = |effects: &[Effect]| {
        for e in effects {
            client.apply_client(e, startup);
            server.apply_server(e);
        }
    };
    if let Some(q) = done.filter(|q| !q.failed) {
        let mut in_block = q.in_block;
        for e in q.effects {
            match e {
                Effect::Begin => in_block = true,
                Effect::Commit => {
                    apply(pending);
                    pending.clear();
                    in_block = false;
                }
                Effect::Rollback => {
                    pending.clear();
                    in_block = false;
                }
                e if in_block => pending.push(e),
                e => apply(&[e]),
            }
        }
    }
    if status == b'I' && !pending.is_empty() {
        if last_was_commit {
            apply(pending);
        }
        pending.clear();
    }
}

/// Whether a CommandComplete says every prepared statement of the session is gone.
fn forgets_statements(msg: &[u8]) -> bool {
    let tag = frame::body(msg);
    tag.starts_with(b"DEALLOCATE ALL\0") || tag.starts_with(b"DISCARD ALL\0")
}
