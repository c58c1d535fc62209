//! Accepts client connections on one address and serves each in its own task.

use crate::frontend::{serve_client, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts clients until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, router: Arc<Router>) -> std::io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_client(stream, peer, router.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
