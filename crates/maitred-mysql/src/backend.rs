//! One connection from maitred to the MySQL/MariaDB server: login, maitred's own commands
//! (reset, select database, prepare), and the bookkeeping the relay keeps on it.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html>.

use crate::auth;
use crate::codec::packets::{self, ErrInfo, OkInfo, AUTH_MORE_DATA, EOF, ERR, OK};
use crate::codec::response::{Expect, ResponseScanner, Step};
use crate::codec::stmt::{self, PrepareOk};
use crate::codec::{cap, command, frame, status};
use crate::error::BackendError;
use crate::stmt_cache::ServerStatements;
use crate::target::ServerTarget;
use crate::tls::Stream;
use bytes::{Buf, BytesMut};
use maitred_frontend::error::{within, RESET_TIMEOUT};
use maitred_frontend::LinkError;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

    async fn login(
        &mut self,
        target: &ServerTarget,
        greeting: &packets::ServerGreeting,
        seq: u8,
        leg: u32,
    ) -> Result<(), BackendError> {
        self.connection_id = greeting.connection_id;
        self.info = ServerInfo {
            version: greeting.server_version.clone(),
            capabilities: greeting.capabilities,
            collation: greeting.collation,
        };
        if greeting.capabilities & cap::PROTOCOL_41 == 0 {
            return Err(BackendError::UnsupportedAuth("pre-4.1".into()));
        }
        let mut caps = leg & greeting.capabilities;
        if self.stream.is_tls() {
            caps |= cap::SSL;
        }
        if target.database.is_some() {
            caps |= cap::CONNECT_WITH_DB;
        }
        self.capabilities = caps;
        let password = target
            .password
            .as_ref()
            .map_or("", |p| p.expose())
            .as_bytes();
        let mut plugin = greeting.auth_plugin.clone();
        if plugin != auth::NATIVE && plugin != auth::CACHING_SHA2 {
            // Answer as mysql_native_password; the server switches us if it must.
            plugin = auth::NATIVE.to_vec();
        }
        let mut nonce = greeting.nonce.clone();
        let answer = auth::expected_answer(&plugin, &nonce, password).unwrap_or_default();
        let secure = self.stream.is_secure();
        let hello = packets::client_hello(
            caps,
            DEFAULT_COLLATION,
            &target.user,
            &answer,
            target.database.as_deref(),
            &plugin,
        );
        let mut out = BytesMut::new();
        frame::write_packet(&mut out, seq.wrapping_add(1), &hello);
        self.stream.write_all(&out).await?;
        loop {
            let (s, payload) = self.read_packet().await?;
            let seq = s.wrapping_add(1);
            out.clear();
            match payload.first() {
                Some(&OK) => {
                    self.status = packets::parse_ok(&payload)?.status;
                    return Ok(());
                }
                Some(&ERR) => return Err(BackendError::Server(packets::parse_err(&payload)?)),
                Some(&EOF) => {
                    let (p, data) = packets::parse_auth_switch(&payload)?;
                    if p == auth::ed25519::PLUGIN {
                        // The nonce is 32 raw bytes (no NUL terminator to strip).
                        let raw = &payload[p.len() + 2..];
                        let nonce =
                            raw.get(..auth::ed25519::NONCE_LEN)
                                .ok_or(BackendError::Protocol(
                                    crate::codec::CodecError::Malformed("client_ed25519 nonce"),
                                ))?;
                        plugin = p;
                        frame::write_packet(&mut out, seq, &auth::ed25519::sign(password, nonce));
                        self.stream.write_all(&out).await?;
                        continue;
                    }
                    if p != auth::NATIVE && p != auth::CACHING_SHA2 {
                        return Err(BackendError::UnsupportedAuth(
                            String::from_utf8_lossy(&p).into_owned(),
                        ));
                    }
                    plugin = p;
                    nonce = data;
                    let answer =
                        auth::expected_answer(&plugin, &nonce, password).unwrap_or_default();
                    frame::write_packet(&mut out, seq, &answer);
                }
                Some(&AUTH_MORE_DATA) if plugin == auth::CACHING_SHA2 => match payload.get(1..) {
                    Some([auth::FAST_AUTH_OK]) => continue,
                    Some([auth::FULL_AUTH]) => {
                        if target.password.is_none() {
                            return Err(BackendError::NoPassword);
                        }
                        match full_auth(secure, target.tls.server_public_key()) {
                            FullAuth::Clear => {
                                // Inside TLS or over a Unix socket the password goes in
                                // clear, NUL-terminated.
                                let mut p = password.to_vec();
                                p.push(0);
                                frame::write_packet(&mut out, seq, &p);
                            }
                            FullAuth::Encrypt(pem) => {
                                let enc = auth::rsa_encrypted_password(password, &nonce, pem)
                                    .ok_or(BackendError::Rsa)?;
                                frame::write_packet(&mut out, seq, &enc);
                            }
                            FullAuth::Refuse => {
                                return Err(BackendError::InsecureFullAuth {
                                    addr: target.server.addr(),
                                })
                            }
                        }
                    }
                    // A public key maitred never asked for: it is not used.
                    Some(_) => {
                        return Err(BackendError::Protocol(
                            crate::codec::CodecError::Unexpected("server login (public key)"),
                        ))
                    }
                    None => return Err(BackendError::Protocol(crate::codec::CodecError::Empty)),
                },
                _ => {
                    return Err(BackendError::Protocol(
                        crate::codec::CodecError::Unexpected("server login"),
                    ))
                }
            }
            self.stream.write_all(&out).await?;
        }
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

    /// COM_RESET_CONNECTION alone (session variables, temporary tables, user variables,
    /// locks and prepared statements back to defaults; the database stays).
    pub async fn reset_session(&mut self) -> Result<Result<(), ErrInfo>, BackendError> {
        let r = self.simple_command(&[command::RESET_CONNECTION]).await?;
        if r.is_ok() {
            self.statements.clear();
            self.session_owner = None;
            self.enable_tracking().await?;
        }
        Ok(r.map(|_| ()))
    }

    /// Brings the connection back to a clean state for the next client: finishes a
    /// response a departed client left unread, then COM_RESET_CONNECTION (rolls back,
    /// drops temporary tables, user variables, locks and prepared statements, resets
    /// session variables) and COM_INIT_DB of the pool's database.
    pub async fn reset(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        within("reset", RESET_TIMEOUT, self.reset_inner(target)).await
    }

    async fn reset_inner(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        self.drain_response().await?;
        match self.simple_command(&[command::RESET_CONNECTION]).await? {
            Ok(_) => {}
            Err(e) => return Err(BackendError::Server(e)),
        }
        self.statements.clear();
        self.session_owner = None;
        self.enable_tracking().await?;
        self.database = None;
        if let Some(db) = &target.database {
            if let Err(e) = self.init_db(db).await? {
                return Err(BackendError::Server(e));
            }
        }
        self.needs_reset = false;
        if self.status & status::IN_TRANS != 0 {
            return Err(BackendError::Protocol(
                crate::codec::CodecError::Unexpected("reset (transaction still open)"),
            ));
        }
        Ok(())
    }

    /// Reads and drops a whole response to a command written on this connection that no
    /// client will see (one sent ahead for a client that is gone).
    pub async fn skip_response(&mut self, expect: Expect) -> Result<(), BackendError> {
        debug_assert!(!self.scanner.is_busy(), "a response is being relayed");
        self.scanner.start(expect);
        self.drain_response().await
    }

    /// Reads and drops the rest of a response the relay was forwarding.
    async fn drain_response(&mut self) -> Result<(), BackendError> {
        while self.unread_body > 0 {
            if self.rbuf.is_empty() && self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(LinkError::Closed.into());
            }
            let n = self.unread_body.min(self.rbuf.len());
            self.rbuf.advance(n);
            self.unread_body -= n;
        }
        while self.scanner.is_busy() {
            let (_, p) = self.read_packet().await?;
            match self.scanner.on_packet(&p, p.len())? {
                Step::Done(Some(s)) => self.status = s,
                Step::LocalInfile => {
                    let mut out = BytesMut::new();
                    frame::write_packet(&mut out, 2, &[]);
                    self.stream.write_all(&out).await?;
                }
                _ => {}
            }
        }
        self.rbuf.clear();
        Ok(())
    }
}

/// The server's first packet: its greeting, or the ERR it sends instead (too many
/// connections, host blocked).
async fn read_greeting<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> Result<(u8, packets::ServerGreeting), BackendError> {
    let (seq, greeting) = read_packet_from(stream, rbuf).await?;
    if greeting.first() == Some(&ERR) {
        return Err(BackendError::Server(packets::parse_err(&greeting)?));
    }
    Ok((seq, packets::parse_greeting(&greeting)?))
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

/// After the server's greeting: TLS if `ssl-mode` wants it and the server offers it (an SSL
/// request, then the TLS handshake). Returns the stream and the sequence id the handshake
/// response follows.
async fn negotiate_tls(
    mut tcp: TcpStream,
    target: &ServerTarget,
    greeting: &packets::ServerGreeting,
    seq: u8,
    leg: u32,
) -> Result<(Stream, u8), BackendError> {
    let offered = greeting.capabilities & cap::SSL != 0;
    if !target.tls.wanted() || !offered {
        if target.tls.mode.requires_tls() {
            let mode = match target.tls.mode {
                crate::tls::SslMode::Required => "REQUIRED",
                crate::tls::SslMode::VerifyCa => "VERIFY_CA",
                _ => "VERIFY_IDENTITY",
            };
            return Err(BackendError::TlsRefused(mode));
        }
        return Ok((Stream::Plain(tcp), seq));
    }
    let mut caps = leg & greeting.capabilities | cap::SSL;
    if target.database.is_some() {
        caps |= cap::CONNECT_WITH_DB;
    }
    let mut out = BytesMut::new();
    frame::write_packet(
        &mut out,
        seq.wrapping_add(1),
        &packets::ssl_request(caps, DEFAULT_COLLATION),
    );
    tcp.write_all(&out).await?;
    let stream = target.tls.connect(tcp).await.map_err(BackendError::Tls)?;
    Ok((stream, seq.wrapping_add(1)))
}

/// How maitred answers a server's request for caching_sha2_password full authentication
/// ([`full_auth`]).
#[derive(Debug, PartialEq, Eq)]
pub enum FullAuth<'a> {
    /// The password in clear: the channel is TLS or the server's Unix socket.
    Clear,
    /// The password encrypted with the server's public key maitred was given
    /// (`server-public-key-path`), sent at once.
    Encrypt(&'a [u8]),
    /// Plain TCP and no configured key: asking the server for its key would let anyone in
    /// the path hand over their own and learn the password. Refused.
    Refuse,
}

/// The decision for caching_sha2_password full authentication on the server leg: never
/// the public key the server would send over plain TCP.
pub fn full_auth(secure_channel: bool, configured_key: Option<&[u8]>) -> FullAuth<'_> {
    match (secure_channel, configured_key) {
        (true, _) => FullAuth::Clear,
        (false, Some(pem)) => FullAuth::Encrypt(pem),
        (false, None) => FullAuth::Refuse,
    }
}

#[cfg(test)]
mod full_auth_tests {
    use super::*;

    /// caching_sha2_password full authentication on the server leg: the password goes in
    /// clear only over TLS or the Unix socket, encrypted only with a key maitred was given;
    /// the key a server would send over plain TCP is never asked for.
    #[test]
    fn the_password_never_goes_to_a_key_the_server_sent_over_plain_tcp() {
        assert_eq!(full_auth(true, None), FullAuth::Clear);
        assert_eq!(full_auth(true, Some(b"pem")), FullAuth::Clear);
        assert_eq!(full_auth(false, Some(b"pem")), FullAuth::Encrypt(b"pem"));
        assert_eq!(full_auth(false, None), FullAuth::Refuse);
        let e = BackendError::InsecureFullAuth {
            addr: "db:3306".into(),
        }
        .to_string();
        for what in [
            "db:3306",
            "ssl-mode=REQUIRED",
            "socket=",
            "server-public-key-path=",
        ] {
            assert!(e.contains(what), "{what} not in: {e}");
        }
    }
}

#[cfg(test)]
mod plain_tcp_full_auth_tests {
    use super::*;
    use crate::codec::{cap, frame, packets};
    use tokio::io::AsyncReadExt;

    async fn read_one(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
        let mut head = [0u8; 4];
        sock.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        let mut body = vec![0u8; len];
        sock.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    /// A server (or anyone in its place on the network) that asks for caching_sha2_password
    /// full authentication over plain TCP: maitred refuses, naming what to configure, and
    /// never asks for the public key (0x02) whose owner would learn the password.
    #[tokio::test]
    async fn full_authentication_over_plain_tcp_never_asks_for_the_servers_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.ok()?;
            let mut out = BytesMut::new();
            frame::write_packet(
                &mut out,
                0,
                &packets::greeting(
                    "8.0.36",
                    1,
                    &[7u8; 20],
                    cap::SUPPORTED & !cap::SSL,
                    45,
                    auth::CACHING_SHA2,
                ),
            );
            sock.write_all(&out).await.ok()?;
            let _hello = read_one(&mut sock).await?;
            out.clear();
            frame::write_packet(&mut out, 2, &[packets::AUTH_MORE_DATA, auth::FULL_AUTH]);
            sock.write_all(&out).await.ok()?;
            // What the client sends next, if anything.
            read_one(&mut sock).await
        });
        let target = ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("127.0.0.1", port),
            user: "app".into(),
            password: Some("s3cret-password".into()),
            database: None,
            tls: crate::tls::ServerTls::disabled(),
        };
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            ServerConn::connect(&target, 10, false),
        )
        .await
        .expect("no hang");
        let next = server.await.expect("fake server");
        assert_ne!(
            next.as_deref(),
            Some(&[auth::REQUEST_PUBLIC_KEY][..]),
            "maitred asked a server over plain TCP for its RSA public key"
        );
        match r {
            Err(e @ BackendError::InsecureFullAuth { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("server-public-key-path") && !m.contains("s3cret"),
                    "{m}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
