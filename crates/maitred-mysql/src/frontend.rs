//! A client connection from accept to the end of login: maitred's own Handshake v10 (its
//! own connection id and 20-byte scramble), TLS if the client asks (CLIENT_SSL), the
//! client's handshake response, password check (mysql_native_password,
//! caching_sha2_password fast path or full authentication, or an auth switch to
//! mysql_native_password for any other plugin), routing to a pool. Then [`crate::relay`]
//! takes over.
//!
//! This file holds the client's task and the packet I/O of the login; `login` runs the
//! login itself, `caching_sha2` that plugin's exchange.
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
mod login;

use login::login;

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
