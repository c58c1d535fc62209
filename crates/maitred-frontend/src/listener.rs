//! The accept loop every protocol's listener runs.

use std::future::Future;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

/// How long to wait after a failed accept (EMFILE and friends) before the next one.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Accepts clients until the task is dropped, each served by `serve` in its own task.
///
/// Every line logged for a client carries the fields of its `client` span: `protocol`,
/// `pool` (`pool` here when the address serves one pool, else recorded by the protocol
/// once the client names it), `client` (its address) and `id` (recorded by the protocol:
/// the id it shows the client).
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    pool: Option<&str>,
    serve: F,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let span = tracing::info_span!(
                    "client",
                    protocol,
                    pool = tracing::field::Empty,
                    client = %peer,
                    id = tracing::field::Empty,
                );
                if let Some(pool) = pool {
                    span.record("pool", tracing::field::display(pool));
                }
                tokio::spawn(serve(stream, peer).instrument(span));
            }
            Err(e) => {
                // Log, back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
