//! A client connection from accept to the end of login: maitred's own Handshake v10 (its
//! own connection id and 20-byte scramble), TLS if the client asks (CLIENT_SSL), the
//! client's handshake response, password check (mysql_native_password,
//! caching_sha2_password fast path or full authentication, or an auth switch to
//! mysql_native_password for any other plugin), routing to a pool. Then [`crate::relay`]
//! takes over.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html>.

use crate::auth::{self, AuthError};
use crate::backend::{ServerInfo, DEFAULT_COLLATION};
use crate::clients::ClientRegistry;
use crate::codec::packets::{self, OkInfo};
use crate::codec::{cap, frame, status, CodecError};
use crate::error::SessionError;
use crate::errors_to_client::{checkout_error, code};
use crate::pool::MysqlPool;
use crate::relay::{ClientSession, Relay};
use crate::tls::{ClientTls, Stream};
use bytes::{Buf, BytesMut};
use maitred_admin::ClientIdentity;
use maitred_frontend::admission;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod caching_sha2;

/// ER_SECURE_TRANSPORT_REQUIRED: a plain client of a listener with `tls_required`.
const SECURE_TRANSPORT_REQUIRED: u16 = 3159;

/// Largest packet accepted during login.
const MAX_LOGIN_PACKET: usize = 64 * 1024;
/// Shown as the server version until a server connection reported the real one.
const FALLBACK_VERSION: &str = "5.5.5-10.11.0-maitred";

/// maitred's own connection ids, shown to clients (never the server's), start here: far
/// above the thread ids a server hands out (from 1), so that `KILL <id>` can tell a
/// maitred id from a server thread id seen in `SHOW PROCESSLIST`; below 2^31 for clients
/// that read the id as a signed int32.
pub const FIRST_CONNECTION_ID: u32 = 1 << 30;
static NEXT_CONNECTION_ID: AtomicU32 = AtomicU32::new(0);

fn next_connection_id() -> u32 {
    const SPAN: u32 = i32::MAX as u32 - FIRST_CONNECTION_ID + 1;
    FIRST_CONNECTION_ID + NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed) % SPAN
}

/// The pools served on one listen address, found by the client's database name.
#[derive(Debug)]
pub struct Router {
    pub pools: Vec<Arc<MysqlPool>>,
    /// Every client of the process (shared by all routers), for KILL.
    pub clients: Arc<ClientRegistry>,
    /// TLS for clients that ask (CLIENT_SSL), when the address has a certificate.
    pub tls: Option<ClientTls>,
}

impl Router {
    /// The longest `client_login_timeout` of this address's pools: a client is routed to
    /// its pool only by its handshake response.
    fn login_timeout(&self) -> Duration {
        admission::login_timeout(self.pools.iter().map(|p| &p.limits))
    }

    /// The pool whose database the client asked for; else the `database = "*"` pool, or
    /// with one pool that pool (the client's database then becomes its current database,
    /// once the server has let it select it: [`check_database`]).
    pub fn find(&self, database: Option<&str>) -> Option<&Arc<MysqlPool>> {
        if let Some(db) = database {
            if let Some(p) = self
                .pools
                .iter()
                .find(|p| p.database.as_deref() == Some(db))
            {
                return Some(p);
            }
            if let Some(p) = self.pools.iter().find(|p| p.any_database) {
                return Some(p);
            }
        }
        if self.pools.len() == 1 {
            return self.pools.first();
        }
        self.pools.iter().find(|p| p.database.is_none())
    }
}

/// Serves one client connection to the end. The task keeps little while its client is
/// idle: the login runs in a future of its own on the heap, freed once the client is in,
/// and the relay keeps its large futures boxed while the client is busy.
pub async fn serve_client(tcp: TcpStream, peer: SocketAddr, router: Arc<Router>) {
    let connection_id = next_connection_id();
    tracing::Span::current().record("id", connection_id);
    // This client's place under its pool's max_clients, held until it leaves.
    let mut slot = None;
    let login = boxed_log_in(tcp, peer, &router, connection_id, &mut slot);
    if let Some(relay) = login.await {
        if let Err(e) = relay.run().await {
            tracing::debug!(error = %e, "client session ended with an error");
        }
    }
    router.clients.unregister(connection_id);
    drop(slot);
}

/// [`log_in`] on the heap. (A plain function: a future boxed inside an `.await`
/// expression still takes room in the caller's future, as a temporary of that statement.)
fn boxed_log_in<'a>(
    tcp: TcpStream,
    peer: SocketAddr,
    router: &'a Arc<Router>,
    connection_id: u32,
    slot: &'a mut Option<maitred_pool::ClientSlot>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Box<Relay>>> + Send + 'a>> {
    Box::pin(log_in(tcp, peer, router, connection_id, slot))
}

/// From accept to the client's session: the handshake, TLS, authentication. `None`: the
/// client is gone or was told why not.
async fn log_in(
    tcp: TcpStream,
    peer: SocketAddr,
    router: &Arc<Router>,
    connection_id: u32,
    slot: &mut Option<maitred_pool::ClientSlot>,
) -> Option<Box<Relay>> {
    let _ = tcp.set_nodelay(true);
    // `None` only while (or after a failed) TLS handshake replaces the plain socket.
    let mut stream = Some(Stream::Plain(tcp));
    let mut buf = BytesMut::with_capacity(1024);
    let login_timeout = router.login_timeout();
    // The drain lets a login under way finish rather than cut it.
    let logging_in = maitred_pool::shutdown::LoginInProgress::new();
    let login = tokio::time::timeout(
        login_timeout,
        login(&mut stream, &mut buf, router, connection_id, peer, slot),
    )
    .await;
    drop(logging_in);
    let session = match login {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client login failed");
            return None;
        }
        Err(_) => {
            let mut o = BytesMut::new();
            crate::limits::login_timeout(&mut o, 2, login_timeout);
            if let Some(stream) = stream.as_mut() {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&o)).await;
            }
            return None;
        }
    };
    let stream = stream?;
    Some(Box::new(Relay::new(stream, buf, session)))
}

/// Learns what the server looks like (version, capabilities), opening a connection the
/// first time.
async fn server_info(pool: &MysqlPool) -> Result<Arc<ServerInfo>, BytesMut> {
    if let Some(info) = pool.pool.manager().server_info() {
        return Ok(info);
    }
    match pool.pool.checkout().await {
        Ok(lease) => Ok(Arc::new(lease.info.clone())),
        Err(e) => {
            let mut o = BytesMut::new();
            checkout_error(&mut o, 0, &e);
            Err(o)
        }
    }
}

async fn login(
    conn: &mut Option<Stream>,
    buf: &mut BytesMut,
    router: &Router,
    connection_id: u32,
    peer: SocketAddr,
    slot: &mut Option<maitred_pool::ClientSlot>,
) -> Result<Option<ClientSession>, SessionError> {
    let Some(first_pool) = router.pools.first() else {
        return Ok(None);
    };
    let Some(stream) = conn.as_mut() else {
        return Ok(None);
    };
    let info = match server_info(first_pool).await {
        Ok(i) => i,
        Err(o) => {
            let _ = stream.write_all(&o).await;
            return Ok(None);
        }
    };
    let mut caps = cap::SUPPORTED & info.capabilities;
    if router.tls.is_some() {
        caps |= cap::SSL;
    }
    let scramble = auth::new_scramble();
    let collation = if info.collation == 0 {
        DEFAULT_COLLATION
    } else {
        info.collation
    };
    let version = if info.version.is_empty() {
        FALLBACK_VERSION
    } else {
        info.version.as_str()
    };
    let greeting = packets::greeting(
        version,
        connection_id,
        &scramble,
        caps,
        collation,
        auth::NATIVE,
    );
    let mut o = BytesMut::new();
    frame::write_packet(&mut o, 0, &greeting);
    write(stream, &o).await?;

    let (mut seq, mut payload) = read_first_packet(stream, buf).await?;
    if packets::is_ssl_request(&payload) {
        // The TLS handshake follows at once (clients send it without waiting); the real
        // handshake response comes inside.
        let (Some(tls), true) = (&router.tls, buf.is_empty()) else {
            return reject(
                stream,
                2,
                1043,
                "08S01",
                "maitred: bad handshake: TLS is not offered",
            )
            .await;
        };
        let Some(Stream::Plain(tcp)) = conn.take() else {
            return Ok(None);
        };
        *conn = Some(tls.accept(tcp).await.map_err(SessionError::ClientIo)?);
        let Some(s) = conn.as_mut() else {
            return Ok(None);
        };
        (seq, payload) = read_packet(s, buf, 2).await?;
    }
    let Some(stream) = conn.as_mut() else {
        return Ok(None);
    };
    if router.tls.as_ref().is_some_and(|t| t.required) && !stream.is_tls() {
        let msg = "Connections using insecure transport are prohibited: this maitred listener requires TLS (tls_required); connect with SSL";
        return reject(
            stream,
            seq.wrapping_add(1),
            SECURE_TRANSPORT_REQUIRED,
            "HY000",
            msg,
        )
        .await;
    }
    let hello = match packets::parse_client_hello(&payload) {
        Ok(h) => h,
        Err(e) => {
            let mut o = BytesMut::new();
            packets::write_err(
                &mut o,
                seq.wrapping_add(1),
                1043,
                "08S01",
                &format!("maitred: bad handshake: {e}"),
            );
            let _ = stream.write_all(&o).await;
            return Err(e.into());
        }
    };
    let Some(pool) = router.find(hello.database.as_deref()).cloned() else {
        let msg = format!(
            "Unknown database '{}'",
            hello.database.as_deref().unwrap_or("")
        );
        return reject(stream, seq.wrapping_add(1), code::BAD_DB, "42000", &msg).await;
    };
    tracing::Span::current().record("pool", pool.name.as_str());
    let Some(admitted) = admission::admit(&pool.client_count, &pool.name, &pool.limits) else {
        let mut o = BytesMut::new();
        crate::limits::too_many_clients(
            &mut o,
            seq.wrapping_add(1),
            &pool.name,
            pool.limits.max_clients,
        );
        let _ = stream.write_all(&o).await;
        return Ok(None);
    };
    *slot = Some(admitted);
    pool.counters
        .clients_accepted
        .fetch_add(1, Ordering::Relaxed);
    let mut next = seq.wrapping_add(1);
    let client_plugin = hello
        .auth_plugin
        .clone()
        .unwrap_or_else(|| auth::NATIVE.to_vec());
    let password = pool.password(&hello.user);
    let check = |plugin: &[u8], answer: &[u8]| -> Result<(), AuthError> {
        if !pool.check_passwords {
            return if pool.has_users() && password.is_none() {
                Err(AuthError::WrongPassword)
            } else {
                Ok(())
            };
        }
        // Unknown users go through the same check with a password nobody has.
        let (pw, known) = match password.as_deref() {
            Some(p) => (p.as_bytes(), true),
            None => (&b"\x01maitred-unknown-user"[..], false),
        };
        let r = auth::verify(plugin, &scramble, pw, answer);
        if r.is_ok() && !known {
            return Err(AuthError::WrongPassword);
        }
        r
    };
    let result = if client_plugin == auth::NATIVE {
        check(auth::NATIVE, &hello.auth_response)
    } else if client_plugin == auth::CACHING_SHA2 {
        let sha2 = caching_sha2::Sha2Login {
            pool: &pool,
            user: &hello.user,
            password: password.as_deref().map(str::as_bytes),
            scramble: &scramble,
            answer: &hello.auth_response,
        };
        let (r, n) = sha2
            .run(stream, buf, next, |answer| {
                check(auth::CACHING_SHA2, answer)
            })
            .await?;
        next = n;
        r
    } else {
        // Any other plugin: switch the client to mysql_native_password.
        let mut o = BytesMut::new();
        frame::write_packet(&mut o, next, &packets::auth_switch(auth::NATIVE, &scramble));
        write(stream, &o).await?;
        let (s, answer) = read_packet(stream, buf, next.wrapping_add(1)).await?;
        next = s.wrapping_add(1);
        check(auth::NATIVE, &answer)
    };
    if let Err(e) = result {
        pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pool = %pool.name, user = %hello.user, error = %e, "client authentication failed");
        let using = if hello.auth_response.is_empty() {
            "NO"
        } else {
            "YES"
        };
        let msg = format!(
            "Access denied for user '{}'@'{}' (using password: {using})",
            hello.user,
            peer.ip()
        );
        return reject(stream, next, code::ACCESS_DENIED, "28000", &msg).await;
    }
    if let Some(db) = hello.database.as_deref() {
        if pool.database.as_deref() != Some(db) {
            if let Some(refused) = check_database(&pool, db).await {
                let mut o = BytesMut::new();
                match refused {
                    Refused::Server(e) => {
                        packets::write_err(&mut o, next, e.code, &e.sqlstate, &e.message)
                    }
                    Refused::Checkout(e) => checkout_error(&mut o, next, &e),
                }
                let _ = stream.write_all(&o).await;
                return Ok(None);
            }
        }
    }
    let database = hello.database.clone().or_else(|| pool.database.clone());
    let mut o = BytesMut::new();
    packets::write_ok(
        &mut o,
        next,
        &OkInfo {
            affected_rows: 0,
            last_insert_id: 0,
            status: status::AUTOCOMMIT,
            warnings: 0,
        },
    );
    write(stream, &o).await?;
    let ticket = pool.clients.register(ClientIdentity {
        user: hello.user.clone(),
        database: database.clone().unwrap_or_default(),
        addr: Some(peer),
        tls: stream.is_tls(),
    });
    let handle = router
        .clients
        .register(connection_id, &pool.name, &hello.user);
    Ok(Some(ClientSession {
        ticket,
        pool,
        connection_id,
        capabilities: hello.capabilities & caps,
        collation: hello.collation,
        database,
        handle,
        clients: router.clients.clone(),
    }))
}

/// Why a client's database was refused at login.
enum Refused {
    /// The server's ERR (1049 Unknown database, 1044 access denied...).
    Server(packets::ErrInfo),
    Checkout(maitred_pool::CheckoutError<crate::error::BackendError>),
}

/// As the server does at login: a database the client names must exist and be open to
/// it. Asked of the server (COM_INIT_DB on a pool connection, which keeps it selected:
/// the relay selects each client's database on the connection it leases anyway); the
/// pool's own database needs no asking. `None`: selected.
async fn check_database(pool: &MysqlPool, db: &str) -> Option<Refused> {
    let mut lease = match pool.pool.checkout().await {
        Ok(lease) => lease,
        Err(e) => return Some(Refused::Checkout(e)),
    };
    match lease.init_db(db).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Refused::Server(e)),
        Err(e) => {
            lease.discard();
            Some(Refused::Server(packets::ErrInfo {
                code: code::UNKNOWN_ERROR,
                sqlstate: "HY000".to_owned(),
                message: format!(
                    "maitred: pool \"{}\" lost its server connection while selecting the database: {e}",
                    pool.name
                ),
            }))
        }
    }
}

/// Reads the client's first packet (sequence id 1) and not a byte more: after an SSL
/// request the TLS handshake's bytes must stay on the socket for the TLS acceptor.
async fn read_first_packet(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<(u8, Vec<u8>), SessionError> {
    let mut header = [0u8; frame::HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .map_err(SessionError::ClientIo)?;
    buf.extend_from_slice(&header);
    let Some((len, _)) = frame::peek_header(buf, MAX_LOGIN_PACKET)? else {
        return Err(CodecError::Malformed("handshake response").into());
    };
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(SessionError::ClientIo)?;
    buf.extend_from_slice(&payload);
    read_packet(stream, buf, 1).await
}

/// Reads one login packet, which must carry sequence id `expected`.
async fn read_packet(
    stream: &mut Stream,
    buf: &mut BytesMut,
    expected: u8,
) -> Result<(u8, Vec<u8>), SessionError> {
    loop {
        if let Some((len, seq)) = frame::peek_packet(buf, MAX_LOGIN_PACKET)? {
            if seq != expected {
                return Err(CodecError::OutOfSequence { expected, got: seq }.into());
            }
            buf.advance(frame::HEADER_LEN);
            return Ok((seq, buf.split_to(len).to_vec()));
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

/// Sends an ERR packet and ends the login.
async fn reject(
    stream: &mut Stream,
    seq: u8,
    code: u16,
    state: &str,
    message: &str,
) -> Result<Option<ClientSession>, SessionError> {
    let mut o = BytesMut::new();
    packets::write_err(&mut o, seq, code, state, message);
    let _ = stream.write_all(&o).await;
    Ok(None)
}
