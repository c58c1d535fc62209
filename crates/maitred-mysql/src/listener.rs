//! Accepts client connections on one address and serves each in its own task.

use crate::frontend::{serve_client, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts clients until the listener fails or the task is dropped. The front end records
/// the client's id (maitred's connection id) and its pool once known.
pub async fn serve(listener: TcpListener, router: Arc<Router>) -> std::io::Result<()> {
    maitred_frontend::listener::accept_loop(listener, "mysql", None, |stream, peer| {
        serve_client(stream, peer, router.clone())
    })
    .await
}
