//! The relay between one logged-in client and the server connections it leases.
//!
//! Commands are handled one at a time: a client command is framed, looked at (command
//! byte; statement ids; the text of COM_QUERY for session state) and forwarded; the
//! server's response is forwarded in bulk while [`ResponseScanner`] follows its packets to
//! find its end and final status flags. A lease ends (transaction mode) when the response
//! is complete, SERVER_STATUS_IN_TRANS is clear, no cursor or long data is open and the
//! client is not pinned.
//!
//! - `mod.rs`: the session loop, client framing, LOAD DATA LOCAL file packets, flushes.
//! - `commands.rs`: each client command (the one scan of a COM_QUERY's text, pins,
//!   COM_STMT_PREPARE), and the answers maitred gives itself (COM_PING, COM_CHANGE_USER,
//!   KILL with maitred's ids).
//! - `prepared.rs`: COM_STMT_EXECUTE and the other statement commands on whichever server
//!   connection is leased.
//! - `checkout.rs`: leasing, bringing a connection to the client's session, release, a
//!   lost server connection, what a departing client leaves.
//! - `isolation/`: the release, pin and session-state decisions, without I/O.
//! - `session_effects.rs`: pins, the session a connection carries, the session-state
//!   changes the server reports, what the end of a response records.
//! - `session_vars.rs`: the client's variables as the server reported them.
//! - `server_scan.rs`: the server's response, forwarded and followed to its end.
//! - `send_ahead.rs`: a queued client's command written behind ours.
//! - `time_limits.rs`: the client time limits.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html>.

use crate::clients::{ClientHandle, ClientRegistry};
use crate::codec::packets::{self, OkInfo};
use crate::codec::{command, frame, status, CodecError};
use crate::error::SessionError;
use crate::errors_to_client::code;
use crate::manager::MysqlManager;
use crate::pool::{MysqlPool, PinReason};
use crate::statements::{ClientStatements, StmtFacts};
use crate::tls::Stream;
use bytes::BytesMut;
use maitred_admin::ClientTicket;
use maitred_frontend::flush::{flush, flush_to_server};
use maitred_pool::{ClientClock, Lease, Successor};
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod checkout;
mod commands;
mod event_loop;
mod isolation;
mod prepared;
mod send_ahead;
mod server_scan;
mod session_effects;
mod session_vars;
mod time_limits;

use session_vars::SessionVars;

/// Server packets longer than this are forwarded as they arrive instead of whole.
const WHOLE_PACKET_LIMIT: usize = 64 * 1024;

/// A client after login.
#[derive(Debug)]
pub struct ClientSession {
    pub pool: Arc<MysqlPool>,
    /// maitred's id for this client.
    pub connection_id: u32,
    pub capabilities: u32,
    /// The collation id of the client's handshake (its character set follows it).
    pub collation: u8,
    /// The client's current database.
    pub database: Option<String>,
    /// This client as KILL from other clients sees it.
    pub handle: Arc<ClientHandle>,
    pub clients: Arc<ClientRegistry>,
    /// This client in its pool's client registry: state, traffic, KILL from the console.
    pub ticket: ClientTicket,
}

/// What maitred does when the response of the command in flight ends.
#[derive(Debug)]
enum Inflight {
    Forward,
    /// COM_INIT_DB or `USE`: the client's database once the server says OK.
    Database(String),
    /// A replayable session SET: recorded once the server says OK.
    SessionSet(Vec<u8>),
    /// COM_STMT_PREPARE: the first packet's statement id is replaced by maitred's.
    Prepare(Arc<[u8]>, StmtFacts),
    /// COM_RESET_CONNECTION: the server dropped its statements.
    ResetConnection,
    /// COM_STMT_FETCH: the cursor may be exhausted.
    Fetch,
}

/// How [`Relay::acquire_offering`] went.
#[derive(Debug, PartialEq, Eq)]
enum Acquired {
    /// The client was sent an error instead.
    No,
    /// A connection with the client's session: forward the command.
    Leased,
    /// The connection's previous holder already wrote the command (`send_ahead`).
    Sent,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    ClientDone,
}

/// One client's session after login.
pub struct Relay {
    client: Stream,
    crbuf: BytesMut,
    cwbuf: BytesMut,
    swbuf: BytesMut,
    s: ClientSession,
    lease: Option<Lease<MysqlManager>>,
    /// autocommit as the client last saw it.
    autocommit: bool,
    pinned: Option<PinReason>,
    stmts: ClientStatements,
    inflight: Inflight,
    /// A cursor or long data is open on the leased connection: keep it.
    hold: bool,
    /// A COM_STMT_PREPARE_OK to remember on the server connection once forwarded.
    prepared: Option<(Arc<[u8]>, u32)>,
    /// The client's session SETs, in order, replayed on a server connection it lands on
    /// (servers that do not report variable changes).
    session_sets: Vec<Vec<u8>>,
    /// The client's session variables as the server reported them (CLIENT_SESSION_TRACK).
    vars: SessionVars,
    /// LOAD DATA LOCAL: the client is sending the file; its packets go to the server until
    /// an empty one.
    infile: bool,
    /// LAST_INSERT_ID() as the client's last OK packet with an insert id reported it.
    last_insert_id: u64,
    /// The server's response is not shown; this ERR is sent to the client instead when it
    /// ends (LOAD DATA LOCAL refused for a client that did not allow it).
    swallow_err: Option<String>,
    /// How long the client has been idle, in a transaction, or waiting for the server.
    clock: ClientClock,
    /// A queued client whose command was written behind ours (`send_ahead`): it gets the
    /// connection once our response is read.
    successor: Option<Successor<MysqlManager>>,
    /// The command in flight on the lease may have a successor sent behind it.
    ahead_safe: bool,
    /// The lease came with server bytes already read (a command sent ahead): handle them
    /// before reading the socket.
    server_bytes_pending: bool,
}

impl Relay {
    pub fn new(client: Stream, crbuf: BytesMut, s: ClientSession) -> Relay {
        let mut vars = SessionVars::default();
        vars.set_handshake_charset(s.collation);
        Relay {
            client,
            crbuf,
            cwbuf: BytesMut::new(),
            swbuf: BytesMut::new(),
            s,
            lease: None,
            autocommit: true,
            pinned: None,
            stmts: ClientStatements::default(),
            inflight: Inflight::Forward,
            hold: false,
            prepared: None,
            session_sets: Vec::new(),
            vars,
            infile: false,
            swallow_err: None,
            last_insert_id: 0,
            clock: ClientClock::default(),
            successor: None,
            ahead_safe: false,
            server_bytes_pending: false,
        }
    }

    /// Runs the session until the client leaves; the lease it holds, if any, is released,
    /// reset or closed on the way out.
    /// (Boxed: an async fn keeps its argument twice, and the session's state is most of
    /// what an idle client costs.)
    pub async fn run(mut self: Box<Self>) -> Result<(), SessionError> {
        let kill = self.s.ticket.kill_signal();
        let result = tokio::select! {
            r = self.run_loop() => r,
            () = kill.killed() => {
                // KILL from the admin console: a server connection in use is in an
                // unknown state, so it is closed.
                if let Some(lease) = self.lease.take() {
                    let _ = self.s.handle.clear_server();
                    lease.discard();
                }
                self.successor = None;
                self.cwbuf.clear();
                self.err_locally(
                    code::CONNECTION_KILLED,
                    "70100",
                    "Connection was killed by the maitred admin console",
                );
                let _ = self.flush_client().await;
                Ok(())
            }
        };
        if let Err(SessionError::ClientProtocol(e)) = &result {
            self.s
                .pool
                .counters
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            let (c, state) = match e {
                CodecError::TooLarge { .. } => (code::PACKET_TOO_LARGE, "08S01"),
                CodecError::OutOfSequence { .. } => (code::PACKETS_OUT_OF_ORDER, "08S01"),
                _ => (code::UNKNOWN_COM, "08S01"),
            };
            let message = match e {
                CodecError::TooLarge { len, max } => format!(
                    "maitred: a packet of {len} bytes exceeds max_message_size ({max} bytes) of pool \"{}\"; closing the connection",
                    self.s.pool.name
                ),
                e => format!("maitred: {e}; closing the connection"),
            };
            self.cwbuf.clear();
            packets::write_err(&mut self.cwbuf, 1, c, state, &message);
            let _ = self.flush_client().await;
        }
        self.finish();
        result
    }

    pub(super) fn busy(&self) -> bool {
        self.lease
            .as_deref()
            .is_some_and(|c| c.scanner.is_busy() || c.unread_body > 0)
    }

    /// LOAD DATA LOCAL: forwards the client's file packets as they are (their sequence ids
    /// continue the server's); an empty packet ends the file.
    async fn relay_file_packets(&mut self) -> Result<(), SessionError> {
        let max = self.s.pool.max_client_packet;
        while let Some((len, _)) = frame::peek_packet(&self.crbuf, max)? {
            let pkt = self.crbuf.split_to(frame::HEADER_LEN + len);
            self.swbuf.extend_from_slice(&pkt);
            if len == 0 {
                self.infile = false;
                break;
            }
        }
        self.flush_server().await
    }

    /// Takes the next whole command packet out of the client buffer (seq 0, then
    /// continuation packets for payloads of 16 MB and more).
    fn next_command(&mut self) -> Result<Option<BytesMut>, SessionError> {
        Ok(frame::take_command(
            &mut self.crbuf,
            self.s.pool.max_client_packet,
        )?)
    }

    async fn handle_client_commands(&mut self) -> Result<Flow, SessionError> {
        while !self.busy() {
            let Some(payload) = self.next_command()? else {
                break;
            };
            if self.lease.is_none() && maitred_pool::shutdown::started() {
                // A command sent as the drain began, between transactions: refused.
                if payload.first() != Some(&command::QUIT) {
                    self.err_locally(
                        code::SERVER_SHUTDOWN,
                        "08S01",
                        "Server shutdown in progress (maitred is draining; reconnect)",
                    );
                    let _ = self.flush_client().await;
                }
                return Ok(Flow::ClientDone);
            }
            if self.handle_command(payload).await? == Flow::ClientDone {
                self.flush_server().await?;
                return Ok(Flow::ClientDone);
            }
            self.claim_successor();
            self.flush_server().await?;
        }
        self.flush_client().await?;
        self.release_if_done();
        Ok(Flow::Continue)
    }

    fn ok_locally(&mut self) {
        let status = self.lease.as_deref().map_or(
            if self.autocommit {
                status::AUTOCOMMIT
            } else {
                0
            },
            |c| c.status & !(status::MORE_RESULTS_EXISTS | status::SESSION_STATE_CHANGED),
        );
        packets::write_ok(
            &mut self.cwbuf,
            1,
            &OkInfo {
                affected_rows: 0,
                last_insert_id: 0,
                status,
                warnings: 0,
            },
        );
    }

    fn err_locally(&mut self, c: u16, state: &str, message: &str) {
        packets::write_err(&mut self.cwbuf, 1, c, state, message);
    }

    async fn flush_server(&mut self) -> Result<(), SessionError> {
        let server = self.lease.as_deref_mut().map(|s| &mut s.stream);
        match flush_to_server(server, &mut self.swbuf).await {
            Err(e) => self.server_lost(e.into()).await,
            Ok(()) => Ok(()),
        }
    }

    async fn flush_client(&mut self) -> Result<(), SessionError> {
        let traffic = self.s.ticket.traffic();
        let r = flush(&mut self.client, &mut self.cwbuf, |n| traffic.sent(n)).await;
        r.map_err(SessionError::ClientIo)
    }
}
