//! tokio-postgres helpers shared by the PostgreSQL end-to-end tests.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// Connects (30 s at most) and drives the connection in a task of its own; panics with the
/// URL and the error if it fails.
pub async fn connect(url: &str) -> Client {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(30), tokio_postgres::connect(url, NoTls))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect {url}: {e:?}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}
