//! The relay between one logged-in client and the server connections it leases.
//!
//! Commands are handled one at a time: a client command is framed, looked at (command
//! byte; statement ids; the text of COM_QUERY for session state) and forwarded; the
//! server's response is forwarded in bulk while [`ResponseScanner`] follows its packets to
//! find its end and final status flags. A lease ends (transaction mode) when the response
//! is complete, SERVER_STATUS_IN_TRANS is clear, no cursor or long data is open and the
//! client is not pinned.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html>.

use crate::backend::{ServerConn, SessionMark, MAX_SERVER_PACKET};
use crate::clients::{ClientHandle, ClientRegistry};
use crate::codec::packets::{self, ErrInfo, OkInfo};
use crate::codec::response::{Expect, Step};
use crate::codec::session_state::{self, Change};
use crate::codec::{cap, command, frame, status, stmt, CodecError};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::{checkout_error, code};
use crate::manager::MyManager;
use crate::pool::{MyPool, PinReason, PoolMode};
use crate::session_sql::{analyze_with, rewrite_query, QueryEffect};
use crate::sql_lexer::lex_with;
use crate::stmt_cache::{ClientStatements, ClientStmt, StmtFacts};
use crate::tls::Stream;
use bytes::{Buf, BytesMut};
use maitred_admin::{ClientState, ClientTicket};
use maitred_frontend::flush::{flush, flush_to_server};
use maitred_frontend::LinkError;
use maitred_pool::{Ahead, ClientClock, Lease, Successor};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod send_ahead;
mod session_vars;
mod time_limits;

use session_vars::{Replay, SessionVars};

/// Session SETs replayed per client; beyond that the client is pinned instead.
const MAX_SESSION_SETS: usize = 64;
/// Server packets longer than this are forwarded as they arrive instead of whole.
const WHOLE_PACKET_LIMIT: usize = 64 * 1024;

/// A client after login.
#[derive(Debug)]
pub struct ClientSession {
    pub pool: Arc<MyPool>,
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
    lease: Option<Lease<MyManager>>,
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
    successor: Option<Successor<MyManager>>,
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
    pub async fn run(mut self) -> Result<(), SessionError> {
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

    fn busy(&self) -> bool {
        self.lease
            .as_deref()
            .is_some_and(|c| c.scanner.is_busy() || c.unread_body > 0)
    }

    async fn run_loop(&mut self) -> Result<(), SessionError> {
        // One drain subscription for the session, not one per wait (each would join and
        // leave the process-wide waiter list); never polled again once it fired.
        let shutdown = maitred_pool::shutdown::wait();
        tokio::pin!(shutdown);
        loop {
            self.s.ticket.set_state(if self.lease.is_some() {
                ClientState::Active
            } else {
                ClientState::Idle
            });
            if !self.busy() && self.handle_client_commands().await? == Flow::ClientDone {
                return Ok(());
            }
            let handle = self.s.handle.clone();
            if self.infile {
                let n = self
                    .client
                    .read_buf(&mut self.crbuf)
                    .await
                    .map_err(SessionError::ClientIo)?;
                if n == 0 {
                    return Ok(());
                }
                self.s.ticket.traffic().received(n);
                self.relay_file_packets().await?;
                continue;
            }
            if self.busy() && std::mem::take(&mut self.server_bytes_pending) {
                self.handle_server_bytes().await?;
                continue;
            }
            if self.busy() {
                let deadline = self.limit_deadline();
                let Some(server) = self.lease.as_deref_mut() else {
                    continue;
                };
                let r = tokio::select! {
                    r = server.stream.read_buf(&mut server.rbuf) => Some(r),
                    () = maitred_pool::sleep_until(deadline) => None,
                };
                let Some(r) = r else {
                    if self.limit_reached().await == Flow::ClientDone {
                        return Ok(());
                    }
                    continue;
                };
                match r {
                    Ok(0) => self.server_lost(LinkError::Closed.into()).await?,
                    Ok(_) => self.handle_server_bytes().await?,
                    Err(e) => self.server_lost(e.into()).await?,
                }
            } else {
                let deadline = self.limit_deadline();
                // Only a client between transactions (no lease) is let go by the drain.
                let idle = self.lease.is_none();
                let n = tokio::select! {
                    () = &mut shutdown, if idle => {
                        // MySQL clients expect no unsolicited packet: an idle one is simply
                        // closed, as a server that shuts down does (drivers reconnect).
                        tracing::debug!(pool = %self.s.pool.name, "drain: idle client closed");
                        return Ok(());
                    }
                    () = maitred_pool::sleep_until(deadline) => {
                        if self.limit_reached().await == Flow::ClientDone {
                            return Ok(());
                        }
                        continue;
                    }
                    r = self.client.read_buf(&mut self.crbuf) => {
                        let n = r.map_err(SessionError::ClientIo)?;
                        self.s.ticket.traffic().received(n);
                        n
                    }
                    () = handle.killed() => {
                        self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                        let _ = self.flush_client().await;
                        return Ok(());
                    }
                };
                if n == 0 {
                    return Ok(());
                }
                self.clock.client_active();
            }
            if self.s.handle.is_killed() && !self.busy() {
                self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                let _ = self.flush_client().await;
                return Ok(());
            }
        }
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

    fn pin(&mut self, reason: PinReason) {
        if self.s.pool.mode == PoolMode::Transaction && self.pinned.is_none() {
            self.pinned = Some(reason);
            self.s.pool.counters.count_pin(reason);
            tracing::debug!(pool = %self.s.pool.name, reason = reason.as_str(), "client pinned to its server connection");
        }
    }

    async fn handle_command(&mut self, payload: BytesMut) -> Result<Flow, SessionError> {
        let Some(&cmd) = payload.first() else {
            return Err(CodecError::Empty.into());
        };
        self.ahead_safe = false;
        tracing::trace!(
            client = self.s.connection_id,
            cmd,
            len = payload.len(),
            "command"
        );
        match cmd {
            command::QUIT => return Ok(Flow::ClientDone),
            command::PING => self.ok_locally(),
            command::CHANGE_USER => return self.change_user(&payload).await,
            command::STMT_CLOSE => {
                let id = stmt::statement_id(&payload)?;
                self.stmts.remove(id);
            }
            command::RESET_CONNECTION => {
                self.stmts.clear();
                self.session_sets.clear();
                self.vars.clear();
                self.vars.set_handshake_charset(self.s.collation);
                self.pinned = None;
                self.autocommit = true;
                if self.lease.is_some() {
                    self.forward(&payload, Expect::Status, Inflight::ResetConnection);
                } else {
                    self.ok_locally();
                }
            }
            command::INIT_DB => {
                let db = String::from_utf8_lossy(&payload[1..]).into_owned();
                if self.acquire().await? {
                    self.forward(&payload, Expect::Status, Inflight::Database(db));
                }
            }
            command::QUERY => {
                // The one scan of the text: effect, KILL, send-ahead shape and rewrites.
                let mode = self.vars.lex_mode();
                let lexed = lex_with(&payload[1..], mode);
                let analysis = analyze_with(&lexed, mode);
                if let Some((query_only, target)) = analysis.kill {
                    return self.kill(query_only, target).await;
                }
                if analysis.unmapped_kill {
                    self.err_locally(
                        code::NOT_SUPPORTED,
                        "42000",
                        "maitred: KILL must be sent alone as KILL [CONNECTION|QUERY] <id> with the id CONNECTION_ID() shows (maitred's); inside a statement list its number would name another client's server thread",
                    );
                    return Ok(Flow::Continue);
                }
                let rewritten = rewrite_query(&lexed, self.s.connection_id, self.last_insert_id);
                drop(lexed);
                let payload = match rewritten {
                    Some(sql) => {
                        let mut p = BytesMut::with_capacity(sql.len() + 1);
                        p.extend_from_slice(&[command::QUERY]);
                        p.extend_from_slice(&sql);
                        p
                    }
                    None => payload,
                };
                let effect = analysis.effect;
                let shape = if effect == QueryEffect::None && analysis.may_send_ahead {
                    send_ahead::ahead_shape(&self.s.pool, &payload, None)
                } else {
                    None
                };
                let offer = shape.and_then(|requires| self.ahead_offer(&payload, requires));
                match self.acquire_offering(offer).await? {
                    Acquired::No => return Ok(Flow::Continue),
                    Acquired::Sent => {
                        self.account_sent_command();
                        return Ok(Flow::Continue);
                    }
                    Acquired::Leased => {}
                }
                if analysis.calls_routine {
                    // What the routine took that the server does not report (a user lock)
                    // must not reach the next client: reset before anyone else gets it.
                    if let Some(conn) = self.lease.as_deref_mut() {
                        conn.needs_reset = true;
                    }
                }
                // With the server reporting variable changes, SETs need no scanning: what
                // the server reports is recorded when the response is relayed.
                let tracked = self.lease.as_deref().is_some_and(|c| c.tracks_variables);
                let inflight = match effect {
                    QueryEffect::None => Inflight::Forward,
                    QueryEffect::Use(db) => Inflight::Database(db),
                    QueryEffect::SessionSet | QueryEffect::SessionSetList if tracked => {
                        Inflight::Forward
                    }
                    QueryEffect::SessionSet if self.session_sets.len() < MAX_SESSION_SETS => {
                        Inflight::SessionSet(payload[1..].to_vec())
                    }
                    QueryEffect::SessionSet | QueryEffect::SessionSetList => {
                        self.pin(PinReason::SessionVariable);
                        Inflight::Forward
                    }
                    QueryEffect::Pin(r) => {
                        self.pin(r);
                        Inflight::Forward
                    }
                };
                self.forward(&payload, Expect::Results, inflight);
                self.ahead_safe = shape.is_some();
            }
            command::SET_OPTION => {
                self.pin(PinReason::SetOption);
                if self.acquire().await? {
                    self.forward(&payload, Expect::Status, Inflight::Forward);
                }
            }
            command::FIELD_LIST | command::STATISTICS => {
                if self.acquire().await? {
                    let expect = Expect::of(cmd).unwrap_or(Expect::AnyOne);
                    self.forward(&payload, expect, Inflight::Forward);
                }
            }
            command::STMT_PREPARE => {
                // The statement's text is read once, here; its executions act on it.
                let facts = StmtFacts::of(&payload[1..], self.vars.lex_mode());
                if facts.kills {
                    self.err_locally(
                        code::NOT_SUPPORTED,
                        "42000",
                        "maitred: KILL cannot be prepared; send KILL [CONNECTION|QUERY] <id> as a query, with the id CONNECTION_ID() shows (maitred's)",
                    );
                } else if self.acquire().await? {
                    let sql: Arc<[u8]> = Arc::from(&payload[1..]);
                    self.forward(&payload, Expect::Prepare, Inflight::Prepare(sql, facts));
                }
            }
            command::STMT_EXECUTE
            | command::STMT_SEND_LONG_DATA
            | command::STMT_RESET
            | command::STMT_FETCH => self.statement_command(cmd, payload).await?,
            _ => self.err_locally(
                code::UNKNOWN_COM,
                "08S01",
                &format!("maitred: unknown or unsupported command 0x{cmd:02x}"),
            ),
        }
        Ok(Flow::Continue)
    }

    /// COM_CHANGE_USER: the client is switched to mysql_native_password with a fresh
    /// scramble and checked like at login; on success its session starts over (statements,
    /// SETs, pins and database forgotten; a held server connection is reset and returned).
    /// A failed change closes the client, as servers do.
    async fn change_user(&mut self, payload: &[u8]) -> Result<Flow, SessionError> {
        let req = packets::parse_change_user(payload, self.s.capabilities)?;
        let scramble = crate::auth::new_scramble();
        frame::write_packet(
            &mut self.cwbuf,
            1,
            &packets::auth_switch(crate::auth::NATIVE, &scramble),
        );
        self.flush_client().await?;
        let answer = self.read_client_packet(2).await?;
        let pool = self.s.pool.clone();
        let ok = match pool.password(&req.user) {
            _ if !pool.check_passwords => !pool.has_users() || pool.password(&req.user).is_some(),
            Some(pw) => {
                crate::auth::verify(crate::auth::NATIVE, &scramble, pw.as_bytes(), &answer).is_ok()
            }
            None => false,
        };
        if !ok {
            pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
            packets::write_err(
                &mut self.cwbuf,
                3,
                code::ACCESS_DENIED,
                "28000",
                &format!(
                    "Access denied for user '{}' (using password: YES)",
                    req.user
                ),
            );
            self.flush_client().await?;
            return Ok(Flow::ClientDone);
        }
        if let Some(mut lease) = self.lease.take() {
            if self.s.handle.clear_server() {
                lease.discard();
            } else {
                lease.needs_reset = true;
                lease.mark_dirty();
            }
        }
        self.stmts.clear();
        self.session_sets.clear();
        self.vars.clear();
        // COM_CHANGE_USER's own character set field is not read: the login's stays.
        self.vars.set_handshake_charset(self.s.collation);
        self.pinned = None;
        self.hold = false;
        self.autocommit = true;
        self.s.database = req.database.or_else(|| pool.database.clone());
        packets::write_ok(
            &mut self.cwbuf,
            3,
            &OkInfo {
                affected_rows: 0,
                last_insert_id: 0,
                status: status::AUTOCOMMIT,
                warnings: 0,
            },
        );
        Ok(Flow::Continue)
    }

    /// Reads one whole client packet that must carry sequence id `expected` (inside a
    /// command's exchange, e.g. an auth switch answer).
    async fn read_client_packet(&mut self, expected: u8) -> Result<Vec<u8>, SessionError> {
        loop {
            if let Some((len, seq)) = frame::peek_packet(&self.crbuf, 64 * 1024)? {
                if seq != expected {
                    return Err(CodecError::OutOfSequence { expected, got: seq }.into());
                }
                let p = self.crbuf.split_to(frame::HEADER_LEN + len);
                return Ok(p[frame::HEADER_LEN..].to_vec());
            }
            let n = self
                .client
                .read_buf(&mut self.crbuf)
                .await
                .map_err(SessionError::ClientIo)?;
            if n == 0 {
                return Err(SessionError::ClientIo(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
    }

    /// `KILL [QUERY] <id>` with maitred's id: the target's current server thread gets
    /// `KILL QUERY` (sent over this client's own server connection, only while the target
    /// still holds that thread: [`ClientHandle::aim_kill`]); KILL CONNECTION also
    /// ends the target's session with maitred. Only the same user of the same pool may
    /// kill a client (MySQL's rule for users without PROCESS/SUPER).
    async fn kill(&mut self, query_only: bool, target: u32) -> Result<Flow, SessionError> {
        let Some(h) = self.s.clients.get(target) else {
            self.err_locally(
                code::NO_SUCH_THREAD,
                "HY000",
                &format!("Unknown thread id: {target}"),
            );
            return Ok(Flow::Continue);
        };
        if !h.same_owner(&self.s.handle) {
            self.err_locally(
                code::KILL_DENIED,
                "HY000",
                &format!("You are not owner of thread {target}"),
            );
            return Ok(Flow::Continue);
        }
        if !query_only {
            if target == self.s.connection_id {
                self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                return Ok(Flow::ClientDone);
            }
            h.kill();
        }
        if h.server_thread().is_none() {
            // The target holds no server connection: nothing runs for it, and nothing
            // needs one of ours.
            self.ok_locally();
            return Ok(Flow::Continue);
        }
        // Our own server connection first (this may wait): the target's thread is read
        // only once the KILL can go at once, and aimed, so that the target closes that
        // connection instead of handing it over while the KILL is on its way.
        if !self.acquire().await? {
            return Ok(Flow::Continue);
        }
        let Some(aim) = h.aim_kill() else {
            // The target holds no server connection: nothing runs for it.
            self.ok_locally();
            return Ok(Flow::Continue);
        };
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(Flow::Continue);
        };
        let sent = conn.query(&format!("KILL QUERY {}", aim.thread)).await;
        drop(aim);
        match sent {
            Ok(Ok(_)) => self.ok_locally(),
            // The thread was closed meanwhile (the target let go of it): nothing to kill.
            Ok(Err(e)) if e.code == code::NO_SUCH_THREAD => self.ok_locally(),
            Ok(Err(e)) => self.err_locally(e.code, &e.sqlstate, &e.message),
            Err(e) => self.server_lost(e).await?,
        }
        Ok(Flow::Continue)
    }

    /// COM_STMT_EXECUTE / SEND_LONG_DATA / RESET / FETCH: maitred's statement id becomes
    /// the server connection's, preparing the statement there first if needed.
    async fn statement_command(
        &mut self,
        cmd: u8,
        mut payload: BytesMut,
    ) -> Result<(), SessionError> {
        let id = stmt::statement_id(&payload)?;
        let Some(st) = self.stmts.get(id).cloned() else {
            if cmd != command::STMT_SEND_LONG_DATA {
                self.err_locally(
                    code::UNKNOWN_STMT_HANDLER,
                    "HY000",
                    &format!(
                        "Unknown prepared statement handler ({id}) given to mysqld_stmt_{}",
                        cmd_name(cmd)
                    ),
                );
            }
            return Ok(());
        };
        let on_server = self
            .lease
            .as_deref_mut()
            .and_then(|c| c.statements.lookup(&st.sql));
        match cmd {
            command::STMT_RESET if on_server.is_none() || !self.hold => {
                // Nothing of this statement is held on a server connection.
                self.hold = false;
                self.ok_locally();
                return Ok(());
            }
            command::STMT_FETCH if on_server.is_none() => {
                self.err_locally(1421, "HY000", "The statement has no open cursor");
                return Ok(());
            }
            _ => {}
        }
        if cmd == command::STMT_EXECUTE {
            let params = usize::from(st.params);
            if let Some(types) = stmt::execute_param_types(&payload, params)? {
                if st.types.as_deref() != Some(types) {
                    let types = types.to_vec();
                    if let Some(s) = self.stmts.get_mut(id) {
                        s.types = Some(types);
                    }
                }
            } else if let Some(types) = &st.types {
                if let Some(p) = stmt::execute_with_types(&payload, params, types)? {
                    payload = BytesMut::from(&p[..]);
                }
            }
        }
        let shape = if cmd == command::STMT_EXECUTE {
            send_ahead::ahead_shape(&self.s.pool, &payload, Some(&st))
        } else {
            None
        };
        let offer = shape.and_then(|requires| self.ahead_offer(&payload, requires));
        match self.acquire_offering(offer).await? {
            Acquired::No => return Ok(()),
            Acquired::Sent => {
                self.account_sent_command();
                return Ok(());
            }
            Acquired::Leased => {}
        }
        if cmd == command::STMT_EXECUTE {
            // The statement's text was classified once, when it was prepared.
            if let Some(r) = st.pins {
                self.pin(r);
            }
            if st.calls_routine {
                if let Some(conn) = self.lease.as_deref_mut() {
                    conn.needs_reset = true;
                }
            }
        }
        let server_id = match self.server_statement(&st.sql).await {
            Ok(Ok(sid)) => sid,
            Ok(Err(e)) => {
                if cmd != command::STMT_SEND_LONG_DATA {
                    self.err_locally(e.code, &e.sqlstate, &e.message);
                }
                return Ok(());
            }
            Err(e) => {
                self.server_lost(e).await?;
                return Ok(());
            }
        };
        stmt::set_statement_id(&mut payload, server_id)?;
        if cmd == command::STMT_EXECUTE && st.reads_last_insert_id {
            // The statement's text cannot carry the value (a COM_QUERY's is rewritten):
            // the connection's LAST_INSERT_ID() becomes this client's.
            let Some(conn) = self.lease.as_deref_mut() else {
                return Ok(());
            };
            match conn
                .query(&format!("DO LAST_INSERT_ID({})", self.last_insert_id))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.err_locally(e.code, &e.sqlstate, &e.message);
                    return Ok(());
                }
                Err(e) => {
                    self.server_lost(e).await?;
                    return Ok(());
                }
            }
        }
        match cmd {
            command::STMT_SEND_LONG_DATA => {
                self.hold = true;
                frame::write_packet(&mut self.swbuf, 0, &payload);
            }
            command::STMT_FETCH => self.forward(&payload, Expect::Fetch, Inflight::Fetch),
            command::STMT_RESET => {
                self.hold = false;
                self.forward(&payload, Expect::Status, Inflight::Forward);
            }
            _ => {
                self.hold = false;
                self.forward(&payload, Expect::Results, Inflight::Forward);
                self.ahead_safe = shape.is_some();
            }
        }
        Ok(())
    }

    /// The leased connection's id for a statement, preparing it there if needed.
    async fn server_statement(
        &mut self,
        sql: &Arc<[u8]>,
    ) -> Result<Result<u32, ErrInfo>, BackendError> {
        let Some(conn) = self.lease.as_deref_mut() else {
            return Err(LinkError::Closed.into());
        };
        if let Some(id) = conn.statements.lookup(sql) {
            return Ok(Ok(id));
        }
        Ok(conn.prepare(sql).await?.map(|ok| ok.statement_id))
    }

    /// Queues a command for the server and starts following its response.
    fn forward(&mut self, payload: &[u8], expect: Expect, inflight: Inflight) {
        let Some(conn) = self.lease.as_deref_mut() else {
            return;
        };
        frame::write_packet(&mut self.swbuf, 0, payload);
        self.s.ticket.traffic().query();
        conn.scanner.start(expect);
        self.inflight = inflight;
    }

    /// Leases a server connection if none is held and brings its session to the client's
    /// (database, autocommit). `false`: the client was sent an error instead.
    async fn acquire(&mut self) -> Result<bool, SessionError> {
        Ok(self.acquire_offering(None).await? != Acquired::No)
    }

    /// [`acquire`](Self::acquire), offering `ahead` to be sent by the holder of a busy
    /// connection while this client waits (`send_ahead`).
    async fn acquire_offering(&mut self, ahead: Option<Ahead>) -> Result<Acquired, SessionError> {
        if self.lease.is_none() {
            self.s.ticket.set_state(ClientState::Waiting);
            let checkout = match ahead {
                Some(ahead) => self.s.pool.pool.checkout_ahead(ahead).await,
                None => self.s.pool.pool.checkout().await,
            };
            self.s.ticket.set_state(if checkout.is_ok() {
                ClientState::Active
            } else {
                ClientState::Idle
            });
            match checkout {
                Ok(lease) => {
                    tracing::trace!(
                        client = self.s.connection_id,
                        server = lease.connection_id,
                        "server connection leased"
                    );
                    self.s.handle.set_server(lease.connection_id);
                    let sent = lease.request_sent();
                    self.lease = Some(lease);
                    if sent {
                        // Claimed for this client's database on a connection with the
                        // server's default session: nothing to bring over.
                        return Ok(Acquired::Sent);
                    }
                    if let Err(e) = self.match_found_rows().await {
                        self.server_lost(e).await?;
                        return Ok(Acquired::No);
                    }
                }
                Err(e) => {
                    tracing::info!(pool = %self.s.pool.name, error = %e, "checkout failed");
                    checkout_error(&mut self.cwbuf, 1, &e);
                    return Ok(Acquired::No);
                }
            }
        }
        match self.sync_session().await {
            Ok(Ok(())) => Ok(Acquired::Leased),
            Ok(Err(e)) => {
                self.err_locally(e.code, &e.sqlstate, &e.message);
                Ok(Acquired::No)
            }
            Err(e) => {
                self.server_lost(e).await?;
                Ok(Acquired::No)
            }
        }
    }

    async fn sync_session(&mut self) -> Result<Result<(), ErrInfo>, BackendError> {
        let mark = self.session_mark();
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(Ok(()));
        };
        if conn.tracking_stale {
            conn.enable_tracking().await?;
        }
        let me = self.s.connection_id;
        let (applied, replay) = match conn.session_owner {
            Some(m) if m.client == me && m.sets <= self.session_sets.len() => {
                (m.sets, self.vars.replay_from(m.vars_version))
            }
            Some(_) => (0, Replay::ResetFirst),
            None if self.vars.is_empty() => (0, Replay::Nothing),
            None => (0, Replay::All),
        };
        if replay == Replay::ResetFirst {
            // Another client's session (or an older one of this client): back to
            // defaults first.
            if let Err(e) = conn.reset_session().await? {
                return Ok(Err(e));
            }
        }
        let applied = if replay == Replay::ResetFirst {
            0
        } else {
            applied
        };
        for sql in self.session_sets.iter().skip(applied) {
            let sql = String::from_utf8_lossy(sql);
            if let Err(e) = conn.query(&sql).await? {
                return Ok(Err(e));
            }
        }
        if replay != Replay::Nothing {
            if let Some(sql) = self.vars.replay_sql() {
                if let Err(e) = conn.query(&sql).await? {
                    return Ok(Err(e));
                }
            }
        }
        if !self.session_sets.is_empty() || !self.vars.is_empty() {
            conn.session_owner = Some(mark);
        }
        if conn.database != self.s.database {
            if let Some(db) = &self.s.database {
                if let Err(e) = conn.init_db(db).await? {
                    return Ok(Err(e));
                }
            }
        }
        let server_autocommit = conn.status & status::AUTOCOMMIT != 0;
        if server_autocommit != self.autocommit {
            let sql = if self.autocommit {
                "SET autocommit=1"
            } else {
                "SET autocommit=0"
            };
            if let Err(e) = conn.query(sql).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// CLIENT_FOUND_ROWS is chosen at login, once per connection: a leased connection
    /// opened with the other choice than this client's is replaced, in the same pool
    /// slot, by one opened with the client's. The pool's new connections follow the
    /// last such client, so a pool whose clients agree pays this only while it warms up.
    async fn match_found_rows(&mut self) -> Result<(), BackendError> {
        let want = self.s.capabilities & cap::FOUND_ROWS != 0;
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        if conn.found_rows() == want {
            return Ok(());
        }
        let fresh = self
            .s
            .pool
            .pool
            .manager()
            .open_with_found_rows(want)
            .await?;
        tracing::debug!(
            pool = %self.s.pool.name,
            found_rows = want,
            old = conn.connection_id,
            new = fresh.connection_id,
            "server connection reopened for this client's CLIENT_FOUND_ROWS"
        );
        // The old connection closes as it is dropped here.
        *conn = fresh;
        self.s.handle.set_server(conn.connection_id);
        Ok(())
    }

    /// What a server connection carries once it has this client's session.
    fn session_mark(&self) -> SessionMark {
        SessionMark {
            client: self.s.connection_id,
            sets: self.session_sets.len(),
            vars_version: self.vars.version(),
        }
    }

    /// Acts on the session-state changes the server reported in an OK packet: variables
    /// and the database follow the client; a change the server does not name pins it.
    fn apply_session_changes(&mut self, changes: Vec<Change>, unknown: bool) {
        tracing::trace!(
            client = self.s.connection_id,
            ?changes,
            unknown,
            "session state reported"
        );
        let mut changed = false;
        for c in changes {
            match c {
                Change::SystemVariable { name, value } => {
                    changed |= self.vars.set(name, value);
                }
                Change::Schema(db) => {
                    if let Some(conn) = self.lease.as_deref_mut() {
                        conn.database = Some(db.clone());
                    }
                    self.s.database = Some(db);
                }
                Change::StateChanged | Change::Other => {}
            }
        }
        if unknown {
            self.pin(PinReason::SessionState);
        }
        if changed {
            let mark = self.session_mark();
            if let Some(conn) = self.lease.as_deref_mut() {
                conn.session_owner = Some(mark);
            }
        }
    }

    /// Forwards server bytes to the client, following the response to its end.
    async fn handle_server_bytes(&mut self) -> Result<(), SessionError> {
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        let mut ended: Option<Option<u16>> = None;
        // Session-state changes reported by OK packets of this response.
        let mut changes: Vec<Change> = Vec::new();
        let mut unknown_change = false;
        loop {
            if server.unread_body > 0 {
                let n = server.unread_body.min(server.rbuf.len());
                if n == 0 {
                    break;
                }
                if self.swallow_err.is_none() {
                    self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                }
                server.rbuf.advance(n);
                server.unread_body -= n;
                continue;
            }
            if !server.scanner.is_busy() {
                break;
            }
            let Some((len, seq)) = frame::peek_header(&server.rbuf, MAX_SERVER_PACKET)
                .map_err(BackendError::Protocol)?
            else {
                break;
            };
            let avail = server.rbuf.len() - frame::HEADER_LEN;
            if avail < len && len <= WHOLE_PACKET_LIMIT {
                break;
            }
            let head = len.min(avail);
            let body = &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + head];
            let is_ok = server.scanner.may_be_ok() && body.first() == Some(&packets::OK);
            if server.scanner.at_result_start() && body.first() == Some(&packets::OK) {
                if let Ok(ok) = packets::parse_ok(body) {
                    if ok.last_insert_id != 0 {
                        self.last_insert_id = ok.last_insert_id;
                    }
                }
            }
            let step = server
                .scanner
                .on_packet(
                    &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + head],
                    len,
                )
                .map_err(BackendError::Protocol)?;
            if step == Step::LocalInfile {
                if self.s.capabilities & cap::LOCAL_FILES != 0 && self.swallow_err.is_none() {
                    // The client allows it: it gets the request and sends the file.
                    self.cwbuf
                        .extend_from_slice(&server.rbuf[..frame::HEADER_LEN + head]);
                    server.rbuf.advance(frame::HEADER_LEN + head);
                    server.unread_body = len - head;
                    self.infile = true;
                    break;
                }
                // Refused: an empty file for the server, an error for the client.
                server.rbuf.advance(frame::HEADER_LEN + len);
                let mut o = BytesMut::new();
                frame::write_packet(&mut o, seq.wrapping_add(1), &[]);
                server
                    .stream
                    .write_all(&o)
                    .await
                    .map_err(BackendError::from)?;
                self.swallow_err = Some(
                    "maitred: LOAD DATA LOCAL INFILE refused: this client did not enable local files (CLIENT_LOCAL_FILES)".to_owned(),
                );
                continue;
            }
            if self.swallow_err.is_some() {
                server.rbuf.advance(frame::HEADER_LEN + head);
                server.unread_body = len - head;
                if let Step::Done(s) = step {
                    if let Some(s) = s {
                        server.status = s;
                    }
                    ended = Some(s);
                    break;
                }
                continue;
            }
            let start = self.cwbuf.len();
            let untracked = if is_ok && server.session_track && head == len {
                // The client did not ask for CLIENT_SESSION_TRACK: its OK packets carry
                // no state block and a plain info text.
                let body = &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + len];
                let ok = session_state::parse_tracked_ok(body).map_err(BackendError::Protocol)?;
                unknown_change |= ok.unknown_state_change();
                let rewritten = ok.needs_rewrite().then(|| ok.untracked());
                changes.extend(ok.changes);
                rewritten
            } else {
                None
            };
            match untracked {
                Some(p) => {
                    frame::write_packet(&mut self.cwbuf, seq, &p);
                }
                None => self
                    .cwbuf
                    .extend_from_slice(&server.rbuf[..frame::HEADER_LEN + head]),
            }
            server.rbuf.advance(frame::HEADER_LEN + head);
            server.unread_body = len - head;
            if let Inflight::Prepare(sql, facts) = &self.inflight {
                let body = &self.cwbuf[start + frame::HEADER_LEN..];
                if body.first() == Some(&packets::OK) {
                    let ok = stmt::parse_prepare_ok(body).map_err(BackendError::Protocol)?;
                    let client_id = self.stmts.add(ClientStmt::with_facts(
                        sql.clone(),
                        ok.params,
                        ok.columns,
                        *facts,
                    ));
                    stmt::set_statement_id(&mut self.cwbuf[start + frame::HEADER_LEN..], client_id)
                        .map_err(BackendError::Protocol)?;
                    self.prepared = Some((sql.clone(), ok.statement_id));
                }
                self.inflight = Inflight::Forward;
            }
            if let Step::Done(s) = step {
                if let Some(s) = s {
                    server.status = s;
                }
                ended = Some(s);
                break;
            }
        }
        if !changes.is_empty() || unknown_change {
            self.apply_session_changes(changes, unknown_change);
        }
        if let Some((sql, id)) = self.prepared.take() {
            if let Some(conn) = self.lease.as_deref_mut() {
                if let Err(e) = conn.remember_statement(sql, id).await {
                    return self.server_lost(e).await.map(|_| ());
                }
            }
        }
        if let Some(s) = ended {
            if let Some(msg) = self.swallow_err.take() {
                packets::write_err(
                    &mut self.cwbuf,
                    1,
                    code::LOCAL_INFILE_REJECTED,
                    "HY000",
                    &msg,
                );
            }
            self.response_ended(s);
        }
        if !self.busy() && self.successor.is_some() {
            // Before writing to our client: its reply is ours alone, and the successor's
            // waits on the connection, not on our client's socket (nor on its being gone).
            self.pass_to_successor().await?;
        }
        if !self.busy() || self.infile || self.cwbuf.len() >= 64 * 1024 {
            self.flush_client().await?;
        }
        if !self.busy() {
            self.release_if_done();
        }
        Ok(())
    }

    fn response_ended(&mut self, s: Option<u16>) {
        tracing::trace!(client = self.s.connection_id, status = ?s, "response ended");
        if let Some(s) = s {
            self.autocommit = s & status::AUTOCOMMIT != 0;
            if s & status::CURSOR_EXISTS != 0 {
                self.hold = true;
            }
        }
        let inflight = std::mem::replace(&mut self.inflight, Inflight::Forward);
        let Some(conn) = self.lease.as_deref_mut() else {
            return;
        };
        match inflight {
            Inflight::Database(db) if s.is_some() => {
                conn.database = Some(db.clone());
                self.s.database = Some(db);
            }
            Inflight::SessionSet(sql) if s.is_some() => {
                self.session_sets.push(sql);
                conn.session_owner = Some(SessionMark {
                    client: self.s.connection_id,
                    sets: self.session_sets.len(),
                    vars_version: self.vars.version(),
                });
            }
            Inflight::ResetConnection => {
                conn.statements.clear();
                conn.session_owner = None;
                // The reset put the tracking variables back to their global values.
                conn.tracking_stale = conn.session_track;
            }
            Inflight::Fetch if s.is_none_or(|s| s & status::LAST_ROW_SENT != 0) => {
                self.hold = false;
            }
            _ => {}
        }
    }

    /// In transaction mode, gives the server connection back once the transaction is over.
    fn release_if_done(&mut self) {
        if self.s.pool.mode != PoolMode::Transaction
            || self.pinned.is_some()
            || self.hold
            || self.successor.is_some()
        {
            return;
        }
        let done = self.lease.as_deref().is_some_and(|c: &ServerConn| {
            !c.scanner.is_busy()
                && c.unread_body == 0
                && c.rbuf.is_empty()
                && c.status & status::IN_TRANS == 0
        });
        if done {
            if let Some(mut lease) = self.lease.take() {
                tracing::trace!(
                    client = self.s.connection_id,
                    status = lease.status,
                    "server connection released"
                );
                if self.s.handle.clear_server() {
                    // A KILL is on its way to this thread: nobody else may run on it.
                    lease.discard();
                } else if lease.needs_reset {
                    lease.mark_dirty();
                }
                self.s
                    .pool
                    .counters
                    .transactions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The server connection failed. If the client had nothing in flight it goes on with
    /// a new server connection next time; otherwise it is told and disconnected.
    async fn server_lost(&mut self, e: BackendError) -> Result<(), SessionError> {
        // A command sent ahead on this connection is lost with it.
        self.successor = None;
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        let _ = self.s.handle.clear_server();
        let quiet = !lease.scanner.is_busy() && lease.status & status::IN_TRANS == 0;
        lease.discard();
        tracing::warn!(pool = %self.s.pool.name, error = %e, "server connection lost");
        if quiet && self.pinned.is_none() && !self.hold && self.s.pool.mode == PoolMode::Transaction
        {
            self.err_locally(
                code::LOST_CONNECTION,
                "HY000",
                &format!(
                    "maitred: the server connection of pool \"{}\" was lost: {e}; retry",
                    self.s.pool.name
                ),
            );
            return Ok(());
        }
        packets::write_err(
            &mut self.cwbuf,
            1,
            code::LOST_CONNECTION,
            "HY000",
            &format!(
                "Lost connection to server during query (maitred: the server connection of pool \"{}\" failed: {e}; the transaction in progress, if any, was not committed)",
                self.s.pool.name
            ),
        );
        let _ = self.flush_client().await;
        Err(e.into())
    }

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    fn finish(&mut self) {
        let kill_aimed = self.s.handle.clear_server();
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if self.successor.take().is_some() || kill_aimed {
            // Two responses owed, one of them another client's: not worth draining.
            lease.discard();
            return;
        }
        if self.s.pool.mode == PoolMode::Session
            || self.pinned.is_some()
            || self.hold
            || !lease.is_clean()
        {
            lease.needs_reset = true;
            lease.mark_dirty();
        }
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

fn cmd_name(cmd: u8) -> &'static str {
    match cmd {
        command::STMT_EXECUTE => "execute",
        command::STMT_RESET => "reset",
        command::STMT_FETCH => "fetch",
        _ => "send_long_data",
    }
}
