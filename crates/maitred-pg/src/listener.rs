//! Accepts client connections on one address and serves each in its own task.

use crate::frontend::{serve_client, Router};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts clients until the listener fails or the task is dropped. The front end records
/// the client's pool once the startup packet names it, and its id (the BackendKeyData
/// process id) once it is logged in.
pub async fn serve(listener: TcpListener, router: Arc<Router>) -> std::io::Result<()> {
    maitred_frontend::listener::accept_loop(listener, "postgresql", None, |stream, _| {
        serve_client(stream, router.clone())
    })
    .await
}
