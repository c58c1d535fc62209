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
//! This file holds the session's state; the work is split by job: `event_loop` (the
//! select), `client_side` (framing, local answers, forwarding), `rename` (statement names),
//! `effects` (session-effect bookkeeping), `server_side` (the scan of server replies),
//! `lease` (checkout, pins, confirmation, release), `send_ahead`, `time_limits`. The
//! decisions are made without I/O in `rules` (release, pins, confirm, hand-over),
//! `client_rules` (local answers) and `isolation` (the tracker), and tested there.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html>.

use crate::cancel::CancelHandle;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::SessionError;
use crate::errors_to_client::sqlstate;
use crate::manager::PgManager;
use crate::notify::{NotificationReceiver, NotificationSender};
use crate::pool::PgPool;
use crate::replies::Replies;
use crate::settings::Settings;
use crate::sql_effects::{self, Effect, PinReason};
use crate::statements::ClientStatements;
use crate::tls::Stream;
use bytes::BytesMut;
use maitred_admin::ClientTicket;
use maitred_frontend::flush::{flush, flush_to_server};
use maitred_pool::{ClientClock, Lease, Successor};
use std::collections::VecDeque;
use std::sync::Arc;

mod client_rules;
mod client_side;
mod effects;
mod event_loop;
mod isolation;
mod lease;
mod own_notifications;
mod rename;
mod rules;
mod send_ahead;
mod server_side;
mod time_limits;

use client_side::query_text;
use effects::QueryEffects;
pub use isolation::ConfirmCause;
use isolation::Tracker;

/// The default largest message accepted from a client (`max_message_size`; PostgreSQL's own
/// limit is 1 GB).
pub const MAX_CLIENT_MESSAGE: usize = 256 << 20;
/// Read size for client and server sockets, and the spare room below which it is restored.
const READ_SIZE: usize = 2048;
const MIN_READ: usize = 256;
/// How long a client's LISTEN waits for the pool's listening connection.
const LISTEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// At most this much is reserved ahead for a message still arriving.
const RESERVE_STEP: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    ClientDone,
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
    /// The NOTIFYs the client committed, to recognise when they come back.
    own_notifications: own_notifications::OwnNotifications,
}

impl Relay {
    pub fn new(
        client: Stream,
        crbuf: BytesMut,
        pool: Arc<PgPool>,
        startup_params: Vec<(String, String)>,
        cancel: Arc<CancelHandle>,
        ticket: ClientTicket,
        lease: Option<Lease<PgManager>>,
    ) -> Relay {
        let startup = Settings::from_startup(&startup_params);
        let mut relay = Relay {
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
            own_notifications: Default::default(),
        };
        if let Some(lease) = lease {
            // Its settings sync, if any, goes out with the client's first message.
            relay.take_lease(lease);
        }
        relay
    }

    /// Runs the session until the client leaves; the lease it holds, if any, is released,
    /// reset or closed on the way out. (Boxed: an async fn keeps its argument twice, and
    /// the session's state is most of what an idle client costs.)
    pub async fn run(mut self: Box<Self>) -> Result<(), SessionError> {
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
