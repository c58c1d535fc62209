//! A client connection from accept to the end of login: SSL/GSS refusal, cancel requests,
//! routing by database, authentication, and the greeting (ParameterStatus, BackendKeyData,
//! ReadyForQuery). Then [`crate::relay`] takes over.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP>.

use crate::auth::scram::{ScramServer, MECHANISM};
use crate::auth::secret::ScramKeys;
use crate::auth::{md5, AuthError};
use crate::cancel::CancelRegistry;
use crate::codec::client_msgs::{self, tag};
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::codec::startup::{decode_startup, StartupPacket, StartupParams};
use crate::codec::{frame, CodecError};
use crate::error::SessionError;
use crate::errors_to_client::{checkout_error, sqlstate};
use crate::pool::{ClientAuth, PgPool};
use crate::relay::Relay;
use crate::tls::{ClientTls, Stream};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a client may take from connect to the end of authentication.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest message accepted during login (passwords, SASL messages).
const MAX_LOGIN_MESSAGE: usize = 8192;
/// Startup parameters that are about the connection itself, not session settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

/// The pools served on one listen address, found by the client's database name.
#[derive(Debug)]
pub struct Router {
    pub pools: Vec<Arc<PgPool>>,
    pub cancels: Arc<CancelRegistry>,
    /// TLS for clients of this listen address, if configured.
    pub tls: Option<ClientTls>,
}

impl Router {
    fn find(&self, database: &str) -> Option<&Arc<PgPool>> {
        self.pools.iter().find(|p| p.database == database)
    }
}

/// Serves one client connection to the end.
pub async fn serve_client(tcp: TcpStream, router: Arc<Router>) {
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(1024);
    let start = tokio::time::timeout(
        LOGIN_TIMEOUT,
        Box::pin(read_startup(Stream::Plain(tcp), &mut buf, &router)),
    )
    .await;
    let (mut stream, startup) = match start {
        Ok(Ok(Some(started))) => started,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client startup failed");
            return;
        }
        Err(_) => {
            tracing::debug!("client startup timed out");
            return;
        }
    };
    let login = tokio::time::timeout(
        LOGIN_TIMEOUT,
        Box::pin(login(&mut stream, &mut buf, &router, startup)),
    )
    .await;
    let (pool, params) = match login {
        Ok(Ok(Some(done))) => done,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client login failed");
            return;
        }
        Err(_) => {
            tracing::debug!("client login timed out");
            let mut o = BytesMut::new();
            fatal(
                &mut o,
                sqlstate::PROTOCOL_VIOLATION,
                "maitred: login timed out",
                None,
            );
            let _ = stream.write_all(&o).await;
            return;
        }
    };
    let cancel = router
        .cancels
        .register(pool.pool.manager().target().clone());
    tracing::Span::current().record("id", cancel.process_id);
    let mut greeting = BytesMut::new();
    let server_params = pool.pool.manager().server_params();
    for (k, v) in server_params.iter().flat_map(|p| p.iter()) {
        let shown = params.iter().find(|(ck, _)| ck == k).map(|(_, cv)| cv);
        out::parameter_status(&mut greeting, k, shown.unwrap_or(v));
    }
    out::backend_key_data(&mut greeting, cancel.process_id, cancel.secret_key);
    out::ready_for_query(&mut greeting, b'I');
    if stream.write_all(&greeting).await.is_ok() {
        let relay = Relay::new(stream, buf, pool.clone(), params, cancel.clone());
        if let Err(e) = Box::pin(relay.run()).await {
            tracing::debug!(pool = %pool.name, error = %e, "client session ended with an error");
        }
    }
    router.cancels.unregister(&cancel);
}

type LoggedIn = (Arc<PgPool>, Vec<(String, String)>);

/// Runs the startup phase. `Ok(None)`: the connection was only a cancel request or the client
/// went away; an error was already sent to the client where one is due.
/// Reads the startup packet, answering SSLRequest (upgrading to TLS when the listener has a
/// certificate) and GSSENCRequest ('N') on the way, and forwarding a CancelRequest.
async fn read_startup(
    mut stream: Stream,
    buf: &mut BytesMut,
    router: &Router,
) -> Result<Option<(Stream, StartupParams)>, SessionError> {
    loop {
        match decode_startup(buf) {
            Ok(Some(StartupPacket::SslRequest)) => {
                stream = match (&router.tls, stream) {
                    // Bytes sent before the handshake would be read as plain text: refuse.
                    (Some(tls), Stream::Plain(mut tcp)) if buf.is_empty() => {
                        tcp.write_all(b"S").await.map_err(SessionError::ClientIo)?;
                        let tls = tls
                            .acceptor
                            .accept(tcp)
                            .await
                            .map_err(SessionError::ClientIo)?;
                        Stream::FromClient(Box::new(tls))
                    }
                    (_, mut other) => {
                        write(&mut other, b"N").await?;
                        other
                    }
                };
            }
            Ok(Some(StartupPacket::GssEncRequest)) => write(&mut stream, b"N").await?,
            Ok(Some(StartupPacket::Cancel {
                process_id,
                secret_key,
            })) => {
                router.cancels.cancel(process_id, secret_key).await;
                return Ok(None);
            }
            Ok(Some(StartupPacket::Startup(p))) => {
                if router.tls.as_ref().is_some_and(|t| t.required) && !stream.is_tls() {
                    let mut o = BytesMut::new();
                    fatal(
                        &mut o,
                        sqlstate::INVALID_AUTHORIZATION,
                        "maitred: this listener requires TLS (connect with sslmode=require or stronger)",
                        None,
                    );
                    let _ = stream.write_all(&o).await;
                    return Ok(None);
                }
                return Ok(Some((stream, p)));
            }
            Ok(None) => {
                if stream.read_buf(buf).await.map_err(SessionError::ClientIo)? == 0 {
                    return Ok(None);
                }
            }
            Err(e) => {
                let mut o = BytesMut::new();
                fatal(
                    &mut o,
                    sqlstate::PROTOCOL_VIOLATION,
                    &format!("maitred: invalid startup packet: {e}"),
                    None,
                );
                let _ = stream.write_all(&o).await;
                return Err(e.into());
            }
        }
    }
}

async fn login(
    stream: &mut Stream,
    buf: &mut BytesMut,
    router: &Router,
    startup: StartupParams,
) -> Result<Option<LoggedIn>, SessionError> {
    negotiate_version(stream, &startup).await?;
    let Some(user) = startup.user().map(str::to_owned) else {
        return reject(
            stream,
            sqlstate::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
    };
    let database = startup.database().unwrap_or_default().to_owned();
    let Some(pool) = router.find(&database).cloned() else {
        return reject(
            stream,
            sqlstate::INVALID_CATALOG_NAME,
            &format!("database \"{database}\" does not exist"),
        )
        .await;
    };
    tracing::Span::current().record("pool", pool.name.as_str());
    pool.counters
        .clients_accepted
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = authenticate(stream, buf, &pool, &user).await {
        pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        if matches!(e, SessionError::Auth(_)) {
            tracing::info!(pool = %pool.name, user = %user, "client authentication failed");
            let msg = format!("password authentication failed for user \"{user}\"");
            return reject(stream, sqlstate::INVALID_PASSWORD, &msg).await;
        }
        return Err(e);
    }
    // Clients are shown the settings of a real server connection: open one if none was yet.
    if pool.pool.manager().server_params().is_none() {
        if let Err(e) = pool.pool.checkout().await {
            let mut o = BytesMut::new();
            checkout_error(&mut o, &e, Severity::Fatal);
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
    }
    let settings: Vec<(String, String)> = startup
        .params
        .into_iter()
        .filter(|(k, _)| !NOT_SETTINGS.contains(&k.as_str()) && !k.starts_with("_pq_."))
        .collect();
    let mut o = BytesMut::new();
    out::authentication_ok(&mut o);
    write(stream, &o).await?;
    Ok(Some((pool, settings)))
}

/// Answers a 3.x startup with a minor version we do not speak, or `_pq_.` options, with
/// NegotiateProtocolVersion (we speak 3.0).
async fn negotiate_version(stream: &mut Stream, p: &StartupParams) -> Result<(), SessionError> {
    let unknown: Vec<&str> = p
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if p.minor_version > 0 || !unknown.is_empty() {
        let mut o = BytesMut::new();
        out::negotiate_protocol_version(&mut o, 0, &unknown);
        write(stream, &o).await?;
    }
    Ok(())
}

async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    pool: &PgPool,
    user: &str,
) -> Result<(), SessionError> {
    let creds = pool.credentials(user);
    let mut o = BytesMut::new();
    match pool.client_auth {
        ClientAuth::Trust => {
            // With no user list, any user name may log in; with one, only those users.
            if creds.is_none() && pool.has_users() {
                return Err(AuthError::WrongPassword.into());
            }
            Ok(())
        }
        ClientAuth::Md5 => {
            let salt: [u8; 4] = rand::random();
            out::authentication_md5(&mut o, salt);
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let answer = client_msgs::password_text(&msg)?;
            match creds.and_then(|c| c.md5_hash.as_deref()) {
                Some(hash) if md5::verify(hash, salt, answer) => Ok(()),
                _ => Err(AuthError::WrongPassword.into()),
            }
        }
        ClientAuth::ScramSha256 => {
            out::authentication_sasl(&mut o, &[MECHANISM]);
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let initial = client_msgs::sasl_initial(&msg)?;
            if initial.mechanism != MECHANISM {
                return Err(AuthError::MalformedScram("unsupported mechanism").into());
            }
            // Unknown users (or users with only an md5 hash) go through the same exchange
            // with keys nobody has, and fail at the same step.
            let known = creds.and_then(|c| c.scram.clone());
            let keys = known.clone().unwrap_or_else(ScramKeys::unknown_user);
            let (server, first) = ScramServer::start(keys, initial.data)?;
            o.clear();
            out::authentication_sasl_continue(&mut o, first.as_bytes());
            write(stream, &o).await?;
            let msg = read_login_message(stream, buf).await?;
            let fin = server.finish(client_msgs::password_payload(&msg))?;
            if known.is_none() {
                return Err(AuthError::WrongPassword.into());
            }
            o.clear();
            out::authentication_sasl_final(&mut o, fin.as_bytes());
            write(stream, &o).await?;
            Ok(())
        }
    }
}

/// Reads one password/SASL message ('p') during login.
async fn read_login_message(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<BytesMut, SessionError> {
    loop {
        if let Some((t, len)) = frame::peek_header(buf, MAX_LOGIN_MESSAGE)? {
            if t != tag::PASSWORD {
                return Err(CodecError::UnexpectedTag {
                    tag: t as char,
                    phase: "authentication",
                }
                .into());
            }
            if buf.len() >= len {
                return Ok(buf.split_to(len));
            }
        }
        if stream.read_buf(buf).await.map_err(SessionError::ClientIo)? == 0 {
            return Err(SessionError::ClientIo(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
    }
}

async fn write(stream: &mut Stream, bytes: &[u8]) -> Result<(), SessionError> {
    stream
        .write_all(bytes)
        .await
        .map_err(SessionError::ClientIo)
}

fn fatal(o: &mut BytesMut, code: &str, message: &str, hint: Option<&str>) {
    out::error_response(
        o,
        &ErrorFields {
            severity: Severity::Fatal,
            code,
            message,
            detail: None,
            hint,
        },
    );
}

/// Sends a FATAL error and ends the login.
async fn reject(
    stream: &mut Stream,
    code: &str,
    message: &str,
) -> Result<Option<LoggedIn>, SessionError> {
    let mut o = BytesMut::new();
    fatal(&mut o, code, message, None);
    let _ = stream.write_all(&o).await;
    Ok(None)
}
