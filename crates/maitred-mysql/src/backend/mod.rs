//! One connection from maitred to the MySQL/MariaDB server: login, maitred's own commands
//! (reset, select database, prepare), and the bookkeeping the relay keeps on it.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html>.

use crate::codec::packets::{self, ErrInfo, OkInfo, EOF, ERR, OK};
use crate::codec::response::{Expect, ResponseScanner, Step};
use crate::codec::stmt::{self, PrepareOk};
use crate::codec::{cap, command, frame, status};
use crate::error::BackendError;
use crate::statements::ServerStatements;
use crate::target::ServerTarget;
use crate::tls::Stream;
use bytes::{Buf, BytesMut};
use maitred_frontend::LinkError;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

mod login;
mod reset;
mod rows;

pub use login::{full_auth, FullAuth};
use login::{negotiate_tls, read_greeting};
pub use rows::{parse_text_row, TextRows};

/// Largest packet accepted from the server (its own limit is 1 GB; larger payloads are
/// split into 16 MB packets anyway).
pub const MAX_SERVER_PACKET: usize = frame::MAX_PAYLOAD;
/// utf8mb4_general_ci: the collation maitred asks for on server connections.
pub const DEFAULT_COLLATION: u8 = 45;

/// What a fresh server connection reported at login (shown to clients in maitred's own
/// handshake).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
    pub capabilities: u32,
    pub collation: u8,
}

/// A logged-in server connection and what the relay knows about its state.
pub struct ServerConn {
    pub stream: Stream,
    pub rbuf: BytesMut,
    /// The server's own connection (thread) id.
    pub connection_id: u32,
    pub info: ServerInfo,
    /// The capability flags in use on this connection.
    pub capabilities: u32,
    /// Status flags of the last OK/EOF.
    pub status: u16,
    /// The database maitred believes is selected.
    pub database: Option<String>,
    /// The response being relayed, if any.
    pub scanner: ResponseScanner,
    /// Bytes of a packet the relay forwarded in part, still to come from the socket.
    pub unread_body: usize,
    /// Statements prepared on this connection.
    pub statements: ServerStatements,
    /// Session state was changed beyond what maitred tracks: reset before reuse.
    pub needs_reset: bool,
    /// Whose session this connection carries. `None`: server defaults.
    pub session_owner: Option<SessionMark>,
    /// OK packets carry session-state changes (CLIENT_SESSION_TRACK was negotiated): the
    /// relay reads them and rewrites the packets for its clients.
    pub session_track: bool,
    /// The server reports every session variable change (`session_track_system_variables
    /// = '*'` was accepted): variables follow their client from what the server reports.
    pub tracks_variables: bool,
    /// A client's COM_RESET_CONNECTION turned tracking off: turn it on before the next
    /// command.
    pub tracking_stale: bool,
}

/// The session a server connection carries: a client's replayable `SET` statements (up to
/// `sets` of them) and its tracked variables (up to `vars_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMark {
    /// maitred's connection id of the client.
    pub client: u32,
    pub sets: usize,
    pub vars_version: u64,
}

/// Asks the server to report every session variable, the schema and other state changes.
const ENABLE_TRACKING: &str = "SET SESSION session_track_system_variables='*', \
     session_track_schema=ON, session_track_state_change=ON";

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("connection_id", &self.connection_id)
            .field("status", &self.status)
            .field("database", &self.database)
            .finish()
    }
}

impl ServerConn {
    /// Opens a connection (TCP or the Unix socket) and logs in as the target's user, with
    /// CLIENT_FOUND_ROWS when `found_rows` (affected rows of an UPDATE count the rows
    /// matched, not those changed: a per-connection choice clients make at login).
    pub async fn connect(
        target: &ServerTarget,
        max_statements: usize,
        found_rows: bool,
    ) -> Result<ServerConn, BackendError> {
        let leg = if found_rows {
            cap::SERVER_LEG | cap::FOUND_ROWS
        } else {
            cap::SERVER_LEG
        };
        // The server's Unix socket: no TLS (MySQL's clients count it as secure too).
        // Settings that demand TLS (or failed to load) refuse it, as over TCP.
        if target.server.socket.is_some() && target.tls.mode.requires_tls() {
            return Err(LinkError::TlsOverSocket.into());
        }
        let mut rbuf = BytesMut::with_capacity(8192);
        let mut stream = target.server.connect().await?;
        let (seq, greeting) = read_greeting(&mut stream, &mut rbuf).await?;
        let (stream, seq) = match stream {
            Stream::Plain(tcp) => negotiate_tls(tcp, target, &greeting, seq, leg).await?,
            unix => (unix, seq),
        };
        let mut conn = ServerConn {
            stream,
            rbuf,
            connection_id: 0,
            info: ServerInfo {
                version: String::new(),
                capabilities: 0,
                collation: DEFAULT_COLLATION,
            },
            capabilities: 0,
            status: status::AUTOCOMMIT,
            database: target.database.clone(),
            scanner: ResponseScanner::default(),
            unread_body: 0,
            statements: ServerStatements::new(max_statements),
            needs_reset: false,
            session_owner: None,
            session_track: false,
            tracks_variables: false,
            tracking_stale: false,
        };
        conn.login(target, &greeting, seq, leg).await?;
        conn.session_track = conn.capabilities & cap::SESSION_TRACK != 0;
        conn.enable_tracking().await?;
        Ok(conn)
    }

    /// Whether this connection counts UPDATE's affected rows as rows matched
    /// (CLIENT_FOUND_ROWS).
    pub fn found_rows(&self) -> bool {
        self.capabilities & cap::FOUND_ROWS != 0
    }

    /// Turns on the server's session tracking (again after COM_RESET_CONNECTION, which
    /// puts the tracking variables back to their global values). A server that refuses
    /// leaves variables to the SET statements maitred scans.
    pub async fn enable_tracking(&mut self) -> Result<(), BackendError> {
        if self.session_track {
            self.tracks_variables = self.query(ENABLE_TRACKING).await?.is_ok();
        }
        self.tracking_stale = false;
        Ok(())
    }

    /// Reads one whole packet (login and maitred's own commands; the relay scans instead).
    async fn read_packet(&mut self) -> Result<(u8, Vec<u8>), BackendError> {
        read_packet_from(&mut self.stream, &mut self.rbuf).await
    }

    /// Whether the relay may hand the connection to another client as it is.
    pub fn is_clean(&self) -> bool {
        !self.scanner.is_busy()
            && self.unread_body == 0
            && self.rbuf.is_empty()
            && self.status & status::IN_TRANS == 0
            && !self.needs_reset
    }

    /// Cheap liveness check of an idle connection: the socket must have nothing to say.
    pub fn is_idle_and_open(&mut self) -> bool {
        if !self.is_clean() {
            return false;
        }
        self.stream.is_quiet()
    }

    /// Sends one command maitred composed and reads its single-packet answer (OK, EOF or
    /// ERR). Server-side errors come back as `Ok(Err(..))`.
    pub async fn simple_command(
        &mut self,
        payload: &[u8],
    ) -> Result<Result<OkInfo, ErrInfo>, BackendError> {
        let mut out = BytesMut::new();
        frame::write_packet(&mut out, 0, payload);
        self.stream.write_all(&out).await?;
        let (_, reply) = self.read_packet().await?;
        match reply.first() {
            Some(&OK) => {
                let ok = packets::parse_ok(&reply)?;
                self.status = ok.status;
                Ok(Ok(ok))
            }
            Some(&EOF) if packets::is_eof(&reply) => {
                self.status = packets::eof_status(&reply)?;
                Ok(Ok(OkInfo {
                    affected_rows: 0,
                    last_insert_id: 0,
                    status: self.status,
                    warnings: 0,
                }))
            }
            Some(&ERR) => Ok(Err(packets::parse_err(&reply)?)),
            _ => Err(BackendError::Protocol(
                crate::codec::CodecError::Unexpected("maitred's own command"),
            )),
        }
    }

    /// Selects `db` (COM_INIT_DB).
    pub async fn init_db(&mut self, db: &str) -> Result<Result<(), ErrInfo>, BackendError> {
        let mut p = vec![command::INIT_DB];
        p.extend_from_slice(db.as_bytes());
        let r = self.simple_command(&p).await?;
        if r.is_ok() {
            self.database = Some(db.to_owned());
        }
        Ok(r.map(|_| ()))
    }

    /// Runs a statement maitred composed whose answer is one OK or ERR (e.g. SET).
    pub async fn query(&mut self, sql: &str) -> Result<Result<OkInfo, ErrInfo>, BackendError> {
        let mut p = vec![command::QUERY];
        p.extend_from_slice(sql.as_bytes());
        self.simple_command(&p).await
    }

    /// Prepares `sql` on this connection (COM_STMT_PREPARE), records it in the statement
    /// cache and closes what the cache evicts. Returns the server's statement id.
    pub async fn prepare(
        &mut self,
        sql: &Arc<[u8]>,
    ) -> Result<Result<PrepareOk, ErrInfo>, BackendError> {
        let mut out = BytesMut::new();
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(command::STMT_PREPARE);
        p.extend_from_slice(sql);
        frame::write_packet(&mut out, 0, &p);
        self.stream.write_all(&out).await?;
        let mut scanner = ResponseScanner::default();
        scanner.start(Expect::Prepare);
        let mut first: Option<Result<PrepareOk, ErrInfo>> = None;
        loop {
            let (_, reply) = self.read_packet().await?;
            if first.is_none() {
                first = Some(match reply.first() {
                    Some(&ERR) => Err(packets::parse_err(&reply)?),
                    _ => Ok(stmt::parse_prepare_ok(&reply)?),
                });
            }
            if let Step::Done(_) = scanner.on_packet(&reply, reply.len())? {
                break;
            }
        }
        let result = first.ok_or(LinkError::Closed)?;
        if let Ok(ok) = &result {
            self.remember_statement(sql.clone(), ok.statement_id)
                .await?;
        }
        Ok(result)
    }

    /// Records a statement prepared on this connection; closes the ones the cache drops.
    pub async fn remember_statement(
        &mut self,
        sql: Arc<[u8]>,
        id: u32,
    ) -> Result<(), BackendError> {
        let close = self.statements.insert(sql, id);
        if close.is_empty() {
            return Ok(());
        }
        let mut out = BytesMut::new();
        for id in close {
            let mut p = vec![command::STMT_CLOSE];
            p.extend_from_slice(&id.to_le_bytes());
            frame::write_packet(&mut out, 0, &p);
        }
        self.stream.write_all(&out).await?;
        Ok(())
    }
}

/// Reads one whole packet from `stream` into `rbuf`.
async fn read_packet_from<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> Result<(u8, Vec<u8>), BackendError> {
    loop {
        if let Some((len, seq)) = frame::peek_packet(rbuf, MAX_SERVER_PACKET)? {
            rbuf.advance(frame::HEADER_LEN);
            let payload = rbuf.split_to(len).to_vec();
            return Ok((seq, payload));
        }
        if stream.read_buf(rbuf).await? == 0 {
            return Err(LinkError::Closed.into());
        }
    }
}
