//! A client connection from accept to the end of login: SSL/GSS refusal, cancel requests,
//! routing by database, authentication, and the greeting (ParameterStatus, BackendKeyData,
//! ReadyForQuery). Then [`crate::relay`] takes over.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP>.

use crate::admin_console;
use crate::auth::scram::{ScramServer, MECHANISM};
use crate::auth::secret::{unknown_user_keys, Credentials};
use crate::auth::{md5, AuthError};
use crate::cancel::CancelRegistry;
use crate::codec::client_msgs::{self, tag};
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::codec::startup::{decode_startup, StartupPacket, StartupParams};
use crate::codec::{frame, CodecError};
use crate::error::{BackendError, ServerErrorFields, SessionError};
use crate::errors_to_client::{checkout_error, sqlstate};
use crate::pool::{ClientAuth, PgPool, PoolMode};
use crate::relay::Relay;
use crate::startup_params::{self, options::OptionsError, ResolveError};
use crate::tls::{ClientTls, Stream};
use bytes::BytesMut;
use maitred_admin::{Admin, ClientIdentity};
use maitred_frontend::admission;
use maitred_pool::CheckoutError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Time allowed, past the login deadline, to tell a late client why it is closed.
const LOGIN_GRACE: Duration = Duration::from_secs(1);
/// Largest message accepted during login (passwords, SASL messages).
const MAX_LOGIN_MESSAGE: usize = 8192;

/// The pools served on one listen address, found by the client's database name.
#[derive(Debug)]
pub struct Router {
    pub pools: Vec<Arc<PgPool>>,
    /// The admin console, reached through the virtual databases `maitred` and `pgbouncer`
    /// while admin users are configured.
    pub console: Option<Arc<Admin>>,
    pub cancels: Arc<CancelRegistry>,
    /// TLS for clients of this listen address, if configured.
    pub tls: Option<ClientTls>,
}

impl Router {
    /// The longest `client_login_timeout` of this address's pools: a client is routed to
    /// its pool only by its startup packet.
    fn login_timeout(&self) -> Duration {
        admission::login_timeout(self.pools.iter().map(|p| &p.limits))
    }

    /// The pool of `database`: a pool named for it (one of a `database = "*"` pool's own
    /// database last), else the address's `*` pool, [`Route::Create`].
    pub fn find(&self, database: &str) -> Option<Route> {
        let named = |wildcard: bool| {
            self.pools
                .iter()
                .find(|p| p.databases.is_some() == wildcard && p.database == database)
        };
        if let Some(pool) = named(false).or_else(|| named(true)) {
            return Some(Route::Pool(pool.clone()));
        }
        let wildcard = self.pools.iter().find(|p| p.databases.is_some())?;
        Some(Route::Create(wildcard.clone()))
    }
}

/// Where a client's database name leads.
#[derive(Debug, Clone)]
pub enum Route {
    /// A configured pool.
    Pool(Arc<PgPool>),
    /// A database of this `*` pool's server without a configured pool: its login is
    /// checked by this pool, then it is served by a pool of its own
    /// ([`crate::databases`]).
    Create(Arc<PgPool>),
}

/// Serves one client connection to the end. The task keeps little while its client is
/// idle: the login runs in a future of its own on the heap, freed once the client is
/// greeted, and the relay keeps its large futures boxed while the client is busy.
pub async fn serve_client(tcp: TcpStream, router: Arc<Router>) {
    let login = boxed_log_in(tcp, &router);
    let Some(greeted) = login.await else {
        return;
    };
    let Greeted {
        relay,
        cancel,
        slot,
        guards,
    } = greeted;
    if let Err(e) = relay.run().await {
        tracing::debug!(error = %e, "client session ended with an error");
    }
    router.cancels.unregister(&cancel);
    drop((slot, guards));
}

/// [`log_in`] on the heap. (A plain function: a future boxed inside an `.await`
/// expression still takes room in the caller's future, as a temporary of that statement.)
fn boxed_log_in<'a>(
    tcp: TcpStream,
    router: &'a Arc<Router>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Greeted>> + Send + 'a>> {
    Box::pin(log_in(tcp, router))
}

/// A client logged in and greeted: its session, and what it holds until it leaves.
struct Greeted {
    relay: Box<Relay>,
    cancel: Arc<crate::cancel::CancelHandle>,
    /// Its place under its pool's max_clients.
    slot: Option<maitred_pool::ClientSlot>,
    /// Its places in pools created for it (its database's, its auth_query user's).
    guards: Guards,
}

/// From accept to the greeting: startup, routing, authentication, the session-mode lease,
/// the greeting. `None`: the client is gone or was told why not (or was a cancel request,
/// or the admin console's, served here).
async fn log_in(tcp: TcpStream, router: &Arc<Router>) -> Option<Greeted> {
    let _ = tcp.set_nodelay(true);
    // Until the greeting is out: a draining process waits for it (shutdown.rs).
    let logging_in = crate::shutdown::LoginInProgress::new();
    let peer = tcp.peer_addr().ok();
    let mut buf = BytesMut::with_capacity(1024);
    let login_timeout = router.login_timeout();
    let deadline = tokio::time::Instant::now() + login_timeout;
    // read_startup answers a client silent past the deadline itself; this bounds the rest
    // (a stalled TLS handshake).
    let start = tokio::time::timeout_at(
        deadline + LOGIN_GRACE,
        Box::pin(read_startup(Stream::Plain(tcp), &mut buf, router, deadline)),
    )
    .await;
    let (mut stream, startup) = match start {
        Ok(Ok(Some((stream, startup))))
            if router
                .console
                .as_ref()
                .is_some_and(|a| a.console().is_enabled())
                && admin_console::is_console_database(startup.database().unwrap_or_default()) =>
        {
            if let Some(admin) = router.console.clone() {
                Box::pin(admin_console::serve(
                    stream,
                    buf,
                    startup,
                    admin,
                    login_timeout,
                ))
                .await;
            }
            return None;
        }
        Ok(Ok(Some(started))) => started,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client startup failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("client startup timed out");
            return None;
        }
    };
    // This client's place under its pool's max_clients, held until it leaves.
    let mut slot = None;
    let login = tokio::time::timeout_at(
        deadline,
        Box::pin(login(&mut stream, &mut buf, router, startup, &mut slot)),
    )
    .await;
    let (pool, params, user, guards) = match login {
        Ok(Ok(Some(done))) => done,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client login failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("client login timed out");
            let mut o = BytesMut::new();
            crate::limits::login_timeout(&mut o, login_timeout);
            let _ = tokio::time::timeout(LOGIN_GRACE, stream.write_all(&o)).await;
            return None;
        }
    };
    // Session mode: the client's server connection for its whole session, leased now so
    // that the client is told the server's own process id.
    let session_lease = if pool.mode == PoolMode::Session {
        match pool.pool.checkout().await {
            Ok(lease) => Some(lease),
            Err(e) => {
                let mut o = BytesMut::new();
                checkout_error(&mut o, &e, Severity::Fatal);
                let _ = stream.write_all(&o).await;
                return None;
            }
        }
    } else {
        None
    };
    let cancel = router.cancels.register(
        pool.pool.manager().target().clone(),
        session_lease.as_ref().map(|l| l.process_id),
    );
    tracing::Span::current().record("id", cancel.id);
    let mut greeting = BytesMut::new();
    let server_params = pool.pool.manager().server_params();
    for (k, v) in server_params.iter().flat_map(|p| p.iter()) {
        // The client's value as the server spells it (`startup_params`); names are
        // case-insensitive, and the last of a name wins.
        let shown = params
            .iter()
            .rev()
            .find(|(ck, _)| ck.eq_ignore_ascii_case(k))
            .map(|(_, cv)| cv);
        out::parameter_status(&mut greeting, k, shown.unwrap_or(v));
    }
    out::backend_key_data(&mut greeting, cancel.process_id, cancel.secret_key);
    out::ready_for_query(&mut greeting, b'I');
    let greeted = stream.write_all(&greeting).await.is_ok();
    drop(logging_in);
    if !greeted {
        router.cancels.unregister(&cancel);
        return None;
    }
    let ticket = pool.clients.register(ClientIdentity {
        user,
        database: pool.database.clone(),
        addr: peer,
        tls: stream.is_tls(),
    });
    let relay = Box::new(Relay::new(
        stream,
        buf,
        pool.clone(),
        params,
        cancel.clone(),
        ticket,
        session_lease,
    ));
    Some(Greeted {
        relay,
        cancel,
        slot,
        guards,
    })
}

/// The client's pool, startup settings and user name, and its places (held for the whole
/// session) in the pool created for its database and in its auth_query user's pool.
type LoggedIn = (Arc<PgPool>, Vec<(String, String)>, String, Guards);

#[derive(Debug, Default)]
struct Guards {
    _database: Option<crate::databases::DatabaseGuard>,
    _user: Option<crate::auth_query::user_pools::UserPoolGuard>,
}

/// Runs the startup phase. `Ok(None)`: the connection was only a cancel request or the client
/// went away; an error was already sent to the client where one is due.
/// Reads the startup packet, answering SSLRequest (upgrading to TLS when the listener has a
/// certificate) and GSSENCRequest ('N') on the way, and forwarding a CancelRequest.
async fn read_startup(
    mut stream: Stream,
    buf: &mut BytesMut,
    router: &Router,
    deadline: tokio::time::Instant,
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
                let Ok(read) = tokio::time::timeout_at(deadline, stream.read_buf(buf)).await else {
                    tracing::debug!("client sent no startup packet within client_login_timeout");
                    let mut o = BytesMut::new();
                    crate::limits::login_timeout(&mut o, router.login_timeout());
                    let _ = stream.write_all(&o).await;
                    return Ok(None);
                };
                if read.map_err(SessionError::ClientIo)? == 0 {
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
    slot: &mut Option<maitred_pool::ClientSlot>,
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
    let (pool, create) = match router.find(&database) {
        Some(Route::Pool(pool)) => (pool, false),
        Some(Route::Create(pool)) => (pool, true),
        None => {
            return reject(
                stream,
                sqlstate::INVALID_CATALOG_NAME,
                &format!("database \"{database}\" does not exist"),
            )
            .await;
        }
    };
    tracing::Span::current().record("pool", pool.name.as_str());
    let Some(admitted) = admission::admit(&pool.client_count, &pool.name, &pool.limits) else {
        let mut o = BytesMut::new();
        crate::limits::too_many_clients(&mut o, &pool.name, pool.limits.max_clients);
        let _ = stream.write_all(&o).await;
        return Ok(None);
    };
    *slot = Some(admitted);
    pool.counters
        .clients_accepted
        .fetch_add(1, Ordering::Relaxed);
    let mut passthrough = None;
    let authenticated = match (&pool.auth_query, pool.credentials(&user)) {
        (Some(aq), None) => {
            match crate::auth_query::login::authenticate(stream, buf, pool.client_auth, aq, &user)
                .await
            {
                Ok(Ok(login)) => {
                    passthrough = Some(login);
                    Ok(())
                }
                Ok(Err(e)) => {
                    pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
                    // The reason (server address, server error text) is for the operator's
                    // log only; the client, not logged in, learns nothing about the upstream.
                    tracing::warn!(pool = %pool.name, user = %user, error = %e, "auth_query lookup failed");
                    let msg = crate::auth_query::lookup::failed_lookup_message(&user);
                    return reject(stream, sqlstate::CONNECTION_FAILURE, &msg).await;
                }
                Err(e) => Err(e),
            }
        }
        _ => authenticate(stream, buf, &pool, &user).await,
    };
    if let Err(e) = authenticated {
        pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        if matches!(e, SessionError::Auth(_)) {
            tracing::info!(pool = %pool.name, user = %user, "client authentication failed");
            let msg = format!("password authentication failed for user \"{user}\"");
            return reject(stream, sqlstate::INVALID_PASSWORD, &msg).await;
        }
        return Err(e);
    }
    let mut guards = Guards::default();
    // A database of a `*` pool without a pool of its own: its pool, created on first use.
    let pool = match pool.databases.as_ref().filter(|_| create) {
        Some(databases) => match databases.enter(&database) {
            Ok((created, guard)) => {
                guards._database = Some(guard);
                created
            }
            Err(e) => {
                tracing::warn!(pool = %pool.name, error = %e, "no pool for a client's database");
                return reject(stream, sqlstate::TOO_MANY_CONNECTIONS, &e.to_string()).await;
            }
        },
        None => pool,
    };
    // An auth_query user is served by its own pool, logged in to the server as that user.
    let pool = match (passthrough, &pool.auth_query) {
        (Some(login), Some(aq)) => {
            let (user_pool, guard) = aq.users.enter(&user, login)?;
            guards._user = Some(guard);
            user_pool
        }
        _ => pool,
    };
    // Clients are shown the settings of a real server connection: open one if none was yet.
    if pool.pool.manager().server_params().is_none() {
        if let Err(e) = pool.pool.checkout().await {
            let mut o = BytesMut::new();
            match server_refusal(&e).filter(|_| create) {
                // A created pool's database: the server's own words ("database \"x\" does
                // not exist", 3D000; no CONNECT privilege, 42501), as straight to it.
                Some(f) => fatal(&mut o, &f.code, &f.message, None),
                None => checkout_error(&mut o, &e, Severity::Fatal),
            }
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
    }
    let mut o = BytesMut::new();
    out::authentication_ok(&mut o);
    write(stream, &o).await?;
    // As the server: logged in first, then the startup settings are applied (the `options`
    // switches first), and a bad one ends the login after AuthenticationOk.
    let requested = match startup_params::requested(&startup) {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                OptionsError::NoValue(_) => sqlstate::SYNTAX_ERROR,
                OptionsError::Unsupported(_) => sqlstate::FEATURE_NOT_SUPPORTED,
            };
            return reject(stream, code, &e.to_string()).await;
        }
    };
    let settings = match startup_params::resolve(&pool, &requested).await {
        Ok(Ok(settings)) => settings,
        Ok(Err(refusal)) => {
            tracing::debug!(pool = %pool.name, code = %refusal.code, "a startup setting was refused by the server");
            o.clear();
            refusal.write_fatal(&mut o);
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
        Err(ResolveError::Checkout(e)) => {
            o.clear();
            checkout_error(&mut o, &e, Severity::Fatal);
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(pool = %pool.name, error = %e, "could not check a client's startup settings");
            let msg = format!(
                "maitred: pool \"{}\" could not check the startup parameters with the server",
                pool.name
            );
            return reject(stream, sqlstate::CONNECTION_FAILURE, &msg).await;
        }
    };
    Ok(Some((pool, settings, user, guards)))
}

/// The server's ErrorResponse, when opening a server connection failed on one.
fn server_refusal(e: &CheckoutError<BackendError>) -> Option<&ServerErrorFields> {
    match e {
        CheckoutError::Connect {
            source: BackendError::Server(fields),
            ..
        } => Some(fields),
        _ => None,
    }
}

/// Answers a 3.x startup with a minor version we do not speak, or `_pq_.` options, with
/// NegotiateProtocolVersion (we speak 3.0).
pub(crate) async fn negotiate_version(
    stream: &mut Stream,
    p: &StartupParams,
) -> Result<(), SessionError> {
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
    authenticate_user(
        stream,
        buf,
        pool.client_auth,
        user,
        creds.as_deref(),
        pool.has_users(),
    )
    .await
}

/// Runs the authentication exchange of `auth` for `user`, whose credentials are `creds`
/// (None: unknown user, who fails like a wrong password, after a SCRAM exchange with the
/// same salt at every attempt). Also used by the admin console.
pub(crate) async fn authenticate_user(
    stream: &mut Stream,
    buf: &mut BytesMut,
    auth: ClientAuth,
    user: &str,
    creds: Option<&Credentials>,
    has_users: bool,
) -> Result<(), SessionError> {
    let mut o = BytesMut::new();
    match auth {
        ClientAuth::Trust => {
            // With no user list, any user name may log in; with one, only those users.
            if creds.is_none() && has_users {
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
            let keys = known.clone().unwrap_or_else(|| unknown_user_keys(user));
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
pub(crate) async fn read_login_message(
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

pub(crate) async fn write(stream: &mut Stream, bytes: &[u8]) -> Result<(), SessionError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle client costs its task's future and its boxed session (docs/benchmarks.md,
    /// "Memory per idle client"). The future holds the login only as a pointer, and the
    /// session only boxed: a future inlined by mistake (an async fn keeps its arguments
    /// twice; a future boxed inside an `.await` expression stays a temporary of it) would
    /// multiply what every idle client costs.
    #[tokio::test]
    async fn a_client_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let router = Arc::new(Router {
            pools: vec![],
            console: None,
            cancels: Default::default(),
            tls: None,
        });
        let task = serve_client(tcp, router);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "the client task's future is {size} bytes");
        assert!(std::mem::size_of::<Relay>() <= 1024);
    }
}
