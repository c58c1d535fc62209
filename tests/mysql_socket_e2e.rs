//! End-to-end tests: maitred reaching the real MariaDB over its Unix socket (the upstream
//! URL's `socket` parameter), as a sidecar on the database host would. Clients still
//! connect to maitred over TCP. The server is the one `scripts/test.sh` starts; its socket
//! is `MAITRED_TEST_MYSQL_SOCKET`.

use std::time::{Duration, Instant};

use maitred_e2e::mysql_client::{connect, must_connect, within};
use maitred_testkit::mysql::{mysql_socket, require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use mysql_async::Conn;

async fn user_host(conn: &mut Conn) -> String {
    within(
        20,
        "SELECT USER()",
        conn.query_first::<String, _>("SELECT USER()"),
    )
    .await
    .expect("SELECT USER()")
    .expect("a row")
}

/// The test server's URL and socket, or `None` (skip) when scripts/test.sh did not start one.
fn server() -> Option<(String, String)> {
    let url = require_mysql()?;
    let socket = mysql_socket().unwrap_or_else(|| {
        panic!("MAITRED_TEST_MYSQL_SOCKET is not set beside MAITRED_TEST_MYSQL_URL (use scripts/test.sh)")
    });
    Some((url, socket.display().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_connections_go_over_the_servers_unix_socket() {
    let Some((url, socket)) = server() else {
        return;
    };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);

    // Over TCP the server sees maitred's address; over the socket it sees localhost, so
    // USER() tells the two apart.
    let tcp = Maitred::spawn(&["--upstream", &url, "--pool-size", "1"]);
    let mut c = must_connect(&u.with_addr(tcp.addr())).await;
    assert_eq!(user_host(&mut c).await, format!("{}@127.0.0.1", u.user));
    drop(c);
    drop(tcp);

    let upstream = format!("{url}?socket={socket}");
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "2"]);
    let url_m = u.with_addr(m.addr());
    let mut tasks = Vec::new();
    for i in 0..20i64 {
        let url_m = url_m.clone();
        let expected_user = format!("{}@localhost", u.user);
        tasks.push(tokio::spawn(async move {
            let mut c = must_connect(&url_m).await;
            assert_eq!(user_host(&mut c).await, expected_user);
            for j in 0..5i64 {
                let v: Option<i64> = within(20, "exec", c.exec_first("SELECT ? * 10 + ?", (i, j)))
                    .await
                    .expect("prepared select");
                assert_eq!(v, Some(i * 10 + j));
            }
            c.disconnect().await.expect("disconnect");
        }));
    }
    for task in tasks {
        within(60, "client task", task).await.expect("task");
    }

    // KILL QUERY goes out on a side connection, over the socket too.
    let mut a = must_connect(&url_m).await;
    let mut b = must_connect(&url_m).await;
    let a_id: u32 = a.id();
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let _ = a.query_drop("SELECT SLEEP(20)").await;
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.query_drop(format!("KILL QUERY {a_id}"))
        .await
        .expect("kill query");
    let took = within(15, "killed query", sleeper).await.expect("task");
    assert!(
        took < Duration::from_secs(10),
        "KILL QUERY did not interrupt over the socket: {took:?}\n{}",
        m.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_is_named_in_the_clients_error() {
    let Some((url, _socket)) = server() else {
        return;
    };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let missing = "/nonexistent/maitred-test/mysqld.sock";
    let upstream = format!("{url}?socket={missing}");
    let m = Maitred::spawn(&[
        "--upstream",
        &upstream,
        "--pool-size",
        "1",
        "--queue-timeout",
        "5s",
    ]);
    let url_m = u.with_addr(m.addr());
    // The login is maitred's own; the server is needed at the first query at the latest.
    let err = match connect(&url_m).await {
        Err(e) => e,
        Ok(mut c) => within(20, "query", c.query_drop("SELECT 1"))
            .await
            .expect_err("no server behind a missing socket"),
    };
    let text = err.to_string();
    assert!(text.contains(missing), "{text}");
}

#[test]
fn a_tls_demand_over_a_socket_stops_the_start() {
    let Some((url, socket)) = server() else {
        return;
    };
    let upstream = format!("{url}?socket={socket}&ssl-mode=REQUIRED");
    let listen = format!("127.0.0.1:{}", kit::free_port());
    let stderr = kit::refused_start(&["--listen", &listen, "--upstream", &upstream]);
    assert!(
        stderr.contains("ssl-mode=REQUIRED cannot be met over the Unix socket"),
        "{stderr}"
    );
    assert!(!stderr.contains("app_secret"), "{stderr}");
}
