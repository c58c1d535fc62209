//! Accepts client connections on one address and serves each in its own task.

use crate::pool::MongoPool;
use crate::session::Session;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts clients until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, pool: Arc<MongoPool>) -> std::io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    Session::new(stream, pool).run().await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
