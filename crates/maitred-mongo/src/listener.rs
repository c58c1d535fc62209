//! Accepts client connections on one address and serves each in its own task.

use crate::pool::MongoPool;
use crate::session::Session;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

/// Accepts clients until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, pool: Arc<MongoPool>) -> std::io::Result<()> {
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
                tokio::spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        Session::new(stream, pool).run().await;
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
