//! A client connection from accept to the end of login: SSL/GSS refusal, cancel requests,
//! routing by database, authentication, and the greeting (ParameterStatus, BackendKeyData,
//! ReadyForQuery). Then [`crate::relay`] takes over.
//!
//! This file holds the client's task and the greeting; `startup` reads the startup packet
//! (TLS, cancel requests, the protocol version), `login` routes and authenticates.
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

mod login;
mod startup;

pub(crate) use login::{authenticate_user, read_login_message, write};
use login::{fatal, login};
pub(crate) use startup::negotiate_version;
use startup::read_startup;

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
