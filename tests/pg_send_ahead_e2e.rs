//! End-to-end tests of `send_ahead` (PostgreSQL): the holder of a busy server connection
//! writes the next queued client's lone SELECT behind its own query and hands the
//! connection over once its own reply is read.
//!
//! Real PostgreSQL (`MAITRED_TEST_PG_URL`, started by `scripts/test.sh`), the built
//! binary, and real clients (pgbench, tokio-postgres). Each test reads maitred's
//! `/metrics` to know whether queries were sent ahead, so a test that passes without the
//! mechanism engaging would fail.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use maitred_testkit::admin_http::{
    clients_waiting as waiting, metric_sum as metric, metric_sum_now as metric_now, until,
};
use maitred_testkit::{self as kit, Maitred};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// maitred in front of `pg_url` with an admin endpoint, and the admin address.
fn start(pg_url: &str, extra: &[&str]) -> (Maitred, SocketAddr) {
    maitred_testkit::admin_http::spawn_with_admin(pg_url, extra)
}

async fn connect(url: &str) -> (Client, JoinHandle<()>) {
    let mut config: tokio_postgres::Config = url.parse().expect("url");
    config.connect_timeout(Duration::from_secs(30));
    let (client, connection) = tokio::time::timeout(Duration::from_secs(30), config.connect(NoTls))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {url}: {e:?}"));
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, handle)
}

/// Runs `body` for `n` clients at once, each with its own connection through `url` and its
/// number; fails if any panics or they take more than two minutes.
async fn on_clients<F, Fut>(url: &str, n: u32, body: F)
where
    F: Fn(u32, Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // Every client logs in first, then all start together: the queueing the tests need.
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(connect(url).await);
    }
    let mut tasks = Vec::new();
    for (id, (client, conn)) in (0..n).zip(clients) {
        let run = body(id, client);
        tasks.push(tokio::spawn(async move {
            run.await;
            let _ = conn.await;
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("clients finish")
            .expect("client task");
    }
}

/// The values of the first row of a simple query's result.
fn first_row(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

async fn row(client: &Client, sql: &str) -> Vec<String> {
    first_row(
        &client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pgbench_select_200_clients_are_sent_ahead_with_zero_failures_in_every_query_mode() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let out = kit::output_with_timeout(
        Command::new("pgbench").args(["-i", "-s", "1", "-q", &pg_url]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "pgbench -i: {}", text(&out.stderr));
    let (mut m, admin) = start(&pg_url, &["--pool-size", "10"]);
    let url = m.url_for(&pg_url);
    // simple: Query; extended: unnamed Parse/Bind/Describe/Execute/Sync; prepared: Bind of
    // a named statement (renamed for the server, sent ahead only where it is prepared).
    let mut sent_before = 0.0;
    for mode in ["simple", "extended", "prepared"] {
        let out = kit::output_with_timeout(
            Command::new("pgbench")
                .args([
                    "-S", "-M", mode, "-c", "200", "-j", "2", "-T", "4", "-n", &url,
                ])
                .env("PGCONNECT_TIMEOUT", "15"),
            Duration::from_secs(90),
        );
        let shown = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "pgbench -M {mode} failed: {shown}");
        assert!(
            shown.contains("number of failed transactions: 0 "),
            "-M {mode}: failed transactions: {shown}"
        );
        assert!(m.try_exit_status().is_none(), "maitred exited");
        let sent = metric(admin, "maitred_sent_ahead_total");
        eprintln!(
            "pgbench -S -M {mode} through maitred: {} sent ahead",
            sent - sent_before
        );
        assert!(
            sent - sent_before > 100.0,
            "-M {mode}: queued requests were not sent ahead: {}",
            sent - sent_before
        );
        sent_before = sent;
    }
    let lost = metric(admin, "maitred_sent_ahead_lost_total");
    assert_eq!(
        lost, 0.0,
        "no client left mid-query, so nothing may be lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_sent_ahead_get_their_own_parameters_back() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start(&pg_url, &["--pool-size", "2"]);
    let url = m.url_for(&pg_url);
    on_clients(&url, 16, |id, client| async move {
        let id = i32::try_from(id).expect("small id");
        // Two statements per client, the same texts in every client: the pool shares
        // them, each server connection prepares them once.
        let echo = client
            .prepare("SELECT $1::int4, $2::int4")
            .await
            .expect("prepare");
        let plus = client
            .prepare("SELECT $1::int4 + 1000")
            .await
            .expect("prepare");
        for i in 0..120i32 {
            let row = client.query_one(&echo, &[&id, &i]).await.expect("echo");
            assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (id, i));
            let row = client.query_one(&plus, &[&id]).await.expect("plus");
            assert_eq!(row.get::<_, i32>(0), id + 1000);
        }
    })
    .await;
    let sent = metric_now(admin, "maitred_sent_ahead_total").await;
    let lost = metric_now(admin, "maitred_sent_ahead_lost_total").await;
    assert!(
        sent > 0.0,
        "16 clients over 2 connections: some executions must be sent ahead"
    );
    assert_eq!(lost, 0.0);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_never_cross_clients_nor_settings() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start(&pg_url, &["--pool-size", "2"]);
    let url = m.url_for(&pg_url);
    // Three groups with different settings: a query may only be sent ahead on a
    // connection that carries its client's settings.
    on_clients(&url, 18, |id, client| async move {
        let group = id % 3;
        if group > 0 {
            client
                .simple_query(&format!("SET application_name = 'group{group}'"))
                .await
                .expect("SET");
        }
        let want_app = if group == 0 {
            None
        } else {
            Some(format!("group{group}"))
        };
        for i in 0..150u32 {
            let got = row(
                &client,
                &format!("SELECT {id}, {i}, current_setting('application_name')"),
            )
            .await;
            assert_eq!(got[0], id.to_string(), "another client's reply");
            assert_eq!(got[1], i.to_string(), "an earlier reply");
            if let Some(app) = &want_app {
                assert_eq!(&got[2], app, "ran with another client's settings");
            } else {
                assert!(!got[2].starts_with("group"), "ran with {}", got[2]);
            }
        }
    })
    .await;
    let sent = metric_now(admin, "maitred_sent_ahead_total").await;
    assert!(
        sent > 0.0,
        "18 clients over 2 connections: some queries must be sent ahead"
    );
    drop(m);
}

/// Pool of one: a client holds the connection in a transaction, one queued client offers
/// `query_a`, the next `SELECT 42`. Returns the two tasks, once the holder committed and
/// the first queued client's query claimed the second's.
async fn queue_two_behind_a_transaction(
    url: &str,
    admin: SocketAddr,
    query_a: &'static str,
) -> (
    JoinHandle<Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>>,
    JoinHandle<()>,
    JoinHandle<(
        Client,
        Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>,
    )>,
) {
    let (holder, holder_conn) = connect(url).await;
    let (a, a_conn) = connect(url).await;
    let (b, b_conn) = connect(url).await;
    holder.simple_query("BEGIN").await.expect("BEGIN");
    let a_task = tokio::spawn(async move { a.simple_query(query_a).await });
    until("client A queued", 10, move || waiting(admin) >= 1.0).await;
    let b_task = tokio::spawn(async move {
        let r = b.simple_query("SELECT 42").await;
        (b, r)
    });
    until("client B queued", 10, move || waiting(admin) >= 2.0).await;
    holder.simple_query("COMMIT").await.expect("COMMIT");
    until("B's query sent ahead behind A's", 10, move || {
        metric(admin, "maitred_sent_ahead_total") >= 1.0
    })
    .await;
    drop(holder);
    let _ = holder_conn.await;
    // The connections must outlive the queries: keep B's, hand A's back to the caller.
    tokio::spawn(async move {
        let _ = b_conn.await;
    });
    (a_task, a_conn, b_task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_sent_ahead_waits_for_the_holder_then_gets_its_own_reply() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start(&pg_url, &["--pool-size", "1"]);
    let url = m.url_for(&pg_url);
    let (a_task, _a_conn, b_task) =
        queue_two_behind_a_transaction(&url, admin, "SELECT pg_sleep(0.5), 'a'").await;
    let a = a_task.await.expect("task").expect("A's query");
    assert_eq!(first_row(&a), vec!["".to_owned(), "a".to_owned()]);
    let (b, r) = b_task.await.expect("task");
    assert_eq!(first_row(&r.expect("B's query")), vec!["42".to_owned()]);
    // B goes on with the connection it was handed.
    assert_eq!(row(&b, "SELECT 43").await, vec!["43".to_owned()]);
    let lost = metric_now(admin, "maitred_sent_ahead_lost_total").await;
    assert_eq!(lost, 0.0);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_leaving_mid_query_fails_the_query_sent_ahead_with_08006_and_retry_works() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start(&pg_url, &["--pool-size", "1"]);
    let url = m.url_for(&pg_url);
    let (a_task, a_conn, b_task) =
        queue_two_behind_a_transaction(&url, admin, "SELECT pg_sleep(2), 'a'").await;
    // A's client vanishes while its query runs with B's queued behind it.
    a_conn.abort();
    a_task.abort();
    let (b, r) = tokio::time::timeout(Duration::from_secs(10), b_task)
        .await
        .expect("B answered")
        .expect("task");
    let err = r.expect_err("B's query was lost with A's connection");
    let db = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(db.code().code(), "08006", "{db:?}");
    assert!(db.message().contains("sent ahead"), "{}", db.message());
    // B's session is fine, and the connection was reset, not leaked.
    assert_eq!(row(&b, "SELECT 44").await, vec!["44".to_owned()]);
    let lost = metric_now(admin, "maitred_sent_ahead_lost_total").await;
    assert_eq!(lost, 1.0);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_select_never_runs_inside_another_clients_transaction() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let table = format!("send_ahead_tx_{}", std::process::id());
    let (direct, direct_conn) = connect(&pg_url).await;
    direct
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v int)"
        ))
        .await
        .expect("create");
    let (m, admin) = start(&pg_url, &["--pool-size", "1"]);
    let url = m.url_for(&pg_url);
    let (x, x_conn) = connect(&url).await;
    let (b, b_conn) = connect(&url).await;
    x.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");
    let count_sql = format!("SELECT count(*) FROM {table}");
    let b_task = tokio::spawn({
        let sql = count_sql.clone();
        async move { row(&b, &sql).await }
    });
    until("B queued", 10, move || waiting(admin) >= 1.0).await;
    // Lone SELECTs inside the block: the holder must not send B's query behind them.
    assert_eq!(row(&x, &count_sql).await, vec!["1".to_owned()]);
    assert_eq!(row(&x, "SELECT 1").await, vec!["1".to_owned()]);
    x.simple_query("ROLLBACK").await.expect("ROLLBACK");
    let seen = tokio::time::timeout(Duration::from_secs(10), b_task)
        .await
        .expect("B answered")
        .expect("task");
    assert_eq!(seen, vec!["0".to_owned()], "B saw a rolled-back row");
    let sent = metric_now(admin, "maitred_sent_ahead_total").await;
    assert_eq!(sent, 0.0, "nothing may be sent ahead inside a transaction");
    drop((x, x_conn, b_conn));
    direct
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    drop(direct);
    let _ = direct_conn.await;
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_ahead_false_never_sends_ahead() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start(&pg_url, &["--pool-size", "1", "--send-ahead", "false"]);
    let url = m.url_for(&pg_url);
    on_clients(&url, 6, |id, client| async move {
        for _ in 0..100 {
            assert_eq!(
                row(&client, &format!("SELECT {id}")).await,
                vec![id.to_string()]
            );
        }
    })
    .await;
    let sent = metric_now(admin, "maitred_sent_ahead_total").await;
    assert_eq!(sent, 0.0);
    drop(m);
}
