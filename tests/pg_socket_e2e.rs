//! End-to-end tests: maitred reaching the real PostgreSQL over its Unix socket (libpq's
//! `host=/directory` in the upstream URL), as on the database host. Clients still connect
//! to maitred over TCP. The cluster is the one `scripts/test.sh` starts; its socket sits
//! beside its data directory (`MAITRED_TEST_PG_DATADIR`).

use std::time::{Duration, Instant};

use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

async fn within<F: std::future::Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

async fn must_connect(url: &str) -> Client {
    let (client, connection) = within(30, "connect", tokio_postgres::connect(url, NoTls))
        .await
        .unwrap_or_else(|e| panic!("connect to {url} failed: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// How the server sees the connection it serves: its client address, NULL over a socket.
async fn client_addr(c: &Client) -> Option<String> {
    within(
        20,
        "inet_client_addr",
        c.query_one("SELECT host(inet_client_addr())", &[]),
    )
    .await
    .expect("SELECT inet_client_addr()")
    .get(0)
}

/// The test server's URL and socket directory, or `None` (skip) without a test server.
fn server() -> Option<(String, String)> {
    let url = kit::require_pg()?;
    let control = kit::pg_server::pg_control().unwrap_or_else(|| {
        panic!(
            "MAITRED_TEST_PG_DATADIR is not set beside MAITRED_TEST_PG_URL (use scripts/test.sh)"
        )
    });
    Some((url, control.socket_dir().display().to_string()))
}

fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_connections_go_over_the_servers_unix_socket() {
    let Some((url, dir)) = server() else { return };
    let _g = kit::serial().await;

    // Over TCP the server sees maitred's address; over the socket it sees none.
    let tcp = Maitred::spawn(&["--upstream", &url, "--pool-size", "1"]);
    let c = must_connect(&tcp.url_for(&url)).await;
    assert_eq!(client_addr(&c).await.as_deref(), Some("127.0.0.1"));
    drop(c);
    drop(tcp);

    let upstream = with_param(&url, &format!("host={dir}"));
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "2"]);
    let url_m = m.url_for(&url);
    let mut tasks = Vec::new();
    for i in 0..20i32 {
        let url_m = url_m.clone();
        tasks.push(tokio::spawn(async move {
            let c = must_connect(&url_m).await;
            assert_eq!(client_addr(&c).await, None, "not over the socket");
            for j in 0..5i32 {
                let row = within(
                    20,
                    "select",
                    c.query_one("SELECT $1::int * 10 + $2::int", &[&i, &j]),
                )
                .await
                .expect("select with parameters");
                assert_eq!(row.get::<_, i32>(0), i * 10 + j);
            }
        }));
    }
    for task in tasks {
        within(90, "client task", task).await.expect("task");
    }

    // A cancel request goes to the server over the socket too.
    let c = must_connect(&url_m).await;
    let token = c.cancel_token();
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let r = c.simple_query("SELECT pg_sleep(20)").await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    within(10, "cancel", token.cancel_query(NoTls))
        .await
        .expect("cancel request");
    let (r, took) = within(15, "cancelled query", sleeper).await.expect("task");
    let e = r.expect_err("the sleep was cancelled");
    assert_eq!(
        e.code(),
        Some(&SqlState::QUERY_CANCELED),
        "{e}\n{}",
        m.log()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_tls_demand_over_a_socket_stops_the_start() {
    let Some((url, dir)) = server() else { return };
    let upstream = with_param(&url, &format!("host={dir}&sslmode=require"));
    let listen = format!("127.0.0.1:{}", kit::free_port());
    let stderr = kit::refused_start(&["--listen", &listen, "--upstream", &upstream]);
    assert!(
        stderr.contains("sslmode require cannot be met over the Unix socket"),
        "{stderr}"
    );
    assert!(!stderr.contains("app_secret"), "{stderr}");
}
