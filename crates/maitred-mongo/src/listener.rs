//! Accepts client connections on one address and serves each in its own task.

use crate::pool::MongoPool;
use crate::session::Session;
use crate::tls::ClientTls;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Accepts clients until the listener fails or the task is dropped. With `tls`, clients
/// that open with a TLS handshake get TLS (see [`crate::tls`]). The session records the
/// client's id (the connectionId its hello shows).
pub async fn serve(
    listener: TcpListener,
    pool: Arc<MongoPool>,
    tls: Option<ClientTls>,
) -> std::io::Result<()> {
    let name = pool.name.clone();
    maitred_frontend::listener::accept_loop(listener, "mongodb", Some(&name), |stream, _| {
        serve_client(stream, pool.clone(), tls.clone())
    })
    .await
}

/// One client: the TLS handshake if it opens with one, then its session.
async fn serve_client(stream: TcpStream, pool: Arc<MongoPool>, tls: Option<ClientTls>) {
    let _ = stream.set_nodelay(true);
    // The handshake counts against the login time limit.
    let accepted = tokio::time::timeout(
        pool.limits.login_timeout,
        crate::tls::accept(stream, tls.as_ref()),
    )
    .await;
    let client = match accepted {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "client TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!("client sent no TLS handshake within client_login_timeout");
            return;
        }
    };
    let required = tls.as_ref().is_some_and(|t| t.required);
    let session = Box::new(Session::new(client, pool).require_tls(required));
    session.run().await;
}
