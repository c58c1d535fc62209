//! One connection from maitred to the PostgreSQL server: login, and the bookkeeping the relay
//! keeps on it (transaction status, unanswered Syncs, server settings).
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP>.

use crate::auth::passthrough::PassthroughLogin;
use crate::auth::scram_client_key::ClientKeyLogin;
use crate::codec::frame;
use crate::error::{BackendError, ServerErrorFields};
use crate::statements::PreparedOnServer;
use crate::target::ServerTarget;
use crate::tls::{SslMode, Stream};
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use maitred_frontend::error::{within, RESET_TIMEOUT};
use maitred_frontend::LinkError;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest message accepted from the server (PostgreSQL's own limit is 1 GB).
pub const MAX_SERVER_MESSAGE: usize = 1 << 30;
/// After cancelling a departed client's query, how long the reset waits for its end before
/// cancelling again (a cancel that arrives before the query started is ignored).
const RECANCEL_AFTER: Duration = Duration::from_millis(500);

/// A logged-in server connection and what the relay knows about its state.
pub struct ServerConn {
    pub stream: Stream,
    pub rbuf: BytesMut,
    /// The server's BackendKeyData, for forwarding cancel requests.
    pub process_id: i32,
    pub secret_key: i32,
    /// Settings the server reported at login (ParameterStatus); the pool shows the first
    /// connection's to clients. Later changes are tracked in `applied`.
    pub params: HashMap<String, String>,
    /// Settings maitred knows this connection carries beyond the server's defaults (from
    /// clients' startup packets and SET statements).
    pub applied: crate::settings::Settings,
    /// Transaction status of the last ReadyForQuery: b'I', b'T' or b'E'.
    pub tx_status: u8,
    /// Query/Sync/FunctionCall messages sent whose ReadyForQuery has not come back yet.
    pub pending_sync: u32,
    /// Extended-protocol messages were sent after the last Sync.
    pub extended_open: bool,
    /// The next reset must also DISCARD ALL (session mode, or state a client left behind).
    pub needs_discard: bool,
    /// Bytes of a server message the relay forwarded only in part: the rest is still to be
    /// read from the socket, so the stream is not at a message boundary.
    pub unread_body: usize,
    /// maitred's named statements prepared on this connection.
    pub prepared: PreparedOnServer,
}

impl std::fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConn")
            .field("process_id", &self.process_id)
            .field("tx_status", &(self.tx_status as char))
            .field("pending_sync", &self.pending_sync)
            .finish()
    }
}

impl ServerConn {
    /// Opens a connection (TCP or the Unix socket) and logs in as the target's user. `prepared_capacity` bounds
    /// the named statements kept prepared on it.
    pub async fn connect(
        target: &ServerTarget,
        prepared_capacity: usize,
    ) -> Result<ServerConn, BackendError> {
        // No TLS over a Unix socket, as with libpq; settings that demand it refuse it.
        if target.server.socket.is_some() && target.tls.mode.requires_tls() {
            return Err(LinkError::TlsOverSocket.into());
        }
        let stream = match target.server.connect().await? {
            Stream::Plain(tcp) => negotiate_tls(tcp, target).await?,
            unix => unix,
        };
        let mut conn = ServerConn {
            stream,
            rbuf: BytesMut::with_capacity(8192),
            process_id: 0,
            secret_key: 0,
            params: HashMap::new(),
            applied: crate::settings::Settings::default(),
            tx_status: b'I',
            pending_sync: 0,
            extended_open: false,
            needs_discard: false,
            unread_body: 0,
            prepared: PreparedOnServer::new(prepared_capacity),
        };
        conn.login(target).await?;
        Ok(conn)
    }

    async fn login(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        let mut out = BytesMut::new();
        let mut params: Vec<(&str, &str)> = vec![
            ("user", target.user.as_str()),
            ("database", target.database.as_str()),
        ];
        params.extend(
            target
                .startup_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        frontend::startup_message(params.iter().copied(), &mut out)?;
        self.stream.write_all(&out).await?;
        let mut scram: Option<ScramClient> = None;
        let passthrough = target.passthrough.as_deref();
        loop {
            let msg = self.read_message().await?;
            out.clear();
            match msg {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let pw = password_of(target)?;
                    frontend::password_message(pw.as_bytes(), &mut out)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = match passthrough {
                        Some(PassthroughLogin::Md5 { user_hash }) => {
                            crate::auth::md5::expected_response(user_hash, body.salt())
                        }
                        Some(other) => return Err(passthrough_mismatch("md5", other)),
                        None => postgres_protocol::authentication::md5_hash(
                            target.user.as_bytes(),
                            password_of(target)?.as_bytes(),
                            body.salt(),
                        ),
                    };
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next()? {
                        offered |= m == "SCRAM-SHA-256";
                    }
                    if !offered {
                        return Err(BackendError::UnsupportedAuth(
                            "SASL (without SCRAM-SHA-256)",
                        ));
                    }
                    let (s, first) = match passthrough {
                        Some(PassthroughLogin::Scram { client_key, keys }) => {
                            let (login, first) =
                                ClientKeyLogin::start(client_key.clone(), keys.clone());
                            (ScramClient::Key(login), first.into_bytes())
                        }
                        Some(other) => return Err(passthrough_mismatch("SCRAM-SHA-256", other)),
                        None => {
                            let pw = password_of(target)?;
                            let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                            let first = s.message().to_vec();
                            (ScramClient::Password(s), first)
                        }
                    };
                    frontend::sasl_initial_response("SCRAM-SHA-256", &first, &mut out)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let data = body.data().to_vec();
                    let (s, answer) = match scram.take().ok_or(BackendError::Unexpected("SCRAM"))? {
                        ScramClient::Key(mut login) => {
                            let answer = login.respond(&data).map_err(scram_error)?;
                            (ScramClient::Key(login), answer.into_bytes())
                        }
                        ScramClient::Password(mut s) => {
                            crate::auth::scram::check_server_first_iterations(&data)
                                .map_err(scram_error)?;
                            // PBKDF2 is expensive: keep it off the reactor.
                            let s =
                                tokio::task::spawn_blocking(move || s.update(&data).map(|()| s))
                                    .await
                                    .map_err(|_| BackendError::Unexpected("SCRAM"))?
                                    .map_err(BackendError::Scram)?;
                            let answer = s.message().to_vec();
                            (ScramClient::Password(s), answer)
                        }
                    };
                    frontend::sasl_response(&answer, &mut out)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslFinal(body) => {
                    match scram.as_mut().ok_or(BackendError::Unexpected("SCRAM"))? {
                        ScramClient::Key(login) => {
                            login.verify_final(body.data()).map_err(scram_error)?
                        }
                        ScramClient::Password(s) => {
                            s.finish(body.data()).map_err(BackendError::Scram)?
                        }
                    }
                }
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationGssContinue(_)
                | Message::AuthenticationSspi => {
                    return Err(BackendError::UnsupportedAuth("GSS/SSPI/Kerberos"))
                }
                Message::ParameterStatus(body) => {
                    self.params
                        .insert(body.name()?.to_owned(), body.value()?.to_owned());
                }
                Message::BackendKeyData(body) => {
                    self.process_id = body.process_id();
                    self.secret_key = body.secret_key();
                }
                Message::ReadyForQuery(body) => {
                    self.tx_status = body.status();
                    return Ok(());
                }
                Message::ErrorResponse(body) => {
                    return Err(BackendError::Server(error_fields(&body)?))
                }
                Message::NoticeResponse(_) => {}
                _ => return Err(BackendError::Unexpected("login")),
            }
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
        }
    }

    /// Reads one whole message (login and reset paths only; the relay scans instead).
    pub(crate) async fn read_message(&mut self) -> Result<Message, BackendError> {
        loop {
            if frame::peek_header(&self.rbuf, MAX_SERVER_MESSAGE)?.is_some() {
                if let Some(msg) = Message::parse(&mut self.rbuf)? {
                    return Ok(msg);
                }
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(LinkError::Closed.into());
            }
        }
    }

    /// Cheap liveness check of an idle connection: the socket must have nothing to say.
    /// EOF or unexpected bytes (e.g. a FATAL after an administrator's terminate) mean it is
    /// not usable.
    pub fn is_idle_and_open(&mut self) -> bool {
        if !self.is_clean() {
            return false;
        }
        self.stream.is_quiet()
    }

    /// Whether the connection can go back to the pool as it is.
    pub fn is_clean(&self) -> bool {
        self.pending_sync == 0
            && !self.extended_open
            && self.tx_status == b'I'
            && !self.needs_discard
            && self.unread_body == 0
            && self.rbuf.is_empty()
    }

    /// Brings the connection back to an idle state: finishes what a departed client left
    /// running (cancelling it), rolls back an open transaction, and DISCARDs ALL if asked.
    pub async fn reset(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        within("reset", RESET_TIMEOUT, self.reset_inner(target)).await
    }

    async fn reset_inner(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        // A query of a departed client may still be running: cancel it, then drain.
        let cancelled = self.pending_sync > 0;
        if cancelled {
            self.cancel_and_wait(target).await?;
        }
        self.skip_unread_body().await?;
        let mut out = BytesMut::new();
        if self.extended_open {
            frontend::sync(&mut out);
            self.pending_sync += 1;
            self.extended_open = false;
        }
        if !out.is_empty() {
            self.stream.write_all(&out).await?;
        }
        if cancelled {
            self.drain_cancelling(target).await?;
        } else {
            self.drain().await?;
        }
        if self.tx_status != b'I' {
            self.simple_query("ROLLBACK").await?;
        }
        if self.needs_discard {
            self.simple_query("DISCARD ALL").await?;
            self.applied.clear();
            self.prepared.clear();
            self.needs_discard = false;
        }
        if self.tx_status != b'I' {
            return Err(BackendError::Unexpected("reset"));
        }
        Ok(())
    }

    /// Cancels what runs on this connection and returns once the server has acted on the
    /// request. The connection must not be reused before: a cancel still on its way when
    /// the query ends by itself would hit the next client's query (57014). Acted on, it
    /// either interrupted the query it was meant for or reached an idle backend, which
    /// ignores it. Unconfirmed, the reset fails and the connection is closed.
    async fn cancel_and_wait(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        crate::cancel::cancel_and_wait(target, self.process_id, self.secret_key)
            .await
            .map_err(|e| {
                BackendError::from(std::io::Error::new(
                    e.kind(),
                    format!("cancel request before reuse not confirmed: {e}"),
                ))
            })
    }

    /// [`drain`](Self::drain) after a cancel, cancelling again while nothing comes: a cancel
    /// that reached the backend before it started the query (still reading it) is ignored
    /// by PostgreSQL, and the query would run on.
    async fn drain_cancelling(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        while self.pending_sync > 0 {
            // read_message only takes whole messages off the buffer: safe to time out.
            match tokio::time::timeout(RECANCEL_AFTER, self.read_message()).await {
                Ok(msg) => self.drained(msg?).await?,
                Err(_) => self.cancel_and_wait(target).await?,
            }
        }
        Ok(())
    }
    /// Drops the rest of a message the relay had forwarded in part.
    async fn skip_unread_body(&mut self) -> Result<(), BackendError> {
        while self.unread_body > 0 {
            if self.rbuf.is_empty() && self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(LinkError::Closed.into());
            }
            let n = self.unread_body.min(self.rbuf.len());
            bytes::Buf::advance(&mut self.rbuf, n);
            self.unread_body -= n;
        }
        Ok(())
    }

    /// Sends one simple query and waits for its ReadyForQuery; errors of the query itself
    /// are ignored (the caller checks the transaction status).
    pub async fn simple_query(&mut self, sql: &str) -> Result<(), BackendError> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)?;
        self.stream.write_all(&out).await?;
        self.pending_sync += 1;
        self.drain().await
    }

    /// Reads and drops messages until every sent Sync/Query has its ReadyForQuery.
    async fn drain(&mut self) -> Result<(), BackendError> {
        while self.pending_sync > 0 {
            let msg = self.read_message().await?;
            self.drained(msg).await?;
        }
        Ok(())
    }

    /// Accounts for one message read while draining.
    async fn drained(&mut self, msg: Message) -> Result<(), BackendError> {
        match msg {
            Message::ReadyForQuery(body) => {
                self.tx_status = body.status();
                self.pending_sync = self.pending_sync.saturating_sub(1);
            }
            Message::CopyInResponse(_) => {
                let mut out = BytesMut::new();
                frontend::copy_fail("client went away", &mut out)?;
                self.stream.write_all(&out).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The SCRAM exchange with the server: from the upstream's password, or from a client's
/// ClientKey (auth_query users).
enum ScramClient {
    Password(ScramSha256),
    Key(ClientKeyLogin),
}

fn password_of(target: &ServerTarget) -> Result<&str, BackendError> {
    match (&target.passthrough, &target.password) {
        (Some(p), _) => Err(passthrough_mismatch("a cleartext password", p)),
        (None, Some(pw)) => Ok(pw.expose()),
        (None, None) => Err(BackendError::NoPassword),
    }
}

fn passthrough_mismatch(asked: &'static str, have: &PassthroughLogin) -> BackendError {
    BackendError::PassthroughMismatch {
        asked,
        have: have.method(),
    }
}

fn scram_error(e: crate::auth::AuthError) -> BackendError {
    BackendError::Scram(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Asks the server for TLS when the target's sslmode says so (SSLRequest, then the
/// handshake); with `prefer`, a server that answers 'N' is used in plain text.
async fn negotiate_tls(mut tcp: TcpStream, target: &ServerTarget) -> Result<Stream, BackendError> {
    let mode = target.tls.mode;
    if mode == SslMode::Disable {
        return Ok(Stream::Plain(tcp));
    }
    let mut out = BytesMut::new();
    frontend::ssl_request(&mut out);
    tcp.write_all(&out).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => Ok(target.tls.connect(tcp).await.map_err(BackendError::Tls)?),
        b'N' if mode == SslMode::Prefer => Ok(Stream::Plain(tcp)),
        b'N' => Err(BackendError::TlsRefused),
        _ => Err(BackendError::Unexpected("TLS negotiation")),
    }
}

/// The fields of a server ErrorResponse that maitred shows or logs.
pub fn error_fields(body: &ErrorResponseBody) -> Result<ServerErrorFields, std::io::Error> {
    let mut f = ServerErrorFields {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    let mut it = body.fields();
    while let Some(field) = it.next()? {
        match field.type_() {
            b'S' => f.severity = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'C' => f.code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => f.message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    Ok(f)
}
