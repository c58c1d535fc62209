//! Accepts client connections on one address and serves each in its own task.

use crate::pool::MongoPool;
use crate::session::Session;
use crate::tls::ClientTls;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

/// Accepts clients until the listener fails or the task is dropped. With `tls`, clients
/// that open with a TLS handshake get TLS (see [`crate::tls`]).
pub async fn serve(
    listener: TcpListener,
    pool: Arc<MongoPool>,
    tls: Option<ClientTls>,
) -> std::io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Every line logged for this client carries these fields; the session
                // records the id (the connectionId its hello shows).
                let span = tracing::info_span!(
                    "client",
                    protocol = "mongodb",
                    pool = %pool.name,
                    client = %peer,
                    id = tracing::field::Empty,
                );
                let pool = pool.clone();
                let tls = tls.clone();
                tokio::spawn(
                    async move {
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
                                tracing::info!(
                                    "client sent no TLS handshake within client_login_timeout"
                                );
                                return;
                            }
                        };
                        let required = tls.as_ref().is_some_and(|t| t.required);
                        Session::new(client, pool).require_tls(required).run().await;
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
