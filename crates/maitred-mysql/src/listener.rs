//! Accepts client connections on one address and serves each in its own task.

use crate::frontend::{serve_client, Router};
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

/// Accepts clients until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, router: Arc<Router>) -> std::io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Every line logged for this client carries these fields; the front end
                // records the id (maitred's connection id) and the pool once known.
                let span = tracing::info_span!(
                    "client",
                    protocol = "mysql",
                    pool = tracing::field::Empty,
                    client = %peer,
                    id = tracing::field::Empty,
                );
                tokio::spawn(serve_client(stream, peer, router.clone()).instrument(span));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
