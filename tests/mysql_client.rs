//! mysql_async helpers the MySQL end-to-end tests share.

use std::future::Future;
use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder};

/// Run `fut` or panic after `secs` seconds (no test may hang).
pub async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// A mysql_async connection to `url` over TCP.
pub async fn connect(url: &str) -> Result<Conn, mysql_async::Error> {
    // prefer_socket(false): mysql_async would otherwise look up @@socket and reconnect
    // over the server's unix socket, around maitred.
    let opts =
        OptsBuilder::from_opts(Opts::from_url(url).expect("valid mysql URL")).prefer_socket(false);
    within(20, "connect", Conn::new(opts)).await
}

/// [`connect`], or panic naming the URL.
pub async fn must_connect(url: &str) -> Conn {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} failed: {e}"))
}
