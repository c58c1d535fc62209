//! MySQL/MariaDB: the client limits through maitred, with mysql_async and raw sockets.

use std::time::{Duration, Instant};

use maitred_e2e::mysql_client::{connect, must_connect};
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{raw_socket, read_to_close, spawn_pool, within};

/// maitred in front of the test MariaDB: trust login (any user), `extra` limits. Returns
/// the client URL.
fn start(url: &str, extra: &str) -> (Maitred, String) {
    let m = spawn_pool(&format!(
        "upstream = \"{url}\"\nclient_auth = \"trust\"\n{extra}"
    ));
    let client_url = MysqlUrl::parse(url).with_addr(m.addr());
    (m, client_url)
}

async fn scalar(conn: &mut Conn, sql: &str) -> i64 {
    within(20, sql, conn.query_first::<i64, _>(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

fn server_error(e: &mysql_async::Error) -> Option<(u16, String)> {
    match e {
        mysql_async::Error::Server(s) => Some((s.code, s.message.clone())),
        _ => None,
    }
}

/// The code and message of the first ERR packet in `bytes`.
fn first_err(bytes: &[u8]) -> Option<(u16, String)> {
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = usize::from(bytes[at])
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]) << 16;
        let payload = bytes.get(at + 4..at + 4 + len)?;
        if payload.first() == Some(&0xFF) && payload.len() >= 9 {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            // 0xFF, code (2), '#', SQLSTATE (5), message.
            return Some((code, String::from_utf8_lossy(&payload[9..]).into_owned()));
        }
        at += 4 + len;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_silent_login_gets_1043_at_client_login_timeout() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, client_url) = start(&url, "client_login_timeout = \"500ms\"");
    let addr = m.addr();
    // Reads the greeting, then never answers it.
    let (bytes, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut s = raw_socket(addr, 5);
        (read_to_close(&mut s), started.elapsed())
    })
    .await
    .expect("raw client");
    let (code, message) = first_err(&bytes).unwrap_or_else(|| panic!("no ERR in {bytes:?}"));
    assert_eq!(code, 1043, "{message}");
    assert!(
        message.contains("client_login_timeout (500ms)"),
        "{message}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let mut c = must_connect(&client_url).await;
    assert_eq!(scalar(&mut c, "SELECT 1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_idle_in_transaction_is_rolled_back_and_frees_the_server_connection() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (_m, client_url) = start(
        &url,
        "size = 1\nqueue_timeout = \"5s\"\nidle_transaction_timeout = \"300ms\"",
    );
    let table = format!("limits_idle_tx_{}", std::process::id());
    let mut setup = must_connect(&client_url).await;
    setup
        .query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {table} (v INT) ENGINE=InnoDB"
        ))
        .await
        .expect("create");
    setup
        .query_drop(format!("DELETE FROM {table}"))
        .await
        .expect("clear");
    drop(setup);

    let mut idle = must_connect(&client_url).await;
    idle.query_drop("START TRANSACTION").await.expect("begin");
    idle.query_drop(format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The pool's only server connection is free: another client gets through at once,
    // and the insert was rolled back.
    let started = Instant::now();
    let mut other = must_connect(&client_url).await;
    let count = scalar(&mut other, &format!("SELECT COUNT(*) FROM {table}")).await;
    assert_eq!(count, 0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The idle client was told why.
    let e = idle
        .query_drop("SELECT 1")
        .await
        .expect_err("the idle client was disconnected");
    let (code, message) = server_error(&e).unwrap_or_else(|| panic!("not an ERR: {e:?}"));
    assert_eq!(code, 4031, "{message}");
    assert!(
        message.contains("idle_transaction_timeout 300ms"),
        "{message}"
    );
    other
        .query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_idle_client_gets_4031_at_client_idle_timeout() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (_m, client_url) = start(&url, "client_idle_timeout = \"400ms\"");
    let mut idle = must_connect(&client_url).await;
    let mut busy = must_connect(&client_url).await;
    for _ in 0..10 {
        assert_eq!(scalar(&mut busy, "SELECT 1").await, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = idle
        .query_drop("SELECT 1")
        .await
        .expect_err("the idle client was disconnected");
    let (code, message) = server_error(&e).unwrap_or_else(|| panic!("not an ERR: {e:?}"));
    assert_eq!(code, 4031, "{message}");
    assert!(message.contains("client_idle_timeout 400ms"), "{message}");
    assert_eq!(scalar(&mut busy, "SELECT 2").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_query_timeout_kills_the_query_with_3024_and_frees_the_pool() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (_m, client_url) = start(&url, "size = 1\nquery_timeout = \"500ms\"");
    let marker = format!("limits_qt_{}", std::process::id());
    let mut slow = must_connect(&client_url).await;
    let started = Instant::now();
    let e = within(
        5,
        "slow query",
        slow.query_drop(format!("SELECT SLEEP(30) /* {marker} */")),
    )
    .await
    .expect_err("the query must time out");
    let took = started.elapsed();
    let (code, message) = server_error(&e).unwrap_or_else(|| panic!("not an ERR: {e:?}"));
    assert_eq!(code, 3024, "{message}");
    assert!(message.contains("query_timeout 500ms"), "{message}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let mut next = must_connect(&client_url).await;
    assert_eq!(scalar(&mut next, "SELECT 7").await, 7);
    // The server stopped running the query (KILL QUERY from a side connection).
    let mut direct = must_connect(&url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running = scalar(
            &mut direct,
            &format!(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%{marker}%' AND id <> CONNECTION_ID()"
            ),
        )
        .await;
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out query still runs on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_max_clients_refuses_with_1040() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (_m, client_url) = start(&url, "max_clients = 2");
    let a = must_connect(&client_url).await;
    let mut b = must_connect(&client_url).await;
    let Err(e) = connect(&client_url).await else {
        panic!("a third client must be refused");
    };
    let (code, message) = server_error(&e).unwrap_or_else(|| panic!("not an ERR: {e:?}"));
    assert_eq!(code, 1040, "{message}");
    assert!(message.contains("max_clients (2)"), "{message}");
    assert_eq!(scalar(&mut b, "SELECT 1").await, 1);
    a.disconnect().await.expect("disconnect");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = loop {
        match connect(&client_url).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline && server_error(&e).map(|e| e.0) == Some(1040) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e:?}"),
        }
    };
    assert_eq!(scalar(&mut c, "SELECT 3").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_packet_over_max_message_size_gets_1153_and_only_that_client_is_closed() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (_m, client_url) = start(&url, "max_message_size = 4096");
    let mut big = must_connect(&client_url).await;
    let mut other = must_connect(&client_url).await;
    let fits = format!("SELECT LENGTH('{}')", "x".repeat(3000));
    assert_eq!(scalar(&mut big, &fits).await, 3000);
    let too_big = format!("SELECT LENGTH('{}')", "x".repeat(10_000));
    let e = big
        .query_drop(too_big)
        .await
        .expect_err("a 10 kB query must be refused");
    let (code, message) = server_error(&e).unwrap_or_else(|| panic!("not an ERR: {e:?}"));
    assert_eq!(code, 1153, "{message}");
    assert!(
        message.contains("exceeds max_message_size (4096 bytes)"),
        "{message}"
    );
    assert!(
        big.query_drop("SELECT 1").await.is_err(),
        "the client was not closed"
    );
    assert_eq!(scalar(&mut other, "SELECT 5").await, 5);
}
